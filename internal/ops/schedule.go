package ops

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/a0backup/a0/internal/crypt"
	"github.com/a0backup/a0/internal/job"
	"github.com/a0backup/a0/internal/schedule"
	"github.com/a0backup/a0/internal/statedir"
	"github.com/a0backup/a0/internal/store"
	"github.com/a0backup/a0/internal/webhook"
)

// ScheduleStateFile keeps the schedule's last run (package schedule).
const ScheduleStateFile = "schedule.json"

// KindBackup is the job kind of a backup of the database.
const KindBackup = "backup"

// ErrScheduleNeedsRecipients: a schedule never stores a password on the
// node, so its backups are encrypted to the config's recipients.
var ErrScheduleNeedsRecipients = errors.New(`"schedule" needs "recipients": scheduled backups are encrypted to the operators' public keys (a schedule never keeps a password on the node)`)

// ScheduledResult is a scheduled backup job's result: the stored backup,
// and the mark that the schedule started it (the webhook's "scheduled").
type ScheduledResult struct {
	*store.Meta
	Scheduled bool   `json:"scheduled"`
	Replaced  string `json:"replaced,omitempty"`
}

// Scheduler is the service that runs backups by the schedule, each under
// the rules of a manual one (backup role, free space, one job at a time),
// and records how each ended. Open it, then Run it until its context ends.
type Scheduler struct {
	Schedule *schedule.Schedule
	State    *statedir.Dir
	// Replace lets a run replace the stored backup once the new one is
	// verified (else a run is skipped while a backup is stored).
	Replace bool
	// Running names the running job's kind, "" when none.
	Running func() string
	// CheckSpace refuses a backup the device has no room for.
	CheckSpace func(ctx context.Context, device string) error
	// Seal says whom a scheduled backup is encrypted to and how many
	// keys that is (none: ErrScheduleNeedsRecipients).
	Seal func() (crypt.Seal, int, error)
	// Backup prepares the backup job of a run onto device; Jobs measures
	// and runs it.
	Backup func(device string, seal crypt.Seal) *Backup
	Jobs   Runners
	// Start runs fn as a job of kind on the job runner (a *job.BusyError
	// when one runs).
	Start func(kind string, fn job.Func) error
	// BackupEnded hears of how every backup ended, stored or failed,
	// before or during its job (the metrics, the remote copy).
	BackupEnded func(meta *store.Meta, err error)
	// Notify posts a webhook event; CodeOf names an error's API code.
	Notify func(webhook.Event)
	CodeOf func(error) string
	// NextRun hears of the next run's time (zero: none).
	NextRun func(time.Time)
	Log     *slog.Logger

	path string
	mu   sync.Mutex
	st   schedule.State
	next time.Time
}

// Open loads the schedule's state. A run the previous process left
// running ended with that process.
func (sc *Scheduler) Open() error {
	sc.path = filepath.Join(sc.State.Path, ScheduleStateFile)
	st, err := schedule.Open(sc.path, sc.Schedule, time.Now())
	if err != nil {
		return err
	}
	sc.st = st
	if r := st.LastRun; r != nil && r.Outcome == schedule.OutcomeRunning {
		now := time.Now().UTC()
		r.Outcome, r.Reason, r.Finished = schedule.OutcomeFailed, job.ErrInterrupted.Error(), &now
		if err := sc.record(*r); err != nil {
			return err
		}
	}
	return nil
}

// Snapshot is the state (last run) and the next run's time.
func (sc *Scheduler) Snapshot() (schedule.State, time.Time) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	st := sc.st
	if st.LastRun != nil {
		r := *st.LastRun
		st.LastRun = &r
	}
	return st, sc.next
}

// record saves a run as the last one, durably.
func (sc *Scheduler) record(r schedule.Run) error {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.st.LastRun = &r
	return schedule.SaveState(sc.path, sc.st)
}

func (sc *Scheduler) setNext(t time.Time) {
	sc.mu.Lock()
	sc.next = t
	sc.mu.Unlock()
	sc.NextRun(t)
}

// Run runs the scheduled backups until ctx ends. The missed-run rule is
// schedule.Due's: a run due while the agent was down runs once, now.
func (sc *Scheduler) Run(ctx context.Context) {
	defer sc.NextRun(time.Time{})
	for startup := true; ; startup = false {
		st, _ := sc.Snapshot()
		now := time.Now()
		run, missed, next := sc.Schedule.Due(st.Base(), now)
		if !run {
			sc.setNext(next)
			if next.IsZero() {
				sc.Log.Warn("the schedule has no next run", "schedule", sc.Schedule.String())
				<-ctx.Done()
				return
			}
			t := time.NewTimer(time.Until(next))
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		due := sc.Schedule.Next(st.Base())
		// Missed has one meaning in the log, the run's record and
		// node-status (issue 28 point 9): the runs that fell due and did
		// not start at their time, all made up for by this one run. At
		// the start every due run was missed while the agent was down; a
		// run on time missed none.
		made := 0
		switch {
		case startup:
			made = missed
			sc.Log.Warn("scheduled backup missed while the agent was down: running it now, once", "due", due.UTC(), "missed", made)
		case missed > 1:
			// Runs that fell due while the previous run was going.
			made = missed
			sc.Log.Warn("scheduled runs fell due while the previous run was going: running once now", "due", due.UTC(), "missed", made)
		}
		// While it runs, the next run is the one after its start.
		sc.setNext(sc.Schedule.Next(now))
		sc.runOnce(ctx, due.UTC(), made)
		if ctx.Err() != nil {
			return
		}
	}
}

// runOnce makes one scheduled backup and records how it ended.
func (sc *Scheduler) runOnce(ctx context.Context, due time.Time, missed int) {
	run := schedule.Run{Due: due, Started: time.Now().UTC(), Missed: missed, Outcome: schedule.OutcomeRunning}
	end := func(outcome string, err error) {
		now := time.Now().UTC()
		run.Finished, run.Outcome = &now, outcome
		if err != nil {
			run.Reason, run.Code = err.Error(), sc.CodeOf(err)
		}
		if serr := sc.record(run); serr != nil {
			sc.Log.Error("could not save the schedule's last run", "err", serr)
		}
	}
	skip := func(err *Error) {
		end(schedule.OutcomeSkipped, err)
		sc.Log.Warn("scheduled backup skipped", "reason", err.Msg)
		sc.Notify(webhook.Event{Event: "schedule_skipped", Kind: KindBackup, State: "skipped", Scheduled: true,
			Started: run.Started, Finished: run.Finished, Error: err.Msg, Code: sc.CodeOf(err)})
	}
	fail := func(err error) {
		// Refused before it started: as much a failed backup as one that
		// failed midway, for the metrics and the webhook.
		end(schedule.OutcomeFailed, err)
		sc.BackupEnded(nil, err)
		sc.Log.Error("scheduled backup failed", "err", err)
		sc.Notify(webhook.Event{Event: "job_failed", Kind: KindBackup, State: "failed", Scheduled: true,
			Started: run.Started, Finished: run.Finished, Error: err.Error(), Code: sc.CodeOf(err)})
	}

	n, err := sc.State.LoadNode()
	if err != nil {
		fail(err)
		return
	}
	if !n.HasRole(statedir.RoleBackup) || n.Device == "" {
		fail(ErrNotBackupRole())
		return
	}
	if kind := sc.Running(); kind != "" {
		skip(errorf(Busy, "a %s job is running (one job at a time)", kind))
		return
	}
	slot := Slot(n.Device, "backup")
	if m, err := slot.Stored(); err == nil && !sc.Replace {
		skip(errorf(Exists, `a backup is stored (%s) and the schedule does not replace it: set "replace": true in the agent config, or delete it with backup-delete`, m.Name))
		return
	} else if err != nil && !errors.Is(err, store.ErrNoBackup) {
		fail(err)
		return
	}
	if err := sc.CheckSpace(ctx, n.Device); err != nil {
		fail(err)
		return
	}
	seal, to, err := sc.Seal()
	if err == nil && to == 0 {
		err = ErrScheduleNeedsRecipients
	}
	if err != nil {
		fail(err)
		return
	}
	b := sc.Backup(n.Device, seal)
	b.Replace = true
	var terr error
	if b.Collections, b.Bytes, terr = sc.Jobs.Totals(ctx, b.Client, false, b.Catalog); terr != nil {
		sc.Log.Warn("could not measure the backup's totals before it starts", "err", terr)
	}
	type ended struct {
		meta *store.Meta
		err  error
	}
	endc := make(chan ended, 1)
	err = sc.Start(KindBackup, func(ctx context.Context, j *job.Job) (any, error) {
		meta, err := sc.Jobs.Backup(ctx, j, b)
		sc.BackupEnded(meta, err)
		endc <- ended{meta, err}
		res := ScheduledResult{Meta: meta, Scheduled: true}
		if b.Replaced != nil {
			res.Replaced = b.Replaced.Name
		}
		return res, err
	})
	var busy *job.BusyError
	if errors.As(err, &busy) {
		skip(errorf(Busy, "a %s job is running (one job at a time)", busy.Running))
		return
	}
	if err != nil {
		fail(err)
		return
	}
	sc.Log.Info("scheduled backup started", "due", due, "recipients", to, "replace", sc.Replace)
	if err := sc.record(run); err != nil {
		sc.Log.Error("could not save the schedule's last run", "err", err)
	}
	select {
	case e := <-endc:
		if e.err != nil {
			end(schedule.OutcomeFailed, e.err)
			return
		}
		run.Name = e.meta.Name
		if b.Replaced != nil {
			run.Replaced = b.Replaced.Name
		}
		end(schedule.OutcomeDone, nil)
	case <-ctx.Done():
		// The agent stops: the job is cancelled and the next start
		// records the run as interrupted.
	}
}

// ErrNotBackupRole is the failure of what needs the backup role on a node
// without it.
func ErrNotBackupRole() *Error {
	return errorf(NotBackupRole, "this node is not in the backup role: run set-as-backup first")
}
