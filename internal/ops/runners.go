package ops

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/job"
	"github.com/a0backup/a0/internal/store"
)

// Runners are the bodies of the work that reads or writes the database
// through packages dump and restore. Neither this package nor the agent
// imports those: a composition root (a0agent's agentcmd, the benchmarks,
// the tests) hands these in, normally dbjob.Runners() (package
// internal/ops/dbjob), so that the HTTP layer sits above the jobs and the
// jobs above the engines, with no path back up.
type Runners struct {
	// Backup runs a backup job (dump, seal, read back) and returns the
	// stored backup's metadata; it sets b.Replaced when b.Replace. A
	// failure by the oplog's rollover has ErrOplogRolled in its chain.
	Backup func(ctx context.Context, j *job.Job, b *Backup) (*store.Meta, error)
	// Restore runs a restore job (authenticate and plan, check, mark,
	// write) and returns its result, also on failure once the plan is
	// known.
	Restore func(ctx context.Context, j *job.Job, r *Restore) (*api.RestoreResult, error)
	// Totals measures what a backup will read (collections, bytes) before
	// it starts, so that its first status shows them; cat may be nil.
	Totals func(ctx context.Context, c *mongo.Client, allowPrimary bool, cat Catalog) (collections, bytes int64, err error)
	// DataSize is the database's data size, as the free-space check and
	// node-status report it.
	DataSize func(ctx context.Context, c *mongo.Client) (int64, error)
	// CleanSpools removes the encrypted spools a killed restore left in
	// dir (their key died with the process) and returns what it removed.
	CleanSpools func(dir string) []string
	// Drill restores a stored backup into a throwaway embedded server in
	// a temporary directory under d.Parent, compares every collection
	// with what the dump wrote, and removes the directory (issue 29).
	// Differences are in the result, not an error; an error is a drill
	// that could not run to its comparison.
	Drill func(ctx context.Context, d *Drill) (*DrillResult, error)
	// CleanDrills removes the directories killed drills left under
	// parent and returns what it removed.
	CleanDrills func(parent string) []string
}

// ErrNoRunners: a Runners lacks a body (see Runners.Check).
var ErrNoRunners = errors.New("the job runners are not set")

// Check says which bodies r lacks: an agent started without them would
// fail only at its first backup, so it refuses to start instead.
func (r Runners) Check() error {
	// Two groups, each named in one clause: the jobs', then the restore
	// drills' (added later; the first clause reads as it always did).
	var clauses []string
	for _, group := range [][]struct {
		name string
		set  bool
	}{
		{{"Backup", r.Backup != nil}, {"Restore", r.Restore != nil}, {"Totals", r.Totals != nil},
			{"DataSize", r.DataSize != nil}, {"CleanSpools", r.CleanSpools != nil}},
		{{"Drill", r.Drill != nil}, {"CleanDrills", r.CleanDrills != nil}},
	} {
		var missing []string
		for _, f := range group {
			if !f.set {
				missing = append(missing, f.name)
			}
		}
		if len(missing) > 0 {
			clauses = append(clauses, strings.Join(missing, ", ")+" missing")
		}
	}
	if len(clauses) > 0 {
		return fmt.Errorf("%w: %s (give dbjob.Runners())", ErrNoRunners, strings.Join(clauses, "; "))
	}
	return nil
}

// CheckSpace refuses a backup onto device when its free space is less than
// twice the database's data size (measured by r.DataSize).
func (r Runners) CheckSpace(ctx context.Context, c *mongo.Client, device string) error {
	size, err := r.DataSize(ctx, c)
	if err != nil {
		return fmt.Errorf("measure database size: %w", err)
	}
	return checkSpace(device, size)
}
