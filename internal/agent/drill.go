package agent

import (
	"context"
	"errors"
	"net/http"
	"time"

	"filippo.io/age"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/keys"
	"github.com/a0backup/a0/internal/metrics"
	"github.com/a0backup/a0/internal/ops"
	"github.com/a0backup/a0/internal/schedule"
)

// This file wires the restore drills (issue 29): ops.Driller beside the
// jobs (it does not take the one-job slot: a job preempts it; see
// ops/drill.go), its metrics, its webhook event, and its status in
// node-status and backup-status; and the measured restore rate that
// `backups` predicts restore times from.

// Drill is the config's "drill": when drills run, and the identity file
// that opens backups encrypted to public keys (the node's own key,
// separate from the operators': docs/security.md).
type Drill struct {
	Schedule *schedule.Schedule
	// Identity is the path of an age or OpenSSH identity file, mode 0600.
	Identity string
	// Poll is how often a drill looks for a job that preempts it (0: 1 s).
	Poll time.Duration
}

// ErrDrillNeedsIdentity: a drill opens the stored backup with its own key.
var ErrDrillNeedsIdentity = errors.New(`"drill" needs "identity": the path of the key file (0600) drills open backups with`)

// openDrill prepares the drill service when the config has "drill"; it
// removes the directories of drills a killed agent left.
func (a *Agent) openDrill() error {
	d := a.cfg.Drill
	if d == nil {
		return nil
	}
	if d.Identity == "" {
		return ErrDrillNeedsIdentity
	}
	// Checked at start (mode, format), read again at each drill.
	if _, err := keys.LoadIdentities(d.Identity); err != nil {
		return err
	}
	a.driller = &ops.Driller{Schedule: d.Schedule, State: a.state, Poll: d.Poll,
		Identities: func() ([]age.Identity, error) { return keys.LoadIdentities(d.Identity) },
		Running:    func() string { kind, _, _ := a.jobs.Running(); return kind },
		DataSize:   func(ctx context.Context) (int64, error) { return a.cfg.Jobs.DataSize(ctx, a.client) },
		Jobs:       a.cfg.Jobs,
		Ended:      func(_ ops.DrillRun, st ops.DrillState) { a.metrics.SetDrill(drillMetrics(st)) },
		Notify:     a.notify,
		CodeOf:     func(err error) string { return string(codeOf(err)) },
		Hold:       a.cfg.Hold,
		Log:        a.log.With("service", ops.KindDrill),
	}
	if err := a.driller.Open(); err != nil {
		return err
	}
	st, _ := a.driller.Snapshot()
	a.metrics.SetDrill(drillMetrics(st))
	return nil
}

// startDrill runs the drill service under the agent's lifetime.
func (a *Agent) startDrill() {
	if a.driller == nil {
		return
	}
	a.log.Info("restore drills on", "schedule", a.cfg.Drill.Schedule.String())
	a.drillDone = make(chan struct{})
	go func() {
		defer close(a.drillDone)
		a.driller.Run(a.ctx)
	}()
}

func drillMetrics(st ops.DrillState) *metrics.Drill {
	m := &metrics.Drill{Failures: st.Failures}
	if s := st.LastSuccess; s != nil && s.Finished != nil {
		m.LastSuccess = *s.Finished
	}
	// The last drill that measured a restore: a drill skipped (given way
	// to a job, the agent stopped) or failed before it restored (no key,
	// no room, a file that does not authenticate) measured nothing, and
	// the gauge then keeps the last successful drill's figure instead of
	// vanishing from the scrape.
	for _, r := range []*ops.DrillRun{st.Last, st.LastSuccess} {
		if r != nil && (r.Outcome == ops.DrillOK || r.Outcome == ops.DrillFailed) && r.Seconds > 0 {
			m.Duration = time.Duration(r.Seconds * float64(time.Second))
			break
		}
	}
	return m
}

// drillStatus is node-status's and backup-status's "drill".
func (a *Agent) drillStatus() *api.DrillStatus {
	if a.driller == nil {
		return nil
	}
	st, next := a.driller.Snapshot()
	out := &api.DrillStatus{Schedule: a.cfg.Drill.Schedule.String(), Failures: st.Failures,
		Last: apiDrillRun(st.Last), LastSuccess: apiDrillRun(st.LastSuccess)}
	if !next.IsZero() {
		n := next.UTC()
		out.NextRun = &n
	}
	return out
}

func apiDrillRun(r *ops.DrillRun) *api.DrillRun {
	if r == nil {
		return nil
	}
	// ops.DrillRun is api.DrillRun: a copy, not the service's own.
	c := *r
	return &c
}

// restorePrediction is `backups`' predicted restore time of a backup file
// of size bytes, from the node's last measured restore rate.
func (a *Agent) restorePrediction(size int64) *api.RestorePrediction {
	r, err := ops.LoadRate(a.state)
	if err != nil {
		a.log.Warn("could not read the measured restore rate", "err", err)
		return nil
	}
	if r == nil || r.Predict(size) <= 0 {
		return nil
	}
	return &api.RestorePrediction{Seconds: r.Predict(size).Seconds(), From: r.Source, At: r.At, Backup: r.Backup,
		BytesPerSecond: r.BytesPerSecond()}
}

// recordRestoreRate keeps a finished restore's rate: the bytes of the file
// it restored per second of the whole job.
func (a *Agent) recordRestoreRate(name string, size int64, took time.Duration) {
	if size <= 0 || took <= 0 {
		return
	}
	if err := ops.SaveRate(a.state, ops.Rate{Source: ops.KindRestore, Backup: name, At: time.Now().UTC(), Bytes: size,
		Seconds: took.Seconds()}); err != nil {
		a.log.Warn("could not save the measured restore rate", "err", err)
	}
}

// slotDrillStatus is backup-status's "drill": drills prove the backup
// slot's backup only.
func (a *Agent) slotDrillStatus(slot string) *api.DrillStatus {
	if slot != api.SlotBackup {
		return nil
	}
	return a.drillStatus()
}

// drillNow is POST /v1/drill (a0cli drill): a drill now, under the drills'
// rules (after any running job, preempted by any job that starts).
func (a *Agent) drillNow(w http.ResponseWriter, r *http.Request) error {
	if a.driller == nil {
		return api.Errorf(api.CodeUnsupported, `this node runs no restore drills: set "drill" (a schedule and an identity) in its agent config (docs/operations.md)`)
	}
	out := api.DrillRequested{AlreadyRequested: !a.driller.Trigger()}
	a.log.Info("restore drill requested", "key", r.Context().Value(keyNameKey), "already_requested", out.AlreadyRequested)
	return writeJSON(w, http.StatusAccepted, api.Message{Message: "Drill requested.", Arguments: out})
}
