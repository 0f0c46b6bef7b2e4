package restore

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/a0backup/a0/internal/archive"
	"github.com/a0backup/a0/internal/spool"
)

// DataSpoolPattern names the spool files of collections waiting for their
// turn to load (see loader). It lies inside OplogSpoolPattern's glob, so
// that spool.Clean with that pattern (the agent's start-up) removes those a
// killed restore left too.
const DataSpoolPattern = ".a0-restore-oplog-data-*"

// dbParallel is how many databases load at once: on FerretDB each database
// is its own SQLite file with its own writer, where two streams into one
// collection wait for the same writer; two databases at once is what two
// cores take. (A MongoDB server takes more, but each database's collection
// already gets Options.Parallel insert streams.)
const dbParallel = 2

// maxSpoolAhead bounds the BSON bytes spooled and not yet loaded; it is
// also never more than a quarter of the spool directory's free space.
const maxSpoolAhead = 1 << 30

// loader loads the collections of different databases at once. The archive
// holds collections one after the other, so a collection the stream has
// passed while its database, or the loader, was busy waits in a spool file
// (sealed under a key only this process holds, as the oplog's); each
// database's collections load in archive order, one at a time, and at most
// dbParallel databases load at once. A collection larger than what may be
// spooled loads straight from the stream once nothing else loads, as Run
// did before. The first error stops every load.
type loader struct {
	rs     *runState
	ctx    context.Context
	cancel context.CancelCauseFunc
	dir    string
	budget int64

	mu      sync.Mutex
	cond    *sync.Cond
	queues  map[string][]loadJob // per database, in archive order
	running int                  // databases being loaded
	spooled int64                // bytes of queued spools
	err     error
	wg      sync.WaitGroup
}

type loadJob struct {
	c *PlannedCollection
	f *spool.File
}

// newLoader returns nil (collections load from the stream, one after the
// other) when the plan holds one database or the spool directory has no
// room to spare.
func newLoader(ctx context.Context, rs *runState, p *PlanResult) *loader {
	dbs := map[string]bool{}
	for _, c := range p.Collections {
		dbs[c.DB] = true
	}
	if len(dbs) < 2 {
		return nil
	}
	dir := rs.opts.SpoolDir
	if dir == "" {
		dir = os.TempDir()
	}
	budget := int64(maxSpoolAhead)
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err == nil {
		budget = min(budget, int64(st.Bavail)*int64(st.Bsize)/4)
	}
	if budget < batchBytes {
		return nil
	}
	l := &loader{rs: rs, dir: dir, budget: budget, queues: map[string][]loadJob{}}
	l.ctx, l.cancel = context.WithCancelCause(ctx)
	l.cond = sync.NewCond(&l.mu)
	return l
}

// fail records the first error and stops the other loads.
func (l *loader) fail(err error) {
	l.mu.Lock()
	if l.err == nil {
		l.err = err
		l.cancel(err)
	}
	l.cond.Broadcast()
	l.mu.Unlock()
}

// load restores c, whose .bson entry r is, now or later.
func (l *loader) load(c *PlannedCollection, r io.Reader) error {
	l.mu.Lock()
	// Room for c in the spool, or, when c alone exceeds it, nothing
	// loading: then it loads from the stream.
	for l.err == nil && (l.spooled > 0 || l.running > 0) &&
		(l.spooled+c.Bytes > l.budget || (c.Bytes > l.budget && l.running > 0)) {
		l.cond.Wait()
	}
	if l.err != nil {
		err := l.err
		l.mu.Unlock()
		return err
	}
	if c.Bytes > l.budget {
		l.mu.Unlock()
		return l.rs.restoreCollection(l.ctx, c, r, bufio.NewReaderSize(nil, 1<<20))
	}
	l.spooled += c.Bytes
	l.mu.Unlock()

	f, err := spool.Create(l.dir, DataSpoolPattern)
	if err == nil {
		if err = archive.CopyContext(l.ctx, f, r); err == nil {
			err = f.Finish()
		}
		if err != nil {
			f.Remove()
		}
	}
	if err != nil {
		err = fmt.Errorf("restore %s: spool: %w", c.Namespace(), err)
		l.fail(err)
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		f.Remove()
		return l.err
	}
	q, busy := l.queues[c.DB]
	l.queues[c.DB] = append(q, loadJob{c, f})
	if !busy {
		l.wg.Add(1)
		go l.loadDB(c.DB)
	}
	return nil
}

// loadDB loads db's queued collections in order, holding one of the
// dbParallel turns.
func (l *loader) loadDB(db string) {
	defer l.wg.Done()
	l.mu.Lock()
	for l.err == nil && l.running >= dbParallel {
		l.cond.Wait()
	}
	l.running++
	for {
		q := l.queues[db]
		if len(q) == 0 || l.err != nil {
			for _, j := range q {
				j.f.Remove()
				l.spooled -= j.c.Bytes
			}
			delete(l.queues, db)
			l.running--
			l.cond.Broadcast()
			l.mu.Unlock()
			return
		}
		j := q[0]
		l.mu.Unlock()
		err := l.loadOne(j)
		l.mu.Lock()
		l.queues[db] = l.queues[db][1:]
		l.spooled -= j.c.Bytes
		l.cond.Broadcast()
		if err != nil && l.err == nil {
			l.err = err
			l.cancel(err)
		}
	}
}

func (l *loader) loadOne(j loadJob) error {
	defer j.f.Remove()
	sr, err := j.f.Reader()
	if err != nil {
		return fmt.Errorf("restore %s: spool: %w", j.c.Namespace(), err)
	}
	return l.rs.restoreCollection(l.ctx, j.c, sr, bufio.NewReaderSize(nil, 1<<20))
}

// stop ends the loads (a no-op once wait returned without error) and
// removes what waits in spools.
func (l *loader) stop() {
	if l == nil {
		return
	}
	l.fail(context.Canceled)
	l.wg.Wait()
}

// wait returns once every collection handed to load is in, with the first
// error.
func (l *loader) wait() error {
	if l == nil {
		return nil
	}
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// earlyBuilds builds each collection's indexes as soon as its data is in,
// while other collections still load (issue 27c): the builds of the first
// collections no longer wait for the last one's data. It is used only when
// no oplog replay follows the data (a replay may drop, rename or write
// what a unique index would refuse halfway, so its indexes wait for it, as
// mongorestore orders it), and at most Options.Parallel builds run at
// once, beside the inserts, and not on FerretDB (isFerretDB): there a
// build holds the catalog lock every insert also takes, so the builds stop
// the loads rather than overlap them; measured on v1.24.2 (3 pairs, the
// same 53 MB backup into fresh external servers), a restore with early
// builds took 1.38x the time of one that built after the data (pairs
// 1.70, 0.95, 1.38).
type earlyBuilds struct {
	rs     *runState
	ctx    context.Context
	cancel context.CancelFunc
	slots  chan struct{}
	wg     sync.WaitGroup

	mu      sync.Mutex
	started map[string]bool
}

func newEarlyBuilds(ctx context.Context, rs *runState) *earlyBuilds {
	e := &earlyBuilds{rs: rs, slots: make(chan struct{}, max(rs.opts.Parallel, 1)), started: map[string]bool{}}
	e.ctx, e.cancel = context.WithCancel(ctx)
	return e
}

// start builds ce's indexes, whose collection's data is all in, reporting
// into cr.
func (e *earlyBuilds) start(ce *catalogEntry, cr *CollectionReport) {
	e.mu.Lock()
	e.started[ce.db+"."+ce.name] = true
	e.mu.Unlock()
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		select {
		case e.slots <- struct{}{}:
		case <-e.ctx.Done():
			return
		}
		defer func() { <-e.slots }()
		e.rs.buildCollectionIndexes(e.ctx, ce, cr)
		e.rs.prog.collectionDone()
	}()
}

// wait returns once every started build has ended; with a nil e it
// returns at once.
func (e *earlyBuilds) wait() {
	if e != nil {
		e.wg.Wait()
	}
}

// isStarted says whether ns's build was started early (buildIndexes skips
// it).
func (e *earlyBuilds) isStarted(ns string) bool {
	if e == nil {
		return false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.started[ns]
}

// stop ends the builds not yet begun and waits for the running ones (a
// failed restore returns only once none uses the client).
func (e *earlyBuilds) stop() {
	if e != nil {
		e.cancel()
		e.wg.Wait()
	}
}

// isFerretDB says whether the server is FerretDB (its buildInfo names its
// version); an unanswered buildInfo counts as not.
func isFerretDB(ctx context.Context, client *mongo.Client) bool {
	var bi struct {
		FerretDBVersion string `bson:"ferretdbVersion"`
	}
	err := client.Database("admin").RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&bi)
	return err == nil && bi.FerretDBVersion != ""
}
