package dbjob

import "github.com/a0backup/a0/internal/ops"

// Runners are this package's bodies as the agent takes them
// (agent.Config.Jobs): what every composition root hands in.
func Runners() ops.Runners {
	return ops.Runners{Backup: RunBackup, Restore: RunRestore, Totals: Totals, DataSize: DataSize, CleanSpools: CleanSpools,
		Drill: RunDrill, CleanDrills: CleanDrills}
}
