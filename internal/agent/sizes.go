package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/a0backup/a0/internal/ops"
)

// HoldDatabaseSize: a background read of the database size, before it asks
// the server (tests: node-status must answer while it is held).
const HoldDatabaseSize = "database-size"

// statusWait is how long node-status waits for the database size when none
// was read yet (its first call, or the first scrape's, starts the read): a
// small database is measured by then, a large one is reported as being
// measured. With a value there node-status never waits (issue 28 point 4:
// dbStats on every database took 5-10 s on a 333 MB embedded database,
// 34.7 s during a restore, and node-status waited for it).
const statusWait = 500 * time.Millisecond

// sizeReading is the database size as node-status reports it.
type sizeReading struct {
	bytes int64
	read  time.Time // zero: not read yet
	err   error     // the last read's error, when it failed
}

// peek returns the cached database size for node-status, starting a read
// when one is due (dbStatsInterval), as a scrape does; unlike a scrape it
// never waits for a read when a value is there, and at most wait when
// none is.
func (c *dbStatsCache) peek(ctx context.Context, a *Agent, wait time.Duration) sizeReading {
	c.mu.Lock()
	c.startDue(a)
	running, none := c.running, c.read.IsZero()
	c.mu.Unlock()
	if running != nil && none {
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
	r := sizeReading{bytes: c.bytes, read: c.read}
	if c.failed {
		r.err = c.lastErr
	}
	return r
}

// readSize is one background read: the server's version (node-status shows
// it; read here rather than by a buildInfo on the request's path) and the
// database's data size.
func (a *Agent) readSize(ctx context.Context) (int64, error) {
	if a.cfg.Hold != nil {
		a.cfg.Hold(ctx, HoldDatabaseSize)
	}
	var bi struct {
		Version string `bson:"version"`
	}
	if err := a.client.Database("admin").RunCommand(ctx, map[string]int{"buildInfo": 1}).Decode(&bi); err == nil && bi.Version != "" {
		a.serverVersion.Store(bi.Version)
	}
	return a.cfg.Jobs.DataSize(ctx, a.client)
}

// cachedServerVersion is the server's version as last read ("" before the
// first read).
func (a *Agent) cachedServerVersion() string {
	v, _ := a.serverVersion.Load().(string)
	return v
}

// checkSpaceEstimate is the free-space rule before a backup's 202, on the
// database size the agent last read (node-status and the metrics read it
// in the background): no scan on the request's path (issue 27: sizing the
// data over the wire took 0.7-1 s on an external FerretDB, where every
// listDatabases walks every database file's pages). A device that estimate
// proves too small is refused here, with the rule's code and message; the
// job measures the size anew beside the dump and stops it if the estimate
// was short (ops.Backup.Measure). With no size read yet, the first read is
// started and waited for at most statusWait; without it by then, only the
// job's check applies.
func (a *Agent) checkSpaceEstimate(ctx context.Context, device string) error {
	a.dbStats.mu.Lock()
	size, ok := a.dbStats.bytes, !a.dbStats.read.IsZero()
	a.dbStats.mu.Unlock()
	if !ok {
		r := a.dbStats.peek(ctx, a, statusWait)
		if size, ok = r.bytes, !r.read.IsZero(); !ok {
			a.log.Info("no database size read yet: the backup's free-space check runs beside the dump")
			return nil
		}
	}
	free, err := ops.FreeBytes(device)
	if err != nil {
		return fmt.Errorf("measure free space: %w", err)
	}
	return ops.SpaceError(device, free, size)
}
