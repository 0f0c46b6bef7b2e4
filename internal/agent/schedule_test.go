package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/crypt"
	"github.com/a0backup/a0/internal/job"
	"github.com/a0backup/a0/internal/ops/dbjob"
	"github.com/a0backup/a0/internal/sampledata"
	"github.com/a0backup/a0/internal/schedule"
	"github.com/a0backup/a0/internal/statedir"
	"github.com/a0backup/a0/internal/store"
	"github.com/a0backup/a0/internal/webhook"
)

// receiver is a local HTTPS webhook receiver with a CA the test makes
// (real TLS): the agent trusts it through webhook_ca_file.
type receiver struct {
	url, caFile string
	mu          sync.Mutex
	events      []webhook.Event
	raw         []string
}

func newReceiver(t *testing.T, h http.HandlerFunc) *receiver {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "a0 test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "receiver"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{caFile: filepath.Join(t.TempDir(), "ca.pem")}
	os.WriteFile(r.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644)
	if h == nil {
		h = func(w http.ResponseWriter, req *http.Request) {
			b, _ := io.ReadAll(req.Body)
			var ev webhook.Event
			if err := json.Unmarshal(b, &ev); err != nil {
				t.Errorf("webhook body %q: %v", b, err)
			}
			r.mu.Lock()
			r.events, r.raw = append(r.events, ev), append(r.raw, string(b))
			r.mu.Unlock()
		}
	}
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	r.url = srv.URL + "/hooks/T0KEN-s3cr3t"
	return r
}

// waitEvent waits for an event that ok accepts.
func (r *receiver) waitEvent(t *testing.T, what string, ok func(webhook.Event) bool) webhook.Event {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		for _, ev := range r.events {
			if ok(ev) {
				r.mu.Unlock()
				return ev
			}
		}
		r.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	t.Fatalf("no webhook event %s in 3 minutes; got %v", what, r.raw)
	return webhook.Event{}
}

type schedTest struct {
	a   *Agent
	id  *age.X25519Identity
	log *lockedBuffer
	dev string
}

// scheduledAgent starts an agent with a schedule of every 2s, encrypting
// to a fresh X25519 recipient, on a seeded embedded database.
func scheduledAgent(t *testing.T, replace bool, webhookURL, caFile string, role bool) *schedTest {
	t.Helper()
	state, dev := t.TempDir(), t.TempDir()
	st, err := statedir.Open(state)
	if err != nil {
		t.Fatal(err)
	}
	if role {
		os.MkdirAll(filepath.Join(dev, store.FolderName), 0o700)
		if err := st.SaveNode(statedir.Node{Roles: []string{statedir.RoleBackup}, Device: dev}); err != nil {
			t.Fatal(err)
		}
	}
	id, _ := age.GenerateX25519Identity()
	sched, err := schedule.Parse(schedule.Spec{Every: "2s"})
	if err != nil {
		t.Fatal(err)
	}
	log := &lockedBuffer{}
	a, err := New(context.Background(), Config{Jobs: dbjob.Runners(), StateDir: state, Listen: "127.0.0.1:0", MetricsListen: "127.0.0.1:0",
		Recipients: []string{id.Recipient().String()}, Schedule: sched, Replace: replace,
		Webhook: webhookURL, WebhookCAFile: caFile, Logger: slog.New(slog.NewTextHandler(log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	if _, err := sampledata.Seed(context.Background(), a.client, sampledata.Options{Users: 20}); err != nil {
		t.Fatal(err)
	}
	return &schedTest{a: a, id: id, log: log, dev: dev}
}

// waitRun waits until the schedule's last run is one ok accepts.
func (s *schedTest) waitRun(t *testing.T, what string, ok func(*api.ScheduledRun) bool) *api.ScheduledRun {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	var last *api.ScheduledRun
	for time.Now().Before(deadline) {
		if st := s.a.scheduleStatus(); st != nil && st.LastRun != nil {
			last = st.LastRun
			if ok(last) {
				return last
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no scheduled run %s in 3 minutes; last %+v\nlog:\n%s", what, last, s.log.String())
	return nil
}

// quiesce holds the node with another job until a run is skipped for it:
// then no scheduled backup runs and none starts until release is called.
func (s *schedTest) quiesce(t *testing.T) (release func()) {
	t.Helper()
	ch := make(chan struct{})
	for deadline := time.Now().Add(3 * time.Minute); ; {
		err := s.a.jobs.Start(s.a.ctx, kindRestore, func(ctx context.Context, j *job.Job) (any, error) {
			<-ch
			return nil, nil
		})
		var busy *job.BusyError
		if err == nil {
			break
		} else if !errors.As(err, &busy) || time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // a scheduled backup runs: after it
	}
	s.waitRun(t, "skipped (busy)", func(r *api.ScheduledRun) bool { return r.Code == string(api.CodeJobRunning) })
	return func() {
		close(ch)
		s.a.jobs.Wait(context.Background())
	}
}

// waitStored waits until a backup is stored.
func (s *schedTest) waitStored(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		n, _ := s.a.state.LoadNode()
		if _, err := s.a.slot(n, api.SlotBackup).Stored(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no backup stored in 3 minutes\nlog:\n%s", s.log.String())
}

// stored returns the stored backup, checked to open with the recipient's
// identity only: the node holds no key that opens it.
func (s *schedTest) stored(t *testing.T) *store.Meta {
	t.Helper()
	n, _ := s.a.state.LoadNode()
	f, m, err := s.a.slot(n, api.SlotBackup).Open()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if !m.Verified || m.Format != FormatNameV2 {
		t.Fatalf("stored %+v", m)
	}
	if _, err := crypt.VerifyWith(f, crypt.Unlock{Identities: []age.Identity{s.id}}); err != nil {
		t.Fatalf("the recipient cannot open the scheduled backup: %v", err)
	}
	f.Seek(0, 0)
	other, _ := age.GenerateX25519Identity()
	if _, err := crypt.Open(f, crypt.Unlock{Identities: []age.Identity{other}}); !errors.Is(err, crypt.ErrWrongKey) {
		t.Fatalf("another key: %v", err)
	}
	return m
}

// A schedule of every 2s: a node without the backup role fails the run
// (reported, counted as a failure); with the role it runs, encrypted to the
// recipients; with a backup stored and no "replace" the next runs are
// skipped and reported; a running job makes a run skip too (one job at a
// time). Each end reaches the webhook.
func TestScheduleRunsSkipsReports(t *testing.T) {
	rcv := newReceiver(t, nil)
	s := scheduledAgent(t, false, rcv.url, rcv.caFile, false)

	r := s.waitRun(t, "refused for the backup role", func(r *api.ScheduledRun) bool { return r.Outcome == schedule.OutcomeFailed })
	if r.Code != string(api.CodeNotBackupRole) || !strings.Contains(r.Reason, "set-as-backup") {
		t.Fatalf("run without the role: %+v", r)
	}
	// The run is recorded before the metrics are: on a busy machine a
	// scrape right after it came too early. Wait for the metric, with a
	// deadline, not for time.
	var m map[string]float64
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
		m = scrape(t, s.a.MetricsAddr())
		if m[`a0_backup_last_failure_reason{reason="not_backup_role"}`] == 1 || time.Now().After(deadline) {
			break
		}
	}
	if m[`a0_backup_last_failure_reason{reason="not_backup_role"}`] != 1 || m["a0_backup_next_run_timestamp_seconds"] < float64(r.Started.Unix()) {
		t.Fatalf("metrics after the refused run: %v", m)
	}
	rcv.waitEvent(t, "job_failed (role)", func(ev webhook.Event) bool {
		return ev.Event == "job_failed" && ev.Scheduled && ev.Code == string(api.CodeNotBackupRole)
	})

	os.MkdirAll(filepath.Join(s.dev, store.FolderName), 0o700)
	if err := s.a.state.SaveNode(statedir.Node{Roles: []string{statedir.RoleBackup}, Device: s.dev}); err != nil {
		t.Fatal(err)
	}
	// Without "replace" the first backup stored stays: the runs after it
	// are skipped, so what is stored is the one done run.
	s.waitStored(t)
	first := s.stored(t)
	ev := rcv.waitEvent(t, "job_done", func(ev webhook.Event) bool { return ev.Event == "job_done" && ev.Kind == kindBackup })
	if !ev.Scheduled || ev.Backup == nil || ev.Backup.Name != first.Name || ev.Backup.SHA256 != first.SHA256 || !ev.Backup.Verified || ev.Node == "" {
		t.Fatalf("job_done event %+v", ev)
	}

	// A run that fell due while the first backup's job was still ending
	// (a busy machine) is skipped as busy: wait for the one skipped for
	// the stored backup.
	r = s.waitRun(t, "skipped (stored)", func(r *api.ScheduledRun) bool {
		return r.Outcome == schedule.OutcomeSkipped && r.Code != string(api.CodeJobRunning)
	})
	if r.Code != string(api.CodeBackupExists) || !strings.Contains(r.Reason, `"replace": true`) || !strings.Contains(r.Reason, first.Name) {
		t.Fatalf("skipped run: %+v", r)
	}
	if again := s.stored(t); again.Name != first.Name {
		t.Fatalf("a skipped run changed the stored backup: %s", again.Name)
	}
	rcv.waitEvent(t, "schedule_skipped", func(ev webhook.Event) bool {
		return ev.Event == "schedule_skipped" && ev.State == "skipped" && ev.Code == string(api.CodeBackupExists)
	})

	// Another job holds the node: the next run is skipped for it.
	release := make(chan struct{})
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
		err := s.a.jobs.Start(s.a.ctx, kindRestore, func(ctx context.Context, j *job.Job) (any, error) {
			<-release
			return nil, nil
		})
		// The backup's job may not have ended yet on a busy machine.
		var busy *job.BusyError
		if err == nil {
			break
		} else if !errors.As(err, &busy) || time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
	r = s.waitRun(t, "skipped (busy)", func(r *api.ScheduledRun) bool { return r.Code == string(api.CodeJobRunning) })
	if r.Outcome != schedule.OutcomeSkipped || !strings.Contains(r.Reason, "restore") {
		t.Fatalf("busy run: %+v", r)
	}
	close(release)
	rcv.waitEvent(t, "job_done (restore)", func(ev webhook.Event) bool { return ev.Kind == kindRestore && ev.State == job.StateDone })

	rcv.mu.Lock()
	for _, raw := range rcv.raw {
		if strings.Count(raw, "\n") != 1 || !strings.HasSuffix(raw, "\n") {
			t.Errorf("not one JSON line: %q", raw)
		}
		if strings.Contains(raw, "s3cr3t") || strings.Contains(raw, s.id.String()) {
			t.Errorf("a secret in a webhook event: %q", raw)
		}
	}
	rcv.mu.Unlock()
	if strings.Contains(s.log.String(), "s3cr3t") {
		t.Errorf("the webhook URL's token is in the log")
	}
}

// With "replace", each run replaces the stored backup once the new one is
// verified; a run whose backup fails its read-back leaves the stored one
// as it was.
func TestScheduleReplaces(t *testing.T) {
	s := scheduledAgent(t, true, "", "", true)
	r2 := s.waitRun(t, "replacing", func(r *api.ScheduledRun) bool {
		return r.Outcome == schedule.OutcomeDone && r.Replaced != "" && r.Name != r.Replaced
	})
	// Hold the schedule still to look at the device.
	release := s.quiesce(t)
	m := s.stored(t)
	if m.Created.Before(r2.Started.Truncate(time.Second)) {
		t.Fatalf("stored %s (%v), older than the replacing run %+v", m.Name, m.Created, r2)
	}
	if _, err := os.Stat(filepath.Join(s.dev, store.FolderName, r2.Replaced+".enc")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the replaced backup's file is still there: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Join(s.dev, store.FolderName))
	encs := 0
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".enc") {
			encs++
		}
	}
	if encs != 1 {
		t.Fatalf("files after a replacement: %v", entries)
	}

	// Damage every finished file before its read-back, as a failing disk
	// (set while no job runs: the next run's start reads it).
	s.a.cfg.BeforeReadBack = func(path string) {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err == nil {
			f.WriteAt([]byte{0xff, 0xff, 0xff, 0xff}, 200)
			f.Close()
		}
	}
	release()
	failed := s.waitRun(t, "failed", func(r *api.ScheduledRun) bool { return r.Outcome == schedule.OutcomeFailed })
	if failed.Name != "" || failed.Replaced != "" || !strings.Contains(failed.Reason, "verification") {
		t.Fatalf("failed run %+v", failed)
	}
	defer s.quiesce(t)()
	kept := s.stored(t) // still verified, still opens
	if !kept.Created.Before(failed.Started) {
		t.Fatalf("the stored backup (%s, %v) is not one from before the failed run (%v)", kept.Name, kept.Created, failed.Started)
	}
}

func TestScheduleNeedsRecipients(t *testing.T) {
	sched, _ := schedule.Parse(schedule.Spec{Every: "24h"})
	_, err := New(context.Background(), Config{Jobs: dbjob.Runners(), StateDir: t.TempDir(), Listen: "127.0.0.1:0", Schedule: sched,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if !errors.Is(err, ErrScheduleNeedsRecipients) {
		t.Fatalf("a schedule without recipients: %v", err)
	}
}

// A webhook receiver that accepts the connection and never answers holds
// up neither the backup nor the next job nor the agent's stop.
func TestWebhookDownNeverBlocksBackup(t *testing.T) {
	hang := make(chan struct{})
	rcv := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	})
	defer close(hang)
	for _, tc := range []struct{ name, url string }{
		{"hanging", rcv.url},
		{"refusing", "https://127.0.0.1:1/hooks/T0KEN-s3cr3t"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state, dev := t.TempDir(), t.TempDir()
			log := &lockedBuffer{}
			a, err := New(context.Background(), Config{Jobs: dbjob.Runners(), StateDir: state, Listen: "127.0.0.1:0", Webhook: tc.url, WebhookCAFile: rcv.caFile,
				Logger: slog.New(slog.NewTextHandler(log, nil))})
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			sampledata.Seed(context.Background(), a.client, sampledata.Options{Users: 10})
			os.MkdirAll(filepath.Join(dev, store.FolderName), 0o700)
			a.state.SaveNode(statedir.Node{Roles: []string{statedir.RoleBackup}, Device: dev})
			for i := 0; i < 2; i++ {
				n, _ := a.state.LoadNode()
				slot := a.slot(n, api.SlotBackup)
				startTestBackup(t, a)
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
				err := a.jobs.Wait(ctx)
				cancel()
				if err != nil {
					t.Fatalf("backup %d did not end: %v", i, err)
				}
				rec, _ := a.jobs.Last(kindBackup)
				if rec == nil || rec.State != job.StateDone {
					t.Fatalf("backup %d: %+v\n%s", i, rec, log.String())
				}
				if _, err := slot.Delete(); err != nil {
					t.Fatal(err)
				}
			}
			closed := make(chan struct{})
			go func() { a.Close(); close(closed) }()
			select {
			case <-closed:
			case <-time.After(2 * time.Minute):
				t.Fatal("the agent's stop waited on the webhook")
			}
			if tc.name == "refusing" && !strings.Contains(log.String(), "webhook post failed") {
				t.Errorf("the failed post is not logged:\n%s", log.String())
			}
			if strings.Contains(log.String(), "s3cr3t") {
				t.Errorf("the webhook URL's token is in the log:\n%s", log.String())
			}
		})
	}
}

// A scheduled run obeys the free-space rule of a manual backup: a device
// with less than twice the data size free fails the run
// (insufficient_space), and nothing is written to it.
func TestScheduleRefusesLowSpace(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI must run this test: not root, cannot mount a small tmpfs as the backup device")
		}
		t.Skip("not root: cannot mount a small tmpfs as the backup device")
	}
	s := scheduledAgent(t, false, "", "", false)
	dev := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", dev).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dev).Run() })
	os.MkdirAll(filepath.Join(dev, store.FolderName), 0o700)
	if err := s.a.state.SaveNode(statedir.Node{Roles: []string{statedir.RoleBackup}, Device: dev}); err != nil {
		t.Fatal(err)
	}
	r := s.waitRun(t, "refused for space", func(r *api.ScheduledRun) bool { return r.Code == string(api.CodeInsufficientSpace) })
	if r.Outcome != schedule.OutcomeFailed || !strings.Contains(r.Reason, "not enough free space") {
		t.Fatalf("run on a small device: %+v", r)
	}
	if ents, _ := os.ReadDir(filepath.Join(dev, store.FolderName)); len(ents) != 0 {
		t.Fatalf("a refused run wrote %v", ents)
	}
	if m := scrape(t, s.a.MetricsAddr()); m[`a0_backup_last_failure_reason{reason="insufficient_space"}`] != 1 {
		t.Fatalf("metrics: %v", m)
	}
}
