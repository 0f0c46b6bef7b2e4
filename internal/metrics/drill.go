package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Drill is the restore drills' state as the metrics report it (issue 29).
// The agent keeps it in its own state file (drill.json) and hands it here
// at start and after each drill, so the values survive a restart.
type Drill struct {
	// LastSuccess is when the last successful drill finished (zero: none
	// yet); Duration how long the last drill that ran to an outcome
	// restored (ok or failed; zero: none).
	LastSuccess time.Time
	Duration    time.Duration
	// Failures counts the failed drills.
	Failures int64
}

var (
	descDrillSuccess  = prometheus.NewDesc("a0_restore_drill_last_success_timestamp_seconds", "When the last successful restore drill finished (Unix time); 0 if none yet. Absent without \"drill\" in the agent config.", nil, nil)
	descDrillDuration = prometheus.NewDesc("a0_restore_drill_duration_seconds", "How long the last restore drill that reached a verdict took to restore the stored backup (its restore time, which backups predicts from: without the server's start and the comparison's reads).", nil, nil)
	descDrillFailures = prometheus.NewDesc("a0_restore_drill_failures_total", "Restore drills that failed (a difference, a backup that did not restore, no room, no key), since drills were configured.", nil, nil)
)

// SetDrill records the drills' state (nil: no drills configured).
func (r *Recorder) SetDrill(d *Drill) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.drill = d
}

func (c *collector) collectDrill(ch chan<- prometheus.Metric) {
	c.rec.mu.Lock()
	d := c.rec.drill
	c.rec.mu.Unlock()
	if d == nil {
		return
	}
	ts := 0.0
	if !d.LastSuccess.IsZero() {
		ts = float64(d.LastSuccess.UnixNano()) / 1e9
	}
	ch <- prometheus.MustNewConstMetric(descDrillSuccess, prometheus.GaugeValue, ts)
	if d.Duration > 0 {
		ch <- prometheus.MustNewConstMetric(descDrillDuration, prometheus.GaugeValue, d.Duration.Seconds())
	}
	ch <- prometheus.MustNewConstMetric(descDrillFailures, prometheus.CounterValue, float64(d.Failures))
}
