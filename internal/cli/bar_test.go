package cli

import (
	"bytes"
	"strings"
	"testing"
)

// TestMessageDuringBarGetsItsOwnLine (issue 14.6): the first-contact pin
// line, or an error, printed while a progress bar is drawn starts a line of
// its own, and the bar goes on below it.
func TestMessageDuringBarGetsItsOwnLine(t *testing.T) {
	var buf bytes.Buffer
	env := &Env{Stderr: &lineWriter{w: &buf}, Interactive: true}
	b := newBar(env, "upload")
	b.update(10, 100, "")
	env.say("a0cli: first contact with n1:10121: pinned its certificate SHA256:x in /h/known_nodes")
	b.update(100, 100, "")
	b.finish()
	env.say("a0cli: done\n")
	lines := strings.Split(buf.String(), "\n")
	if len(lines) != 5 || lines[4] != "" {
		t.Fatalf("want bar, message, bar, message: %q", buf.String())
	}
	if lines[1] != "a0cli: first contact with n1:10121: pinned its certificate SHA256:x in /h/known_nodes" || lines[3] != "a0cli: done" {
		t.Fatalf("messages not on lines of their own: %q", buf.String())
	}
	if !strings.Contains(lines[0], "10%") || !strings.Contains(lines[2], "100%") {
		t.Fatalf("bar lines: %q", buf.String())
	}
}
