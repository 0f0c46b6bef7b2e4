package oracle

import (
	"os/exec"
	"strings"
	"testing"
)

// TestToolsRun proves the oracles are the stock tools of the release they
// claim to be, and that they run on this machine.
func TestToolsRun(t *testing.T) {
	for _, name := range []string{"mongodump", "mongorestore", "bsondump"} {
		t.Run(name, func(t *testing.T) {
			out, err := exec.Command(Tool(t, name), "--version").CombinedOutput()
			if err != nil {
				t.Fatalf("%s --version: %v\n%s", name, err, out)
			}
			if !strings.Contains(string(out), "100.18.0") {
				t.Fatalf("%s --version = %q, want 100.18.0", name, out)
			}
		})
	}
}

func TestFixtures(t *testing.T) {
	if p := Fixture(t, "txn", "oplog_entries.json"); !strings.HasSuffix(p, "oplog_entries.json") {
		t.Fatal(p)
	}
}
