package restore

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/embedded"
)

// BenchmarkOplogReplay measures the idempotent oplog replay on the embedded
// server (FerretDB on SQLite) as a steady writer's oplog makes it: inserts
// of new documents, whole-document updates (FerretDB's {$v:1, $set: doc})
// and deletes of documents the data holds, mixed one in three, ObjectId
// _ids, into a collection of docs documents. The figure is entries/s of
// the replay alone: from the _id index build before it (counted) to the
// last write acknowledged, taken from the replay's own commands; the data
// load before it is not timed. The same entries at 10k and 100k documents
// show whether the cost grows with the collection; "scan" is the same
// replay without the _id lookup index (Options.IndexIDLookups unset), as
// on an external FerretDB: a batch's updates and deletes there go set
// based, a few reads of the table per batch.
//
//	go test -run '^$' -bench OplogReplay -benchtime 1x -timeout 30m ./internal/restore/
func BenchmarkOplogReplay(b *testing.B) {
	for _, c := range []struct {
		docs, entries int
		index         bool
	}{
		{10_000, 3000, true},
		{100_000, 3000, true},
		{10_000, 150, false},
		{100_000, 300, false},
		// Without the index, updates and deletes go set based: one $in
		// find and one $in delete per batch (docs/consistency.md).
		{100_000, 3000, false},
	} {
		lookups := "index"
		if !c.index {
			lookups = "scan"
		}
		b.Run(fmt.Sprintf("docs=%d/entries=%d/lookups=%s", c.docs, c.entries, lookups), func(b *testing.B) {
			benchReplay(b, c.docs, c.entries, c.index)
		})
	}
}

func benchReplay(b *testing.B, ndocs, nentries int, index bool) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	doc := func(id bson.ObjectID, i int) bson.D {
		return bson.D{{Key: "_id", Value: id}, {Key: "email", Value: "user" + strconv.Itoa(i) + "@example.com"},
			{Key: "tenant", Value: "t" + strconv.Itoa(i%7)}, {Key: "logins", Value: int64(i)},
			{Key: "profile", Value: bson.D{{Key: "name", Value: "User " + strconv.Itoa(i)}, {Key: "tags", Value: bson.A{"a", "b"}}}}}
	}
	ids := make([]bson.ObjectID, ndocs)
	docs := make([]bson.D, ndocs)
	for i := range docs {
		ids[i] = bson.NewObjectID()
		docs[i] = doc(ids[i], i)
	}
	// Updates and deletes pick documents of the data, each at most once
	// (a delete after an update is a later write on the same document,
	// as a writer makes them).
	perm := rng.Perm(ndocs)
	var entries []bson.Raw
	ts := uint32(time.Now().Unix())
	for k := range nentries {
		var e bson.D
		switch k % 3 {
		case 0:
			e = opEntry(ts, "i", "bench.users", doc(bson.NewObjectID(), ndocs+k), nil)
		case 1:
			i := perm[k]
			d := doc(ids[i], i)
			d[3].Value = int64(i + 1000)
			e = opEntry(ts, "u", "bench.users", bson.D{{Key: "$v", Value: 1}, {Key: "$set", Value: d}}, bson.D{{Key: "_id", Value: ids[i]}})
		default:
			e = opEntry(ts, "d", "bench.users", bson.D{{Key: "_id", Value: ids[perm[k]]}}, nil)
		}
		e[0].Value = bson.Timestamp{T: ts, I: uint32(k + 1)}
		entries = append(entries, mustRaw(b, e))
	}
	data := oplogDump([]coll{{db: "bench", name: "users", docs: docs}}, entries).archive(b)

	var replay time.Duration
	byKind := map[string]time.Duration{}
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		srv, err := embedded.Start(ctx, embedded.Config{Dir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		client, err := srv.Connect(ctx)
		if err != nil {
			b.Fatal(err)
		}
		var mu sync.Mutex
		var first, last time.Time
		mark := func(t0, t1 time.Time) {
			mu.Lock()
			if first.IsZero() || t0.Before(first) {
				first = t0
			}
			if t1.After(last) {
				last = t1
			}
			mu.Unlock()
		}
		opts := Options{Drop: true, testMode: modeWrites, testCommandHook: func(next commander) commander {
			return func(ctx context.Context, db string, cmd bson.D) (bson.Raw, error) {
				t0 := time.Now()
				r, err := next(ctx, db, cmd)
				t1 := time.Now()
				mark(t0, t1)
				mu.Lock()
				byKind[cmd[0].Key] += t1.Sub(t0)
				mu.Unlock()
				return r, err
			}
		}}
		if index {
			opts.IndexIDLookups = func(ctx context.Context, db string, colls []string) error {
				t0 := time.Now()
				_, err := srv.IndexIDLookups(ctx, db, colls)
				t1 := time.Now()
				mark(t0, t1)
				mu.Lock()
				byKind["index"] += t1.Sub(t0)
				mu.Unlock()
				return err
			}
		}
		p, err := Plan(ctx, bytes.NewReader(data), opts)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		rep, err := Run(ctx, client, bytes.NewReader(data), p, opts, &Progress{})
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		if rep.OplogApplied != int64(nentries) {
			b.Fatalf("applied %d of %d entries", rep.OplogApplied, nentries)
		}
		// Every third entry inserts, every third deletes: the count is
		// back where it started.
		n, err := client.Database("bench").Collection("users").EstimatedDocumentCount(ctx)
		if err != nil || n != int64(ndocs) {
			b.Fatalf("count after replay = %d, %v; want %d", n, err, ndocs)
		}
		replay += last.Sub(first)
		client.Disconnect(ctx)
		srv.Close()
	}
	b.ReportMetric(float64(nentries)*float64(b.N)/replay.Seconds(), "entries/s")
	b.ReportMetric(replay.Seconds()/float64(b.N), "replay-s")
	// Where the time goes: the one-off index build, and each command
	// kind's total (its entries are a third of the replay each).
	for k, d := range byKind {
		b.ReportMetric(d.Seconds()/float64(b.N), k+"-s")
	}
	if idx := byKind["index"]; idx > 0 {
		b.ReportMetric(float64(nentries)*float64(b.N)/(replay-idx).Seconds(), "entries/s-after-index")
	}
}
