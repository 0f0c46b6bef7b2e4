//go:build unix

package drill_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/a0backup/a0/internal/drill"
	"github.com/a0backup/a0/internal/drill/drilltest"
)

// TestCleanStale: a directory no drill holds (its process was killed) is
// removed; a running drill's is not.
func TestCleanStale(t *testing.T) {
	parent := t.TempDir()
	dead := filepath.Join(parent, "a0-drill-dead")
	if err := os.MkdirAll(filepath.Join(dead, "db"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dead, "drill.lock"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(parent, "not-a-drill")
	if err := os.Mkdir(other, 0o700); err != nil {
		t.Fatal(err)
	}
	// A live drill: its lock held by this process through another
	// descriptor (flock locks are per open file).
	live := filepath.Join(parent, "a0-drill-live")
	if err := os.Mkdir(live, 0o700); err != nil {
		t.Fatal(err)
	}
	release := drilltest.HoldLock(t, filepath.Join(live, "drill.lock"))
	defer release()
	removed, err := drill.CleanStale(parent)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0] != dead {
		t.Fatalf("removed %v, want [%s]", removed, dead)
	}
	for _, d := range []string{live, other} {
		if _, err := os.Stat(d); err != nil {
			t.Fatalf("%s: %v", d, err)
		}
	}
}
