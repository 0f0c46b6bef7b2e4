package agent

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/crypt"
	"github.com/a0backup/a0/internal/ops/dbjob"
	"github.com/a0backup/a0/internal/sampledata"
	"github.com/a0backup/a0/internal/statedir"
	"github.com/a0backup/a0/internal/store"
)

// scrape fetches the metrics and returns them by "name{labels}".
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

func metricsAgent(t *testing.T, state string) *Agent {
	t.Helper()
	return metricsAgentLog(t, state, &lockedBuffer{})
}

// metricsAgentLog is metricsAgent logging to buf.
func metricsAgentLog(t *testing.T, state string, buf *lockedBuffer) *Agent {
	t.Helper()
	a, err := New(context.Background(), Config{Jobs: dbjob.Runners(), StateDir: state, Listen: "127.0.0.1:0", MetricsListen: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// startTestBackup starts a backup job as the backup handler does.
func startTestBackup(t *testing.T, a *Agent) {
	t.Helper()
	n, err := a.state.LoadNode()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.jobs.Start(a.ctx, kindBackup, a.backupJob(a.newBackup(n.Device, crypt.Seal{Password: []byte("Passw0rd-metrics")}, false))); err != nil {
		t.Fatal(err)
	}
}

// Metrics scraped before, during and after a real backup (embedded
// database, real files), after a failed one, and after a restart.
func TestMetricsDuringAndAfterBackup(t *testing.T) {
	state := t.TempDir()
	a := metricsAgent(t, state)
	st, err := sampledata.Seed(context.Background(), a.client, sampledata.Options{Users: 60})
	if err != nil {
		t.Fatal(err)
	}
	_ = st
	dev := t.TempDir()
	os.MkdirAll(filepath.Join(dev, store.FolderName), 0o700)
	n, _ := a.state.LoadNode()
	n.Roles, n.Device = append(n.Roles, statedir.RoleBackup), dev
	if err := a.state.SaveNode(n); err != nil {
		t.Fatal(err)
	}

	m := scrape(t, a.MetricsAddr())
	for name, want := range map[string]float64{
		"a0_backup_last_success_timestamp_seconds": 0,
		"a0_backup_last_failure_timestamp_seconds": 0,
		`a0_job_running{kind="backup"}`:            0,
		"a0_backup_stored":                         0,
	} {
		if got, ok := m[name]; !ok || got != want {
			t.Fatalf("before: %s = %v (present %v), want %v", name, got, ok, want)
		}
	}
	if m["a0_device_free_bytes"] <= 0 || m["a0_device_size_bytes"] < m["a0_device_free_bytes"] || m["a0_database_data_bytes"] <= 0 {
		t.Fatalf("device and data sizes: %v %v %v", m["a0_device_free_bytes"], m["a0_device_size_bytes"], m["a0_database_data_bytes"])
	}

	// Hold the backup after its dump, before it is sealed.
	reached, release := make(chan struct{}), make(chan struct{})
	a.cfg.BeforeSeal = func(ctx context.Context) error {
		close(reached)
		<-release
		return nil
	}
	start := time.Now()
	startTestBackup(t, a)
	select {
	case <-reached:
	case <-time.After(2 * time.Minute):
		t.Fatal("the backup did not reach the end of its dump")
	}
	m = scrape(t, a.MetricsAddr())
	docs := m[`a0_job_progress{counter="documents",kind="backup"}`]
	if m[`a0_job_running{kind="backup"}`] != 1 || m[`a0_job_running{kind="restore"}`] != 0 || docs <= 0 ||
		m[`a0_job_progress{counter="collections_done",kind="backup"}`] != m[`a0_job_progress{counter="collections_total",kind="backup"}`] {
		t.Fatalf("during: %v", m)
	}
	if ts := m[`a0_job_started_timestamp_seconds{kind="backup"}`]; ts < float64(start.Unix()-1) || ts > float64(time.Now().Unix()+1) {
		t.Fatalf("started %v", ts)
	}
	if m["a0_backup_last_success_timestamp_seconds"] != 0 || m["a0_backup_stored"] != 0 {
		t.Fatal("a running backup counted as a success")
	}
	close(release)
	if err := a.jobs.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	meta, err := a.slot(n, api.SlotBackup).Stored()
	if err != nil {
		t.Fatalf("no backup stored: %v", err)
	}
	m = scrape(t, a.MetricsAddr())
	if ts := m["a0_backup_last_success_timestamp_seconds"]; ts < float64(start.Unix()) || ts > float64(time.Now().Unix()+1) {
		t.Fatalf("last success %v, backup started %v", ts, start.Unix())
	}
	if m["a0_backup_last_success_size_bytes"] != float64(meta.Size) || m["a0_backup_last_success_documents"] != float64(meta.Documents) ||
		m["a0_backup_last_success_documents"] != docs || m["a0_backup_last_success_duration_seconds"] <= 0 ||
		m["a0_backup_stored"] != 1 || m["a0_backup_stored_size_bytes"] != float64(meta.Size) || m[`a0_job_running{kind="backup"}`] != 0 {
		t.Fatalf("after: %v (meta %+v)", m, meta)
	}
	if _, ok := m[`a0_job_progress{counter="documents",kind="backup"}`]; ok {
		t.Fatal("progress reported with no job running")
	}
	success := m["a0_backup_last_success_timestamp_seconds"]

	// A failed backup: its time and reason class; the last success stays.
	if _, err := a.slot(n, api.SlotBackup).Delete(); err != nil {
		t.Fatal(err)
	}
	a.cfg.BeforeSeal = func(ctx context.Context) error {
		return &api.Error{Code: api.CodeInsufficientSpace, Message: "device full"}
	}
	startTestBackup(t, a)
	a.jobs.Wait(context.Background())
	m = scrape(t, a.MetricsAddr())
	if m["a0_backup_last_failure_timestamp_seconds"] < success || m[`a0_backup_last_failure_reason{reason="insufficient_space"}`] != 1 ||
		m["a0_backup_last_success_timestamp_seconds"] != success || m["a0_backup_stored"] != 0 {
		t.Fatalf("after a failure: %v", m)
	}

	// The history survives a restart.
	a.Close()
	b := metricsAgent(t, state)
	m = scrape(t, b.MetricsAddr())
	if m["a0_backup_last_success_timestamp_seconds"] != success || m[`a0_backup_last_failure_reason{reason="insufficient_space"}`] != 1 {
		t.Fatalf("after a restart: %v", m)
	}
}

func TestMetricsOnlyWhenConfigured(t *testing.T) {
	a, err := New(context.Background(), Config{Jobs: dbjob.Runners(), StateDir: t.TempDir(), Listen: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(&lockedBuffer{}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.MetricsAddr() != "" {
		t.Fatalf("metrics served at %s without metrics_listen", a.MetricsAddr())
	}
}

func TestReasonClass(t *testing.T) {
	for want, err := range map[string]error{
		"insufficient_space": &api.Error{Code: api.CodeInsufficientSpace},
		"interrupted":        context.Canceled,
		"device":             &os.PathError{Op: "open", Path: "/x", Err: os.ErrPermission},
		"error":              errors.New("something"),
	} {
		if got := reasonClass(err); got != want {
			t.Errorf("%v: %s, want %s", err, got, want)
		}
	}
}

// TestMetricsListenerCapped (issue 25.5): the metrics listener, plain HTTP
// that any local user can reach, holds at most metricsConnLimits: of many
// idle connections from one source the oldest are closed as new ones come,
// and a scrape still succeeds. (It had no cap: a flood of idle
// connections took every descriptor of the agent, and the HTTPS port
// could not accept.)
func TestMetricsListenerCapped(t *testing.T) {
	a := metricsAgent(t, t.TempDir())
	const flood = 100
	conns := make([]net.Conn, 0, flood)
	for i := 0; i < flood; i++ {
		c, err := net.Dial("tcp", a.MetricsAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	// The scrape's connection is accepted after all of the flood's: by the
	// time it is answered, what the cap closed is closed.
	scrape(t, a.MetricsAddr())
	closed := 0
	for _, c := range conns {
		// A connection the server closed reads EOF at once; one it holds
		// would block (the deadline only ends that wait).
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); errors.Is(err, io.EOF) {
			closed++
		}
	}
	if want := flood + 1 - metricsConnLimits.PerSource; closed < want {
		t.Fatalf("%d of %d idle connections closed, want at least %d (at most %d held from one source)", closed, flood, want, metricsConnLimits.PerSource)
	}
}
