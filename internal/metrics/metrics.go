package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/a0backup/a0/internal/atomicfile"
)

// Backup is a finished backup, as the metrics report it.
type Backup struct {
	Time      time.Time     `json:"time"` // when it finished
	Duration  time.Duration `json:"duration"`
	Bytes     int64         `json:"bytes"`
	Documents int64         `json:"documents"`
}

// Failure is a failed backup and its reason class (an API error code such
// as "insufficient_space", or "interrupted", "no_space", "database",
// "error").
type Failure struct {
	Time   time.Time `json:"time"`
	Reason string    `json:"reason"`
}

type state struct {
	LastSuccess *Backup  `json:"last_success,omitempty"`
	LastFailure *Failure `json:"last_failure,omitempty"`
}

// Recorder keeps the last successful and failed backups in a small file, so
// they survive a restart. Safe for concurrent use.
type Recorder struct {
	path string

	mu      sync.Mutex
	st      state
	nextRun time.Time
	// remote is the remote copy's state (remote.go).
	remote remoteState
	// pitr is the continuous oplog archive's (pitr.go).
	pitr *PITR
	// drill is the restore drills' (drill.go).
	drill *Drill
}

// OpenRecorder reads path if it exists. A damaged file is reported, not
// silently reset: it would make a healthy node look as if it never
// succeeded, or hide a failure.
func OpenRecorder(path string) (*Recorder, error) {
	r := &Recorder{path: path}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return nil, fmt.Errorf("metrics state: %w", err)
	}
	if err := json.Unmarshal(b, &r.st); err != nil {
		return nil, fmt.Errorf("metrics state %s: %w", path, err)
	}
	return r, nil
}

// Success records a successful backup.
func (r *Recorder) Success(b Backup) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.st.LastSuccess = &b
	return r.saveLocked()
}

// Failure records a failed backup.
func (r *Recorder) Failure(f Failure) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.st.LastFailure = &f
	return r.saveLocked()
}

// SeedSuccess records b as the last success only when none is recorded (a
// backup stored before metrics were kept).
func (r *Recorder) SeedSuccess(b Backup) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.st.LastSuccess != nil {
		return nil
	}
	r.st.LastSuccess = &b
	return r.saveLocked()
}

// SetNextRun sets when the next scheduled backup runs (zero: none).
func (r *Recorder) SetNextRun(t time.Time) {
	r.mu.Lock()
	r.nextRun = t
	r.mu.Unlock()
}

func (r *Recorder) snapshot() (state, time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st, r.nextRun
}

func (r *Recorder) saveLocked() error {
	b, err := json.Marshal(r.st)
	if err != nil {
		return err
	}
	return atomicfile.Write(r.path, append(b, '\n'), 0o600)
}

// Live is what the agent reports at scrape time. Negative sizes are unknown
// and not reported.
type Live struct {
	// Running is the kind of the running job ("backup", "restore", ...), or "".
	Running string
	Started time.Time
	// Progress holds the running job's numeric progress counters by name
	// (documents, bytes, estimated_bytes, collections_done, ...).
	Progress map[string]float64
	// Stored is the backup on the device, if any.
	Stored                      *Backup
	DeviceFreeBytes, DeviceSize int64
	DatabaseBytes               int64
	// DatabaseBytesAge is how long ago DatabaseBytes was read: the agent
	// reads it in the background (dbStats on every database may take
	// seconds), not at each scrape.
	DatabaseBytesAge time.Duration
	// DatabaseBytesError says the last read of the database size failed or
	// has not ended: DatabaseBytes is then the last good value, or unknown
	// (negative), and the agent's log says why.
	DatabaseBytesError bool
}

// Source reads the live values; ctx bounds the scrape.
type Source func(ctx context.Context) Live

// JobKinds are the job kinds a0_job_running reports (0 or 1 each).
var JobKinds = []string{"backup", "backup-sensitive", "restore", "restore-sensitive"}

type collector struct {
	rec     *Recorder
	src     Source
	version string
}

var (
	descInfo          = prometheus.NewDesc("a0_agent_info", "The agent's version (always 1).", []string{"version"}, nil)
	descSuccessTime   = prometheus.NewDesc("a0_backup_last_success_timestamp_seconds", "When the last successful backup finished (Unix time); 0 if none yet.", nil, nil)
	descSuccessDur    = prometheus.NewDesc("a0_backup_last_success_duration_seconds", "How long the last successful backup took.", nil, nil)
	descSuccessBytes  = prometheus.NewDesc("a0_backup_last_success_size_bytes", "Size of the last successful backup's encrypted file.", nil, nil)
	descSuccessDocs   = prometheus.NewDesc("a0_backup_last_success_documents", "Documents in the last successful backup.", nil, nil)
	descFailureTime   = prometheus.NewDesc("a0_backup_last_failure_timestamp_seconds", "When the last failed backup ended (Unix time); 0 if none.", nil, nil)
	descFailureReason = prometheus.NewDesc("a0_backup_last_failure_reason", "The reason class of the last failed backup (always 1; the class is the label).", []string{"reason"}, nil)
	descRunning       = prometheus.NewDesc("a0_job_running", "1 while a job of this kind runs (one job at a time).", []string{"kind"}, nil)
	descStarted       = prometheus.NewDesc("a0_job_started_timestamp_seconds", "When the running job started (Unix time).", []string{"kind"}, nil)
	descProgress      = prometheus.NewDesc("a0_job_progress", "Progress counters of the running job (documents, bytes, estimated_bytes, collections_done, collections_total, ...).", []string{"kind", "counter"}, nil)
	descNextRun       = prometheus.NewDesc("a0_backup_next_run_timestamp_seconds", "When the next scheduled backup runs (Unix time), when a schedule is set.", nil, nil)
	descStored        = prometheus.NewDesc("a0_backup_stored", "1 when a backup is stored on the device.", nil, nil)
	descStoredBytes   = prometheus.NewDesc("a0_backup_stored_size_bytes", "Size of the stored backup's encrypted file.", nil, nil)
	descStoredTime    = prometheus.NewDesc("a0_backup_stored_timestamp_seconds", "When the stored backup was made (Unix time).", nil, nil)
	descDeviceFree    = prometheus.NewDesc("a0_device_free_bytes", "Free space on the backup device, for the agent's user.", nil, nil)
	descDeviceSize    = prometheus.NewDesc("a0_device_size_bytes", "Size of the backup device's file system.", nil, nil)
	descDataBytes     = prometheus.NewDesc("a0_database_data_bytes", "The database's data size (a backup needs twice this free on the device).", nil, nil)
	descDataBytesAge  = prometheus.NewDesc("a0_database_data_bytes_age_seconds", "How long ago a0_database_data_bytes was read (in the background, not at scrape time).", nil, nil)
	descDataBytesErr  = prometheus.NewDesc("a0_database_data_bytes_error", "1 when the last read of the database size failed or is still running (a0_database_data_bytes is then the last good value, or absent; the agent's log says why), else 0.", nil, nil)
)

// Describe sends nothing: an unchecked collector, whose metrics (present or
// not) depend on the agent's state at scrape time.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	unix := func(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
	gauge(descInfo, 1, c.version)
	st, next := c.rec.snapshot()
	if s := st.LastSuccess; s != nil {
		gauge(descSuccessTime, unix(s.Time))
		gauge(descSuccessDur, s.Duration.Seconds())
		gauge(descSuccessBytes, float64(s.Bytes))
		gauge(descSuccessDocs, float64(s.Documents))
	} else {
		gauge(descSuccessTime, 0)
	}
	if f := st.LastFailure; f != nil {
		gauge(descFailureTime, unix(f.Time))
		gauge(descFailureReason, 1, f.Reason)
	} else {
		gauge(descFailureTime, 0)
	}
	if !next.IsZero() {
		gauge(descNextRun, unix(next))
	}
	c.collectRemote(gauge)
	c.collectPITR(gauge)
	c.collectDrill(ch)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	live := c.src(ctx)
	for _, k := range JobKinds {
		v := 0.0
		if live.Running == k {
			v = 1
		}
		gauge(descRunning, v, k)
	}
	if live.Running != "" {
		gauge(descStarted, unix(live.Started), live.Running)
		names := make([]string, 0, len(live.Progress))
		for n := range live.Progress {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			gauge(descProgress, live.Progress[n], live.Running, n)
		}
	}
	if s := live.Stored; s != nil {
		gauge(descStored, 1)
		gauge(descStoredBytes, float64(s.Bytes))
		gauge(descStoredTime, unix(s.Time))
	} else {
		gauge(descStored, 0)
	}
	if live.DeviceFreeBytes >= 0 {
		gauge(descDeviceFree, float64(live.DeviceFreeBytes))
	}
	if live.DeviceSize >= 0 {
		gauge(descDeviceSize, float64(live.DeviceSize))
	}
	if live.DatabaseBytes >= 0 {
		gauge(descDataBytes, float64(live.DatabaseBytes))
		gauge(descDataBytesAge, live.DatabaseBytesAge.Seconds())
	}
	// Always there, so that a0_database_data_bytes never goes missing
	// without a reason.
	dbErr := 0.0
	if live.DatabaseBytesError {
		dbErr = 1
	}
	gauge(descDataBytesErr, dbErr)
}

// Handler serves the a0_* metrics (and Go's process metrics) in the
// Prometheus text format.
func Handler(rec *Recorder, src Source, version string) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(&collector{rec: rec, src: src, version: version})
	reg.MustRegister(prometheus.NewGoCollector())
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}

// ProgressCounters turns a job's progress (any JSON-encodable value with
// numeric fields) into counters by field name.
func ProgressCounters(progress any) map[string]float64 {
	if progress == nil {
		return nil
	}
	b, err := json.Marshal(progress)
	if err != nil {
		return nil
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	out := map[string]float64{}
	for k, v := range m {
		if f, ok := v.(float64); ok {
			out[k] = f
		}
	}
	return out
}
