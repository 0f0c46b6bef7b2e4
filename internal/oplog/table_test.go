package oplog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/oracle"
)

// verdict is a decision as the tests spell it: "kind/action".
func verdict(e Entry) string {
	d := Decide(e)
	return string(d.Kind) + "/" + d.Action.String()
}

func verdicts(es []Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = verdict(e)
	}
	return out
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func cat(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// TestDecideRealEntries asserts the table's decision for every entry of the
// oplogs written by real mongod servers (mongo-tools' test data).
func TestDecideRealEntries(t *testing.T) {
	noop := "noop/skip"
	tests := []struct {
		file []string
		want []string
	}{
		{[]string{"mongorestore", "oplogs", "bson", "collMod.bson"}, []string{"collMod/apply"}},
		{[]string{"mongorestore", "oplogs", "bson", "collMod_with_hidden.bson"}, []string{"collMod/apply", "collMod/apply"}},
		{[]string{"mongorestore", "oplogs", "bson", "commit_index.bson"}, []string{"startIndexBuild/skip", "commitIndexBuild/index-catalog"}},
		{[]string{"mongorestore", "oplogs", "bson", "create_index.bson"}, []string{"createIndexes/index-catalog"}},
		{[]string{"mongorestore", "oplogs", "bson", "drop_collection.bson"}, []string{"drop/apply"}},
		{[]string{"mongorestore", "oplogs", "bson", "drop_db.bson"}, []string{"dropDatabase/apply"}},
		{[]string{"mongorestore", "oplogs", "bson", "drop_index.bson"}, []string{"dropIndexes/index-catalog"}},
		// 8.0 retryable vectored inserts (multiOpType 1) are no transaction (issue 24).
		{[]string{"mongorestore", "oplogs", "bson", "vectored_insert.bson"}, []string{"applyOps/apply-each"}},
		{[]string{"mongorestore", "oplogs", "bson", "linked_vectored_inserts.bson"}, []string{"applyOps/apply-each", "applyOps/apply-each"}},
		{[]string{"mongorestore", "oplogs", "bson", "bypassDocumentValidation.bson"}, []string{noop, "create/apply", "insert/apply", "insert/apply", "insert/apply", noop}},
		{[]string{"mongorestore", "oplogs", "bson", "collMod_indexUniqueness.bson"}, cat([]string{"create/apply"}, repeat("createIndexes/index-catalog", 4), repeat("collMod/apply", 20))},
		{[]string{"mongorestore", "commit_indexes_build", "oplog.bson"}, cat(repeat(noop, 3), []string{"create/apply", "insert/apply", "startIndexBuild/skip", "commitIndexBuild/index-catalog"}, repeat(noop, 8), []string{"startIndexBuild/skip", "commitIndexBuild/index-catalog"})},
		{[]string{"mongorestore", "create_indexes", "oplog.bson"}, cat([]string{noop, "create/apply", noop, "createIndexes/index-catalog"}, repeat(noop, 11), []string{"createIndexes/index-catalog"})},
		{[]string{"mongorestore", "dump_with_noop_in_oplog", "oplog.bson"}, []string{noop, noop, "create/apply", "insert/apply"}},
		{[]string{"mongodump", "importCollection.bson"}, []string{"importCollection/refuse"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.file, "/"), func(t *testing.T) {
			got := verdicts(parseAll(t, readBSON(t, oracle.Fixture(t, tt.file...))))
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("decisions\n got %v\nwant %v", got, tt.want)
			}
		})
	}
	t.Run("collMod_ttl_index and oplog_partial_skips", func(t *testing.T) {
		// Their kinds, whatever the count: the test of the replay
		// checks what they do.
		for _, dir := range []string{"collMod_ttl_index", "oplog_partial_skips"} {
			kinds := map[string]int{}
			for _, e := range parseAll(t, readBSON(t, oracle.Fixture(t, "mongorestore", dir, "oplog.bson"))) {
				kinds[verdict(e)]++
			}
			for k := range kinds {
				if strings.HasSuffix(k, "/refuse") {
					t.Errorf("%s: %s refused", dir, k)
				}
			}
			t.Logf("%s: %v", dir, kinds)
		}
	})
}

// TestDecideEveryKind covers the kinds no fixture holds, from entries
// shaped as the server writes them.
func TestDecideEveryKind(t *testing.T) {
	lsid := bson.D{{Key: "id", Value: "session"}}
	tests := []struct {
		entry bson.D
		want  string
	}{
		{bson.D{{Key: "op", Value: "n"}, {Key: "ns", Value: ""}, {Key: "o", Value: bson.D{{Key: "msg", Value: "x"}}}}, "noop/skip"},
		{bson.D{{Key: "op", Value: "ci"}, {Key: "ns", Value: "a.b"}, {Key: "o", Value: bson.D{}}}, "record-id/skip"},
		{bson.D{{Key: "op", Value: "cd"}, {Key: "ns", Value: "a.b"}, {Key: "o", Value: bson.D{}}}, "record-id/skip"},
		{bson.D{{Key: "op", Value: "cu"}, {Key: "ns", Value: "a.b"}, {Key: "o", Value: bson.D{}}}, "record-id/skip"},
		{bson.D{{Key: "op", Value: "km"}, {Key: "ns", Value: "a.b"}, {Key: "o", Value: bson.D{}}}, "record-id/skip"},
		{bson.D{{Key: "op", Value: "x"}, {Key: "ns", Value: "a.b"}, {Key: "o", Value: bson.D{}}}, "unknown-op/refuse"},
		{bson.D{{Key: "op", Value: "u"}, {Key: "ns", Value: "a.b"}, {Key: "o", Value: bson.D{{Key: "$v", Value: 2}, {Key: "diff", Value: bson.D{}}}}, {Key: "o2", Value: bson.D{{Key: "_id", Value: 1}}}}, "update/apply"},
		{bson.D{{Key: "op", Value: "c"}, {Key: "ns", Value: "a.$cmd"}, {Key: "o", Value: bson.D{{Key: "renameCollection", Value: "a.b"}, {Key: "to", Value: "a.c"}}}}, "renameCollection/apply"},
		{bson.D{{Key: "op", Value: "c"}, {Key: "ns", Value: "a.$cmd"}, {Key: "o", Value: bson.D{{Key: "abortIndexBuild", Value: "b"}}}}, "abortIndexBuild/skip"},
		{bson.D{{Key: "op", Value: "c"}, {Key: "ns", Value: "a.$cmd"}, {Key: "o", Value: bson.D{{Key: "setMultikeyMetadata", Value: "b"}}}}, "setMultikeyMetadata/skip"},
		{bson.D{{Key: "op", Value: "c"}, {Key: "ns", Value: "a.$cmd"}, {Key: "o", Value: bson.D{{Key: "dbCheck", Value: "b"}}}}, "dbCheck/skip"},
		{bson.D{{Key: "op", Value: "c"}, {Key: "ns", Value: "a.$cmd"}, {Key: "o", Value: bson.D{{Key: "convertToCapped", Value: "b"}, {Key: "size", Value: 100}}}}, "convertToCapped/apply"},
		{bson.D{{Key: "op", Value: "c"}, {Key: "ns", Value: "a.$cmd"}, {Key: "o", Value: bson.D{{Key: "emptycapped", Value: "b"}}}}, "emptycapped/apply"},
		{bson.D{{Key: "op", Value: "c"}, {Key: "ns", Value: "a.$cmd"}, {Key: "o", Value: bson.D{{Key: "frobnicate", Value: "b"}}}}, "unknown-command/refuse"},
		{bson.D{{Key: "op", Value: "c"}, {Key: "ns", Value: "a.$cmd"}, {Key: "o", Value: bson.D{{Key: "upgradeDowngradeViewlessTimeseries", Value: "b"}}}}, "upgradeDowngradeViewlessTimeseries/refuse"},
		{bson.D{{Key: "op", Value: "c"}, {Key: "ns", Value: "admin.$cmd"}, {Key: "o", Value: bson.D{{Key: "commitTransaction", Value: 1}}}, {Key: "lsid", Value: lsid}, {Key: "txnNumber", Value: int64(1)}}, "commitTransaction/commit"},
		{bson.D{{Key: "op", Value: "c"}, {Key: "ns", Value: "admin.$cmd"}, {Key: "o", Value: bson.D{{Key: "abortTransaction", Value: 1}}}, {Key: "lsid", Value: lsid}, {Key: "txnNumber", Value: int64(1)}}, "abortTransaction/abort"},
		{bson.D{{Key: "op", Value: "c"}, {Key: "ns", Value: "admin.$cmd"}, {Key: "o", Value: bson.D{{Key: "applyOps", Value: bson.A{}}, {Key: "prepare", Value: true}}}, {Key: "lsid", Value: lsid}, {Key: "txnNumber", Value: int64(1)}}, "transaction-prepare/buffer"},
		{bson.D{{Key: "op", Value: "c"}, {Key: "ns", Value: "admin.$cmd"}, {Key: "o", Value: bson.D{{Key: "applyOps", Value: bson.A{}}, {Key: "partialTxn", Value: true}}}, {Key: "lsid", Value: lsid}, {Key: "txnNumber", Value: int64(1)}}, "transaction-partial/buffer"},
		{bson.D{{Key: "op", Value: "c"}, {Key: "ns", Value: "admin.$cmd"}, {Key: "o", Value: bson.D{{Key: "applyOps", Value: bson.A{}}}}}, "applyOps/apply-each"},
	}
	for _, tt := range tests {
		raw, err := bson.Marshal(tt.entry)
		if err != nil {
			t.Fatal(err)
		}
		e, err := Parse(raw)
		if err != nil {
			t.Fatalf("%v: %v", tt.entry, err)
		}
		if got := verdict(e); got != tt.want {
			t.Errorf("%v: got %s, want %s", tt.entry, got, tt.want)
		}
	}
}

// TestCheckCapture: the dump refuses what mongodump refuses, also inside
// an applyOps, and lets everything else through.
func TestCheckCapture(t *testing.T) {
	imp := parseAll(t, readBSON(t, oracle.Fixture(t, "mongodump", "importCollection.bson")))
	var ce *CaptureError
	if err := CheckCapture(imp[0]); !errors.As(err, &ce) || ce.Kind != KindImportCollection || ce.NS != "test.foo" {
		t.Fatalf("importCollection: %v", err)
	}
	rename := bson.D{{Key: "op", Value: "c"}, {Key: "ns", Value: "a.$cmd"}, {Key: "o", Value: bson.D{{Key: "renameCollection", Value: "a.b"}, {Key: "to", Value: "a.c"}, {Key: "dropTarget", Value: true}}}}
	nested := bson.D{{Key: "op", Value: "c"}, {Key: "ns", Value: "admin.$cmd"}, {Key: "o", Value: bson.D{{Key: "applyOps", Value: bson.A{rename}}}}}
	sysver := bson.D{{Key: "op", Value: "u"}, {Key: "ns", Value: "admin.system.version"}, {Key: "o", Value: bson.D{{Key: "$set", Value: bson.D{{Key: "x", Value: 1}}}}}, {Key: "o2", Value: bson.D{{Key: "_id", Value: "authSchema"}}}}
	// A rename is replayed (issue 24): not refused, also inside applyOps.
	for name, d := range map[string]bson.D{"rename": rename, "rename in applyOps": nested} {
		raw, _ := bson.Marshal(d)
		e, err := Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckCapture(e); err != nil {
			t.Errorf("%s refused: %v", name, err)
		}
	}
	for name, d := range map[string]bson.D{"system.version": sysver} {
		raw, _ := bson.Marshal(d)
		e, err := Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckCapture(e); !errors.As(err, &ce) {
			t.Errorf("%s: not refused: %v", name, err)
		} else if !strings.Contains(err.Error(), "run the backup again") {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := CheckCapture(imp[0]); err == nil || !strings.Contains(err.Error(), "importCollection of test.foo") {
		t.Fatalf("message: %v", err)
	}
	for _, f := range []string{"create_index.bson", "drop_db.bson", "vectored_insert.bson", "commit_index.bson"} {
		for _, e := range parseAll(t, readBSON(t, oracle.Fixture(t, "mongorestore", "oplogs", "bson", f))) {
			if err := CheckCapture(e); err != nil {
				t.Errorf("%s refused: %v", f, err)
			}
		}
	}
}

// TestTargets: every namespace an entry names, renameCollection's target
// included.
func TestTargets(t *testing.T) {
	rename := bson.D{{Key: "op", Value: "c"}, {Key: "ns", Value: "a.$cmd"}, {Key: "o", Value: bson.D{{Key: "renameCollection", Value: "a.b"}, {Key: "to", Value: "prod.orders"}, {Key: "dropTarget", Value: true}}}}
	raw, _ := bson.Marshal(rename)
	e, _ := Parse(raw)
	tg, err := TargetsOf(e)
	if err != nil || !reflect.DeepEqual(tg.Namespaces, []string{"a.b", "prod.orders"}) {
		t.Fatalf("rename: %v %v", tg, err)
	}
	db := parseAll(t, readBSON(t, oracle.Fixture(t, "mongorestore", "oplogs", "bson", "drop_db.bson")))[0]
	if tg, _ := TargetsOf(db); tg.Database != "test" || len(tg.Namespaces) != 0 {
		t.Fatalf("dropDatabase: %+v", tg)
	}
	ci := parseAll(t, readBSON(t, oracle.Fixture(t, "mongorestore", "oplogs", "bson", "create_index.bson")))[0]
	if tg, _ := TargetsOf(ci); !reflect.DeepEqual(tg.Namespaces, []string{"test.foo"}) {
		t.Fatalf("createIndexes: %+v", tg)
	}
}

// TestReduce: applyOps gets the fields mongorestore sends, nothing else.
func TestReduce(t *testing.T) {
	raws := readBSON(t, oracle.Fixture(t, "mongorestore", "oplogs", "bson", "bypassDocumentValidation.bson"))
	e, err := Parse(raws[2]) // an insert of a retryable write: lsid, txnNumber, stmtId, ui...
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, f := range Reduce(e, nil) {
		keys = append(keys, f.Key)
	}
	if want := []string{"ts", "t", "v", "op", "ns", "o", "o2"}; !reflect.DeepEqual(keys, want) && !reflect.DeepEqual(keys, want[:6]) {
		t.Fatalf("reduced to %v", keys)
	}
	extra := bson.D{{Key: "ts", Value: bson.RawValue{}}, {Key: "op", Value: "i"}}
	_ = extra
	crafted := bson.D{{Key: "op", Value: "u"}, {Key: "ns", Value: "a.b"}, {Key: "o", Value: bson.D{{Key: "$v", Value: 2}, {Key: "diff", Value: bson.D{}}}},
		{Key: "o2", Value: bson.D{{Key: "_id", Value: 1}}}, {Key: "needsRetryImage", Value: "preImage"}, {Key: "preImageOpTime", Value: bson.D{}},
		{Key: "rid", Value: int64(5)}, {Key: "ui", Value: "x"}, {Key: "wall", Value: "w"}, {Key: "stmtId", Value: 1}}
	raw, _ := bson.Marshal(crafted)
	e, _ = Parse(raw)
	got := fmt.Sprint(Reduce(e, nil))
	for _, k := range []string{"needsRetryImage", "preImageOpTime", "rid", "ui", "wall", "stmtId"} {
		if strings.Contains(got, k) {
			t.Errorf("reduced entry keeps %s: %s", k, got)
		}
	}
}

// TestDocsListEveryKind keeps docs/consistency.md's decision table true:
// every kind of the table is in it.
func TestDocsListEveryKind(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "consistency.md"))
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[Kind]bool{KindUnknownOp: true, KindUnknownCommand: true, KindApplyOps: true, KindTxn: true,
		KindTxnPartial: true, KindTxnPrepare: true, KindCommitTransaction: true, KindAbortTransaction: true, KindSystemVersionWrite: true}
	for _, d := range commandRules {
		kinds[d.Kind] = true
	}
	for _, d := range opRules {
		kinds[d.Kind] = true
	}
	for k := range kinds {
		if !strings.Contains(string(b), "`"+string(k)+"`") {
			t.Errorf("docs/consistency.md does not list kind `%s`", k)
		}
	}
}
