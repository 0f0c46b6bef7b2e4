package agent

import (
	"context"
	"time"

	"github.com/a0backup/a0/internal/dbsize"
	"github.com/a0backup/a0/internal/ops"
)

// HoldDatabaseSize: a background read of the database size, before it asks
// the server (tests: node-status must answer while it is held).
const HoldDatabaseSize = "database-size"

// statusWait is how long node-status waits for the database size when none
// was read yet (just after the agent started): a small database is measured
// by then, a large one is reported as being measured.
const statusWait = 500 * time.Millisecond

// startSizes starts reading the database size (and the server's version)
// in the background (issue 28 point 4): dbStats on every database took
// 5-10 s on a 333 MB embedded database, 34 s during a restore, and
// node-status waited for it. Requests are answered from the cache; a read
// starts when the value is older than dbsize.Period.
func (a *Agent) startSizes() {
	a.sizes = dbsize.New(a.ctx, a.readSizes, 0, func(took time.Duration, err error) {
		switch {
		case err != nil:
			a.log.Warn("could not read the database size: node-status shows the last value and its age",
				"err", redactURIError(err), "took", took.Round(time.Millisecond))
		case took > dbsize.Period/2:
			a.log.Info("reading the database size was slow", "took", took.Round(time.Millisecond))
		}
	})
	a.sizes.Refresh()
}

func (a *Agent) readSizes(ctx context.Context) (int64, error) {
	if a.cfg.Hold != nil {
		a.cfg.Hold(ctx, HoldDatabaseSize)
	}
	var bi struct {
		Version string `bson:"version"`
	}
	if err := a.client.Database("admin").RunCommand(ctx, map[string]int{"buildInfo": 1}).Decode(&bi); err == nil && bi.Version != "" {
		a.serverVersion.Store(bi.Version)
	}
	return ops.DataSize(ctx, a.client)
}

// cachedServerVersion is the server's version as last read ("" before the
// first read).
func (a *Agent) cachedServerVersion() string {
	v, _ := a.serverVersion.Load().(string)
	return v
}
