package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/a0backup/a0/internal/keys"
)

// TestChangedCertMessageEndsItsLine: two refusals printed one after the
// other stay on lines of their own (issue 18.5), with exit code 3.
func TestChangedCertMessageEndsItsLine(t *testing.T) {
	var stderr bytes.Buffer
	env := &Env{Stderr: &stderr}
	err := &keys.ChangedCertError{Node: "n1:10121", Want: "SHA256:old", Got: "SHA256:new", File: "/home/op/.a0cli/known_nodes"}
	for i := 0; i < 2; i++ {
		if code := report(env, err); code != ExitAuth {
			t.Fatalf("exit %d, want %d", code, ExitAuth)
		}
	}
	out := stderr.String()
	if !strings.HasSuffix(out, "`\n") || strings.Contains(out, "\n\n") {
		t.Fatalf("messages do not end their lines exactly once:\n%q", out)
	}
	if n := strings.Count(out, "\na0cli: the TLS certificate"); n != 1 || !strings.HasPrefix(out, "a0cli: the TLS certificate") {
		t.Fatalf("second message does not start its own line:\n%s", out)
	}
}
