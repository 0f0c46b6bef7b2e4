package agent

import (
	"context"
	"sync"
	"time"
)

// The database size the metrics report (a0_database_data_bytes) is read in
// the background (issue 25.15): dbStats on every database took 5 s on a
// 333 MB database, and the metric silently went missing when the scrape's
// 5 s ran out. A scrape starts a read when the last one started
// dbStatsInterval ago or more, waits for it at most dbStatsWait (the first
// read: as long as the scrape may), and otherwise serves the last value
// with its age; a failed or slow read is logged and a failed one raises
// a0_database_data_bytes_error.
const (
	dbStatsInterval = 30 * time.Second
	dbStatsWait     = 2 * time.Second
	// dbStatsTimeout bounds one read, however long scrapes wait.
	dbStatsTimeout = 2 * time.Minute
)

type dbStatsCache struct {
	mu        sync.Mutex
	bytes     int64 // the last good value; meaningful when read is set
	read      time.Time
	failed    bool          // the last finished read failed
	lastErr   error         // why, when it failed (node-status shows it)
	running   chan struct{} // closed when the running read ends; nil when none runs
	lastStart time.Time
	reads     int // reads started (tests)
}

// get returns the database size, its age and whether it is in error (the
// last read failed, or the first has not ended), starting a read when one
// is due and waiting for it at most dbStatsWait or ctx.
func (c *dbStatsCache) get(ctx context.Context, a *Agent) (bytes int64, age time.Duration, inError bool) {
	c.mu.Lock()
	c.startDue(a)
	running, none := c.running, c.read.IsZero()
	c.mu.Unlock()
	if running != nil {
		// With no value yet there is nothing to serve instead: wait as long
		// as the scrape may.
		wait := dbStatsWait
		if none {
			wait = dbStatsTimeout
		}
		t := time.NewTimer(wait)
		select {
		case <-running:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.read.IsZero() {
		return -1, 0, true
	}
	return c.bytes, time.Since(c.read), c.failed
}

// startDue starts a read when none runs and the last started
// dbStatsInterval ago or more (c.mu held).
func (c *dbStatsCache) startDue(a *Agent) {
	if c.running == nil && (c.lastStart.IsZero() || time.Since(c.lastStart) >= dbStatsInterval) {
		c.running = make(chan struct{})
		c.lastStart = time.Now()
		c.reads++
		go c.refresh(a, c.running)
	}
}

func (c *dbStatsCache) refresh(a *Agent, done chan struct{}) {
	ctx, cancel := context.WithTimeout(a.ctx, dbStatsTimeout)
	defer cancel()
	start := time.Now()
	size, err := a.readSize(ctx) // sizes.go: with the server's version
	took := time.Since(start)
	// Log before the result is published and waiters are released: whoever
	// sees the error (a scrape, node-status, a test) then finds its reason
	// in the log too.
	switch {
	case a.ctx.Err() != nil:
		// The agent is stopping.
	case err != nil:
		a.log.Warn("could not read the database size for the metrics and node-status: a0_database_data_bytes keeps its last value, a0_database_data_bytes_error is 1",
			"err", redactURIError(err), "took", took)
	case took > dbStatsWait:
		a.log.Info("reading the database size for the metrics took longer than a scrape waits: scrapes served the last value meanwhile",
			"took", took.Round(time.Millisecond))
	}
	c.mu.Lock()
	if err == nil {
		c.bytes, c.read, c.failed, c.lastErr = size, time.Now(), false, nil
	} else {
		c.failed, c.lastErr = true, redactURIError(err)
	}
	c.running = nil
	c.mu.Unlock()
	close(done)
}

// set records size, read by a backup job beside its dump
// (ops.Backup.Measured), as the last good read.
func (c *dbStatsCache) set(size int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.bytes, c.read, c.failed, c.lastErr = size, time.Now(), false, nil
}

// waitDBStats waits for the running read of the database size, if any
// (tests).
func (c *dbStatsCache) waitDBStats() {
	c.mu.Lock()
	running := c.running
	c.mu.Unlock()
	if running != nil {
		<-running
	}
}
