package agent

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/a0backup/a0/internal/ops"
)

// Hold points let a test stop a job at a known place until it has put its
// fault in (killed the agent, filled the disk, stopped the database, changed
// the target), so the fault lands in the middle of the job every time
// instead of racing it. Nothing but tests uses them: in process a test sets
// Config.Hold; a built agent holds only when $A0_TEST_HOLD_DIR names a
// directory (see holdDir).
const (
	// HoldBackup: the backup's hidden .part file exists, before the dump
	// reads the first collection.
	HoldBackup = ops.HoldBackup
	// HoldBackupOplog: the dump has taken its oplog start and not yet
	// listed the collections.
	HoldBackupOplog = ops.HoldBackupOplog
	// HoldRestore: every byte is authenticated and the restore marker is
	// written, before the first collection is written.
	HoldRestore = ops.HoldRestore
	// HoldDrill: a restore drill's directory and throwaway server exist,
	// before its first pass reads the stored backup.
	HoldDrill = ops.HoldDrill
)

// holdDirEnv names the directory of a built agent's hold points (tests only).
const holdDirEnv = "A0_TEST_HOLD_DIR"

// holdDir is the hook of a built agent: at a point it creates
// DIR/<point>.reached and waits until DIR/<point>.release exists. The
// backup and restore points hold by default; any other point only when
// DIR/<point>.hold exists (tests written before it was added never
// release it).
func holdDir(dir string) func(context.Context, string) {
	return func(ctx context.Context, point string) {
		if point != HoldBackup && point != HoldRestore {
			if _, err := os.Stat(filepath.Join(dir, point+".hold")); err != nil {
				return
			}
		}
		os.WriteFile(filepath.Join(dir, point+".reached"), nil, 0o600)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			if _, err := os.Stat(filepath.Join(dir, point+".release")); err == nil {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}
}
