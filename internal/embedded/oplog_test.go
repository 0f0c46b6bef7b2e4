package embedded

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// startClient runs a server with cfg (Dir filled in) and connects to it.
func startClient(t *testing.T, cfg Config) *mongo.Client {
	t.Helper()
	ctx := context.Background()
	cfg.Dir = t.TempDir()
	s, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	c, err := s.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect(context.Background()) })
	return c
}

func oplogEntries(t *testing.T, c *mongo.Client, filter bson.D) []bson.Raw {
	t.Helper()
	ctx := context.Background()
	cur, err := c.Database(OplogDB).Collection(OplogColl).Find(ctx, filter)
	if err != nil {
		t.Fatal(err)
	}
	var out []bson.Raw
	if err := cur.All(ctx, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestEnsureOplogIdempotent(t *testing.T) {
	ctx := context.Background()
	c := startClient(t, Config{})
	for i, want := range []bool{true, false} {
		created, err := EnsureOplog(ctx, c)
		if err != nil || created != want {
			t.Fatalf("call %d: created = %v, %v; want %v", i, created, err, want)
		}
	}
	max, err := oplogMax(ctx, c)
	if err != nil || max != DefaultOplogEntries {
		t.Fatalf("max = %d, %v; want %d", max, err, DefaultOplogEntries)
	}
}

// TestOplogEntries pins the entry shape FerretDB writes, which dump and
// restore rely on.
func TestOplogEntries(t *testing.T) {
	ctx := context.Background()
	c := startClient(t, Config{Oplog: true})
	coll := c.Database("shop").Collection("items")
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "a"}, {Key: "n", Value: int32(1)}, {Key: "s", Value: "x"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: "a"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "n", Value: int32(2)}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: "a"}}); err != nil {
		t.Fatal(err)
	}
	got := oplogEntries(t, c, bson.D{{Key: "ns", Value: "shop.items"}})
	if len(got) != 3 {
		t.Fatalf("%d entries, want 3: %v", len(got), got)
	}
	type entry struct {
		Op   string         `bson:"op"`
		NS   string         `bson:"ns"`
		TS   bson.Timestamp `bson:"ts"`
		Wall time.Time      `bson:"wall"`
		O    bson.Raw       `bson:"o"`
		O2   bson.Raw       `bson:"o2"`
	}
	var prev bson.Timestamp
	for i, want := range []struct{ op, o, o2 string }{
		{"i", `{"_id": "a","n": {"$numberInt":"1"},"s": "x"}`, ""},
		// An update is logged as the whole new document under $set.
		{"u", `{"$v": {"$numberInt":"1"},"$set": {"_id": "a","n": {"$numberInt":"2"},"s": "x"}}`, `{"_id": "a"}`},
		{"d", `{"_id": "a"}`, ""},
	} {
		t.Run(want.op, func(t *testing.T) {
			var e entry
			if err := bson.Unmarshal(got[i], &e); err != nil {
				t.Fatalf("%v in %s", err, got[i])
			}
			if e.Op != want.op || e.NS != "shop.items" {
				t.Errorf("op, ns = %q, %q", e.Op, e.NS)
			}
			if e.O.String() != want.o {
				t.Errorf("o = %s, want %s", e.O, want.o)
			}
			if o2 := string(e.O2.String()); (e.O2 == nil && want.o2 != "") || (e.O2 != nil && o2 != want.o2) {
				t.Errorf("o2 = %s, want %q", e.O2, want.o2)
			}
			if e.Wall.IsZero() || time.Since(e.Wall) > time.Minute {
				t.Errorf("wall = %v", e.Wall)
			}
			if !prev.Before(e.TS) {
				t.Errorf("ts %v not after %v", e.TS, prev)
			}
			prev = e.TS
		})
	}
}

// TestOplogTail shows how to tail FerretDB's oplog: it closes a tailable
// cursor whose first batch is shorter than batchSize, so a tailer asks for
// {ts: {$gte: last}} with batchSize 1 and skips the entry it already has.
func TestOplogTail(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := startClient(t, Config{Oplog: true})
	coll := c.Database("shop").Collection("items")
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	last := oplogEntries(t, c, bson.D{})[0].Lookup("ts")
	oplog := c.Database(OplogDB).Collection(OplogColl)
	tailOpts := options.Find().SetCursorType(options.TailableAwait).SetMaxAwaitTime(200 * time.Millisecond)

	t.Run("gt closes at once", func(t *testing.T) {
		cur, err := oplog.Find(ctx, bson.D{{Key: "ts", Value: bson.D{{Key: "$gt", Value: last}}}}, tailOpts)
		if err != nil {
			t.Fatal(err)
		}
		defer cur.Close(ctx)
		if cur.ID() != 0 {
			t.Fatalf("cursor %d stayed open; FerretDB changed, update the tailing advice", cur.ID())
		}
	})
	t.Run("gte with batch 1 waits", func(t *testing.T) {
		cur, err := oplog.Find(ctx, bson.D{{Key: "ts", Value: bson.D{{Key: "$gte", Value: last}}}}, tailOpts.SetBatchSize(1))
		if err != nil {
			t.Fatal(err)
		}
		defer cur.Close(ctx)
		if cur.ID() == 0 || !cur.Next(ctx) {
			t.Fatalf("cursor closed: %v", cur.Err())
		}
		go func() {
			time.Sleep(500 * time.Millisecond)
			coll.InsertOne(context.Background(), bson.D{{Key: "_id", Value: 2}})
		}()
		start := time.Now()
		for cur.Next(ctx) {
			if v, ok := cur.Current.Lookup("o", "_id").AsInt64OK(); ok && v == 2 {
				t.Logf("new entry seen %v after the tail began", time.Since(start))
				return
			}
		}
		t.Fatalf("tail ended without the new entry: %v", cur.Err())
	})
}

// TestOplogDeleteIsRelogged pins why TrimOplog uses compact: deleting from
// the oplog adds one `d` entry per deleted entry.
func TestOplogDeleteIsRelogged(t *testing.T) {
	ctx := context.Background()
	c := startClient(t, Config{Oplog: true})
	coll := c.Database("shop").Collection("items")
	for i := range 5 {
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: i}}); err != nil {
			t.Fatal(err)
		}
	}
	oplog := c.Database(OplogDB).Collection(OplogColl)
	before := oplogEntries(t, c, bson.D{})
	first := before[0]
	res, err := oplog.DeleteOne(ctx, bson.D{{Key: "_id", Value: first.Lookup("_id")}})
	if err != nil || res.DeletedCount != 1 {
		t.Fatalf("delete: %v, %v", res, err)
	}
	all := oplogEntries(t, c, bson.D{})
	if len(all) != len(before) {
		t.Fatalf("%d entries after delete, want %d (one fewer + 1 logging the delete)", len(all), len(before))
	}
	if ns := all[len(all)-1].Lookup("ns").StringValue(); ns != "local.oplog.rs" {
		t.Fatalf("last entry ns = %q", ns)
	}
}

func TestTrimOplog(t *testing.T) {
	ctx := context.Background()
	const keep = 10
	c := startClient(t, Config{Oplog: true, OplogEntries: keep})
	coll := c.Database("shop").Collection("items")
	docs := make([]any, 25)
	for i := range docs {
		docs[i] = bson.D{{Key: "_id", Value: i}}
	}
	if _, err := coll.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}

	t.Run("wrong budget", func(t *testing.T) {
		n, err := TrimOplog(ctx, c, keep+1)
		if !errors.Is(err, ErrOplogBudget) || n != 0 {
			t.Fatalf("removed %d, %v; want ErrOplogBudget", n, err)
		}
	})
	t.Run("trims oldest", func(t *testing.T) {
		// The start-up no-op entry (and FerretDB's own log of it) come first.
		want := int64(len(oplogEntries(t, c, bson.D{}))) - keep
		n, err := TrimOplog(ctx, c, keep)
		if err != nil || n != want {
			t.Fatalf("removed %d, %v; want %d", n, err, want)
		}
		all := oplogEntries(t, c, bson.D{})
		if len(all) != keep {
			t.Fatalf("%d entries left", len(all))
		}
		for i, e := range all {
			if id := e.Lookup("o", "_id").Int32(); id != int32(15+i) {
				t.Fatalf("entry %d is _id %d; want the newest kept in order", i, id)
			}
		}
	})
	t.Run("nothing to trim", func(t *testing.T) {
		if n, err := TrimOplog(ctx, c, keep); err != nil || n != 0 {
			t.Fatalf("removed %d, %v", n, err)
		}
	})
	t.Run("trimmer", func(t *testing.T) {
		for i := 100; i < 120; i++ {
			if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: i}}); err != nil {
				t.Fatal(err)
			}
		}
		// The trimmer runs until cancelled; the test waits for its effect
		// (however slow the machine), then stops it.
		tctx, cancel := context.WithCancel(ctx)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- RunOplogTrimmer(tctx, c, 50*time.Millisecond, keep) }()
		for deadline := time.Now().Add(2 * time.Minute); len(oplogEntries(t, c, bson.D{})) != keep; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d entries after 2 minutes of trimming, want %d", len(oplogEntries(t, c, bson.D{})), keep)
			}
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("trimmer: %v", err)
		}
		if n := len(oplogEntries(t, c, bson.D{})); n != keep {
			t.Fatalf("%d entries after trimmer, want %d", n, keep)
		}
	})
}

func TestTrimOplogMissing(t *testing.T) {
	c := startClient(t, Config{})
	if _, err := TrimOplog(context.Background(), c, 10); !errors.Is(err, ErrNoOplog) {
		t.Fatalf("err = %v; want ErrNoOplog", err)
	}
}

// TestFreshOplogHasAnEntry: a backup right after start must find an oplog
// position, so a new oplog starts with a no-op entry.
func TestFreshOplogHasAnEntry(t *testing.T) {
	c := startClient(t, Config{Oplog: true})
	all := oplogEntries(t, c, bson.D{{Key: "op", Value: "n"}})
	if len(all) != 1 {
		t.Fatalf("%d no-op entries in a fresh oplog, want 1", len(all))
	}
	if _, err := EnsureOplog(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if again := oplogEntries(t, c, bson.D{{Key: "op", Value: "n"}}); len(again) != 1 {
		t.Fatalf("EnsureOplog on a non-empty oplog added entries: %d", len(again))
	}
}
