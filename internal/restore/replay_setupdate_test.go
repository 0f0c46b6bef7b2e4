package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/a0backup/a0/internal/embedded"
)

// TestReplayUpdatesSetBased: on a FerretDB target without the _id lookup
// index every update by _id reads the whole collection. The updates of a
// batch are read with one find, applied in Go and written back with one
// delete (with the batch's deletes) and an insert; the forms whose result
// is not certain (a path through an array, a missing parent, a value the
// server may take as identical) keep their own statement. The documents
// must be byte for byte what the per-statement replay (the same archive
// restored with the lookup index: an update statement per entry, a diff
// read and replaced) leaves.
func TestReplayUpdatesSetBased(t *testing.T) {
	// With more than replayFullReadFrom ObjectIds the documents are read
	// by a read of the whole collection, fewer by a $in.
	for _, extra := range []int{0, replayFullReadFrom} {
		t.Run(fmt.Sprintf("extra=%d", extra), func(t *testing.T) { testReplayUpdatesSetBased(t, extra) })
	}
}

func testReplayUpdatesSetBased(t *testing.T, extra int) {
	ctx := context.Background()
	srv, err := embedded.Start(ctx, embedded.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	client, err := srv.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Disconnect(context.Background()) })

	id := objectIDs()
	sub := func() bson.D {
		return bson.D{{Key: "x", Value: int32(1)}, {Key: "y", Value: bson.D{{Key: "z", Value: "q"}}},
			{Key: "arr", Value: bson.A{int32(1), int32(2), bson.D{{Key: "k", Value: int32(1)}}}}}
	}
	doc := func(i int) bson.D {
		return bson.D{{Key: "_id", Value: id(i)}, {Key: "n", Value: int32(i)}, {Key: "v", Value: int64(1)}, {Key: "s", Value: "a"},
			{Key: "sub", Value: sub()}, {Key: "arr", Value: bson.A{int32(1), int32(2), int32(3)}}, {Key: "tags", Value: bson.A{"a", "b"}}}
	}
	var docs []bson.D
	for i := range 30 + extra {
		docs = append(docs, doc(i))
	}
	const missing = 500 // no such document: an update of it leaves it missing
	diff := func(d bson.D) bson.D { return bson.D{{Key: "$v", Value: int32(2)}, {Key: "diff", Value: d}} }
	set := func(d bson.D) bson.D { return bson.D{{Key: "$v", Value: int32(1)}, {Key: "$set", Value: d}} }
	updates := []struct {
		doc int
		o   bson.D
		// own: the form keeps its own update statement.
		own bool
	}{
		// $v:2 diffs (mongod >= 5.0): fields, sub-documents, arrays.
		{doc: 0, o: diff(bson.D{{Key: "u", Value: bson.D{{Key: "s", Value: "b"}}}, {Key: "i", Value: bson.D{{Key: "new", Value: int32(1)}}}})},
		{doc: 1, o: diff(bson.D{{Key: "d", Value: bson.D{{Key: "s", Value: false}}}, {Key: "ssub", Value: bson.D{
			{Key: "u", Value: bson.D{{Key: "x", Value: int32(2)}}}, {Key: "i", Value: bson.D{{Key: "w", Value: int32(5)}}},
			{Key: "sy", Value: bson.D{{Key: "d", Value: bson.D{{Key: "z", Value: false}}}, {Key: "i", Value: bson.D{{Key: "z2", Value: int32(1)}}}}}}}})},
		{doc: 2, o: diff(bson.D{{Key: "sarr", Value: bson.D{{Key: "a", Value: true}, {Key: "u1", Value: int32(9)}, {Key: "u4", Value: int32(7)}}}})},
		{doc: 3, o: diff(bson.D{{Key: "sarr", Value: bson.D{{Key: "a", Value: true}, {Key: "l", Value: int32(2)}}}})},
		{doc: 4, o: diff(bson.D{{Key: "ssub", Value: bson.D{{Key: "sarr", Value: bson.D{{Key: "a", Value: true},
			{Key: "s2", Value: bson.D{{Key: "u", Value: bson.D{{Key: "k", Value: int32(2)}}}, {Key: "i", Value: bson.D{{Key: "m", Value: "n"}}}}}}}}}})},
		{doc: missing, o: diff(bson.D{{Key: "u", Value: bson.D{{Key: "s", Value: "b"}}}})},
		// Equal to the document as numbers: FerretDB leaves it as it is.
		{doc: 5, o: diff(bson.D{{Key: "u", Value: bson.D{{Key: "v", Value: int32(1)}}}}), own: true},
		// Replacements: FerretDB's whole-document $set, plain ones.
		{doc: 6, o: set(bson.D{{Key: "_id", Value: id(6)}, {Key: "n", Value: int32(6)}, {Key: "v", Value: int64(2)}, {Key: "s", Value: "a"}})},
		{doc: 7, o: bson.D{{Key: "n", Value: int32(7)}, {Key: "other", Value: "x"}, {Key: "d", Value: bson.D{{Key: "b", Value: int32(1)}, {Key: "a", Value: int32(2)}}}}},
		{doc: 8, o: bson.D{{Key: "_id", Value: id(8)}, {Key: "z", Value: bson.A{bson.D{{Key: "q", Value: int32(1)}}}}, {Key: "a", Value: 1.5}}},
		{doc: missing + 1, o: bson.D{{Key: "n", Value: int32(1)}}},
		{doc: 9, o: func() bson.D { d := doc(9); d[2].Value = int32(1); return d }(), own: true},
		{doc: 21, o: bson.D{{Key: "n", Value: int32(21)}, {Key: "_id", Value: id(21)}, {Key: "x", Value: bson.A{}}}},
		{doc: 19, o: func() bson.D { d := doc(19)[1:]; d[1].Value = int32(1); return d }()}, // no _id: never equal
		// Legacy operators (oplog v1): sorted paths, new fields appended.
		{doc: 10, o: set(bson.D{{Key: "s", Value: "c"}, {Key: "sub.x", Value: int32(5)}, {Key: "zz", Value: int32(1)}, {Key: "aa", Value: int32(2)}})},
		{doc: 11, o: bson.D{{Key: "$unset", Value: bson.D{{Key: "s", Value: true}, {Key: "sub.y.z", Value: true}}}}},
		{doc: 12, o: bson.D{{Key: "$v", Value: int32(1)}, {Key: "$unset", Value: bson.D{{Key: "tags", Value: true}}},
			{Key: "$set", Value: bson.D{{Key: "sub.new", Value: bson.D{{Key: "a", Value: int32(1)}}}, {Key: "sub.y.q", Value: "r"}}}}},
		{doc: 13, o: set(bson.D{{Key: "arr.1", Value: int32(5)}}), own: true},
		{doc: 14, o: set(bson.D{{Key: "nope.x", Value: int32(1)}}), own: true},
		{doc: 15, o: bson.D{{Key: "$unset", Value: bson.D{{Key: "nope.x", Value: true}}}}},
		{doc: 16, o: set(bson.D{{Key: "v", Value: int32(1)}}), own: true},
		{doc: 17, o: set(bson.D{{Key: "s", Value: "a"}})},
		{doc: 18, o: set(bson.D{{Key: "sub.y", Value: "flat"}, {Key: "t", Value: bson.D{{Key: "_id", Value: int32(1)}}}})},
	}
	for i := 30; i < 30+extra; i++ {
		updates = append(updates, struct {
			doc int
			o   bson.D
			own bool
		}{doc: i, o: set(bson.D{{Key: "s", Value: fmt.Sprint("m", i)}})})
	}
	var entries []bson.Raw
	ts := uint32(1700000000)
	add := func(e bson.D) {
		e[0].Value = bson.Timestamp{T: ts, I: uint32(len(entries) + 1)}
		entries = append(entries, mustRaw(t, e))
	}
	own := 0
	for _, u := range updates {
		add(opEntry(ts, "u", "app.c", u.o, bson.D{{Key: "_id", Value: id(u.doc)}}))
		if u.own {
			own++
		}
	}
	add(opEntry(ts, "d", "app.c", bson.D{{Key: "_id", Value: id(20)}}, nil))
	add(opEntry(ts, "i", "app.c", doc(100), nil))
	// A second entry on document 0 flushes: a batch of its own, after.
	add(opEntry(ts, "u", "app.c", set(bson.D{{Key: "s", Value: "after"}}), bson.D{{Key: "_id", Value: id(0)}}))
	data := oplogDump([]coll{{db: "app", name: "c", docs: docs}}, entries).archive(t)

	type counts struct{ finds, updates, deletes int }
	restore := func(indexed bool) ([]bson.Raw, counts) {
		t.Helper()
		var mu sync.Mutex
		var c counts
		opts := Options{Drop: true, testMode: modeWrites, testCommandHook: func(next commander) commander {
			return func(ctx context.Context, db string, cmd bson.D) (bson.Raw, error) {
				if cmd[0].Value == "c" || cmd[0].Key == "getMore" {
					mu.Lock()
					switch cmd[0].Key {
					case "find":
						c.finds++
					case "update":
						c.updates += len(cmd[1].Value.(bson.A))
					case "delete":
						c.deletes += len(cmd[1].Value.(bson.A))
					}
					mu.Unlock()
				}
				return next(ctx, db, cmd)
			}
		}}
		if indexed {
			opts.IndexIDLookups = func(ctx context.Context, db string, colls []string) error {
				_, err := srv.IndexIDLookups(ctx, db, colls)
				return err
			}
		}
		p, err := Plan(ctx, bytes.NewReader(data), opts)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := Run(ctx, client, bytes.NewReader(data), p, opts, &Progress{})
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK || rep.OplogApplied != int64(len(entries)) {
			t.Fatalf("report OK %v, applied %d of %d", rep.OK, rep.OplogApplied, len(entries))
		}
		return readRaw(t, client.Database("app").Collection("c")), c
	}
	want, _ := restore(true)
	got, c := restore(false)
	if len(got) != len(want) {
		t.Fatalf("%d documents, the per-statement replay leaves %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("document %d\n got %s\nwant %s", i, got[i], want[i])
		}
	}
	// The first batch: one find, one delete statement, the uncertain
	// forms' own statements; the second: one update statement.
	if w := (counts{finds: 1, deletes: 1, updates: own + 1}); c != w {
		t.Fatalf("statements on app.c %+v, want %+v", c, w)
	}
}

// readRaw reads a collection's documents in _id order as stored.
func readRaw(t *testing.T, c *mongo.Collection) []bson.Raw {
	t.Helper()
	cur, err := c.Find(context.Background(), bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		t.Fatal(err)
	}
	var out []bson.Raw
	for cur.Next(context.Background()) {
		out = append(out, append(bson.Raw(nil), cur.Current...))
	}
	if err := cur.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestReplayUpdatesSetBasedWriteBackFails: the set-based updates delete
// the documents they change before they insert them again; an insert that
// fails there fails the restore (which the job reports as partly restored),
// never an OK report over missing documents.
func TestReplayUpdatesSetBasedWriteBackFails(t *testing.T) {
	ctx := context.Background()
	client := start(t)
	id := objectIDs()
	var docs []bson.D
	var entries []bson.Raw
	for i := range 3 {
		docs = append(docs, bson.D{{Key: "_id", Value: id(i)}, {Key: "v", Value: int32(i)}})
		e := opEntry(1700000000, "u", "app.c", bson.D{{Key: "v", Value: int32(10 + i)}}, bson.D{{Key: "_id", Value: id(i)}})
		e[0].Value = bson.Timestamp{T: 1700000000, I: uint32(i + 1)}
		entries = append(entries, mustRaw(t, e))
	}
	data := oplogDump([]coll{{db: "app", name: "c", docs: docs}}, entries).archive(t)
	refused := errors.New("refused by the test")
	opts := Options{Drop: true, testMode: modeWrites, testCommandHook: func(next commander) commander {
		return func(ctx context.Context, db string, cmd bson.D) (bson.Raw, error) {
			if cmd[0].Key == "insert" {
				return nil, refused
			}
			return next(ctx, db, cmd)
		}
	}}
	p, err := Plan(ctx, bytes.NewReader(data), opts)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(ctx, client, bytes.NewReader(data), p, opts, &Progress{})
	if !errors.Is(err, refused) || !strings.Contains(err.Error(), "not all written back") {
		t.Fatalf("Run: %v (report %+v), want the refused write back", err, rep)
	}
}

// TestReplayUpdatesCappedKeepStatements: a capped collection keeps its
// documents in insertion order, which a delete and an insert would
// change: its updates keep their own statements, and the order stays.
func TestReplayUpdatesCappedKeepStatements(t *testing.T) {
	ctx := context.Background()
	client := start(t)
	id := objectIDs()
	var docs []bson.D
	var entries []bson.Raw
	for i := range 4 {
		docs = append(docs, bson.D{{Key: "_id", Value: id(i)}, {Key: "v", Value: int32(i)}})
	}
	for i := range 2 {
		e := opEntry(1700000000, "u", "app.c", bson.D{{Key: "v", Value: int32(10 + i)}}, bson.D{{Key: "_id", Value: id(i)}})
		e[0].Value = bson.Timestamp{T: 1700000000, I: uint32(i + 1)}
		entries = append(entries, mustRaw(t, e))
	}
	capped := bson.D{{Key: "capped", Value: true}, {Key: "size", Value: int64(1 << 20)}}
	data := oplogDump([]coll{{db: "app", name: "c", options: capped, docs: docs}}, entries).archive(t)
	var mu sync.Mutex
	kinds := map[string]int{}
	opts := Options{Drop: true, testMode: modeWrites, testCommandHook: func(next commander) commander {
		return func(ctx context.Context, db string, cmd bson.D) (bson.Raw, error) {
			mu.Lock()
			kinds[cmd[0].Key]++
			mu.Unlock()
			return next(ctx, db, cmd)
		}
	}}
	p, err := Plan(ctx, bytes.NewReader(data), opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Run(ctx, client, bytes.NewReader(data), p, opts, &Progress{}); err != nil {
		t.Fatal(err)
	}
	if kinds["find"] != 0 || kinds["delete"] != 0 || kinds["insert"] != 0 || kinds["update"] != 1 {
		t.Fatalf("commands %v, want one update command and no find, delete or insert", kinds)
	}
	cur, err := client.Database("app").Collection("c").Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "$natural", Value: 1}}))
	if err != nil {
		t.Fatal(err)
	}
	var got []bson.D
	if err := cur.All(ctx, &got); err != nil {
		t.Fatal(err)
	}
	want := []string{}
	for i, v := range []int32{10, 11, 2, 3} {
		want = append(want, extJSON(t, bson.D{{Key: "_id", Value: id(i)}, {Key: "v", Value: v}}))
	}
	var gotS []string
	for _, d := range got {
		gotS = append(gotS, extJSON(t, d))
	}
	if strings.Join(gotS, "\n") != strings.Join(want, "\n") {
		t.Fatalf("natural order\n got %s\nwant %s", strings.Join(gotS, "\n"), strings.Join(want, "\n"))
	}
}
