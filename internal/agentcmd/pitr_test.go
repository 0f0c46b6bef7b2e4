package agentcmd

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
)

// TestCheckConfigPITR: "pitr" is checked with the other problems (slice
// length and the recipients its slices are encrypted to), a good one is
// printed, and the agent refuses to start on what check-config refuses.
func TestCheckConfigPITR(t *testing.T) {
	x, _ := age.GenerateX25519Identity()
	state := t.TempDir()
	to := []string{x.Recipient().String()}
	t.Run("ok", func(t *testing.T) {
		for _, tc := range []struct {
			slice any
			want  string
		}{{nil, "slices of 10s"}, {"1s", "slices of 1s"}, {"10m", "slices of 10m0s"}} {
			p := map[string]any{}
			if tc.slice != nil {
				p["slice"] = tc.slice
			}
			cfg := writeConfig(t, map[string]any{"state_dir": state, "recipients": to, "pitr": p})
			var out, errb bytes.Buffer
			if code := Main(context.Background(), []string{"check-config", "--config", cfg}, &out, &errb); code != 0 {
				t.Fatalf("slice %v: exit %d: %s", tc.slice, code, errb.String())
			}
			if !strings.Contains(out.String(), tc.want) {
				t.Errorf("slice %v: output lacks %q:\n%s", tc.slice, tc.want, out.String())
			}
		}
	})
	for _, tc := range []struct {
		name string
		cfg  map[string]any
		want []string
	}{
		{"no recipients", map[string]any{"state_dir": state, "pitr": map[string]any{"slice": "10s"}}, []string{`pitr: needs "recipients"`}},
		{"too short", map[string]any{"state_dir": state, "recipients": to, "pitr": map[string]any{"slice": "500ms"}}, []string{"pitr: slice 500ms: must be from 1s to 10m0s"}},
		{"too long", map[string]any{"state_dir": state, "recipients": to, "pitr": map[string]any{"slice": "11m"}}, []string{"pitr: slice 11m0s"}},
		{"not a duration", map[string]any{"state_dir": state, "recipients": to, "pitr": map[string]any{"slice": "ten"}}, []string{`pitr: slice "ten"`}},
		{"unknown key", map[string]any{"state_dir": state, "recipients": to, "pitr": map[string]any{"slices": "10s"}}, []string{`unknown field "slices"`}},
		// Reported with the other problems, not instead of them.
		{"with others", map[string]any{"state_dir": state, "listen": ":99999", "pitr": map[string]any{"slice": "0s"}},
			[]string{`listen ":99999"`, "pitr: slice 0s", `pitr: needs "recipients"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := writeConfig(t, tc.cfg)
			var out, errb bytes.Buffer
			if code := Main(context.Background(), []string{"check-config", "--config", cfg}, &out, &errb); code != 1 {
				t.Fatalf("exit %d, want 1\n%s%s", code, out.String(), errb.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(errb.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, errb.String())
				}
			}
		})
	}
	cfg := writeConfig(t, map[string]any{"state_dir": state, "pitr": map[string]any{}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	if code := Main(ctx, []string{"--config", cfg}, &out, &errb); code != 1 || !strings.Contains(errb.String(), `pitr: needs "recipients"`) {
		t.Errorf("the agent started with pitr and no recipients: exit %d %s", code, errb.String())
	}
}
