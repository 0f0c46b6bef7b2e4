package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// PITR is the continuous oplog archive as the metrics report it.
type PITR struct {
	// Newest is the newest archived entry's time (zero: none yet).
	Newest time.Time
	// Lag is how far the newest archived entry trails the server's newest
	// entry (negative: unknown).
	Lag   time.Duration
	Gaps  int
	Bytes int64
}

var (
	descPITRNewest = prometheus.NewDesc("a0_pitr_newest_archived_timestamp_seconds", "The time of the newest oplog entry in the continuous archive (Unix time); absent without \"pitr\" or before the first slice.", nil, nil)
	descPITRLag    = prometheus.NewDesc("a0_pitr_lag_seconds", "How far the newest archived oplog entry trails the server's newest entry.", nil, nil)
	descPITRGaps   = prometheus.NewDesc("a0_pitr_gaps_total", "Gaps recorded in the continuous oplog archive (stretches of the oplog it lacks).", nil, nil)
	descPITRBytes  = prometheus.NewDesc("a0_pitr_archive_bytes", "Size of the continuous oplog archive on the backup device.", nil, nil)
)

// SetPITR records the archive's state (nil: no archive running).
func (r *Recorder) SetPITR(p *PITR) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pitr = p
}

func (c *collector) collectPITR(gauge func(d *prometheus.Desc, v float64, labels ...string)) {
	c.rec.mu.Lock()
	p := c.rec.pitr
	c.rec.mu.Unlock()
	if p == nil {
		return
	}
	if !p.Newest.IsZero() {
		gauge(descPITRNewest, float64(p.Newest.Unix()))
	}
	if p.Lag >= 0 {
		gauge(descPITRLag, p.Lag.Seconds())
	}
	gauge(descPITRGaps, float64(p.Gaps))
	gauge(descPITRBytes, float64(p.Bytes))
}

// PITR returns what SetPITR recorded last.
func (r *Recorder) PITR() *PITR {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pitr
}
