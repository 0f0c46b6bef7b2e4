package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/a0backup/a0/internal/agentcmd"
)

// TestFirstContactAsks: on a terminal, the operator sees the node's
// fingerprint and accepts it before anything, a password included, is
// sent (issue 13, finding 11); the fingerprint is the one `a0agent
// fingerprint` prints on the node. Scripts (no terminal) pin and print it.
func TestFirstContactAsks(t *testing.T) {
	n := startNode(t, "", "")
	op := newOperator(t).withKey(n)
	var fp bytes.Buffer
	if code := agentcmd.Main(context.Background(), []string{"fingerprint", "--state-dir", n.state}, &fp, os.Stderr); code != 0 {
		t.Fatalf("a0agent fingerprint: exit %d", code)
	}
	want := strings.TrimSpace(fp.String())
	if !strings.HasPrefix(want, "SHA256:") {
		t.Fatalf("a0agent fingerprint printed %q", want)
	}
	known := filepath.Join(op.home, "known_nodes")
	run := func(answer string, args ...string) result {
		var stdout, stderr bytes.Buffer
		env := &Env{Stdin: strings.NewReader(answer), Stdout: &stdout, Stderr: &stderr, Home: op.home, Port: 10121,
			Getenv: func(string) string { return "" }, Interactive: true}
		code := Main(context.Background(), append([]string{"-t", n.addr}, args...), env)
		return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
	}
	pinned := func() bool {
		b, _ := os.ReadFile(known)
		return strings.Contains(string(b), n.addr)
	}

	r := run("n\n", "backup", "--password", "first-contact-pw-1")
	if r.code != ExitAuth || !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "Pin it and go on? [y/N]") {
		t.Fatalf("declined first contact: exit %d, stderr %q (want exit %d and the fingerprint %s)", r.code, r.stderr, ExitAuth, want)
	}
	if pinned() {
		t.Fatal("a declined certificate was pinned")
	}
	if strings.Contains(n.log.String(), "/v1/slots/backup") {
		t.Fatalf("the backup request reached the node although the operator declined:\n%s", n.log.String())
	}

	if r := run("y\n", "ping"); r.code != 0 || !pinned() {
		t.Fatalf("accepted first contact: exit %d, pinned %v, stderr %q", r.code, pinned(), r.stderr)
	}
	if r := run("", "ping"); r.code != 0 || strings.Contains(r.stderr, "first contact") {
		t.Fatalf("second contact asked again: exit %d, stderr %q", r.code, r.stderr)
	}
}
