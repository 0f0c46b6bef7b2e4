package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/crypt"
	"github.com/a0backup/a0/internal/job"
	"github.com/a0backup/a0/internal/ops"
	"github.com/a0backup/a0/internal/schedule"
	"github.com/a0backup/a0/internal/statedir"
	"github.com/a0backup/a0/internal/store"
)

// This file wires the jobs and services of package ops to the agent's
// parts (database, embedded server, state, job runner, metrics, webhook):
// the one place where a job gets its dependencies and where a long-running
// service (the remote copy, the schedule, and next the oplog archive of
// package pitr) is opened, started and stopped with the agent.

// FormatName is what backup-status reports as "format".
const FormatName = ops.FormatName

// FormatNameV2 is the "format" of a backup encrypted to public keys.
const FormatNameV2 = ops.FormatNameV2

// ErrScheduleNeedsRecipients: a schedule never stores a password on the
// node, so its backups are encrypted to the config's recipients.
var ErrScheduleNeedsRecipients = ops.ErrScheduleNeedsRecipients

// Job kinds.
const (
	kindBackup           = ops.KindBackup
	kindBackupSensitive  = ops.KindBackupSensitive
	kindRestore          = ops.KindRestore
	kindRestoreSensitive = ops.KindRestoreSensitive
)

func (a *Agent) slot(n statedir.Node, kind string) store.Slot { return ops.Slot(n.Device, kind) }

// newBackup is the backup job onto device with the agent's database and,
// for the embedded server, its fast paths.
func (a *Agent) newBackup(device string, seal crypt.Seal, allowPrimary bool) *ops.Backup {
	b := &ops.Backup{Client: a.client, Slot: ops.Slot(device, api.SlotBackup), Device: device, Seal: seal,
		AllowPrimary: allowPrimary, Hold: a.cfg.Hold, BeforeSeal: a.cfg.BeforeSeal, BeforeReadBack: a.cfg.BeforeReadBack, Log: a.log}
	if a.cfg.MongoURI != "" {
		// Data and oplog from one member (issue 12): a direct
		// connection to the member the read preference picks.
		b.Pin = a.pinMember
	}
	if a.embed != nil {
		// The oplog's tail by its insertion key, not a decode of all
		// of it (issue 14): see embedded.Server.CopyOplogSince.
		b.Catalog = a.embed.Catalog()
		b.OplogTail = func(ctx context.Context, since time.Time) (string, func(context.Context) error, error) {
			return a.embed.CopyOplogSince(ctx, a.client, since)
		}
	}
	return b
}

// backupJob runs b and what follows every backup (backupEnded).
func (a *Agent) backupJob(b *ops.Backup) job.Func {
	return func(ctx context.Context, j *job.Job) (any, error) {
		meta, err := a.cfg.Jobs.Backup(ctx, j, b)
		a.backupEnded(meta, err)
		if meta == nil {
			return nil, err
		}
		return meta, err
	}
}

// backupEnded is what follows every backup: the metrics hear of it, and a
// verified one is copied to the remote store when there is one.
func (a *Agent) backupEnded(m *store.Meta, err error) {
	a.recordBackup(m, err)
	if err == nil && a.copier != nil && m != nil && m.Verified {
		a.copier.Copy(m.Name)
	}
	if err == nil && a.archive != nil {
		// A new base: the device keeps slices back to the oldest one.
		a.prunePending.Store(true)
		a.prunePendingPITR(a.ctx)
	}
}

// pinMember connects to one member of the configured deployment alone (a
// direct connection), for ops.Backup.Pin.
func (a *Agent) pinMember(ctx context.Context, member string) (*mongo.Client, error) {
	o := options.Client().ApplyURI(a.cfg.MongoURI).SetAppName("a0agent").SetHosts([]string{member}).SetDirect(true)
	c, err := mongo.Connect(o)
	if err != nil {
		return nil, redactURIError(err)
	}
	return c, nil
}

// startKeyJob starts a job that a revoke of the key of r stops. The watch
// is a child of the job's own context: ending it when the job returns must
// not cancel the context the job runner reads to tell a job the agent's
// stop interrupted from one that failed on its own. The job's error goes
// through the error funnel (jobError), so that its record keeps its code.
func (a *Agent) startKeyJob(r *http.Request, kind string, fn job.Func) error {
	pub := requestKey(r.Context())
	return a.jobs.Start(a.ctx, kind, func(ctx context.Context, j *job.Job) (any, error) {
		wctx, stop := a.whileAuthorized(ctx, pub, kind)
		defer stop()
		res, err := fn(wctx, j)
		if err != nil && errors.Is(context.Cause(wctx), errRevoked) {
			// Say why the job stopped, not only "context canceled".
			err = fmt.Errorf("stopped: %w (%w)", errRevoked, err)
		}
		return res, jobError(err)
	})
}

// openServices opens the services that run beside the jobs: the remote
// copy (which resumes a copy a stop cut) and the schedule.
func (a *Agent) openServices() error {
	if err := a.openArchive(); err != nil {
		return err
	}
	if err := a.openDrill(); err != nil {
		return err
	}
	if a.cfg.Schedule != nil {
		if len(a.recipients) == 0 {
			return ErrScheduleNeedsRecipients
		}
		a.sched = &ops.Scheduler{Schedule: a.cfg.Schedule, State: a.state, Replace: a.cfg.Replace,
			Running:    func() string { kind, _, _ := a.jobs.Running(); return kind },
			CheckSpace: func(ctx context.Context, device string) error { return a.cfg.Jobs.CheckSpace(ctx, a.client, device) },
			Seal: func() (crypt.Seal, int, error) {
				seal, to, err := a.backupSeal(api.BackupRequest{}, nil, api.SlotBackup)
				return seal, len(to), err
			},
			Backup: func(device string, seal crypt.Seal) *ops.Backup { return a.newBackup(device, seal, false) },
			Jobs:   a.cfg.Jobs,
			Start: func(kind string, fn job.Func) error {
				return a.jobs.Start(a.ctx, kind, func(ctx context.Context, j *job.Job) (any, error) {
					res, err := fn(ctx, j)
					return res, jobError(err)
				})
			},
			BackupEnded: a.backupEnded,
			Notify:      a.notify,
			CodeOf:      func(err error) string { return string(codeOf(err)) },
			NextRun:     func(t time.Time) { a.metrics.SetNextRun(t) },
			Log:         a.log,
		}
		if err := a.sched.Open(); err != nil {
			return err
		}
	}
	return nil
}

// startServices starts the services once the agent is ready: each runs
// under the agent's lifetime (a.ctx) and stopServices waits for its end.
func (a *Agent) startServices() error {
	if a.cfg.Remote != nil {
		a.copier = &ops.Copier{Remote: a.cfg.Remote, Retention: a.cfg.Retention, RetryWait: a.cfg.RemoteRetry,
			Attempts: a.cfg.RemoteAttempts, State: a.state, Reserve: a.uploadReserve(),
			Recorded: a.metrics.SetRemote, Log: a.log}
		if err := a.copier.Open(a.ctx); err != nil {
			return err
		}
	}
	if err := a.startArchive(); err != nil {
		return err
	}
	if a.sched != nil {
		a.log.Info("schedule on", "schedule", a.cfg.Schedule.String(), "replace", a.cfg.Replace, "recipients", len(a.recipients))
		a.schedDone = make(chan struct{})
		go func() {
			defer close(a.schedDone)
			a.sched.Run(a.ctx)
		}()
	}
	a.startDrill()
	return nil
}

// stopServices waits for the services to end (after a.stop).
func (a *Agent) stopServices() {
	if a.archive != nil {
		a.archive.Close()
	}
	if a.pitrMetricsDone != nil {
		<-a.pitrMetricsDone
	}
	if a.sliceCopier != nil {
		a.sliceCopier.Wait()
	}
	if a.schedDone != nil {
		<-a.schedDone
	}
	if a.drillDone != nil {
		<-a.drillDone
	}
	if a.copier != nil {
		a.copier.Wait()
	}
}

// scheduleStatus is node-status's "schedule".
func (a *Agent) scheduleStatus() *api.ScheduleStatus {
	if a.sched == nil {
		return nil
	}
	st, next := a.sched.Snapshot()
	out := &api.ScheduleStatus{Schedule: a.cfg.Schedule.String(), Replace: a.cfg.Replace, Recipients: len(a.recipients)}
	if !next.IsZero() {
		n := next.UTC()
		out.NextRun = &n
	}
	if r := st.LastRun; r != nil {
		out.LastRun = scheduledRun(r)
	}
	return out
}

func scheduledRun(r *schedule.Run) *api.ScheduledRun {
	return &api.ScheduledRun{Due: r.Due, Started: r.Started, Finished: r.Finished, Outcome: r.Outcome,
		Reason: r.Reason, Code: r.Code, Name: r.Name, Replaced: r.Replaced, Missed: r.Missed}
}
