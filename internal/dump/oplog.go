package dump

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"go.mongodb.org/mongo-driver/v2/mongo/readpref"

	"github.com/a0backup/a0/internal/archive"
	"github.com/a0backup/a0/internal/manifest"
	"github.com/a0backup/a0/internal/oplog"
	"github.com/a0backup/a0/internal/spool"
)

const (
	oplogDB   = "local"
	oplogColl = "oplog.rs"
	// awaitTime bounds how long one getMore waits for new entries, and so
	// how late the tailer notices the end position.
	awaitTime = 300 * time.Millisecond
	// maxReopen consecutive cursor failures end the capture.
	maxReopen = 20
	// maxRereads failures of the FerretDB capture's read end it: each
	// new attempt reads the whole capture again.
	maxRereads = 3
)

// tailer copies oplog entries from start to end into a spool while the
// collections are read.
type tailer struct {
	coll      *mongo.Collection
	spool     *spool.File
	bw        *bufio.Writer
	active    bool // an oplog with an entry exists: capture is on
	start     bson.Timestamp
	startWall time.Time
	// end is the newest position once every collection was read; the
	// capture stops at the first entry at or after it, last. Replay up to
	// last (not exactly end) is as consistent: it is a later point in time.
	end      bson.Timestamp
	last     bson.Timestamp
	lastWall time.Time
	endCh    chan bson.Timestamp
	entries  int64
	bytes    int64
	// onePass reads the oplog once the end is known instead of tailing
	// it (FerretDB; see readOnce).
	onePass bool
	// term is the replica-set term of the entries copied so far
	// (MongoDB; FerretDB writes none): a change means a new primary
	// during the dump (a planned stepdown, or a failover whose old term's
	// last entries may be rolled back).
	term     int64
	haveTerm bool
	// lastTerm is the term of the entry at last.
	lastTerm int64
	// termEnds are the last entries copied of each earlier term: at the
	// end each must still be in the oplog with its term, else a rollback
	// removed entries the capture holds.
	termEnds []termMark
	// firstOldest is the oldest entry when a one-pass capture started:
	// its start is a clock reading, not an entry, and may be older than
	// a young oplog's first entry without anything lost. It is compared by
	// identity (ts and _id): an oplog dropped and recreated within the same
	// second can start with an entry of the same ts.
	firstOldest entryID
	// startCount is the oplog's entry count (collStats) taken before a
	// one-pass capture's start, or -1: with the same count and the same
	// oldest entry at the end, no entry was written in between, and
	// readOnce skips its read of the whole oplog (see quiet).
	startCount int64
	// copyTail, when set, copies the oplog's tail for readOnce
	// (Options.OplogTail).
	copyTail func(ctx context.Context, since time.Time) (string, func(context.Context) error, error)
	// batch sizes the batches of every cursor on the oplog: an entry
	// holds a whole document.
	batch *batcher
	// spools is where spool comes from (readOnce may start it again).
	spools *spools
}

// startTailer records the start position. It returns an inactive tailer
// (and captures nothing) when there is no oplog or it is empty.
func startTailer(ctx context.Context, client *mongo.Client, rp *readpref.ReadPref, sp *spools, onePass bool) (*tailer, error) {
	// The collections' read preference: on a pinned client both go to
	// the one member; see Options.Pin.
	coll := client.Database(oplogDB, options.Database().SetReadPreference(rp)).Collection(oplogColl)
	t := &tailer{coll: coll, endCh: make(chan bson.Timestamp, 1), onePass: onePass, batch: newBatcher(0), spools: sp}
	names, err := client.Database(oplogDB).ListCollectionNames(ctx, bson.D{{Key: "name", Value: oplogColl}})
	if err != nil {
		return nil, fmt.Errorf("dump: look for the oplog: %w", err)
	}
	if len(names) == 0 {
		return t, nil
	}
	if onePass {
		return t, t.startOnePass(ctx, client, sp)
	}
	ts, wall, ok, err := t.edge(ctx, -1)
	if err != nil || !ok {
		return t, err
	}
	// A transaction open now has its first entries before the newest one:
	// start there so that replay sees the whole transaction, as mongodump
	// does. Servers without config.transactions return nothing.
	txn, open, err := oldestOpenTxn(ctx, client)
	if err != nil {
		return t, err
	}
	if open && tsLess(txn, ts) {
		ts, wall = txn, time.Time{}
	}
	t.start, t.startWall, t.active = ts, wall, true
	if t.spool, err = sp.create(); err != nil {
		return nil, err
	}
	t.bw = bufio.NewWriterSize(t.spool, 1<<20)
	return t, nil
}

// startOnePass takes the start on FerretDB without reading the oplog:
// finding its newest entry costs a scan of all of it (no index on ts, no
// $natural pushdown: seconds for a few MB). FerretDB's ts is its wall
// clock second and a counter, and it logs a write after the write: every
// entry from the server's clock a second ago on is copied, which holds
// every write not yet in the data read after this. Copying entries older
// than needed is harmless: replay applies them in order, before the
// later ones.
func (t *tailer) startOnePass(ctx context.Context, client *mongo.Client, sp *spools) error {
	first, ok, err := t.oldestEntry(ctx)
	if err != nil || !ok {
		return err
	}
	t.firstOldest = first
	// Counted before the start: an entry counted here is of a write
	// already in the data the dump reads after this. Counted after the
	// oldest entry was read: a trim in between then shows as a new oldest
	// entry at the end, never as a count that an insert made up for.
	t.startCount = t.count(ctx)
	var hello struct {
		LocalTime time.Time `bson:"localTime"`
	}
	if err := client.Database("admin").RunCommand(ctx, bson.D{{Key: "hello", Value: 1}}).Decode(&hello); err != nil {
		return fmt.Errorf("dump: hello: %w", err)
	}
	if hello.LocalTime.IsZero() {
		hello.LocalTime = time.Now()
	}
	sec := hello.LocalTime.Unix() - 1
	t.start, t.startWall, t.active = bson.Timestamp{T: uint32(sec)}, time.Unix(sec, 0).UTC(), true
	if t.spool, err = sp.create(); err != nil {
		return err
	}
	t.bw = bufio.NewWriterSize(t.spool, 1<<20)
	return nil
}

// entryID identifies an oplog entry: its ts and, where the server gives
// entries one (FerretDB), its _id.
type entryID struct {
	ts bson.Timestamp
	id string
}

// oldest returns the first entry's position in insertion order.
func (t *tailer) oldest(ctx context.Context) (bson.Timestamp, bool, error) {
	e, ok, err := t.oldestEntry(ctx)
	return e.ts, ok, err
}

// oldestEntry returns the first entry in insertion order (unsorted:
// FerretDB answers it without a scan; MongoDB returns the oplog in natural
// order).
func (t *tailer) oldestEntry(ctx context.Context) (entryID, bool, error) {
	if !t.onePass {
		ts, _, ok, err := t.edge(ctx, 1)
		return entryID{ts: ts}, ok, err
	}
	raw, err := t.coll.FindOne(ctx, bson.D{}, options.FindOne().SetProjection(bson.D{{Key: "ts", Value: 1}, {Key: "_id", Value: 1}})).Raw()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return entryID{}, false, nil
	}
	if err != nil {
		return entryID{}, false, fmt.Errorf("dump: read oplog position: %w", err)
	}
	t1, i1, ok := raw.Lookup("ts").TimestampOK()
	if !ok {
		return entryID{}, false, errors.New("dump: oplog entry without ts")
	}
	id := raw.Lookup("_id")
	return entryID{ts: bson.Timestamp{T: t1, I: i1}, id: string(id.Value)}, true, nil
}

// oldestOpenTxn returns the start of the oldest transaction open now. An
// error fails the dump, as mongodump fails: a capture that starts after an
// open transaction's first entries cannot replay it.
func oldestOpenTxn(ctx context.Context, client *mongo.Client) (bson.Timestamp, bool, error) {
	var doc struct {
		StartOpTime struct {
			TS bson.Timestamp `bson:"ts"`
		} `bson:"startOpTime"`
	}
	err := client.Database("config").Collection("transactions").FindOne(ctx,
		bson.D{{Key: "state", Value: bson.D{{Key: "$in", Value: bson.A{"prepared", "inProgress"}}}},
			{Key: "startOpTime", Value: bson.D{{Key: "$exists", Value: true}}}},
		options.FindOne().SetSort(bson.D{{Key: "startOpTime.ts", Value: 1}})).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return bson.Timestamp{}, false, nil
	}
	if err != nil {
		return bson.Timestamp{}, false, fmt.Errorf("dump: find the oldest open transaction (config.transactions): %w", err)
	}
	return doc.StartOpTime.TS, true, nil
}

// edge returns the newest (dir -1) or oldest (dir 1) entry's position.
func (t *tailer) edge(ctx context.Context, dir int) (bson.Timestamp, time.Time, bool, error) {
	raw, err := t.coll.FindOne(ctx, bson.D{},
		options.FindOne().SetSort(bson.D{{Key: "$natural", Value: dir}}).SetProjection(bson.D{{Key: "ts", Value: 1}, {Key: "wall", Value: 1}})).Raw()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return bson.Timestamp{}, time.Time{}, false, nil
	}
	if err != nil {
		return bson.Timestamp{}, time.Time{}, false, fmt.Errorf("dump: read oplog position: %w", err)
	}
	t1, i1, ok := raw.Lookup("ts").TimestampOK()
	if !ok {
		return bson.Timestamp{}, time.Time{}, false, errors.New("dump: oplog entry without ts")
	}
	var wall time.Time
	if w, ok := raw.Lookup("wall").TimeOK(); ok {
		wall = w.UTC()
	}
	return bson.Timestamp{T: t1, I: i1}, wall, true, nil
}

func tsLess(a, b bson.Timestamp) bool { return a.T < b.T || (a.T == b.T && a.I < b.I) }

// run copies the entries from start to the end position given to finish.
// The start entry itself is included, as mongodump includes it: replaying
// it again is harmless, missing a write is not.
func (t *tailer) run(ctx context.Context) error {
	if !t.active {
		return nil
	}
	if t.onePass {
		return t.readOnce(ctx)
	}
	return t.tail(ctx)
}

// cursorState is the progress of the copy across cursors.
type cursorState struct {
	after *bson.Timestamp // newest copied position
	end   *bson.Timestamp
}

func (st *cursorState) reached() bool {
	return st.end != nil && st.after != nil && !tsLess(*st.after, *st.end)
}

// take copies one entry; it reports whether the end is reached.
func (t *tailer) take(raw bson.Raw, st *cursorState) (bool, error) {
	t1, i1, ok := raw.Lookup("ts").TimestampOK()
	if !ok {
		return false, errors.New("dump: oplog entry without ts")
	}
	ts := bson.Timestamp{T: t1, I: i1}
	if st.after != nil && ts == *st.after {
		return false, nil // a reopen's $gte returns it again
	}
	e, err := oplog.Parse(raw)
	if err != nil {
		return false, fmt.Errorf("dump: oplog entry at %d.%d: %w", t1, i1, err)
	}
	// What a restore cannot replay consistently fails the backup now
	// (the decision table of internal/oplog; mongodump refuses the same).
	if err := oplog.CheckCapture(e); err != nil {
		return false, err
	}
	if e.HasTerm {
		if t.haveTerm && e.Term != t.term && !t.last.IsZero() {
			// A new primary is no failure by itself (mongodump and PBM
			// go on): checkRolledBack checks at the end that the old
			// term's last copied entry survived.
			t.termEnds = append(t.termEnds, termMark{ts: t.last, term: t.lastTerm})
		}
		t.term, t.haveTerm = e.Term, true
	}
	// An entry older than one already copied landed late (FerretDB:
	// concurrent writers insert their entries out of ts order). It is
	// kept: it is before the end.
	late := st.after != nil && tsLess(ts, *st.after)
	// FerretDB logs writes to local.* (its own oplog trims), which a
	// replica-set member never does: not data.
	if ns, _ := raw.Lookup("ns").StringValueOK(); !strings.HasPrefix(ns, "local.") {
		if _, err := t.bw.Write(raw); err != nil {
			return false, fmt.Errorf("dump: spool oplog: %w", err)
		}
		t.entries++
		t.bytes += int64(len(raw))
	}
	if late {
		return false, nil
	}
	st.after = &ts
	t.last = ts
	t.lastTerm = e.Term
	if w, ok := raw.Lookup("wall").TimeOK(); ok {
		t.lastWall = w.UTC()
	}
	return st.reached(), nil
}

// readOnce is the capture on FerretDB: once every collection was read,
// one plain find from the start copies every entry there is; the newest
// one is the end. FerretDB answers every getMore of a tailable cursor that
// has caught up by querying the whole oplog again (no index on ts), and
// gives up when that takes longer than maxAwaitTime: on an oplog of a few
// MB a tailer never sees a new entry again and the backup never ends,
// while it keeps a core busy. The embedded oplog is only trimmed by us,
// above its budget, and checkRolled still fails a dump whose start went.
func (t *tailer) readOnce(ctx context.Context) error {
	st := &cursorState{}
	select {
	case <-t.endCh:
	case <-ctx.Done():
		return ctx.Err()
	}
	if t.quiet(ctx) {
		// No write since the start: the backup is the state at the start.
		t.last, t.lastWall = t.start, t.startWall
		return t.flush()
	}
	coll := t.coll
	if t.copyTail != nil {
		// One statement copies the tail by the capped table's insertion
		// key (see Options.OplogTail): the same entries, and some older
		// ones the filter below drops, without a decode of the whole oplog.
		name, release, err := t.copyTail(ctx, t.startWall)
		if err != nil {
			return fmt.Errorf("dump: read oplog: %w", err)
		}
		defer release(context.WithoutCancel(ctx))
		coll = t.coll.Database().Collection(name)
	}
	for failures := 0; ; {
		cur, err := coll.Find(ctx, bson.D{{Key: "ts", Value: bson.D{{Key: "$gte", Value: t.start}}}},
			options.Find().SetBatchSize(t.batch.next()))
		if err == nil {
			var takeErr error
			for takeErr == nil && cur.Next(ctx) {
				if t.batch.see(len(cur.Current)) {
					cur.SetBatchSize(t.batch.next())
				}
				_, takeErr = t.take(cur.Current, st)
			}
			err = cur.Err()
			cur.Close(context.WithoutCancel(ctx))
			if takeErr != nil {
				// What the entries say (a failover, an entry a restore
				// cannot replay) or the spool's failure: not the cursor's,
				// and another read would say it again.
				return takeErr
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err == nil {
			break
		}
		// A reply too large for the driver makes the next attempt ask
		// for batches it can take (the batcher bounds those attempts);
		// any other failure is tried again maxRereads times, each a
		// read of the whole capture.
		if !t.batch.retry(err) {
			if failures++; failures > maxRereads {
				return fmt.Errorf("dump: read oplog: %w", err)
			}
		}
		// The next attempt copies everything again from the start:
		// resuming after the newest entry copied would miss the entries
		// that landed late (older ts, later in insertion order) and
		// were not read yet.
		if err := t.restart(); err != nil {
			return err
		}
		st = &cursorState{}
		sleep(ctx, 100*time.Millisecond)
	}
	if st.after == nil {
		// No write since the start: the backup is the state at the start.
		t.last, t.lastWall = t.start, t.startWall
	}
	return t.flush()
}

// count is the oplog's entry count from collStats, or -1. On FerretDB
// collStats counts the rows of the oplog's SQLite table from its b-tree
// pages (no document decoded): about 65x cheaper than the find readOnce
// makes, which decodes every entry because no filter on ts is pushed down
// (FerretDB v1.24.2 pushes down only an _id equality; a {$natural: -1}
// sort and a tailable cursor's getMore decode the whole oplog too).
func (t *tailer) count(ctx context.Context) int64 {
	var st bson.Raw
	if err := t.coll.Database().RunCommand(ctx, bson.D{{Key: "collStats", Value: t.coll.Name()}}).Decode(&st); err != nil {
		return -1
	}
	v := st.Lookup("count")
	if v.Type != bson.TypeInt32 && v.Type != bson.TypeInt64 && v.Type != bson.TypeDouble {
		return -1
	}
	return number(v)
}

// quiet reports whether no oplog entry was written since the one-pass
// capture's start: the same entry count, and the same oldest entry (an
// oplog is appended to and trimmed from its oldest end, so a write
// trimmed away in between would change the oldest entry). Then the capture
// is empty, at the cost of a count, however large the oplog. Any doubt
// (no count, an error) answers false: the full read decides.
func (t *tailer) quiet(ctx context.Context) bool {
	if t.startCount < 0 || t.firstOldest == (entryID{}) {
		return false
	}
	if t.count(ctx) != t.startCount {
		return false
	}
	oldest, ok, err := t.oldestEntry(ctx)
	return err == nil && ok && oldest == t.firstOldest
}

// restart throws away what readOnce copied, for a new read from the start.
func (t *tailer) restart() error {
	old := t.spool.Name()
	t.spool.Close()
	t.spools.remove(old)
	f, err := t.spools.create()
	if err != nil {
		return err
	}
	t.spool, t.bw = f, bufio.NewWriterSize(f, 1<<20)
	t.entries, t.bytes = 0, 0
	t.term, t.haveTerm, t.lastTerm, t.termEnds = 0, false, 0, nil
	t.last, t.lastWall = bson.Timestamp{}, time.Time{}
	return nil
}

// tail follows the oplog with a tailable cursor while the collections are
// read (MongoDB), until the end given to finish has been copied.
func (t *tailer) tail(ctx context.Context) error {
	st := &cursorState{}
	failures := 0
	for {
		from := t.start
		if st.after != nil {
			from = *st.after
		}
		// $gte and a first batch of one: FerretDB closes a tailable cursor
		// at once when its first batch is shorter than batchSize. The entry
		// at `after` comes again and is skipped by take; later getMores
		// ask for large batches.
		cur, err := t.coll.Find(ctx, bson.D{{Key: "ts", Value: bson.D{{Key: "$gte", Value: from}}}},
			options.Find().SetCursorType(options.TailableAwait).SetMaxAwaitTime(awaitTime).SetBatchSize(1))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if failures++; failures > maxReopen {
				return fmt.Errorf("dump: tail oplog: %w", err)
			}
			sleep(ctx, 100*time.Millisecond)
			continue
		}
		cur.SetBatchSize(t.batch.next())
		for {
			// The end is looked for before every entry, not only when the
			// cursor is caught up: under steady writes every getMore
			// returns something and the cursor never is.
			if st.end == nil {
				select {
				case e := <-t.endCh:
					st.end = &e
				default:
				}
			}
			if st.reached() {
				cur.Close(context.WithoutCancel(ctx))
				return t.flush()
			}
			if cur.TryNext(ctx) {
				failures = 0
				if t.batch.see(len(cur.Current)) {
					cur.SetBatchSize(t.batch.next())
				}
				done, err := t.take(cur.Current, st)
				if err != nil || done {
					cur.Close(context.WithoutCancel(ctx))
					if err != nil {
						return err
					}
					return t.flush()
				}
				continue
			}
			if err := ctx.Err(); err != nil {
				cur.Close(context.WithoutCancel(ctx))
				return err
			}
			if cur.Err() != nil || cur.ID() == 0 {
				// Dead cursor (error, or closed by the server): reopen
				// after the last copied entry.
				err := cur.Err()
				cur.Close(context.WithoutCancel(ctx))
				if err != nil {
					if failures++; !t.batch.retry(err) && failures > maxReopen {
						return fmt.Errorf("dump: tail oplog: %w", err)
					}
				}
				sleep(ctx, 50*time.Millisecond)
				break
			}
		}
	}
}

func (t *tailer) flush() error {
	if err := t.bw.Flush(); err != nil {
		return fmt.Errorf("dump: spool oplog: %w", err)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// finish takes the newest oplog position as the end of the capture and
// hands it to run.
func (t *tailer) finish(ctx context.Context) error {
	if !t.active {
		return nil
	}
	if t.onePass {
		t.endCh <- bson.Timestamp{} // readOnce copies all there is
		return nil
	}
	ts, _, ok, err := t.edge(ctx, -1)
	if err != nil {
		return err
	}
	if !ok {
		// The oplog was emptied under us: nothing proves continuity.
		return t.rolled(ctx, bson.Timestamp{})
	}
	t.end = ts
	t.endCh <- ts
	return nil
}

// FailoverError says the replica set changed its primary while the dump
// copied the oplog: entries of the old term may be rolled back, so the
// capture may hold writes the set no longer has.
type FailoverError struct {
	From, To int64
	At       bson.Timestamp
	// RolledBack is set when the last copied entry is no longer in the
	// oplog (or has another term): it was rolled back.
	RolledBack bool
}

func (e *FailoverError) Error() string {
	if e.RolledBack {
		return fmt.Sprintf("dump: the oplog entry at %d.%d (term %d) that the backup ends at is no longer in the oplog: it was rolled back after a failover; run the backup again", e.At.T, e.At.I, e.From)
	}
	return fmt.Sprintf("dump: the replica set changed primary during the backup (oplog term %d, then %d at %d.%d): entries of the old term may be rolled back, so the backup cannot be point-in-time; run it again once the set is stable", e.From, e.To, e.At.T, e.At.I)
}

// termMark is an oplog position and its term.
type termMark struct {
	ts   bson.Timestamp
	term int64
}

// checkRolledBack fails when the last copied entry, or the last copied
// entry of a term that ended during the dump, is gone from the oplog or
// carries another term: a rollback removed it after a failover. Only on
// servers that write terms (MongoDB): the lookup by ts is indexed there.
func (t *tailer) checkRolledBack(ctx context.Context) error {
	if !t.active || !t.haveTerm || t.last.IsZero() {
		return nil
	}
	for _, m := range append(t.termEnds[:len(t.termEnds):len(t.termEnds)], termMark{ts: t.last, term: t.lastTerm}) {
		raw, err := t.coll.FindOne(ctx, bson.D{{Key: "ts", Value: m.ts}}, options.FindOne().SetProjection(bson.D{{Key: "t", Value: 1}})).Raw()
		if errors.Is(err, mongo.ErrNoDocuments) {
			return &FailoverError{From: m.term, To: m.term, At: m.ts, RolledBack: true}
		}
		if err != nil {
			return fmt.Errorf("dump: read oplog position: %w", err)
		}
		if v, err := raw.LookupErr("t"); err == nil {
			if n, ok := v.AsInt64OK(); ok && n != m.term {
				return &FailoverError{From: m.term, To: n, At: m.ts, RolledBack: true}
			}
		}
	}
	return nil
}

// checkRolled fails when the start entry is no longer in the oplog: an
// entry between start and the tailer's position may have gone unseen.
func (t *tailer) checkRolled(ctx context.Context) error {
	if !t.active {
		return nil
	}
	if err := t.checkRolledBack(ctx); err != nil {
		return err
	}
	first, ok, err := t.oldestEntry(ctx)
	oldest := first.ts
	if err != nil {
		return err
	}
	if !ok || (tsLess(t.start, oldest) && !(t.onePass && first == t.firstOldest)) {
		return t.rolled(ctx, oldest)
	}
	return nil
}

// rolled builds the error of a rolled oplog with the size a retry needs:
// the oplog's bytes per second of its current window times the seconds
// of oplog this dump spanned, and never less than what was captured.
func (t *tailer) rolled(ctx context.Context, oldest bson.Timestamp) *OplogRolledError {
	e := &OplogRolledError{Start: t.start, Oldest: oldest, NeededBytes: t.bytes}
	newest, _, ok, err := t.edge(ctx, -1)
	if err != nil || !ok || newest.T < t.start.T {
		return e
	}
	e.SpanSeconds = int64(newest.T - t.start.T)
	var st bson.Raw
	if t.coll.Database().RunCommand(ctx, bson.D{{Key: "collStats", Value: oplogColl}}).Decode(&st) != nil {
		return e
	}
	e.OplogBytes = number(st.Lookup("size"))
	if !oldest.IsZero() && oldest.T < newest.T {
		e.WindowSeconds = int64(newest.T - oldest.T)
		if need := e.OplogBytes * e.SpanSeconds / e.WindowSeconds; need > e.NeededBytes {
			e.NeededBytes = need
		}
	}
	return e
}

// closeSpool releases the spool file; Run removes it.
func (t *tailer) closeSpool() {
	if t.spool != nil {
		t.spool.Close()
	}
}

// pack appends oplog.bson to the archive.
func (t *tailer) pack(ctx context.Context, aw *archive.Writer, sp *spools) error {
	name := t.spool.Name()
	defer sp.remove(name)
	if err := t.spool.Close(); err != nil {
		return fmt.Errorf("dump: spool oplog: %w", err)
	}
	return addSpool(ctx, aw, sp, OplogName, name, t.bytes, time.Now())
}

// RenamedError says a collection was renamed during the dump: it may have
// been read under either name, so the backup cannot be consistent.
type RenamedError struct{ From, To string }

func (e *RenamedError) Error() string {
	return fmt.Sprintf("dump: collection %s was renamed to %s during the backup (a rename, $out or mapReduce): it may have been read under either name, so the backup cannot be point-in-time; run it again when no rename runs", e.From, e.To)
}

// DDLError says a collection or its indexes changed during a dump on a
// server whose oplog does not record such changes (FerretDB logs only
// inserts, updates and deletes): the restore could not replay them.
type DDLError struct{ Namespace, What string }

func (e *DDLError) Error() string {
	return fmt.Sprintf("dump: %s %s during the backup, and this server's oplog does not record it (FerretDB logs only inserts, updates and deletes), so the backup cannot be point-in-time; run it again when no such change runs", e.Namespace, e.What)
}

// checkCatalog lists the collections again once all were read. On a
// server whose oplog holds no DDL (noDDL: FerretDB), a collection listed
// at the start that now has another name (same UUID), is gone, or whose
// index count changed fails the backup: the restore could not replay it.
// A MongoDB oplog holds the rename, drop or index build, which the restore
// replays.
func checkCatalog(ctx context.Context, client *mongo.Client, rp *readpref.ReadPref, cat Catalog, intents []intent, dumped []manifest.Collection, noDDL bool) error {
	byUUID := map[string]string{}
	for _, in := range intents {
		if in.uuid != "" {
			byUUID[in.uuid] = in.db + "." + in.name
		}
	}
	// Names and UUIDs only: no size estimates.
	now, err := listIntents(ctx, client, rp, cat, false)
	if err != nil {
		return err
	}
	present := map[string]bool{}
	for _, in := range now {
		ns := in.db + "." + in.name
		present[ns] = true
		if was, ok := byUUID[in.uuid]; ok && noDDL && in.uuid != "" && was != ns {
			return &RenamedError{From: was, To: ns}
		}
	}
	if !noDDL {
		return nil
	}
	for _, c := range dumped {
		ns := c.DB + "." + c.Name
		if !present[ns] {
			return &DDLError{Namespace: ns, What: "was dropped"}
		}
		if c.Type == "view" {
			continue
		}
		cur, err := client.Database(c.DB, options.Database().SetReadPreference(rp)).Collection(c.Name).Indexes().List(ctx)
		if err != nil {
			return fmt.Errorf("dump: list indexes of %s: %w", ns, err)
		}
		var idx []bson.Raw
		if err := cur.All(ctx, &idx); err != nil {
			return fmt.Errorf("dump: list indexes of %s: %w", ns, err)
		}
		if len(idx) != c.Indexes {
			return &DDLError{Namespace: ns, What: fmt.Sprintf("had its indexes changed (%d when read, %d at the end)", c.Indexes, len(idx))}
		}
	}
	return nil
}

// MemberError says the member a backup reads from changed or stopped
// being a readable member of its replica set during the backup.
type MemberError struct{ Member, Why string }

func (e *MemberError) Error() string {
	return fmt.Sprintf("dump: the member the backup reads from (%s) %s during the backup; run it again", e.Member, e.Why)
}

type helloReply struct {
	SetName   string `bson:"setName"`
	Me        string `bson:"me"`
	Primary   bool   `bson:"isWritablePrimary"`
	Secondary bool   `bson:"secondary"`
}

// pinMember asks, with the collection reads' read preference, which member
// serves them, and connects to it alone: one server selection for the
// whole backup.
func pinMember(ctx context.Context, client *mongo.Client, rp *readpref.ReadPref, pin func(context.Context, string) (*mongo.Client, error)) (*mongo.Client, string, error) {
	var h helloReply
	err := client.Database("admin").RunCommand(ctx, bson.D{{Key: "hello", Value: 1}}, options.RunCmd().SetReadPreference(rp)).Decode(&h)
	if err != nil {
		return nil, "", fmt.Errorf("dump: choose the member to read from: %w", err)
	}
	if h.Me == "" {
		return nil, "", errors.New("dump: choose the member to read from: its hello names no member (me)")
	}
	pinned, err := pin(ctx, h.Me)
	if err != nil {
		return nil, "", fmt.Errorf("dump: connect to member %s: %w", h.Me, err)
	}
	var again helloReply
	if err := pinned.Database("admin").RunCommand(ctx, bson.D{{Key: "hello", Value: 1}}).Decode(&again); err != nil || again.Me != h.Me || again.SetName != h.SetName {
		pinned.Disconnect(context.WithoutCancel(ctx))
		if err == nil {
			err = fmt.Errorf("the direct connection reached %q of set %q", again.Me, again.SetName)
		}
		return nil, "", fmt.Errorf("dump: connect to member %s: %w", h.Me, err)
	}
	return pinned, h.Me, nil
}

// checkMember fails when the server the backup read from is no longer the
// member it started with, or no longer a primary or secondary of its set.
func checkMember(ctx context.Context, client *mongo.Client, src manifest.Source) error {
	if src.ReplicaSet == "" {
		return nil
	}
	var h helloReply
	if err := client.Database("admin").RunCommand(ctx, bson.D{{Key: "hello", Value: 1}}).Decode(&h); err != nil {
		return fmt.Errorf("dump: hello: %w", err)
	}
	switch {
	case h.SetName != src.ReplicaSet:
		return &MemberError{Member: src.ReadFrom, Why: fmt.Sprintf("left replica set %q", src.ReplicaSet)}
	case src.ReadFrom != "" && h.Me != src.ReadFrom:
		return &MemberError{Member: src.ReadFrom, Why: "was replaced by " + h.Me}
	case !h.Primary && !h.Secondary:
		return &MemberError{Member: src.ReadFrom, Why: "stopped being a primary or secondary (recovering, rolling back or removed)"}
	}
	return nil
}
