package restore

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/a0backup/a0/internal/oracle"
)

// These tests replay oplog entries written by real mongod servers (the
// mongo-tools test data, located through internal/oracle). Each asserts the
// exact commands the replay sends: on MongoDB (applyOps; no mongod runs
// here, so a recorder answers ok in its place) and on the embedded server
// (the real FerretDB), where the resulting collections are also compared
// with what the entries must produce.

func readBSONFile(t *testing.T, path string) []bson.Raw {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []bson.Raw
	for len(b) > 0 {
		n := int(binary.LittleEndian.Uint32(b))
		out = append(out, bson.Raw(b[:n]))
		b = b[n:]
	}
	return out
}

// oplogDump is an a0 archive holding colls and the raw oplog entries.
func oplogDump(colls []coll, entries []bson.Raw) dump {
	var all []byte
	for _, e := range entries {
		all = append(all, e...)
	}
	placeholders := make([]bson.D, len(entries)) // counted by the manifest
	for i := range placeholders {
		placeholders[i] = bson.D{}
	}
	return dump{colls: colls, oplog: placeholders, replace: map[string][]byte{"oplog.bson": all}}
}

// dirArchive packs a mongodump directory as a plain tar.gz.
func dirArchive(t *testing.T, dir string) []byte {
	t.Helper()
	var fs []file
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		b, err := os.ReadFile(p)
		fs = append(fs, file{filepath.ToSlash(rel), b})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(fs, func(i, j int) bool {
		// oplog.bson last, as mongodump writes it.
		if (fs[i].name == "oplog.bson") != (fs[j].name == "oplog.bson") {
			return fs[j].name == "oplog.bson"
		}
		return fs[i].name < fs[j].name
	})
	return tgz(t, fs)
}

type recorded struct {
	mu   sync.Mutex // the commands of one replay batch run at once
	cmds []string
}

func extJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := bson.MarshalExtJSON(v, false, false)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// replayWith restores data with the replay in mode; applyOps mode answers
// every applyOps (and the drops of dropDatabase) with ok instead of a
// server. It returns the recorded commands, "db cmd" as relaxed
// Extended JSON.
func replayWith(t *testing.T, client *mongo.Client, data []byte, mode replayMode, opts Options) (*Report, []string, error) {
	t.Helper()
	rec := &recorded{}
	opts.testMode = mode
	opts.testCommandHook = func(next commander) commander {
		return func(ctx context.Context, db string, cmd bson.D) (bson.Raw, error) {
			rec.mu.Lock()
			rec.cmds = append(rec.cmds, db+" "+extJSON(t, cmd))
			rec.mu.Unlock()
			if mode == modeApplyOps {
				return bson.Raw{13, 0, 0, 0, 16, 'o', 'k', 0, 1, 0, 0, 0, 0}, nil
			}
			return next(ctx, db, cmd)
		}
	}
	ctx := context.Background()
	p, err := Plan(ctx, bytes.NewReader(data), opts)
	if err != nil {
		return nil, nil, err
	}
	rep, err := Run(ctx, client, bytes.NewReader(data), p, opts, &Progress{})
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rep, rec.cmds, err
}

func relaxed(t *testing.T, docs []bson.D) []string {
	t.Helper()
	out := make([]string, len(docs))
	for i, d := range docs {
		out[i] = extJSON(t, d)
	}
	sort.Strings(out)
	return out
}

func relaxedRaw(t *testing.T, docs []bson.Raw) []string {
	t.Helper()
	out := make([]string, len(docs))
	for i, d := range docs {
		var v bson.D
		if err := bson.Unmarshal(d, &v); err != nil {
			t.Fatal(err)
		}
		out[i] = extJSON(t, v)
	}
	sort.Strings(out)
	return out
}

type txnCase struct {
	Ops       []bson.Raw `bson:"ops"`
	NS        string     `bson:"ns"`
	Postimage []bson.Raw `bson:"postimage"`
}

// TestReplayTransactionFixtures replays every case of mongo-tools'
// common/txn/testdata/oplog_entries.json (unprepared, prepared, committed,
// aborted, multi-entry chained by prevOpTime, applyOps that are not
// transactions) on the embedded server and compares the collection with the
// case's postimage.
func TestReplayTransactionFixtures(t *testing.T) {
	b, err := os.ReadFile(oracle.Fixture(t, "txn", "oplog_entries.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases map[string]txnCase
	if err := bson.UnmarshalExtJSON(bytes.TrimSpace(b), false, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) != 12 {
		t.Fatalf("%d cases", len(cases))
	}
	client := start(t)
	names := make([]string, 0, len(cases))
	for n := range cases {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		tc := cases[name]
		t.Run(name, func(t *testing.T) {
			data := oplogDump(nil, tc.Ops).archive(t)
			rep, cmds, err := replayWith(t, client, data, modeWrites, Options{Drop: true})
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasSuffix(tc.NS, ".$cmd") {
				// The multiOpType case names admin.$cmd and has no
				// postimage: its two inserts go to test.foo.
				tc.NS = "test.foo"
				tc.Postimage = []bson.Raw{mustRaw(t, bson.D{{Key: "_id", Value: 4}, {Key: "x", Value: -20}, {Key: "y", Value: 4}}),
					mustRaw(t, bson.D{{Key: "_id", Value: 5}, {Key: "x", Value: -30}, {Key: "y", Value: 11}})}
			}
			db, c, _ := strings.Cut(tc.NS, ".")
			got := relaxed(t, readAll(t, client.Database(db).Collection(c)))
			if want := relaxedRaw(t, tc.Postimage); tc.Postimage != nil && !reflect.DeepEqual(got, want) {
				t.Fatalf("collection %s\n got %v\nwant %v\ncommands %v", tc.NS, got, want, cmds)
			}
			if strings.Contains(name, "aborted") && rep.OplogSkipped[skipTxnAborted] == 0 {
				t.Fatalf("aborted operations not counted: %+v", rep.OplogSkipped)
			}
			if !rep.OK {
				t.Fatalf("report %+v", rep)
			}
		})
	}
	t.Run("commands", func(t *testing.T) {
		data := oplogDump(nil, cases["small, unprepared"].Ops).archive(t)
		_, writes, err := replayWith(t, client, data, modeWrites, Options{Drop: true})
		if err != nil {
			t.Fatal(err)
		}
		wantWrites := []string{
			// i(0), then u(0) on the same document: the batch is sent first.
			`txntest {"insert":"c","documents":[{"_id":0,"x":0}],"ordered":false}`,
			// The next batch's commands are on different documents and
			// go at once, in any order: compared sorted.
			`txntest {"delete":"c","deletes":[{"q":{"_id":1},"limit":1}],"ordered":false}`,
			`txntest {"update":"c","updates":[{"q":{"_id":0},"u":{"$set":{"x":1}}}],"ordered":false}`,
		}
		if len(writes) == len(wantWrites) {
			sort.Strings(writes[1:])
		}
		if !reflect.DeepEqual(writes, wantWrites) {
			t.Fatalf("writes\n got %v\nwant %v", writes, wantWrites)
		}
		_, applied, err := replayWith(t, client, data, modeApplyOps, Options{Drop: true})
		if err != nil {
			t.Fatal(err)
		}
		// As mongorestore: each operation of the transaction, reduced (no ui).
		wantApplyOps := []string{
			`admin {"applyOps":[{"op":"i","ns":"txntest.c","o":{"_id":0,"x":0}}],"bypassDocumentValidation":true}`,
			`admin {"applyOps":[{"op":"u","ns":"txntest.c","o":{"$set":{"x":1}},"o2":{"_id":0}}],"bypassDocumentValidation":true}`,
			`admin {"applyOps":[{"op":"d","ns":"txntest.c","o":{"_id":1}}],"bypassDocumentValidation":true}`,
		}
		if !reflect.DeepEqual(applied, wantApplyOps) {
			t.Fatalf("applyOps\n got %v\nwant %v", applied, wantApplyOps)
		}
	})
	t.Run("large prepared committed, chain broken", func(t *testing.T) {
		// Without its first entry the transaction began before the
		// capture: refused, not half applied.
		ops := cases["large, prepared, committed"].Ops[1:]
		_, _, err := replayWith(t, client, oplogDump(nil, ops).archive(t), modeWrites, Options{Drop: true})
		if err == nil || !strings.Contains(err.Error(), "before the oplog capture") {
			t.Fatalf("got %v", err)
		}
	})
}

func mustRaw(t testing.TB, d bson.D) bson.Raw {
	t.Helper()
	b, err := bson.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func indexSet(t *testing.T, c *mongo.Collection) []string {
	t.Helper()
	var out []string
	for n := range indexNames(t, c) {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// TestReplayRealDumps restores the mongo-tools dumps that carry an
// oplog.bson written by a real server, with its replay, on the embedded
// server, and checks the commands of the MongoDB path.
func TestReplayRealDumps(t *testing.T) {
	client := start(t)
	ctx := context.Background()
	tests := []struct {
		dir string
		// applyOps are the commands of the MongoDB path.
		applyOps []string
		check    func(t *testing.T, rep *Report, cmds []string)
	}{
		{dir: "commit_indexes_build",
			applyOps: []string{
				`admin {"applyOps":[{"ts":{"$timestamp":{"t":1588114172,"i":1}},"t":1,"v":2,"op":"c","ns":"commit_index.$cmd","o":{"create":"test","idIndex":{"v":2,"key":{"_id":1},"name":"_id_"}}}],"bypassDocumentValidation":true}`,
				`admin {"applyOps":[{"ts":{"$timestamp":{"t":1588114172,"i":2}},"t":1,"v":2,"op":"i","ns":"commit_index.test","o":{"_id":{"$oid":"5ea8b2fca5fd2094399b496a"},"a":1.0}}],"bypassDocumentValidation":true}`,
			},
			check: func(t *testing.T, rep *Report, cmds []string) {
				c := client.Database("commit_index").Collection("test")
				if got := relaxed(t, readAll(t, c)); !reflect.DeepEqual(got, []string{`{"_id":{"$oid":"5ea8b2fca5fd2094399b496a"},"a":1.0}`}) {
					t.Fatalf("data %v", got)
				}
				// commitIndexBuild a_1 built after the replay; b_1 is
				// partial, which FerretDB refuses: reported, not lost.
				if got := indexSet(t, c); !reflect.DeepEqual(got, []string{"_id_", "a_1"}) {
					t.Fatalf("indexes %v", got)
				}
				if rep.IndexesFromOplog != 2 || rep.OplogSkipped["startIndexBuild"] != 2 || rep.OplogSkipped["noop"] != 11 {
					t.Fatalf("report %+v", rep)
				}
			}},
		{dir: "create_indexes",
			check: func(t *testing.T, rep *Report, cmds []string) {
				c := client.Database("create_indexes").Collection("test")
				if got := indexSet(t, c); !reflect.DeepEqual(got, []string{"_id_", "a_1"}) {
					t.Fatalf("indexes %v", got)
				}
				if rep.IndexesFromOplog != 2 || rep.OplogSkipped["noop"] != 13 {
					t.Fatalf("report %+v", rep)
				}
			}},
		{dir: "dump_with_noop_in_oplog",
			applyOps: []string{
				`admin {"applyOps":[{"ts":{"$timestamp":{"t":1416869724,"i":1}},"v":2,"op":"c","ns":"test.$cmd","o":{"create":"data"}}],"bypassDocumentValidation":true}`,
				`admin {"applyOps":[{"ts":{"$timestamp":{"t":1416869724,"i":2}},"v":2,"op":"i","ns":"test.data","o":{"_id":{"$oid":"5473b75c8e32da600b686ed7"},"a":1.0}}],"bypassDocumentValidation":true}`,
			},
			check: func(t *testing.T, rep *Report, cmds []string) {
				want := []string{
					`test {"create":"data"}`,
					`test {"insert":"data","documents":[{"_id":{"$oid":"5473b75c8e32da600b686ed7"},"a":1.0}],"ordered":false}`,
				}
				if !reflect.DeepEqual(cmds, want) {
					t.Fatalf("commands\n got %v\nwant %v", cmds, want)
				}
				if rep.OplogSkipped["noop"] != 2 || rep.OplogApplied != 2 {
					t.Fatalf("report %+v", rep)
				}
			}},
		{dir: "oplog_partial_skips",
			check: func(t *testing.T, rep *Report, cmds []string) {
				// config.* and config.system.sessions are never written;
				// db3.c1 gets its inserts.
				for _, c := range cmds {
					if strings.HasPrefix(c, "config ") {
						t.Fatalf("wrote config: %s", c)
					}
				}
				n, err := client.Database("db3").Collection("c1").CountDocuments(ctx, bson.D{})
				if err != nil || n != 5 {
					t.Fatalf("db3.c1: %d %v", n, err)
				}
				if rep.OplogSkipped[skipNotRestored] == 0 {
					t.Fatalf("report %+v", rep)
				}
			}},
		{dir: "collMod_ttl_index",
			check: func(t *testing.T, rep *Report, cmds []string) {
				c := client.Database("mongodump_test_db").Collection("coll1")
				n, err := c.CountDocuments(ctx, bson.D{})
				if err != nil || n != 10 {
					t.Fatalf("coll1: %d %v", n, err)
				}
				// The collMod only changed the TTL index's option: no
				// command for it, the catalog carries it.
				for _, c := range cmds {
					if strings.Contains(c, "collMod") {
						t.Fatalf("sent %s", c)
					}
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			data := dirArchive(t, oracle.Fixture(t, "mongorestore", tt.dir))
			_, applied, err := replayWith(t, client, data, modeApplyOps, Options{Plain: true, Drop: true})
			if err != nil {
				t.Fatal(err)
			}
			if tt.applyOps != nil && !reflect.DeepEqual(applied, tt.applyOps) {
				t.Fatalf("applyOps\n got %v\nwant %v", applied, tt.applyOps)
			}
			for _, c := range applied {
				for _, k := range []string{`"ui"`, `"lsid"`, `"txnNumber"`, `"stmtId"`, `"prevOpTime"`, `"wall"`, `"h"`} {
					if strings.Contains(c, k) {
						t.Fatalf("applyOps receives %s: %s", k, c)
					}
				}
			}
			rep, cmds, err := replayWith(t, client, data, modeWrites, Options{Plain: true, Drop: true})
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, rep, cmds)
		})
	}
}

// TestReplayRealCommandEntries replays the single command entries of
// mongorestore/oplogs (one per kind) over a collection test.foo.
func TestReplayRealCommandEntries(t *testing.T) {
	// The fixtures are looked up here, on this test's goroutine, before
	// the server starts: oracle.Fixture skips (or, in CI, fails) the test
	// that calls it, and a subtest calling it with this t would end its
	// own goroutine instead ("panic(nil) or runtime.Goexit").
	dir := oracle.Fixture(t, "mongorestore", "oplogs", "bson")
	client := start(t)
	ctx := context.Background()
	foo := coll{db: "test", name: "foo", docs: users(3), indexes: []bson.D{
		{{Key: "v", Value: 2}, {Key: "key", Value: bson.D{{Key: "f", Value: 1}}}, {Key: "name", Value: "f_1"}},
	}}
	entries := func(t *testing.T, name string) []bson.Raw {
		return readBSONFile(t, filepath.Join(dir, name))
	}
	t.Run("drop_index", func(t *testing.T) {
		_, cmds, err := replayWith(t, client, oplogDump([]coll{foo}, entries(t, "drop_index.bson")).archive(t), modeWrites, Options{Drop: true})
		if err != nil || len(cmds) != 0 {
			t.Fatal(err, cmds)
		}
		if got := indexSet(t, client.Database("test").Collection("foo")); !reflect.DeepEqual(got, []string{"_id_"}) {
			t.Fatalf("indexes %v", got)
		}
	})
	t.Run("create_index", func(t *testing.T) {
		plain := foo
		plain.indexes = nil
		rep, _, err := replayWith(t, client, oplogDump([]coll{plain}, entries(t, "create_index.bson")).archive(t), modeWrites, Options{Drop: true})
		if err != nil {
			t.Fatal(err)
		}
		if got := indexSet(t, client.Database("test").Collection("foo")); !reflect.DeepEqual(got, []string{"_id_", "f_1"}) || !rep.OK {
			t.Fatalf("indexes %v, report %+v", got, rep)
		}
	})
	t.Run("drop_collection", func(t *testing.T) {
		rep, cmds, err := replayWith(t, client, oplogDump([]coll{foo}, entries(t, "drop_collection.bson")).archive(t), modeWrites, Options{Drop: true})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(cmds, []string{`test {"drop":"foo"}`}) {
			t.Fatalf("commands %v", cmds)
		}
		if n, _ := client.Database("test").Collection("foo").CountDocuments(ctx, bson.D{}); n != 0 || !rep.OK || rep.Collections[0].DocumentsExpected != 0 {
			t.Fatalf("%d documents, report %+v", n, rep)
		}
	})
	t.Run("drop_db drops only restored collections", func(t *testing.T) {
		other := client.Database("test").Collection("not_restored")
		if _, err := other.InsertOne(ctx, bson.D{{Key: "_id", Value: 1}}); err != nil {
			t.Fatal(err)
		}
		_, cmds, err := replayWith(t, client, oplogDump([]coll{foo}, entries(t, "drop_db.bson")).archive(t), modeWrites, Options{Drop: true})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(cmds, []string{`test {"drop":"foo"}`}) {
			t.Fatalf("commands %v", cmds)
		}
		if n, _ := other.CountDocuments(ctx, bson.D{}); n != 1 {
			t.Fatal("dropDatabase reached a collection outside the restore")
		}
	})
	t.Run("vectored inserts", func(t *testing.T) {
		for _, f := range []string{"vectored_insert.bson", "linked_vectored_inserts.bson"} {
			raws := entries(t, f)
			rep, _, err := replayWith(t, client, oplogDump(nil, raws).archive(t), modeWrites, Options{Drop: true})
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			var want []string
			for _, r := range raws {
				e, _ := bson.Raw(r).LookupErr("o", "applyOps")
				vals, _ := e.Array().Values()
				for _, v := range vals {
					var d bson.D
					bson.Unmarshal(v.Document().Lookup("o").Document(), &d)
					want = append(want, extJSON(t, d))
				}
			}
			sort.Strings(want)
			got := relaxed(t, readAll(t, client.Database("mongodump_test_db").Collection("coll1")))
			if !reflect.DeepEqual(got, want) || !rep.OK {
				t.Fatalf("%s: got %v want %v", f, got, want)
			}
		}
	})
	t.Run("collMod", func(t *testing.T) {
		_, applied, err := replayWith(t, client, oplogDump([]coll{foo}, entries(t, "collMod_with_hidden.bson")).archive(t), modeApplyOps, Options{Drop: true})
		if err != nil || len(applied) != 0 {
			t.Fatal(err, applied) // index options only: nothing to send
		}
	})
}
