package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"filippo.io/age"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/atomicfile"
	"github.com/a0backup/a0/internal/crypt"
	"github.com/a0backup/a0/internal/schedule"
	"github.com/a0backup/a0/internal/statedir"
	"github.com/a0backup/a0/internal/store"
	"github.com/a0backup/a0/internal/webhook"
)

// Restore drills on the node (issue 29): the stored backup restored into a
// throwaway embedded server in a directory of its own on the backup
// device, compared with what the dump wrote, and removed. The body that
// restores and compares is Runners.Drill (package dbjob, on package
// drill); the service here decides when, records how it ended and keeps
// the measured restore rate that `backups` predicts restore times from.
//
// The drill does NOT take the one-job slot. A drill of a large backup
// takes about as long as a restore, and holding the slot that long would
// refuse (or make the schedule skip) the backups it exists to prove.
// Instead it starts only while no job runs, and any job that starts
// while it runs (a backup, a restore, a sensitive job: whatever the
// operator or the schedule starts) preempts it: the drill is cancelled,
// its directory removed, its run recorded as "skipped", and it runs again
// once the job has ended. So a drill never delays a job by more than the
// moment its cancellation takes, and never competes with one for the
// device's space or disk.

// KindDrill names the drill in the webhook, the log and the metrics.
const KindDrill = "drill"

// DrillStateFile keeps the drills' state in the state directory.
const DrillStateFile = "drill.json"

// RateFile keeps the last measured restore rate (restore or drill).
const RateFile = "restore_rate.json"

// Drill outcomes.
const (
	DrillOK      = "ok"
	DrillFailed  = "failed"
	DrillSkipped = "skipped"
	DrillRunning = "running"
)

// ErrDrillAgentStopped is the reason of a drill the agent's clean stop
// cancelled.
var ErrDrillAgentStopped = errors.New("the agent stopped during the drill: it runs again when due")

// ErrDrillPreempted is the cause of a drill cancelled because a job
// started: the job comes first.
var ErrDrillPreempted = errors.New("a job started: the drill gave way and runs again after it")

// ErrDrillBackupGone: the backup a drill restores was deleted or replaced
// while it ran. The drill reads an open file, so it would go on and
// report "ok" for a backup that is no longer there; it stops instead,
// skipped, and the next drill proves what is stored then.
var ErrDrillBackupGone = errors.New("the stored backup was deleted or replaced during the drill: it runs again on what is stored")

// DrillDir is the parent of the drills' temporary directories on device:
// beside the slots, on the device the free-space rule measures, never in
// the state directory that holds the production database.
func DrillDir(device string) string {
	return filepath.Join(device, store.FolderName, ".drill")
}

// Drill is the input of a drill: the stored backup and how to open it.
type Drill struct {
	// Path is the backup file; Meta its metadata (the name it must prove).
	Path string
	Meta *store.Meta
	// Identities open a backup encrypted to public keys (format v2).
	Identities []age.Identity
	// Parent is where the throwaway server's temporary directory goes
	// (DrillDir of the device).
	Parent string
	Hold   Hold
	Log    *slog.Logger
}

// DrillResult is what a drill found. Differences name each collection that
// did not match (count or digest) or could not be restored.
type DrillResult struct {
	Backup string `json:"backup"`
	// Duration is the restore's (without the comparison), Compare the
	// comparison's.
	Duration    time.Duration `json:"duration"`
	Compare     time.Duration `json:"compare"`
	Bytes       int64         `json:"bytes"`
	Collections int           `json:"collections"`
	Documents   int64         `json:"documents"`
	// NotHeld counts the collections the embedded server cannot hold,
	// DocumentsNotHeld the documents in them it refuses.
	NotHeld          int      `json:"not_held,omitempty"`
	DocumentsNotHeld int64    `json:"documents_not_held,omitempty"`
	Differences      []string `json:"differences,omitempty"`
	// Note says what the comparison could not cover (a backup without
	// content digests is compared by counts and indexes only).
	Note string `json:"note,omitempty"`
}

// DrillRun is one drill as node-status reports it and drill.json keeps it:
// the wire type itself (api.DrillRun, the contract), so that drill.json
// and the reply cannot drift apart. Retry marks a drill a job preempted:
// it does not count as the schedule's run, the drill runs again once the
// job has ended.
type DrillRun = api.DrillRun

// DrillState is drill.json: the schedule's base, the last drill, the last
// successful one, and the failures counted (a0_restore_drill_failures_total
// survives a restart).
type DrillState struct {
	Schedule    string    `json:"schedule"`
	Since       time.Time `json:"since"`
	Last        *DrillRun `json:"last,omitempty"`
	LastSuccess *DrillRun `json:"last_success,omitempty"`
	Failures    int64     `json:"failures"`
	// Attempted is when the last drill that was not preempted started.
	Attempted *time.Time `json:"attempted,omitempty"`
}

func (st DrillState) base() time.Time {
	// A preempted drill does not count as the schedule's run: the base
	// stays at the last drill that ran to an outcome (Attempted), so the
	// preempted one runs again.
	if st.Attempted != nil && st.Attempted.After(st.Since) {
		return *st.Attempted
	}
	return st.Since
}

// Driller is the service that runs the drills by their schedule, beside
// the jobs (see the comment at the top of this file), and records each.
type Driller struct {
	Schedule *schedule.Schedule
	State    *statedir.Dir
	// Identities loads the drill's identity file (format v2 backups); it
	// is read at each drill, so a replaced file takes effect.
	Identities func() ([]age.Identity, error)
	// Running names the running job's kind, "" when none.
	Running func() string
	// DataSize is the database's data size (the free-space rule).
	DataSize func(ctx context.Context) (int64, error)
	Jobs     Runners
	// Ended hears of every drill's end (metrics, webhook): the run and
	// the state after it.
	Ended func(run DrillRun, st DrillState)
	// Notify posts a webhook event; CodeOf names an error's API code.
	Notify func(webhook.Event)
	CodeOf func(error) string
	// Poll is how often a running drill looks for a job that preempts it
	// (0: 1 s), and how often a due drill looks for the slot to be free.
	Poll time.Duration
	// Hold is the tests' hold point (HoldDrill).
	Hold Hold
	Log  *slog.Logger

	path    string
	mu      sync.Mutex
	st      DrillState
	next    time.Time
	trigger chan struct{}
}

// Open loads drill.json (a drill left running ended with the previous
// process: failed, interrupted). The agent removes the directories of
// drills a killed agent left at its start (Runners.CleanDrills), with or
// without a Driller.
func (d *Driller) Open() error {
	d.path = filepath.Join(d.State.Path, DrillStateFile)
	d.trigger = make(chan struct{}, 1)
	if d.Poll <= 0 {
		d.Poll = time.Second
	}
	st, err := LoadDrillState(d.path)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	if st.Schedule != d.Schedule.String() || st.Since.IsZero() {
		st.Schedule, st.Since = d.Schedule.String(), now
	}
	if r := st.Last; r != nil && r.Outcome == DrillRunning {
		r.Outcome, r.Reason, r.Finished = DrillFailed, "interrupted: the agent stopped during the drill", &now
		st.Failures++
		started := r.Started
		st.Attempted = &started
	}
	d.st = st
	if run, _, next := d.Schedule.Due(st.base(), time.Now()); !run {
		d.next = next
	}
	return d.save()
}

// LoadDrillState reads path (none yet: the zero state). A damaged file is
// an error: a reset would hide a failed drill.
func LoadDrillState(path string) (DrillState, error) {
	var st DrillState
	err := loadJSON(path, &st)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("drill state %s: %w (remove it to start the drills afresh)", path, err)
	}
	return st, nil
}

// Snapshot is the state and the next drill's time.
func (d *Driller) Snapshot() (DrillState, time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.st, d.next
}

// Trigger asks for a drill now (a0cli drill); false when one is already
// asked for.
func (d *Driller) Trigger() bool {
	select {
	case d.trigger <- struct{}{}:
		return true
	default:
		return false
	}
}

func (d *Driller) save() error {
	b, err := marshalIndent(d.st)
	if err != nil {
		return err
	}
	return atomicfile.Write(d.path, b, 0o600)
}

func (d *Driller) record(r DrillRun) DrillState {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.st.Last = &r
	if !r.Retry && r.Outcome != DrillRunning {
		t := r.Started
		d.st.Attempted = &t
	}
	switch r.Outcome {
	case DrillOK:
		d.st.LastSuccess = &r
	case DrillFailed:
		d.st.Failures++
	}
	if err := d.save(); err != nil {
		d.Log.Error("could not save the drill's state", "err", err)
	}
	return d.st
}

// Run runs the drills until ctx ends.
func (d *Driller) Run(ctx context.Context) {
	var retry *DrillRun
	for {
		st, _ := d.Snapshot()
		run, _, next := d.Schedule.Due(st.base(), time.Now())
		due := next
		if retry != nil {
			// A job preempted the last drill (scheduled or asked for):
			// it runs again once the job has ended.
			due = retry.Due
		} else if run {
			due = d.Schedule.Next(st.base())
		} else {
			d.mu.Lock()
			d.next = next
			d.mu.Unlock()
			t := time.NewTimer(time.Until(next))
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
				continue
			case <-d.trigger:
				t.Stop()
				due = time.Now()
			}
		}
		// Wait for the slot to be free: a job comes first.
		for d.Running() != "" {
			select {
			case <-ctx.Done():
				return
			case <-time.After(d.Poll):
			}
		}
		d.mu.Lock()
		d.next = time.Time{}
		d.mu.Unlock()
		r := d.RunOnce(ctx, due.UTC())
		retry = nil
		if r.Retry {
			retry = &r
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// RunOnce runs one drill now and records how it ended.
func (d *Driller) RunOnce(ctx context.Context, due time.Time) DrillRun {
	run := DrillRun{Due: due, Started: time.Now().UTC(), Outcome: DrillRunning}
	end := func(outcome string, res *DrillResult, err error) DrillRun {
		now := time.Now().UTC()
		run.Finished, run.Outcome = &now, outcome
		if res != nil {
			run.Seconds, run.Bytes, run.Collections, run.Documents, run.Note = res.Duration.Seconds(), res.Bytes, res.Collections, res.Documents, res.Note
			run.CompareSeconds, run.CollectionsNotHeld, run.DocumentsNotHeld = res.Compare.Seconds(), res.NotHeld, res.DocumentsNotHeld
		}
		if outcome != DrillSkipped {
			run.TotalSeconds = now.Sub(run.Started).Seconds()
		}
		if err != nil {
			run.Reason, run.Code = err.Error(), d.CodeOf(err)
		}
		if outcome == DrillOK && res != nil && res.Duration > 0 {
			// Before the drill is recorded: whoever sees it ok sees the
			// rate `backups` predicts from.
			if err := SaveRate(d.State, Rate{Source: KindDrill, Backup: run.Backup, At: now, Bytes: res.Bytes, Seconds: res.Duration.Seconds()}); err != nil {
				d.Log.Warn("could not save the measured restore rate", "err", err)
			}
		}
		st := d.record(run)
		switch outcome {
		case DrillOK:
			d.Log.Info("restore drill ok", "backup", run.Backup, "seconds", run.Seconds, "compare_seconds", run.CompareSeconds,
				"collections", run.Collections, "documents", run.Documents, "collections_not_held", run.CollectionsNotHeld)
		case DrillFailed:
			d.Log.Error("restore drill FAILED", "backup", run.Backup, "err", err)
		default:
			d.Log.Warn("restore drill skipped", "backup", run.Backup, "reason", run.Reason)
		}
		if d.Ended != nil {
			d.Ended(run, st)
		}
		ev := webhook.Event{Event: "restore_drill", Kind: KindDrill, State: outcome, Started: run.Started, Finished: run.Finished,
			Error: run.Reason, Code: run.Code}
		if run.Backup != "" {
			ev.Backup = &webhook.Backup{Name: run.Backup}
		}
		if outcome != DrillSkipped {
			ev.Drill = &webhook.Drill{Seconds: run.Seconds, CompareSeconds: run.CompareSeconds, Collections: run.Collections,
				Documents: run.Documents, CollectionsNotHeld: run.CollectionsNotHeld, Note: run.Note}
		}
		d.Notify(ev)
		return run
	}
	n, err := d.State.LoadNode()
	if err != nil {
		return end(DrillFailed, nil, err)
	}
	if !n.HasRole(statedir.RoleBackup) || n.Device == "" {
		return end(DrillFailed, nil, ErrNotBackupRole())
	}
	slot := Slot(n.Device, "backup")
	m, err := slot.Stored()
	if errors.Is(err, store.ErrNoBackup) {
		return end(DrillSkipped, nil, errorf(NotFound, "no backup is stored on %s: nothing to drill", n.Device))
	}
	if err != nil {
		return end(DrillFailed, nil, err)
	}
	run.Backup = m.Name
	if err := d.checkSpace(ctx, n.Device, m); err != nil {
		return end(DrillFailed, nil, err)
	}
	ids, err := d.Identities()
	if err != nil {
		return end(DrillFailed, nil, fmt.Errorf("drill identity: %w", err))
	}
	// Recorded as running: a drill the agent's death cuts is "failed:
	// interrupted" at the next start (Open), its directory removed.
	d.record(run)
	dctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		t := time.NewTicker(d.Poll)
		defer t.Stop()
		for {
			select {
			case <-dctx.Done():
				return
			case <-t.C:
				if kind := d.Running(); kind != "" {
					cancel(fmt.Errorf("%w (a %s job)", ErrDrillPreempted, kind))
					return
				}
				if cur, err := slot.Stored(); err != nil || cur.SHA256 != m.SHA256 || cur.Name != m.Name {
					cancel(fmt.Errorf("%w (%s)", ErrDrillBackupGone, m.Name))
					return
				}
			}
		}
	}()
	res, err := d.Jobs.Drill(dctx, &Drill{Path: slot.Path(m), Meta: m, Identities: ids, Parent: DrillDir(n.Device), Hold: d.Hold, Log: d.Log})
	cancel(nil)
	<-watchDone
	if cause := context.Cause(dctx); err != nil && (errors.Is(cause, ErrDrillPreempted) || errors.Is(cause, ErrDrillBackupGone)) {
		run.Retry = true
		return end(DrillSkipped, nil, cause)
	}
	if err != nil && ctx.Err() != nil {
		// The agent stops cleanly (SIGTERM: a restart, an upgrade): the
		// backup was not found bad, so no failure (which alerts); not the
		// schedule's run either, so a due drill runs again at the next
		// start. A killed agent leaves it running: Open reports it
		// failed, interrupted.
		run.Retry = true
		return end(DrillSkipped, nil, ErrDrillAgentStopped)
	}
	if err == nil && res != nil && len(res.Differences) > 0 {
		err = errorf(Integrity, "the restored data differs from the backup's manifest: %s", joinMax(res.Differences, 5))
	}
	if err != nil {
		return end(DrillFailed, res, err)
	}
	return end(DrillOK, res, nil)
}

// drillSpaceFactor is how many times the data size a drill needs free on
// the device. The throwaway server stores documents as SQLite rows of JSON,
// larger than their BSON, beside the restore's spools: `a0bench drill`
// measured a peak of 4.3x the BSON size at 500 MiB and 4.4x at 50 MiB, so
// the backup's rule (2x) would let a drill fill the device it shares with
// the backups it proves.
const drillSpaceFactor = 5

// checkSpace is the drill's free-space rule: the device needs
// drillSpaceFactor times the data the drill restores free. The node cannot
// read the manifest of a backup encrypted to keys before the drill opens it,
// so the data size is the database's as measured now, and at least the
// backup file's size.
func (d *Driller) checkSpace(ctx context.Context, device string, m *store.Meta) error {
	size, err := d.DataSize(ctx)
	if err != nil {
		return fmt.Errorf("measure database size: %w", err)
	}
	if size < m.Size {
		size = m.Size
	}
	free, err := FreeBytes(device)
	if err != nil {
		return fmt.Errorf("measure free space: %w", err)
	}
	if need := drillSpaceFactor * size; free < need {
		return &Error{Kind: NoSpace,
			Msg: fmt.Sprintf("not enough free space on %s for a restore drill of %s: %s free, %s needed (%d times the data size of %s)",
				device, m.Name, FmtBytes(free), FmtBytes(need), drillSpaceFactor, FmtBytes(size)),
			Details: map[string]any{"free_bytes": free, "needed_bytes": need, "data_bytes": size}}
	}
	return nil
}

func joinMax(s []string, n int) string {
	out := ""
	for i, v := range s {
		if i == n {
			return out + fmt.Sprintf("; and %d more", len(s)-n)
		}
		if i > 0 {
			out += "; "
		}
		out += v
	}
	return out
}

// Rate is the node's last measured restore rate: the bytes of a backup
// file restored per second, by a restore job or a drill. `backups`
// predicts restore times from it.
type Rate struct {
	// Source is "restore" or "drill".
	Source  string    `json:"source"`
	Backup  string    `json:"backup,omitempty"`
	At      time.Time `json:"at"`
	Bytes   int64     `json:"bytes"`
	Seconds float64   `json:"seconds"`
}

// BytesPerSecond is the rate (0 when unknown).
func (r Rate) BytesPerSecond() float64 {
	if r.Seconds <= 0 || r.Bytes <= 0 {
		return 0
	}
	return float64(r.Bytes) / r.Seconds
}

// Predict is the restore time of a backup file of size bytes at this rate
// (0 when the rate is unknown).
func (r Rate) Predict(size int64) time.Duration {
	bps := r.BytesPerSecond()
	if bps <= 0 || size <= 0 {
		return 0
	}
	return time.Duration(float64(size) / bps * float64(time.Second))
}

// SaveRate records r as the node's measured restore rate.
func SaveRate(st *statedir.Dir, r Rate) error {
	b, err := marshalIndent(r)
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(st.Path, RateFile), b, 0o600)
}

// LoadRate reads the node's measured restore rate; nil when none was
// measured yet.
func LoadRate(st *statedir.Dir) (*Rate, error) {
	var r Rate
	err := loadJSON(filepath.Join(st.Path, RateFile), &r)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("restore rate: %w", err)
	}
	return &r, nil
}

// DrillUnlock is how a drill opens a backup: with the identities of the
// drill's key file (the node never holds a password).
func DrillUnlock(ids []age.Identity) crypt.Unlock { return crypt.Unlock{Identities: ids} }

func loadJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func marshalIndent(v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	return append(b, '\n'), err
}
