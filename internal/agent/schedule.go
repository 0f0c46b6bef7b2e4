package agent

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/dump"
	"github.com/a0backup/a0/internal/job"
	"github.com/a0backup/a0/internal/schedule"
	"github.com/a0backup/a0/internal/statedir"
	"github.com/a0backup/a0/internal/store"
	"github.com/a0backup/a0/internal/webhook"
)

// scheduleStateFile keeps the schedule's last run (package schedule).
const scheduleStateFile = "schedule.json"

// ErrScheduleNeedsRecipients: a schedule never stores a password on the
// node, so its backups are encrypted to the config's recipients.
var ErrScheduleNeedsRecipients = errors.New(`"schedule" needs "recipients": scheduled backups are encrypted to the operators' public keys (a schedule never keeps a password on the node)`)

// scheduler is the agent's schedule and its persisted state.
type scheduler struct {
	s    *schedule.Schedule
	path string
	// done is closed when the loop ends; started says it was started (a
	// New that fails after openSchedule never starts it).
	done    chan struct{}
	started bool

	mu   sync.Mutex
	st   schedule.State
	next time.Time
}

func (sc *scheduler) snapshot() (schedule.State, time.Time) {
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
func (sc *scheduler) record(r schedule.Run) error {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.st.LastRun = &r
	return schedule.SaveState(sc.path, sc.st)
}

// openSchedule checks the schedule's config and loads its state. A run
// the previous process left running ended with that process.
func (a *Agent) openSchedule() error {
	if a.cfg.Schedule == nil {
		return nil
	}
	if len(a.recipients) == 0 {
		return ErrScheduleNeedsRecipients
	}
	sc := &scheduler{s: a.cfg.Schedule, path: filepath.Join(a.state.Path, scheduleStateFile), done: make(chan struct{})}
	st, err := schedule.Open(sc.path, sc.s, time.Now())
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
	a.sched = sc
	return nil
}

func (a *Agent) startSchedule() {
	if a.sched == nil {
		return
	}
	a.log.Info("schedule on", "schedule", a.sched.s.String(), "replace", a.cfg.Replace, "recipients", len(a.recipients))
	a.sched.started = true
	go a.runSchedule(a.ctx)
}

// stopSchedule waits for the schedule's loop to end (after a.stop).
func (a *Agent) stopSchedule() {
	if a.sched != nil && a.sched.started {
		<-a.sched.done
	}
}

// runSchedule runs the scheduled backups until ctx ends. The missed-run
// rule is schedule.Due's: a run due while the agent was down runs once,
// now.
func (a *Agent) runSchedule(ctx context.Context) {
	sc := a.sched
	defer close(sc.done)
	defer a.metrics.SetNextRun(time.Time{})
	for startup := true; ; startup = false {
		st, _ := sc.snapshot()
		now := time.Now()
		run, missed, next := sc.s.Due(st.Base(), now)
		if !run {
			sc.mu.Lock()
			sc.next = next
			sc.mu.Unlock()
			a.metrics.SetNextRun(next)
			if next.IsZero() {
				a.log.Warn("the schedule has no next run", "schedule", sc.s.String())
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
		due := sc.s.Next(st.Base())
		switch {
		case startup:
			a.log.Warn("scheduled backup missed while the agent was down: running it now, once", "due", due.UTC(), "missed", missed)
		case missed > 1:
			// Runs that fell due while the previous run was going.
			a.log.Warn("scheduled runs fell due while the previous run was going: running once now", "due", due.UTC(), "missed", missed)
		}
		// While it runs, the next run is the one after its start.
		n := sc.s.Next(now)
		sc.mu.Lock()
		sc.next = n
		sc.mu.Unlock()
		a.metrics.SetNextRun(n)
		a.scheduledRun(ctx, due.UTC(), missed-1)
		if ctx.Err() != nil {
			return
		}
	}
}

// scheduledResult is a scheduled backup job's result: the stored backup,
// and the mark that the schedule started it (the webhook's "scheduled").
type scheduledResult struct {
	*store.Meta
	Scheduled bool   `json:"scheduled"`
	Replaced  string `json:"replaced,omitempty"`
}

// scheduledRun makes one scheduled backup under the rules of a manual one
// (backup role, free space, one job at a time), and records how it ended.
func (a *Agent) scheduledRun(ctx context.Context, due time.Time, missed int) {
	run := schedule.Run{Due: due, Started: time.Now().UTC(), Missed: missed, Outcome: schedule.OutcomeRunning}
	end := func(outcome string, err error) {
		now := time.Now().UTC()
		run.Finished, run.Outcome = &now, outcome
		if err != nil {
			run.Reason, run.Code = err.Error(), string(api.CodeOf(err))
		}
		if serr := a.sched.record(run); serr != nil {
			a.log.Error("could not save the schedule's last run", "err", serr)
		}
	}
	skip := func(code api.Code, reason string) {
		err := &api.Error{Code: code, Message: reason}
		end(schedule.OutcomeSkipped, err)
		a.log.Warn("scheduled backup skipped", "reason", reason)
		a.notify(webhook.Event{Event: "schedule_skipped", Kind: kindBackup, State: "skipped", Scheduled: true,
			Started: run.Started, Finished: run.Finished, Error: reason, Code: string(code)})
	}
	fail := func(err error) {
		// Refused before it started: as much a failed backup as one that
		// failed midway, for the metrics and the webhook.
		end(schedule.OutcomeFailed, err)
		a.recordBackup(nil, err)
		a.log.Error("scheduled backup failed", "err", err)
		a.notify(webhook.Event{Event: "job_failed", Kind: kindBackup, State: "failed", Scheduled: true,
			Started: run.Started, Finished: run.Finished, Error: err.Error(), Code: string(api.CodeOf(err))})
	}

	n, err := a.state.LoadNode()
	if err != nil {
		fail(err)
		return
	}
	if !n.HasRole(statedir.RoleBackup) || n.Device == "" {
		fail(api.Errorf(api.CodeNotBackupRole, "this node is not in the backup role: run set-as-backup first"))
		return
	}
	if kind, _, _ := a.jobs.Running(); kind != "" {
		skip(api.CodeJobRunning, fmt.Sprintf("a %s job is running (one job at a time)", kind))
		return
	}
	slot := a.slot(n, api.SlotBackup)
	if m, err := slot.Stored(); err == nil && !a.cfg.Replace {
		skip(api.CodeBackupExists, fmt.Sprintf(`a backup is stored (%s) and the schedule does not replace it: set "replace": true in the agent config, or delete it with backup-delete`, m.Name))
		return
	} else if err != nil && !errors.Is(err, store.ErrNoBackup) {
		fail(err)
		return
	}
	if err := a.checkSpace(ctx, n); err != nil {
		fail(err)
		return
	}
	seal, to, err := a.backupSeal(api.BackupRequest{}, nil, api.SlotBackup)
	if err == nil && len(to) == 0 {
		err = ErrScheduleNeedsRecipients
	}
	if err != nil {
		fail(err)
		return
	}
	var cat dump.Catalog
	if a.embed != nil {
		cat = a.embed.Catalog()
	}
	colls, bytes, err := dump.Totals(ctx, a.client, nil, cat)
	if err != nil {
		a.log.Warn("could not measure the backup's totals before it starts", "err", err)
	}
	var replaced *store.Meta
	fn := a.backupJobRun(n, slot, seal, false, colls, bytes, &replaced)
	type ended struct {
		meta *store.Meta
		err  error
	}
	endc := make(chan ended, 1)
	err = a.jobs.Start(a.ctx, kindBackup, func(ctx context.Context, j *job.Job) (any, error) {
		meta, err := fn(ctx, j)
		a.recordBackup(meta, err)
		if err == nil {
			a.afterBackup(meta) // what follows every stored backup (the remote copy)
		}
		endc <- ended{meta, err}
		res := scheduledResult{Meta: meta, Scheduled: true}
		if replaced != nil {
			res.Replaced = replaced.Name
		}
		return res, err
	})
	var busy *job.BusyError
	if errors.As(err, &busy) {
		skip(api.CodeJobRunning, fmt.Sprintf("a %s job is running (one job at a time)", busy.Running))
		return
	}
	if err != nil {
		fail(err)
		return
	}
	a.log.Info("scheduled backup started", "due", due, "recipients", len(to), "replace", a.cfg.Replace)
	if err := a.sched.record(run); err != nil {
		a.log.Error("could not save the schedule's last run", "err", err)
	}
	select {
	case e := <-endc:
		if e.err != nil {
			end(schedule.OutcomeFailed, e.err)
			return
		}
		run.Name = e.meta.Name
		if replaced != nil {
			run.Replaced = replaced.Name
		}
		end(schedule.OutcomeDone, nil)
	case <-ctx.Done():
		// The agent stops: the job is cancelled and the next start
		// records the run as interrupted.
	}
}

// scheduleStatus is node-status's "schedule".
func (a *Agent) scheduleStatus() *api.ScheduleStatus {
	if a.sched == nil {
		return nil
	}
	st, next := a.sched.snapshot()
	out := &api.ScheduleStatus{Schedule: a.sched.s.String(), Replace: a.cfg.Replace, Recipients: len(a.recipients)}
	if !next.IsZero() {
		n := next.UTC()
		out.NextRun = &n
	}
	if r := st.LastRun; r != nil {
		out.LastRun = &api.ScheduledRun{Due: r.Due, Started: r.Started, Finished: r.Finished, Outcome: r.Outcome,
			Reason: r.Reason, Code: r.Code, Name: r.Name, Replaced: r.Replaced, Missed: r.Missed}
	}
	return out
}
