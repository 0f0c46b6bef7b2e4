package agent

import (
	"context"
	"errors"
	"go/build"
	"path/filepath"
	"strings"
	"testing"

	"github.com/a0backup/a0/internal/ops"
	"github.com/a0backup/a0/internal/ops/dbjob"
)

// TestNewNeedsJobs: an agent started without the jobs' bodies (the
// composition root forgot Config.Jobs) refuses to start, naming what is
// missing, rather than failing at its first backup.
func TestNewNeedsJobs(t *testing.T) {
	partial := dbjob.Runners()
	partial.Restore = nil
	for _, tc := range []struct {
		name    string
		jobs    ops.Runners
		missing string
	}{
		{"none", ops.Runners{}, "Backup, Restore, Totals, DataSize, CleanSpools missing"},
		{"no restore", partial, "Restore missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := New(context.Background(), Config{StateDir: t.TempDir(), Listen: "127.0.0.1:0", Jobs: tc.jobs})
			if err == nil {
				a.Close()
				t.Fatal("New started an agent without its jobs")
			}
			if !errors.Is(err, ops.ErrNoRunners) || !strings.Contains(err.Error(), "Config.Jobs") || !strings.Contains(err.Error(), tc.missing) {
				t.Fatalf("New: %v, want ErrNoRunners naming Config.Jobs and %q", err, tc.missing)
			}
		})
	}
}

// TestLayering: the HTTP layer reaches neither engine (dump, restore), by
// any path: their bodies come in as Config.Jobs from a composition root.
func TestLayering(t *testing.T) {
	const module = "github.com/a0backup/a0/"
	seen := map[string]bool{}
	var walk func(path string, via []string)
	walk = func(path string, via []string) {
		if seen[path] {
			return
		}
		seen[path] = true
		for _, banned := range []string{module + "internal/dump", module + "internal/restore"} {
			if path == banned {
				t.Errorf("agent imports %s: %s", banned, strings.Join(append(via, path), " -> "))
				return
			}
		}
		pkg, err := build.ImportDir(filepath.Join("..", "..", strings.TrimPrefix(path, module)), 0)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for _, imp := range pkg.Imports {
			if strings.HasPrefix(imp, module) {
				walk(imp, append(via, path))
			}
		}
	}
	walk(module+"internal/agent", nil)
	if !seen[module+"internal/ops"] {
		t.Fatal("the walk did not reach internal/ops: it reads the wrong tree")
	}
}
