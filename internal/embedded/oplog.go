package embedded

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

const (
	// OplogDB and OplogColl name the oplog as on a MongoDB replica-set member.
	OplogDB   = "local"
	OplogColl = "oplog.rs"

	// DefaultOplogEntries is the entry budget (the capped `max`) EnsureOplog
	// gives a new oplog.
	DefaultOplogEntries int64 = 1_000_000

	// oplogSizeBytes is the capped `size`. FerretDB's compact deletes 10% of
	// the entries whenever the collection is larger than `size`, on top of
	// the `max` trim, so it is set far above any dev data set: only `max`
	// should decide what a trim removes.
	oplogSizeBytes int64 = 1 << 40
)

// ErrOplogBudget is returned by TrimOplog when the requested budget is not
// the one local.oplog.rs was created with; see TrimOplog.
var ErrOplogBudget = errors.New("oplog budget mismatch")

// ErrNoOplog is returned by TrimOplog when local.oplog.rs does not exist.
var ErrNoOplog = errors.New("no oplog")

// EnsureOplog creates local.oplog.rs as a capped collection with
// DefaultOplogEntries as its budget when it is missing; see EnsureOplogMax.
func EnsureOplog(ctx context.Context, client *mongo.Client) (created bool, err error) {
	return EnsureOplogMax(ctx, client, DefaultOplogEntries)
}

// EnsureOplogMax creates local.oplog.rs as a capped collection whose `max`
// is maxEntries when it is missing, and reports whether it created it. An
// existing oplog is left as it is, whatever its budget.
//
// From then on FerretDB writes an entry for every insert, update and delete
// on any other collection. A tailable cursor on an empty oplog is closed at
// once (as on MongoDB), so a tailer needs at least one entry to exist.
func EnsureOplogMax(ctx context.Context, client *mongo.Client, maxEntries int64) (created bool, err error) {
	if maxEntries <= 0 {
		return false, fmt.Errorf("embedded: oplog budget %d: must be positive", maxEntries)
	}
	if _, err := oplogMax(ctx, client); err == nil {
		return false, ensureOplogEntry(ctx, client)
	} else if !errors.Is(err, ErrNoOplog) {
		return false, err
	}
	opts := options.CreateCollection().SetCapped(true).
		SetSizeInBytes(oplogSizeBytes).SetMaxDocuments(maxEntries)
	if err := client.Database(OplogDB).CreateCollection(ctx, OplogColl, opts); err != nil {
		// A concurrent EnsureOplog may have won the race; that is success.
		var ce mongo.CommandError
		if errors.As(err, &ce) && ce.HasErrorCode(48) { // NamespaceExists
			return false, nil
		}
		return false, fmt.Errorf("embedded: create oplog: %w", err)
	}
	return true, ensureOplogEntry(ctx, client)
}

// ensureOplogEntry writes a no-op entry into an empty oplog, as a
// replica-set member does when it starts: a backup can then take its start
// position (the newest entry) at once, and tail from there, instead of
// finding no oplog position and giving up point-in-time consistency.
func ensureOplogEntry(ctx context.Context, client *mongo.Client) error {
	coll := client.Database(OplogDB).Collection(OplogColl)
	// One entry in natural order, not a count: FerretDB answers
	// estimatedDocumentCount by decoding every entry (a minute on a live
	// oplog), a find without filter or sort with a LIMIT.
	err := coll.FindOne(ctx, bson.D{}).Err()
	if err == nil {
		return nil
	}
	if !errors.Is(err, mongo.ErrNoDocuments) {
		return fmt.Errorf("embedded: read oplog: %w", err)
	}
	now := time.Now().UTC()
	_, err = coll.InsertOne(ctx, bson.D{
		{Key: "op", Value: "n"}, {Key: "ns", Value: ""},
		{Key: "o", Value: bson.D{{Key: "msg", Value: "a0: oplog started"}}},
		{Key: "ts", Value: bson.Timestamp{T: uint32(now.Unix()), I: 0}},
		{Key: "t", Value: int64(1)}, {Key: "v", Value: int64(2)},
		{Key: "wall", Value: bson.NewDateTimeFromTime(now)},
	})
	if err != nil {
		return fmt.Errorf("embedded: first oplog entry: %w", err)
	}
	return nil
}

// oplogMax returns the capped `max` of local.oplog.rs (0 when it has none).
func oplogMax(ctx context.Context, client *mongo.Client) (int64, error) {
	specs, err := client.Database(OplogDB).ListCollectionSpecifications(ctx, bson.D{{Key: "name", Value: OplogColl}})
	if err != nil {
		return 0, fmt.Errorf("embedded: list oplog: %w", err)
	}
	if len(specs) == 0 {
		return 0, fmt.Errorf("embedded: %s.%s: %w", OplogDB, OplogColl, ErrNoOplog)
	}
	var o struct {
		Max int64 `bson:"max"`
	}
	if specs[0].Options != nil {
		if err := bson.Unmarshal(specs[0].Options, &o); err != nil {
			return 0, fmt.Errorf("embedded: oplog options: %w", err)
		}
	}
	return o.Max, nil
}

// TrimOplog deletes the oldest oplog entries beyond keepEntries and returns
// how many went (concurrent writes can make the count approximate).
//
// keepEntries must be the budget the oplog was created with (EnsureOplog:
// DefaultOplogEntries), else the error matches ErrOplogBudget and nothing is
// deleted. The reason is FerretDB v1.24.2: a delete command on
// local.oplog.rs is accepted, but FerretDB logs each deleted entry as a new
// `d` entry (ns local.oplog.rs) in the oplog itself, so the entry count
// never drops; and it has no collMod to change the budget. The one path
// that deletes without logging is `compact` on a capped collection, which
// removes the oldest entries beyond the collection's `max`.
//
// On MongoDB the server caps its own oplog: do not call this there.
func TrimOplog(ctx context.Context, client *mongo.Client, keepEntries int64) (removed int64, err error) {
	max, err := oplogMax(ctx, client)
	if err != nil {
		return 0, err
	}
	if max != keepEntries {
		return 0, fmt.Errorf("embedded: trim oplog to %d entries: created with max %d: %w", keepEntries, max, ErrOplogBudget)
	}
	coll := client.Database(OplogDB).Collection(OplogColl)
	before, err := coll.EstimatedDocumentCount(ctx)
	if err != nil {
		return 0, fmt.Errorf("embedded: count oplog: %w", err)
	}
	if before <= keepEntries {
		return 0, nil
	}
	if err := client.Database(OplogDB).RunCommand(ctx, bson.D{{Key: "compact", Value: OplogColl}}).Err(); err != nil {
		return 0, fmt.Errorf("embedded: compact oplog: %w", err)
	}
	after, err := coll.EstimatedDocumentCount(ctx)
	if err != nil {
		return 0, fmt.Errorf("embedded: count oplog: %w", err)
	}
	if after > before {
		return 0, nil
	}
	return before - after, nil
}

// RunOplogTrimmer is the package's RunOplogTrimmer for this server, whose
// ticks count the oplog's rows in SQL first and trim only when there are
// more than keepEntries: TrimOplog's own count makes FerretDB decode every
// entry, which on a live oplog costs a core for many seconds every tick.
func (s *Server) RunOplogTrimmer(ctx context.Context, client *mongo.Client, every time.Duration, keepEntries int64) error {
	return runOplogTrimmer(ctx, client, every, keepEntries, func(ctx context.Context) (bool, error) {
		n, err := s.Catalog().Count(ctx, OplogDB, OplogColl)
		return n > keepEntries, err
	})
}

// RunOplogTrimmer calls TrimOplog every interval until ctx is done and then
// returns ctx.Err(). A failed trim is retried at the next tick, except a
// budget mismatch, which no retry can fix and is returned at once.
func RunOplogTrimmer(ctx context.Context, client *mongo.Client, every time.Duration, keepEntries int64) error {
	return runOplogTrimmer(ctx, client, every, keepEntries, nil)
}

func runOplogTrimmer(ctx context.Context, client *mongo.Client, every time.Duration, keepEntries int64, over func(context.Context) (bool, error)) error {
	if every <= 0 {
		return fmt.Errorf("embedded: oplog trimmer interval %v: must be positive", every)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if over != nil {
			if more, err := over(ctx); err == nil && !more {
				continue
			}
		}
		if _, err := TrimOplog(ctx, client, keepEntries); errors.Is(err, ErrOplogBudget) {
			return err
		}
	}
}
