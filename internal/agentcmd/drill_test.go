package agentcmd

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
)

// check-config on "drill" (issue 29): a good one is described (the key
// file's path, never its content); each wrong one is refused with its own
// message, and the agent refuses to start on it.
func TestCheckConfigDrill(t *testing.T) {
	state := t.TempDir()
	x, _ := age.GenerateX25519Identity()
	other, _ := age.GenerateX25519Identity()
	dir := t.TempDir()
	writeKey := func(name string, mode os.FileMode, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := writeKey("drill.key", 0o600, x.String()+"\n")
	readable := writeKey("readable.key", 0o644, x.String()+"\n")
	garbage := writeKey("garbage.key", 0o600, "not a key\n")
	otherKey := writeKey("other.key", 0o600, other.String()+"\n")
	recips := []string{x.Recipient().String()}

	t.Run("ok", func(t *testing.T) {
		cfg := writeConfig(t, map[string]any{"state_dir": state, "recipients": recips,
			"drill": map[string]string{"every": "168h", "identity": good}})
		var out, errb bytes.Buffer
		if code := Main(context.Background(), []string{"check-config", "--config", cfg}, &out, &errb); code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		for _, want := range []string{"drill:", "every 168h", good} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("output lacks %q:\n%s", want, out.String())
			}
		}
		if strings.Contains(out.String(), x.String()) {
			t.Errorf("the identity is printed:\n%s", out.String())
		}
	})
	for _, tc := range []struct {
		name  string
		drill map[string]string
		recip []string
		want  string
	}{
		{"no schedule", map[string]string{"identity": good}, recips, `drill: schedule: give "every"`},
		{"both", map[string]string{"every": "24h", "cron": "0 3 * * 0", "identity": good}, recips, `not both`},
		{"bad every", map[string]string{"every": "weekly", "identity": good}, recips, `"every": "weekly" is not a duration`},
		{"bad cron", map[string]string{"cron": "0 25 * * *", "identity": good}, recips, `drill: schedule: "cron"`},
		{"no identity", map[string]string{"every": "168h"}, recips, `drill: needs "identity"`},
		{"missing identity", map[string]string{"every": "168h", "identity": filepath.Join(dir, "nope")}, recips, "drill: identity: identity file"},
		{"readable identity", map[string]string{"every": "168h", "identity": readable}, recips, "chmod 600 " + readable},
		{"not a key", map[string]string{"every": "168h", "identity": garbage}, recips, "drill: identity:"},
		{"not a recipient", map[string]string{"every": "168h", "identity": otherKey}, recips, `its public key is not among "recipients"`},
		{"no recipients", map[string]string{"every": "168h", "identity": good}, nil, `drill: needs "recipients"`},
		{"unknown key", map[string]string{"every": "168h", "identity": good, "identiy": good}, recips, `drill: unknown field "identiy"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := map[string]any{"state_dir": state, "drill": tc.drill}
			if tc.recip != nil {
				c["recipients"] = tc.recip
			}
			cfg := writeConfig(t, c)
			var out, errb bytes.Buffer
			if code := Main(context.Background(), []string{"check-config", "--config", cfg}, &out, &errb); code != 1 {
				t.Fatalf("exit %d, want 1\n%s%s", code, out.String(), errb.String())
			}
			if !strings.Contains(errb.String(), tc.want) {
				t.Errorf("stderr lacks %q:\n%s", tc.want, errb.String())
			}
			if strings.Contains(errb.String(), x.String()) || strings.Contains(errb.String(), other.String()) {
				t.Errorf("a key is echoed:\n%s", errb.String())
			}
			// The agent refuses to start on it.
			out.Reset()
			errb.Reset()
			if code := Main(context.Background(), []string{"--config", cfg}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "drill") {
				t.Errorf("the agent started: exit %d %s", code, errb.String())
			}
		})
	}
}
