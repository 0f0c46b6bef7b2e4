package dump

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/a0backup/a0/internal/archive"
)

const (
	oplogDB   = "local"
	oplogColl = "oplog.rs"
	// awaitTime bounds how long one getMore waits for new entries, and so
	// how late the tailer notices the end position.
	awaitTime = 300 * time.Millisecond
	// maxReopen consecutive cursor failures end the capture.
	maxReopen = 20
)

// tailer copies oplog entries from start to end into a spool while the
// collections are read.
type tailer struct {
	coll      *mongo.Collection
	spool     *os.File
	bw        *bufio.Writer
	active    bool // an oplog with an entry exists: capture is on
	start     primitive.Timestamp
	startWall time.Time
	// end is the newest position once every collection was read; the
	// capture stops at the first entry at or after it, last. Replay up to
	// last (not exactly end) is as consistent: it is a later point in time.
	end      primitive.Timestamp
	last     primitive.Timestamp
	lastWall time.Time
	endCh    chan primitive.Timestamp
	entries  int64
	bytes    int64
}

// startTailer records the start position. It returns an inactive tailer
// (and captures nothing) when there is no oplog or it is empty.
func startTailer(ctx context.Context, client *mongo.Client, sp *spools) (*tailer, error) {
	coll := client.Database(oplogDB).Collection(oplogColl)
	t := &tailer{coll: coll, endCh: make(chan primitive.Timestamp, 1)}
	names, err := client.Database(oplogDB).ListCollectionNames(ctx, bson.D{{Key: "name", Value: oplogColl}})
	if err != nil {
		return nil, fmt.Errorf("dump: look for the oplog: %w", err)
	}
	if len(names) == 0 {
		return t, nil
	}
	ts, wall, ok, err := t.edge(ctx, -1)
	if err != nil || !ok {
		return t, err
	}
	// A transaction open now has its first entries before the newest one:
	// start there so that replay sees the whole transaction, as mongodump
	// does. Servers without config.transactions return nothing.
	if txn, ok := oldestOpenTxn(ctx, client); ok && tsLess(txn, ts) {
		ts, wall = txn, time.Time{}
	}
	t.start, t.startWall, t.active = ts, wall, true
	if t.spool, err = sp.create(); err != nil {
		return nil, err
	}
	t.bw = bufio.NewWriterSize(t.spool, 1<<20)
	return t, nil
}

func oldestOpenTxn(ctx context.Context, client *mongo.Client) (primitive.Timestamp, bool) {
	var doc struct {
		StartOpTime struct {
			TS primitive.Timestamp `bson:"ts"`
		} `bson:"startOpTime"`
	}
	err := client.Database("config").Collection("transactions").FindOne(ctx,
		bson.D{{Key: "state", Value: bson.D{{Key: "$in", Value: bson.A{"prepared", "inProgress"}}}},
			{Key: "startOpTime", Value: bson.D{{Key: "$exists", Value: true}}}},
		options.FindOne().SetSort(bson.D{{Key: "startOpTime.ts", Value: 1}})).Decode(&doc)
	if err != nil {
		return primitive.Timestamp{}, false
	}
	return doc.StartOpTime.TS, true
}

// edge returns the newest (dir -1) or oldest (dir 1) entry's position.
func (t *tailer) edge(ctx context.Context, dir int) (primitive.Timestamp, time.Time, bool, error) {
	raw, err := t.coll.FindOne(ctx, bson.D{},
		options.FindOne().SetSort(bson.D{{Key: "$natural", Value: dir}}).SetProjection(bson.D{{Key: "ts", Value: 1}, {Key: "wall", Value: 1}})).Raw()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return primitive.Timestamp{}, time.Time{}, false, nil
	}
	if err != nil {
		return primitive.Timestamp{}, time.Time{}, false, fmt.Errorf("dump: read oplog position: %w", err)
	}
	t1, i1, ok := raw.Lookup("ts").TimestampOK()
	if !ok {
		return primitive.Timestamp{}, time.Time{}, false, errors.New("dump: oplog entry without ts")
	}
	var wall time.Time
	if w, ok := raw.Lookup("wall").TimeOK(); ok {
		wall = w.UTC()
	}
	return primitive.Timestamp{T: t1, I: i1}, wall, true, nil
}

func tsLess(a, b primitive.Timestamp) bool { return a.T < b.T || (a.T == b.T && a.I < b.I) }

// run tails until the end position given to finish has been copied.
// The start entry itself is included, as mongodump includes it: replaying
// it again is harmless, missing a write is not.
func (t *tailer) run(ctx context.Context) error {
	if !t.active {
		return nil
	}
	var (
		after    *primitive.Timestamp // last copied position
		end      *primitive.Timestamp
		failures int
	)
	for {
		from := t.start
		if after != nil {
			from = *after
		}
		// $gte and a first batch of one: FerretDB closes a tailable cursor
		// at once when its first batch is shorter than batchSize. The entry
		// at `after` comes again and is skipped below; later getMores ask
		// for large batches.
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
		cur.SetBatchSize(batchSize)
		for {
			if cur.TryNext(ctx) {
				failures = 0
				t1, i1, ok := cur.Current.Lookup("ts").TimestampOK()
				if !ok {
					cur.Close(context.WithoutCancel(ctx))
					return errors.New("dump: oplog entry without ts")
				}
				ts := primitive.Timestamp{T: t1, I: i1}
				if after != nil && !tsLess(*after, ts) {
					continue
				}
				// FerretDB logs writes to local.* (its own oplog trims)
				// which a replica-set member never does: not data.
				if ns, _ := cur.Current.Lookup("ns").StringValueOK(); !strings.HasPrefix(ns, "local.") {
					if _, err := t.bw.Write(cur.Current); err != nil {
						cur.Close(context.WithoutCancel(ctx))
						return fmt.Errorf("dump: spool oplog: %w", err)
					}
					t.entries++
					t.bytes += int64(len(cur.Current))
				}
				after = &ts
				t.last = ts
				if w, ok := cur.Current.Lookup("wall").TimeOK(); ok {
					t.lastWall = w.UTC()
				}
				if end != nil && !tsLess(ts, *end) {
					cur.Close(context.WithoutCancel(ctx))
					return t.flush()
				}
				continue
			}
			if err := ctx.Err(); err != nil {
				cur.Close(context.WithoutCancel(ctx))
				return err
			}
			// Caught up: the end, once known, may already be copied.
			select {
			case e := <-t.endCh:
				end = &e
			default:
			}
			if end != nil && after != nil && !tsLess(*after, *end) {
				cur.Close(context.WithoutCancel(ctx))
				return t.flush()
			}
			if cur.Err() != nil || cur.ID() == 0 {
				// Dead cursor (error, or closed by the server): reopen
				// after the last copied entry.
				err := cur.Err()
				cur.Close(context.WithoutCancel(ctx))
				if err != nil {
					if failures++; failures > maxReopen {
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
	ts, _, ok, err := t.edge(ctx, -1)
	if err != nil {
		return err
	}
	if !ok {
		// The oplog was emptied under us: nothing proves continuity.
		return &OplogRolledError{Start: t.start, NeededBytes: t.bytes}
	}
	t.end = ts
	t.endCh <- ts
	return nil
}

// checkRolled fails when the start entry is no longer in the oplog: an
// entry between start and the tailer's position may have gone unseen.
func (t *tailer) checkRolled(ctx context.Context) error {
	if !t.active {
		return nil
	}
	oldest, _, ok, err := t.edge(ctx, 1)
	if err != nil {
		return err
	}
	if !ok || tsLess(t.start, oldest) {
		return &OplogRolledError{Start: t.start, Oldest: oldest, NeededBytes: t.bytes}
	}
	return nil
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
	return addSpool(ctx, aw, OplogName, name, t.bytes, time.Now())
}
