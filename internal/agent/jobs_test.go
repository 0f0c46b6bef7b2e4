package agent

import (
	"context"
	"errors"
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
