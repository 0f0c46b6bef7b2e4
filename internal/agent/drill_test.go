package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/crypt"
	"github.com/a0backup/a0/internal/drill"
	"github.com/a0backup/a0/internal/drill/drilltest"
	"github.com/a0backup/a0/internal/job"
	"github.com/a0backup/a0/internal/ops"
	"github.com/a0backup/a0/internal/ops/dbjob"
	"github.com/a0backup/a0/internal/sampledata"
	"github.com/a0backup/a0/internal/schedule"
	"github.com/a0backup/a0/internal/statedir"
	"github.com/a0backup/a0/internal/store"
	"github.com/a0backup/a0/internal/webhook"
)

type drillTest struct {
	a     *Agent
	id    *age.X25519Identity
	log   *lockedBuffer
	state string
	dev   string
}

// drillNode prepares a backup-role node's state and device and the drill's
// identity file (0600), its public key the config's recipient.
func drillNode(t *testing.T) (state, dev, identity string, id *age.X25519Identity) {
	t.Helper()
	state, dev = t.TempDir(), t.TempDir()
	st, err := statedir.Open(state)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dev, store.FolderName), 0o700)
	if err := st.SaveNode(statedir.Node{Roles: []string{statedir.RoleBackup}, Device: dev}); err != nil {
		t.Fatal(err)
	}
	id, _ = age.GenerateX25519Identity()
	identity = filepath.Join(t.TempDir(), "drill.key")
	if err := os.WriteFile(identity, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return state, dev, identity, id
}

// drillAgent starts an agent with drills every `every` on a seeded
// embedded database.
func drillAgent(t *testing.T, state, dev, identity string, id *age.X25519Identity, every string, hook *receiver, set ...func(*Config)) *drillTest {
	t.Helper()
	sched, err := schedule.Parse(schedule.Spec{Every: every})
	if err != nil {
		t.Fatal(err)
	}
	log := &lockedBuffer{}
	cfg := Config{Jobs: dbjob.Runners(), StateDir: state, Listen: "127.0.0.1:0", MetricsListen: "127.0.0.1:0",
		Recipients: []string{id.Recipient().String()}, Logger: slog.New(slog.NewTextHandler(log, nil)),
		Drill: &Drill{Schedule: sched, Identity: identity, Poll: 20 * time.Millisecond}}
	if hook != nil {
		cfg.Webhook, cfg.WebhookCAFile = hook.url, hook.caFile
	}
	for _, f := range set {
		f(&cfg)
	}
	a, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return &drillTest{a: a, id: id, log: log, state: state, dev: dev}
}

// backup stores a backup encrypted to the drill's recipient, as a
// scheduled one is.
func (d *drillTest) backup(t *testing.T) *store.Meta {
	t.Helper()
	seal := crypt.Seal{Recipients: []age.Recipient{d.id.Recipient()}}
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
		// A drill running now gives way to the job.
		err := d.a.jobs.Start(d.a.ctx, kindBackup, d.a.backupJob(d.a.newBackup(d.dev, seal, false)))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
	d.a.jobs.Wait(context.Background())
	if rec, _ := d.a.jobs.Last(kindBackup); rec == nil || rec.State != "done" {
		t.Fatalf("backup: %+v\nlog:\n%s", rec, d.log.String())
	}
	m, err := ops.Slot(d.dev, api.SlotBackup).Stored()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// waitDrill waits until the last drill is one ok accepts.
func (d *drillTest) waitDrill(t *testing.T, what string, ok func(*api.DrillRun) bool) *api.DrillStatus {
	t.Helper()
	var last *api.DrillStatus
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if last = d.a.drillStatus(); last != nil && last.Last != nil && ok(last.Last) {
			return last
		}
	}
	t.Fatalf("no drill %s in 3 minutes; last %+v\nlog:\n%s", what, last, d.log.String())
	return nil
}

// getJSON runs a handler of the agent and decodes its answer.
func getJSON(t *testing.T, h func(http.ResponseWriter, *http.Request) error, slot string, v any) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	if slot != "" {
		req.SetPathValue("slot", slot)
	}
	rec := httptest.NewRecorder()
	if err := h(rec, req); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), v); err != nil {
		t.Fatalf("%s: %v", rec.Body.String(), err)
	}
}

// The drill on the node (issue 29): an agent with "drill" every 2s restores
// its stored backup into a throwaway server under <device>/backup/.drill and
// passes; node-status, backup-status, the metrics, the webhook and
// `backups`' prediction show it, and nothing is left in the drill's
// directory. Then the stored backup is replaced by one whose archive was
// altered after the dump (a document's bytes changed, the manifest's digest
// left as the dump computed it, sealed again to the same key): the next
// drill FAILS, names the collection, counts a failure and posts it.
func TestDrillOnTheNode(t *testing.T) {
	rcv := newReceiver(t, nil)
	state, dev, identity, id := drillNode(t)
	d := drillAgent(t, state, dev, identity, id, "2s", rcv)
	if _, err := sampledata.Seed(context.Background(), d.a.client, sampledata.Options{Users: 20}); err != nil {
		t.Fatal(err)
	}
	m := d.backup(t)

	st := d.waitDrill(t, "ok", func(r *api.DrillRun) bool { return r.Outcome == ops.DrillOK && r.Backup == m.Name })
	r := st.Last
	if r.Seconds <= 0 || r.Collections == 0 || r.Documents == 0 || st.LastSuccess == nil || st.Failures != 0 {
		t.Fatalf("drill ok: %+v (status %+v)", r, st)
	}
	// The restore's time (seconds) and the comparison's are reported
	// apart, with the whole drill's, which holds both.
	if r.CompareSeconds <= 0 || r.TotalSeconds < r.Seconds+r.CompareSeconds || r.CollectionsNotHeld != 0 {
		t.Fatalf("drill times: restore %v s, compare %v s, in all %v s; %d not held", r.Seconds, r.CompareSeconds, r.TotalSeconds, r.CollectionsNotHeld)
	}
	if left, _ := filepath.Glob(filepath.Join(ops.DrillDir(dev), drill.DirPattern)); len(left) != 0 {
		t.Fatalf("the drill left %v", left)
	}
	var ns api.NodeStatus
	getJSON(t, d.a.nodeStatus, "", &ns)
	if ns.Drill == nil || ns.Drill.Last == nil || ns.Drill.Last.Outcome != ops.DrillOK || ns.Drill.Schedule != "every 2s" {
		t.Fatalf("node-status drill: %+v", ns.Drill)
	}
	var bs struct {
		Arguments api.BackupFound `json:"arguments"`
	}
	getJSON(t, d.a.slotStatus, api.SlotBackup, &bs)
	if bs.Arguments.Drill == nil || bs.Arguments.Drill.LastSuccess == nil || bs.Arguments.Drill.LastSuccess.Backup != m.Name {
		t.Fatalf("backup-status drill: %+v", bs.Arguments.Drill)
	}
	var list api.Backups
	getJSON(t, d.a.listBackups, "", &list)
	if len(list.Backups) != 1 || list.Backups[0].RestorePrediction == nil || list.Backups[0].RestorePrediction.From != "drill" ||
		list.Backups[0].RestorePrediction.Seconds <= 0 || list.Backups[0].RestorePrediction.Backup != m.Name {
		t.Fatalf("backups' prediction: %+v", list.Backups)
	}
	ev := rcv.waitEvent(t, "restore_drill ok", func(ev webhook.Event) bool {
		return ev.Event == "restore_drill" && ev.State == ops.DrillOK
	})
	if ev.Kind != ops.KindDrill || ev.Backup == nil || ev.Backup.Name != m.Name || ev.Drill == nil || ev.Drill.Seconds <= 0 {
		t.Fatalf("webhook: %+v", ev)
	}
	mt := scrape(t, d.a.MetricsAddr())
	if mt["a0_restore_drill_last_success_timestamp_seconds"] < float64(m.Created.Unix()) || mt["a0_restore_drill_duration_seconds"] <= 0 ||
		mt["a0_restore_drill_failures_total"] != 0 {
		t.Fatalf("metrics after a good drill: %v", mt)
	}

	// The altered backup: decrypted with the key, one document's bytes
	// changed, sealed again, put in the stored file's place.
	alterStored(t, ops.Slot(dev, api.SlotBackup).Path(m), id)
	st = d.waitDrill(t, "failed", func(r *api.DrillRun) bool { return r.Outcome == ops.DrillFailed })
	r = st.Last
	if r.Backup != m.Name || r.Code != string(api.CodeIntegrity) || !strings.Contains(r.Reason, "differs") || st.Failures < 1 ||
		st.LastSuccess == nil {
		t.Fatalf("drill of the altered backup: %+v (status %+v)", r, st)
	}
	t.Logf("failed drill: %s", r.Reason)
	ev = rcv.waitEvent(t, "restore_drill failed", func(ev webhook.Event) bool {
		return ev.Event == "restore_drill" && ev.State == ops.DrillFailed
	})
	if ev.Code != string(api.CodeIntegrity) || ev.Error == "" {
		t.Fatalf("webhook of the failed drill: %+v", ev)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if mt = scrape(t, d.a.MetricsAddr()); mt["a0_restore_drill_failures_total"] >= 1 || time.Now().After(deadline) {
			break
		}
	}
	if mt["a0_restore_drill_failures_total"] < 1 {
		t.Fatalf("metrics after a failed drill: %v", mt)
	}
	if left, _ := filepath.Glob(filepath.Join(ops.DrillDir(dev), drill.DirPattern)); len(left) != 0 {
		t.Fatalf("the failed drill left %v", left)
	}
}

// alterStored rewrites the backup file at path: its plaintext archive with
// one document's bytes changed (the manifest's digest as the dump computed
// it), sealed again to id's recipient.
func alterStored(t *testing.T, path string, id *age.X25519Identity) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	cr, err := crypt.Open(f, crypt.Unlock{Identities: []age.Identity{id}})
	if err != nil {
		t.Fatal(err)
	}
	tgz, err := io.ReadAll(cr)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	altered, entry, err := drilltest.Alter(tgz, []byte(".3@"), []byte(".3#"))
	if err != nil || entry == "" {
		t.Fatalf("alter: %v (entry %q)", err, entry)
	}
	var out bytes.Buffer
	w, err := crypt.NewSealedWriter(&out, crypt.Seal{Recipients: []age.Recipient{id.Recipient()}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(altered)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	tmp := path + ".altered"
	if err := os.WriteFile(tmp, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// What a killed agent left: a drill's directory (its lock no longer held)
// is removed at the next start, and a drill recorded as running is
// "failed: interrupted", counted in the failures metric.
func TestDrillLeftoversAtStart(t *testing.T) {
	state, dev, identity, id := drillNode(t)
	stale := filepath.Join(ops.DrillDir(dev), "a0-drill-123456")
	if err := os.MkdirAll(filepath.Join(stale, "db"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"drill.lock", "db/auth0.sqlite"} {
		if err := os.WriteFile(filepath.Join(stale, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	started := time.Now().Add(-time.Minute).UTC()
	b, _ := json.Marshal(ops.DrillState{Schedule: "every 168h0m0s", Since: started.Add(-time.Hour),
		Last: &ops.DrillRun{Due: started, Started: started, Outcome: ops.DrillRunning, Backup: "b-1"}})
	if err := os.WriteFile(filepath.Join(state, ops.DrillStateFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	d := drillAgent(t, state, dev, identity, id, "168h", nil)
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("the stale drill directory is still there: %v\nlog:\n%s", err, d.log.String())
	}
	if !strings.Contains(d.log.String(), "removed the directory of an interrupted restore drill") {
		t.Errorf("not logged:\n%s", d.log.String())
	}
	st := d.a.drillStatus()
	if st.Last == nil || st.Last.Outcome != ops.DrillFailed || !strings.Contains(st.Last.Reason, "interrupted") || st.Failures != 1 ||
		st.NextRun == nil {
		t.Fatalf("drill status after the restart: %+v", st)
	}
	if mt := scrape(t, d.a.MetricsAddr()); mt["a0_restore_drill_failures_total"] != 1 || mt["a0_restore_drill_last_success_timestamp_seconds"] != 0 {
		t.Fatalf("metrics: %v", mt)
	}
}

// A drill never holds up a job: a job that starts while a drill runs (held
// here once its throwaway server exists) preempts it: the drill is
// cancelled, reported "skipped" (to be retried, no failure counted), its
// directory removed; it does not start again while the job runs, and
// runs, and passes, once the job has ended.
func TestDrillGivesWayToAJob(t *testing.T) {
	state, dev, identity, id := drillNode(t)
	reached := make(chan struct{}, 10)
	hold := holdFirstDrill(reached)
	d := drillAgent(t, state, dev, identity, id, "1h", nil, func(c *Config) { c.Hold = hold })
	if _, err := sampledata.Seed(context.Background(), d.a.client, sampledata.Options{Users: 20}); err != nil {
		t.Fatal(err)
	}
	m := d.backup(t)
	d.a.driller.Trigger()
	<-reached
	if left, _ := filepath.Glob(filepath.Join(ops.DrillDir(dev), drill.DirPattern)); len(left) != 1 {
		t.Fatalf("the held drill's directory: %v", left)
	}
	// A job starts: the one-job slot is free, the drill gives way.
	release := make(chan struct{})
	if err := d.a.jobs.Start(d.a.ctx, kindRestore, func(ctx context.Context, j *job.Job) (any, error) {
		<-release
		return nil, nil
	}); err != nil {
		t.Fatalf("a job while a drill runs: %v", err)
	}
	st := d.waitDrill(t, "skipped", func(r *api.DrillRun) bool { return r.Outcome == ops.DrillSkipped })
	if !strings.Contains(st.Last.Reason, "gave way") || !strings.Contains(st.Last.Reason, "restore") || st.Failures != 0 ||
		st.Last.Backup != m.Name {
		t.Fatalf("the preempted drill: %+v (status %+v)", st.Last, st)
	}
	if left, _ := filepath.Glob(filepath.Join(ops.DrillDir(dev), drill.DirPattern)); len(left) != 0 {
		t.Fatalf("the preempted drill left %v", left)
	}
	// Still running: no drill starts beside it.
	if kind, _, _ := d.a.jobs.Running(); kind != kindRestore {
		t.Fatalf("the job: %q", kind)
	}
	if st := d.a.drillStatus(); st.Last.Outcome != ops.DrillSkipped {
		t.Fatalf("a drill started beside the job: %+v", st.Last)
	}
	close(release)
	d.a.jobs.Wait(context.Background())
	st = d.waitDrill(t, "ok after the job", func(r *api.DrillRun) bool { return r.Outcome == ops.DrillOK })
	if st.Failures != 0 || st.Last.Backup != m.Name {
		t.Fatalf("the drill after the job: %+v", st)
	}
}

// A backup deleted while its drill runs (backup-delete takes no job slot)
// stops the drill: it read an open file and would have reported "ok" for
// a backup no longer there. The drill is skipped, no failure counted, its
// directory removed.
func TestDrillStopsWhenTheBackupIsDeleted(t *testing.T) {
	state, dev, identity, id := drillNode(t)
	reached := make(chan struct{}, 10)
	hold := holdFirstDrill(reached)
	d := drillAgent(t, state, dev, identity, id, "1h", nil, func(c *Config) { c.Hold = hold })
	if _, err := sampledata.Seed(context.Background(), d.a.client, sampledata.Options{Users: 20}); err != nil {
		t.Fatal(err)
	}
	m := d.backup(t)
	d.a.driller.Trigger()
	<-reached
	if _, err := ops.Slot(dev, "backup").Delete(); err != nil {
		t.Fatal(err)
	}
	// Skipped, then (retried at once) skipped again: nothing is stored.
	st := d.waitDrill(t, "skipped", func(r *api.DrillRun) bool { return r.Outcome == ops.DrillSkipped })
	logs := d.log.String()
	if !strings.Contains(logs, "deleted or replaced during the drill") || !strings.Contains(logs, m.Name) ||
		strings.Contains(logs, "restore drill ok") || st.Failures != 0 || st.LastSuccess != nil {
		t.Fatalf("the drill of a deleted backup: %+v (status %+v)\nlog:\n%s", st.Last, st, logs)
	}
	if left, _ := filepath.Glob(filepath.Join(ops.DrillDir(dev), drill.DirPattern)); len(left) != 0 {
		t.Fatalf("the stopped drill left %v", left)
	}
}

// An agent whose Config.Jobs lacks the drill's bodies refuses to start,
// naming them, as for the jobs' bodies (TestNewNeedsJobs).
func TestNewNeedsDrillRunners(t *testing.T) {
	jobs := dbjob.Runners()
	jobs.Drill, jobs.CleanDrills = nil, nil
	a, err := New(context.Background(), Config{StateDir: t.TempDir(), Listen: "127.0.0.1:0", Jobs: jobs})
	if err == nil {
		a.Close()
		t.Fatal("New started an agent without the drill's bodies")
	}
	if !errors.Is(err, ops.ErrNoRunners) || !strings.Contains(err.Error(), "Drill, CleanDrills missing") || strings.Contains(err.Error(), "Backup") {
		t.Fatalf("New: %v", err)
	}
}

// The rate `backups` predicts restore times from is a whole restore's: a
// restore of some namespaces (--ns) or under other names (--ns-from)
// writes part of the backup, and its rate (the whole file's bytes per
// second) would predict any backup to restore in a fraction of its time.
func TestRestoreRateFromWholeRestoresOnly(t *testing.T) {
	ctx := context.Background()
	state, dev, identity, id := drillNode(t)
	d := drillAgent(t, state, dev, identity, id, "1h", nil)
	if _, err := sampledata.Seed(ctx, d.a.client, sampledata.Options{Users: 20}); err != nil {
		t.Fatal(err)
	}
	pw := []byte("Passw0rd-rate")
	seal := crypt.Seal{Password: bytes.Clone(pw), Recipients: []age.Recipient{id.Recipient()}}
	if err := d.a.jobs.Start(d.a.ctx, kindBackup, d.a.backupJob(d.a.newBackup(dev, seal, false))); err != nil {
		t.Fatal(err)
	}
	d.a.jobs.Wait(ctx)
	m, err := ops.Slot(dev, api.SlotBackup).Stored()
	if err != nil {
		t.Fatalf("%v\nlog:\n%s", err, d.log.String())
	}
	restore := func(what string, opts ops.RestoreOptions) {
		t.Helper()
		src, err := d.a.restoreSource(api.RestoreRequest{}, bytes.Clone(pw))
		if err != nil {
			t.Fatal(err)
		}
		opts.SpoolDir = d.a.state.SpoolDir()
		if err := d.a.jobs.Start(d.a.ctx, kindRestore, d.a.restoreJob(src, opts)); err != nil {
			t.Fatal(err)
		}
		d.a.jobs.Wait(ctx)
		if rec, _ := d.a.jobs.Last(kindRestore); rec == nil || rec.State != "done" {
			t.Fatalf("restore %s: %+v\nlog:\n%s", what, rec, d.log.String())
		}
	}
	for _, tc := range []struct {
		name string
		opts ops.RestoreOptions
	}{
		{"--ns", ops.RestoreOptions{NS: []string{"auth0.tenants"}, Drop: true}},
		{"--ns-from", ops.RestoreOptions{NSFrom: []string{"auth0.*"}, NSTo: []string{"auth0_check.*"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			restore(tc.name, tc.opts)
			if r, err := ops.LoadRate(d.a.state); err != nil || r != nil {
				t.Fatalf("a partial restore measured the rate: %+v (%v)", r, err)
			}
		})
	}
	restore("whole", ops.RestoreOptions{Drop: true})
	if r, err := ops.LoadRate(d.a.state); err != nil || r == nil || r.Source != ops.KindRestore || r.Backup != m.Name {
		t.Fatalf("the whole restore's rate: %+v (%v)", r, err)
	}
}

// An agent stopped cleanly (SIGTERM: systemctl restart, an upgrade) during
// a drill has not found a bad backup: the drill is reported skipped, to run
// again, no failure counted (a0_restore_drill_failures_total alerts), its
// directory removed. (A killed agent cannot say so: TestDrillLeftoversAtStart.)
func TestDrillAgentStopped(t *testing.T) {
	state, dev, identity, id := drillNode(t)
	reached := make(chan struct{}, 1)
	hold := func(ctx context.Context, point string) {
		if point != HoldDrill {
			return
		}
		reached <- struct{}{}
		<-ctx.Done()
	}
	sched, err := schedule.Parse(schedule.Spec{Every: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	log := &lockedBuffer{}
	a, err := New(context.Background(), Config{Jobs: dbjob.Runners(), StateDir: state, Listen: "127.0.0.1:0",
		Recipients: []string{id.Recipient().String()}, Logger: slog.New(slog.NewTextHandler(log, nil)), Hold: hold,
		Drill: &Drill{Schedule: sched, Identity: identity, Poll: 20 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sampledata.Seed(context.Background(), a.client, sampledata.Options{Users: 20}); err != nil {
		a.Close()
		t.Fatal(err)
	}
	first := &drillTest{a: a, id: id, log: log, state: state, dev: dev}
	first.backup(t)
	a.driller.Trigger()
	<-reached
	a.Close()
	if left, _ := filepath.Glob(filepath.Join(ops.DrillDir(dev), drill.DirPattern)); len(left) != 0 {
		t.Fatalf("the stopped drill left %v", left)
	}

	d := drillAgent(t, state, dev, identity, id, "1h", nil)
	st := d.a.drillStatus()
	if st.Last == nil || st.Last.Outcome != ops.DrillSkipped || !st.Last.Retry || st.Failures != 0 {
		t.Fatalf("drill status after a clean stop during a drill: %+v (last %+v)", st, st.Last)
	}
	if mt := scrape(t, d.a.MetricsAddr()); mt["a0_restore_drill_failures_total"] != 0 {
		t.Fatalf("metrics: %v", mt)
	}
}

// holdFirstDrill holds the first drill once its throwaway server exists,
// until the drill is cancelled, and says so on reached; later drills run.
func holdFirstDrill(reached chan<- struct{}) func(ctx context.Context, point string) {
	var held atomic.Bool
	return func(ctx context.Context, point string) {
		if point != HoldDrill || held.Swap(true) {
			return
		}
		reached <- struct{}{}
		<-ctx.Done()
	}
}
