package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"path/filepath"
	"syscall"
	"time"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/connlimit"
	"github.com/a0backup/a0/internal/job"
	"github.com/a0backup/a0/internal/metrics"
	"github.com/a0backup/a0/internal/ops"
	"github.com/a0backup/a0/internal/statedir"
	"github.com/a0backup/a0/internal/store"
	"github.com/a0backup/a0/internal/version"
)

// metricsStateFile keeps the last successful and failed backups for the
// metrics across restarts.
const metricsStateFile = "metrics.json"

// openMetrics opens the metrics recorder, always: the history is there when
// metrics are turned on later.
func (a *Agent) openMetrics(interrupted []string) error {
	rec, err := metrics.OpenRecorder(filepath.Join(a.state.Path, metricsStateFile))
	if err != nil {
		return err
	}
	a.metrics = rec
	for _, kind := range interrupted {
		if kind == kindBackup {
			rec.Failure(metrics.Failure{Time: time.Now().UTC(), Reason: "interrupted"})
		}
	}
	if n, err := a.state.LoadNode(); err == nil && n.Device != "" {
		if m, err := a.slot(n, api.SlotBackup).Stored(); err == nil {
			rec.SeedSuccess(metaBackup(m))
		}
	}
	return nil
}

// serveMetrics starts the metrics server when the config sets metrics_listen.
// metricsConnLimits caps the metrics listener: a scraper needs one or two
// connections.
var metricsConnLimits = connlimit.Limits{Max: 64, PerSource: 16}

func (a *Agent) serveMetrics() error {
	if a.cfg.MetricsListen == "" {
		return nil
	}
	rec := a.metrics
	ln, err := net.Listen("tcp", a.cfg.MetricsListen)
	if err != nil {
		return fmt.Errorf("metrics_listen: %w", err)
	}
	// The listener is unauthenticated and meant for loopback, where any
	// local user can reach it: without a cap, a flood of idle connections
	// took every descriptor of the agent (accept errors on the HTTPS
	// port, no file a job could open). A flood now churns its own
	// connections only (issue 25.5).
	ln = connlimit.NewListener(ln, metricsConnLimits)
	a.metricsSrv = &http.Server{
		Handler:           metrics.Handler(rec, a.liveMetrics, version.Version),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
	}
	a.metricsAddr = ln.Addr().String()
	go a.metricsSrv.Serve(ln)
	a.log.Info("metrics listening", "addr", a.metricsAddr)
	return nil
}

// MetricsAddr is the address metrics are served on, or "" when they are not.
func (a *Agent) MetricsAddr() string { return a.metricsAddr }

func metaBackup(m *store.Meta) metrics.Backup {
	d, _ := time.ParseDuration(m.Duration)
	return metrics.Backup{Time: m.Created.Add(d), Duration: d, Bytes: m.Size, Documents: m.Documents}
}

// recordBackup tells the metrics how a backup ended.
func (a *Agent) recordBackup(m *store.Meta, err error) {
	if a.metrics == nil {
		return
	}
	if err != nil {
		err = a.metrics.Failure(metrics.Failure{Time: time.Now().UTC(), Reason: reasonClass(err)})
	} else {
		err = a.metrics.Success(metaBackup(m))
	}
	if err != nil {
		a.log.Warn("could not save the metrics state", "err", err)
	}
}

// reasonClass names a backup failure's kind for a0_backup_last_failure_reason:
// few, stable values that an alert can match on.
func reasonClass(err error) string {
	var pe *fs.PathError
	switch {
	case codeOf(err) != "":
		return string(codeOf(err))
	case errors.Is(err, job.ErrInterrupted), errors.Is(err, context.Canceled):
		return "interrupted"
	case errors.Is(err, syscall.ENOSPC):
		return "no_space"
	case errors.Is(err, ops.ErrOplogRolled):
		return "oplog_rolled"
	case errors.As(err, &pe):
		return "device"
	}
	return "error"
}

// liveMetrics reads what the metrics report at scrape time.
func (a *Agent) liveMetrics(ctx context.Context) metrics.Live {
	l := metrics.Live{DeviceFreeBytes: -1, DeviceSize: -1, DatabaseBytes: -1}
	kind, started, progress := a.jobs.Running()
	if kind != "" {
		l.Running, l.Started, l.Progress = kind, started, metrics.ProgressCounters(progress)
	}
	if n, err := a.state.LoadNode(); err == nil && n.HasRole(statedir.RoleBackup) && n.Device != "" {
		var s syscall.Statfs_t
		if syscall.Statfs(n.Device, &s) == nil {
			l.DeviceFreeBytes = int64(s.Bavail) * int64(s.Bsize)
			l.DeviceSize = int64(s.Blocks) * int64(s.Bsize)
		}
		if m, err := a.slot(n, api.SlotBackup).Stored(); err == nil {
			b := metaBackup(m)
			b.Time = m.Created
			l.Stored = &b
		}
	}
	if a.client == nil {
		return l
	}
	// Cached, read in the background (dbstats.go): a scrape no longer runs
	// dbStats on every database, nor loses the metric when that is slow.
	l.DatabaseBytes, l.DatabaseBytesAge, l.DatabaseBytesError = a.dbStats.get(ctx, a)
	return l
}
