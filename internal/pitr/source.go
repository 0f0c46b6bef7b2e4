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

// MongoSource reads local.oplog.rs through the official driver: a MongoDB
// replica-set member with a tailable awaitData cursor (the standard
// tail, as PBM's: a ts filter and getMores that wait on the server), a
// FerretDB server by polls (see Poll; detected by its buildInfo when
// Tail opens).
type MongoSource struct {
	coll *mongo.Collection
	// Await bounds how long one getMore waits for new entries, and so how
	// late the archiver notices that a slice's time is up when idle; in
	// poll mode it is the pause after a poll that found nothing.
	Await time.Duration
	// Poll reads with plain finds from lateHorizon before the newest
	// entry instead of a tailable cursor. Set, or taken by Tail when the
	// server is FerretDB (v1.24.2): its tailable cursor sends entries
	// again, out of order, and skips entries that become visible after
	// later ones (its oplog has holes a MongoDB oplog never shows a
	// reader), and it answers every caught-up getMore of an awaitData
	// cursor by reading the whole oplog again, every 10 ms until the
	// await ends (no index on ts, no pushdown of a ts filter or of a
	// $natural sort: only an _id equality and a plain limit are pushed
	// down), which kept the server's cores busy and the archive minutes
	// behind. A poll reads the oplog whole on FerretDB too, but once:
	// before each poll the oplog's entry count (collStats: b-tree pages,
	// no entry decoded) and its oldest entry (a limit pushed down) are
	// compared with those taken before the last poll, and an unchanged
	// oplog is not read at all; and after a poll that found entries the
	// next waits as long as that poll took, up to Await: the archive
	// reads the server's oplog at most half the time while a poll takes
	// less than Await, and never polls an unchanged oplog more than once
	// per Await.
	Poll bool

	detected bool // Tail asked the server whether it is FerretDB
	ferret   bool
}

// NewMongoSource reads the oplog of the member client talks to.
func NewMongoSource(client *mongo.Client) *MongoSource {
	return &MongoSource{coll: client.Database("local").Collection("oplog.rs"), Await: time.Second}
}

// polls says whether tails read by polls: Poll, or a FerretDB server
// (asked once).
func (s *MongoSource) polls(ctx context.Context) (bool, error) {
	if s.Poll {
		return true, nil
	}
	if !s.detected {
		var bi struct {
			FerretDBVersion string `bson:"ferretdbVersion"`
		}
		if err := s.coll.Database().Client().Database("admin").RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&bi); err != nil {
			return false, fmt.Errorf("pitr: buildInfo: %w", err)
		}
		s.detected, s.ferret = true, bi.FerretDBVersion != ""
	}
	return s.ferret, nil
}

// ReplicaSet is the member's replica set: hello's setName and, when the
// server answers replSetGetConfig (a MongoDB replica set, a user allowed
// to ask), its settings.replicaSetId, which a re-initiation renews even
// under the same name. A server that does not answer replSetGetConfig
// (FerretDB, a user without clusterMonitor) gives the name alone.
func (s *MongoSource) ReplicaSet(ctx context.Context) (ReplicaSet, error) {
	admin := s.coll.Database().Client().Database("admin")
	var hello struct {
		SetName string `bson:"setName"`
	}
	if err := admin.RunCommand(ctx, bson.D{{Key: "hello", Value: 1}}).Decode(&hello); err != nil {
		return ReplicaSet{}, fmt.Errorf("pitr: hello: %w", err)
	}
	set := ReplicaSet{Name: hello.SetName}
	if set.Name == "" {
		return set, nil
	}
	var cfg struct {
		Config struct {
			Settings struct {
				ReplicaSetID bson.ObjectID `bson:"replicaSetId"`
			} `bson:"settings"`
		} `bson:"config"`
	}
	if err := admin.RunCommand(ctx, bson.D{{Key: "replSetGetConfig", Value: 1}}).Decode(&cfg); err == nil && !cfg.Config.Settings.ReplicaSetID.IsZero() {
		set.ID = cfg.Config.Settings.ReplicaSetID.Hex()
	}
	return set, nil
}

// Oldest is the first entry in natural order (no sort: FerretDB answers it
// without a scan).
func (s *MongoSource) Oldest(ctx context.Context) (bson.Timestamp, bool, error) {
	id, ok, err := s.oldest(ctx)
	return id.ts, ok, err
}

// entryID identifies an entry: its ts and its _id's bytes (FerretDB gives
// every entry an ObjectID; an oplog dropped and recreated within a second
// can start with an entry of the same ts).
type entryID struct {
	ts bson.Timestamp
	id string
}

func (s *MongoSource) oldest(ctx context.Context) (entryID, bool, error) {
	raw, err := s.coll.FindOne(ctx, bson.D{}, options.FindOne().SetProjection(bson.D{{Key: "ts", Value: 1}, {Key: "_id", Value: 1}})).Raw()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return entryID{}, false, nil
	}
	if err != nil {
		return entryID{}, false, fmt.Errorf("pitr: oldest oplog entry: %w", err)
	}
	ts, ok := entryTS(raw)
	if !ok {
		return entryID{}, false, errors.New("pitr: oplog entry without ts")
	}
	return entryID{ts: ts, id: string(raw.Lookup("_id").Value)}, true, nil
}

// count is the oplog's entry count from collStats, or -1.
func (s *MongoSource) count(ctx context.Context) int64 {
	var st bson.Raw
	if err := s.coll.Database().RunCommand(ctx, bson.D{{Key: "collStats", Value: s.coll.Name()}}).Decode(&st); err != nil {
		return -1
	}
	switch v := st.Lookup("count"); v.Type {
	case bson.TypeInt32:
		return int64(v.Int32())
	case bson.TypeInt64:
		return v.Int64()
	case bson.TypeDouble:
		return int64(v.Double())
	}
	return -1
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

// Tail opens the tailable cursor, or the first poll.
func (s *MongoSource) Tail(ctx context.Context, after bson.Timestamp) (Tail, error) {
	poll, err := s.polls(ctx)
	if err != nil {
		return nil, err
	}
	t := &mongoTail{src: s, poll: poll, after: after, start: after, seen: map[bson.Timestamp]struct{}{}, count: -1}
	if poll {
		return t, nil // the first Next polls
	}
	return t, t.open(ctx)
}

type mongoTail struct {
	src   *MongoSource
	poll  bool
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

	// Poll mode: the oplog's count and oldest entry taken before the last
	// poll (count -1: none yet, or unknown), when the next poll may start,
	// when the current one started and whether it returned an entry.
	count     int64
	oldestID  entryID
	nextPoll  time.Time
	pollStart time.Time
	found     bool
}

// lateHorizon is how far behind the newest entry a late entry is still
// told from one sent again. Older ones are taken as sent again.
const lateHorizon = 30 // seconds

// minPollPause is the least pause between two polls that found entries.
const minPollPause = 50 * time.Millisecond

func (t *mongoTail) open(ctx context.Context) error {
	filter := bson.D{}
	if t.poll {
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

// take decides whether an entry read is returned: newer than after, or
// a late one not returned yet.
func (t *mongoTail) take(raw bson.Raw) (bool, error) {
	ts, ok := entryTS(raw)
	if !ok {
		return false, errors.New("pitr: oplog entry without ts")
	}
	if !tsLess(t.after, ts) {
		if _, dup := t.seen[ts]; dup || !tsLess(t.start, ts) || ts.T+lateHorizon < t.after.T {
			return false, nil
		}
		t.seen[ts] = struct{}{}
		return true, nil
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
	return true, nil
}

func (t *mongoTail) Next(ctx context.Context) (bson.Raw, error) {
	if t.poll {
		return t.nextPolled(ctx)
	}
	for {
		if t.cur == nil {
			if err := t.open(ctx); err != nil {
				return nil, err
			}
		}
		if t.cur.TryNext(ctx) {
			ok, err := t.take(t.cur.Current)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
			return t.cur.Current, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := t.cur.Err(); err != nil {
			t.Close(ctx)
			return nil, fmt.Errorf("pitr: tail oplog: %w", err)
		}
		if t.cur.ID() == 0 {
			// Closed by the server (nothing after `after` yet, or the
			// member went away): open again at the next call, after a
			// pause so that an idle oplog is not polled in a loop.
			t.Close(ctx)
			if err := sleepCtx(ctx, t.src.Await); err != nil {
				return nil, err
			}
		}
		return nil, nil
	}
}

// nextPolled is Next in poll mode: a poll is one plain find, read to its
// end; nil is returned when it ends (the archiver looks at its slice's
// time then) and when the oplog did not change since the last poll.
func (t *mongoTail) nextPolled(ctx context.Context) (bson.Raw, error) {
	for {
		if t.cur == nil {
			if err := sleepCtx(ctx, time.Until(t.nextPoll)); err != nil {
				return nil, err
			}
			// Count before oldest, both before the find: an entry
			// committed after the count changes the next count, and a trim
			// in between shows as another oldest entry, never as a count
			// an insert made up for.
			n := t.src.count(ctx)
			oldest, ok, err := t.src.oldest(ctx)
			if err != nil {
				return nil, err
			}
			if n >= 0 && ok && n == t.count && oldest == t.oldestID {
				// Nothing was written since the last poll began: what it
				// read is all there is.
				t.nextPoll = time.Now().Add(t.src.Await)
				return nil, nil
			}
			t.count, t.oldestID = n, oldest
			if !ok {
				t.count = -1
			}
			if err := t.open(ctx); err != nil {
				return nil, err
			}
			t.pollStart, t.found = time.Now(), false
		}
		if t.cur.Next(ctx) {
			ok, err := t.take(t.cur.Current)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
			t.found = true
			return t.cur.Current, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		err := t.cur.Err()
		t.Close(ctx)
		if err != nil {
			t.count = -1 // read it again whatever the count says
			return nil, fmt.Errorf("pitr: read oplog: %w", err)
		}
		// At most half the time reading (while polls take less than
		// Await): a poll that found entries is followed by a pause as long
		// as it took, up to Await; one that found none
		// (the count moved for entries already taken, or for local.*)
		// by Await.
		pause := t.src.Await
		if t.found {
			pause = max(min(time.Since(t.pollStart), t.src.Await), minPollPause)
		}
		t.nextPoll = time.Now().Add(pause)
		return nil, nil
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
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
