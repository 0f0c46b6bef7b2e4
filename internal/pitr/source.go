package pitr

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Source is the oplog the archiver reads.
type Source interface {
	// Oldest returns the ts of the oldest entry (ok false: the oplog is
	// empty or missing).
	Oldest(ctx context.Context) (ts bson.Timestamp, ok bool, err error)
	// Contains reports whether the entry at ts is in the oplog.
	Contains(ctx context.Context, ts bson.Timestamp) (bool, error)
	// Tail follows the oplog from the first entry after `after` (from
	// the oldest when after is zero), in the oplog's order.
	Tail(ctx context.Context, after bson.Timestamp) (Tail, error)
}

// Tail is an open read of the oplog.
type Tail interface {
	// Next returns the next entry, or nil when none came within the
	// source's wait: the caller is caught up. The entry is valid until the
	// next call.
	Next(ctx context.Context) (bson.Raw, error)
	Close(ctx context.Context) error
}

// MongoSource reads local.oplog.rs through the official driver, with a
// tailable awaitData cursor: a MongoDB replica-set member, or the
// embedded FerretDB (small oplogs: FerretDB answers a caught-up getMore by
// reading its whole oplog again, having no index on ts).
type MongoSource struct {
	coll *mongo.Collection
	// Await bounds how long one getMore waits for new entries, and so how
	// late the archiver notices that a slice's time is up when idle.
	Await time.Duration
	// Poll reads with plain finds from lateHorizon before the newest
	// entry instead of a tailable cursor: for the embedded FerretDB, whose
	// tailable cursor sends entries again, out of order, and skips entries
	// that become visible after later ones (its oplog has holes a MongoDB
	// oplog never shows a reader). Each poll reads the oplog whole there
	// (no index on ts): fit for small oplogs.
	Poll bool
}

// NewMongoSource reads the oplog of the member client talks to.
func NewMongoSource(client *mongo.Client) *MongoSource {
	return &MongoSource{coll: client.Database("local").Collection("oplog.rs"), Await: time.Second}
}

// Oldest is the first entry in natural order (no sort: FerretDB answers it
// without a scan).
func (s *MongoSource) Oldest(ctx context.Context) (bson.Timestamp, bool, error) {
	raw, err := s.coll.FindOne(ctx, bson.D{}, options.FindOne().SetProjection(bson.D{{Key: "ts", Value: 1}})).Raw()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return bson.Timestamp{}, false, nil
	}
	if err != nil {
		return bson.Timestamp{}, false, fmt.Errorf("pitr: oldest oplog entry: %w", err)
	}
	ts, ok := entryTS(raw)
	if !ok {
		return bson.Timestamp{}, false, errors.New("pitr: oplog entry without ts")
	}
	return ts, true, nil
}

// Contains looks the entry up by ts (indexed on MongoDB).
func (s *MongoSource) Contains(ctx context.Context, ts bson.Timestamp) (bool, error) {
	err := s.coll.FindOne(ctx, bson.D{{Key: "ts", Value: ts}}, options.FindOne().SetProjection(bson.D{{Key: "ts", Value: 1}})).Err()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("pitr: look up oplog entry %d.%d: %w", ts.T, ts.I, err)
	}
	return true, nil
}

// Tail opens the tailable cursor.
func (s *MongoSource) Tail(ctx context.Context, after bson.Timestamp) (Tail, error) {
	t := &mongoTail{src: s, after: after, start: after, seen: map[bson.Timestamp]struct{}{}}
	return t, t.open(ctx)
}

type mongoTail struct {
	src   *MongoSource
	after bson.Timestamp // the newest entry returned, or the start
	// start is where the tail began: what is not newer was archived
	// before (or, late on FerretDB, cannot be told from what was).
	start bson.Timestamp
	cur   *mongo.Cursor
	// seen holds the ts of the entries returned within lateHorizon of
	// after: FerretDB's tailable getMore sends entries again, and inserts
	// the entries of concurrent writers out of ts order, so an entry not
	// newer than after is either one already returned (skipped) or a late
	// one (returned).
	seen map[bson.Timestamp]struct{}
}

// lateHorizon is how far behind the newest entry a late entry is still
// told from one sent again. Older ones are taken as sent again.
const lateHorizon = 30 // seconds

func (t *mongoTail) open(ctx context.Context) error {
	filter := bson.D{}
	if t.src.Poll {
		if !t.after.IsZero() {
			from := bson.Timestamp{}
			if t.after.T > lateHorizon {
				from.T = t.after.T - lateHorizon
			}
			filter = bson.D{{Key: "ts", Value: bson.D{{Key: "$gte", Value: from}}}}
		}
		cur, err := t.src.coll.Find(ctx, filter, options.Find().SetBatchSize(1000))
		if err != nil {
			return fmt.Errorf("pitr: read oplog: %w", err)
		}
		t.cur = cur
		return nil
	}
	if !t.after.IsZero() {
		// $gte and a first batch of one: a tailable cursor whose first
		// batch is empty (or, on FerretDB, shorter than its batch size) is
		// closed at once. The entry at after comes again and is skipped.
		filter = bson.D{{Key: "ts", Value: bson.D{{Key: "$gte", Value: t.after}}}}
	}
	cur, err := t.src.coll.Find(ctx, filter, options.Find().SetCursorType(options.TailableAwait).
		SetMaxAwaitTime(t.src.Await).SetBatchSize(1))
	if err != nil {
		return fmt.Errorf("pitr: tail oplog: %w", err)
	}
	cur.SetBatchSize(1000)
	t.cur = cur
	return nil
}

func (t *mongoTail) Next(ctx context.Context) (bson.Raw, error) {
	for {
		if t.cur == nil {
			if err := t.open(ctx); err != nil {
				return nil, err
			}
		}
		if t.cur.TryNext(ctx) {
			raw := t.cur.Current
			ts, ok := entryTS(raw)
			if !ok {
				return nil, errors.New("pitr: oplog entry without ts")
			}
			if !tsLess(t.after, ts) {
				if _, dup := t.seen[ts]; dup || !tsLess(t.start, ts) || ts.T+lateHorizon < t.after.T {
					continue
				}
				t.seen[ts] = struct{}{}
				return raw, nil
			}
			if ts.T != t.after.T {
				for k := range t.seen {
					if k.T+lateHorizon < ts.T {
						delete(t.seen, k)
					}
				}
			}
			t.after = ts
			t.seen[ts] = struct{}{}
			return raw, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := t.cur.Err(); err != nil {
			t.Close(ctx)
			return nil, fmt.Errorf("pitr: tail oplog: %w", err)
		}
		if t.cur.ID() == 0 || t.src.Poll {
			// Closed by the server (nothing after `after` yet, or the
			// member went away): open again at the next call, after a
			// pause so that an idle oplog is not polled in a loop.
			t.Close(ctx)
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(t.src.Await):
			}
		}
		return nil, nil
	}
}

func (t *mongoTail) Close(ctx context.Context) error {
	if t.cur == nil {
		return nil
	}
	err := t.cur.Close(context.WithoutCancel(ctx))
	t.cur = nil
	return err
}
