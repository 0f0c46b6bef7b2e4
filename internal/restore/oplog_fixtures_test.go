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
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

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
			rec.cmds = append(rec.cmds, db+" "+extJSON(t, cmd))
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
			`txntest {"delete":"c","deletes":[{"q":{"_id":1},"limit":1}],"ordered":false}`,
			`txntest {"update":"c","updates":[{"q":{"_id":0},"u":{"$set":{"x":1}}}],"ordered":false}`,
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
			`admin {"applyOps":[{"op":"i","ns":"txntest.c","o":{"_id":0,"x":0}}]}`,
			`admin {"applyOps":[{"op":"u","ns":"txntest.c","o":{"$set":{"x":1}},"o2":{"_id":0}}]}`,
			`admin {"applyOps":[{"op":"d","ns":"txntest.c","o":{"_id":1}}]}`,
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
