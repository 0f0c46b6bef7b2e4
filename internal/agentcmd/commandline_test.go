package agentcmd

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/a0backup/a0/internal/statedir"
	"github.com/a0backup/a0/internal/version"
)

// TestCommandLineForms: a0agent on cobra keeps the Go flag forms scripts
// use (-state-dir DIR, -help) and suggests the nearest command or flag.
func TestCommandLineForms(t *testing.T) {
	state := t.TempDir()
	// `keys` reads an existing state directory only (issue 25.14): make one.
	if _, err := statedir.Open(state); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"single-dash long flag", []string{"keys", "-state-dir", state}, 0, "NAME  TYPE", ""},
		{"single-dash long flag with =", []string{"keys", "-state-dir=" + state}, 0, "NAME  TYPE", ""},
		{"double-dash", []string{"keys", "--state-dir", state}, 0, "NAME  TYPE", ""},
		{"single-dash help of the agent", []string{"-state-dir", state, "-help"}, 0, "usage: a0agent --state-dir DIR", ""},
		{"command typo", []string{"sede"}, 2, "", "did you mean seed?"},
		{"flag typo", []string{"seed", "--usres", "5"}, 2, "", "unknown flag --usres; did you mean --users?"},
		{"agent flag typo", []string{"--state-dri", state}, 2, "", "unknown flag --state-dri; did you mean --state-dir?"},
		{"version command", []string{"version"}, 0, "a0agent " + version.Version + "\n", ""},
		{"-V", []string{"-V"}, 0, "a0agent " + version.Version + "\n", ""},
		{"--version", []string{"--version"}, 0, "a0agent " + version.Version + "\n", ""},
		{"usage", []string{"-h"}, 0, "exit codes: 0 ok, 1 failure, 2 usage", ""},
		{"duration flag", []string{"allow-recovery", "-state-dir", state, "-for", "48h"}, 2, "", "at most 24h"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := Main(context.Background(), tc.args, &out, &errb); code != tc.code {
				t.Fatalf("a0agent %v: exit %d, want %d\nstdout: %s\nstderr: %s", tc.args, code, tc.code, out.String(), errb.String())
			}
			if !strings.Contains(out.String(), tc.stdout) || !strings.Contains(errb.String(), tc.stderr) {
				t.Fatalf("a0agent %v:\nstdout: %s\nstderr: %s\nwant %q on stdout, %q on stderr", tc.args, out.String(), errb.String(), tc.stdout, tc.stderr)
			}
		})
	}
}
