package restore

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/oplog"
	"github.com/a0backup/a0/internal/oracle"
)

// replayApplyOps replays oplog (the bytes of an oplog.bson) for plan p on
// the MongoDB path, with a recorder answering ok in place of the server
// (no mongod runs here), and returns the commands sent, in order, and the
// replay's state. No data is restored: the server-side catalog writes
// (views, time-series, users) these tests follow are what FerretDB cannot
// hold.
// dumpedUI is the UUID the test archives give every collection.
var dumpedUI = bson.Binary{Subtype: 4, Data: []byte{0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}}

func replayApplyOps(t *testing.T, p *PlanResult, opts Options, oplogBytes []byte) ([]bson.D, *runState) {
	t.Helper()
	var sent []bson.D
	rs := &runState{opts: opts, prog: &Progress{}, catalog: newIndexCatalog(), done: map[string]bool{}, rep: map[string]*CollectionReport{},
		runHook: func(commander) commander {
			return func(ctx context.Context, db string, cmd bson.D) (bson.Raw, error) {
				if cmd[0].Key == "applyOps" && (db != "admin" || len(cmd) != 2 || cmd[1] != (bson.E{Key: "bypassDocumentValidation", Value: true})) {
					t.Errorf("sent %s %v", db, cmd)
				}
				if cmd[0].Key != "applyOps" {
					cmd = append(bson.D{{Key: "$db", Value: db}}, cmd...)
				}
				// Copied now: the values point into the replay's buffer.
				b, err := bson.Marshal(cmd)
				if err != nil {
					t.Fatal(err)
				}
				var own bson.D
				if err := bson.Unmarshal(b, &own); err != nil {
					t.Fatal(err)
				}
				sent = append(sent, own)
				return bson.Raw{13, 0, 0, 0, 16, 'o', 'k', 0, 1, 0, 0, 0, 0}, nil
			}
		}}
	rs.opts.testMode = modeApplyOps
	sel, err := newMatcher(opts.NS)
	if err != nil {
		t.Fatal(err)
	}
	if err := rs.replayOplog(context.Background(), bufio.NewReader(bytes.NewReader(oplogBytes)), p, sel); err != nil {
		t.Fatal(err)
	}
	return sent, rs
}

// sentOps returns the operations of recorded applyOps commands.
func sentOps(t *testing.T, cmds []bson.D) []bson.D {
	t.Helper()
	var out []bson.D
	for _, c := range cmds {
		if c[0].Key != "applyOps" {
			continue
		}
		for _, op := range c[0].Value.(bson.A) {
			var d bson.D
			b, err := bson.Marshal(op)
			if err != nil {
				t.Fatal(err)
			}
			if err := bson.Unmarshal(b, &d); err != nil {
				t.Fatal(err)
			}
			out = append(out, d)
		}
	}
	return out
}

func field(d bson.D, key string) any {
	for _, f := range d {
		if f.Key == key {
			return f.Value
		}
	}
	return nil
}

// TestReplayTimeseriesFixture replays mongo-tools' ts_dump_with_oplog
// (written by a real 5.0 server: 872 updates of the buckets of
// timeseries_test.foo_ts): every update goes to applyOps, and applying what
// was sent to the dumped buckets gives the 2164 measurements mongo-tools'
// own test expects after the replay (the dump holds 1294). On the embedded
// server the restore is refused, naming the collection.
func TestReplayTimeseriesFixture(t *testing.T) {
	dir := oracle.Fixture(t, "mongorestore", "timeseries_tests", "ts_dump_with_oplog")
	data := dirArchive(t, dir)
	ctx := context.Background()
	p, err := Plan(ctx, bytes.NewReader(data), Options{Plain: true})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(dir + "/oplog.bson")
	if err != nil {
		t.Fatal(err)
	}
	cmds, rs := replayApplyOps(t, p, Options{Plain: true}, raw)
	ops := sentOps(t, cmds)
	if len(ops) != 872 || rs.applied != 872 || len(rs.skipped) != 0 {
		t.Fatalf("%d operations sent, %d applied, skipped %v", len(ops), rs.applied, rs.skippedNS)
	}
	buckets := map[string]bson.D{}
	measurements := func() int {
		n := 0
		for _, b := range buckets {
			data, _ := field(b, "data").(bson.D)
			ts, _ := field(data, "ts").(bson.D)
			n += len(ts)
		}
		return n
	}
	for _, r := range readBSONFile(t, dir+"/timeseries_test/system.buckets.foo_ts.bson") {
		var d bson.D
		if err := bson.Unmarshal(r, &d); err != nil {
			t.Fatal(err)
		}
		buckets[extJSON(t, bson.D{{Key: "k", Value: field(d, "_id")}})] = d
	}
	if n := measurements(); n != 1294 {
		t.Fatalf("the dump holds %d measurements", n)
	}
	for _, op := range ops {
		if field(op, "ns") != "timeseries_test.system.buckets.foo_ts" || field(op, "op") != "u" {
			t.Fatalf("sent %v", op)
		}
		o := field(op, "o").(bson.D)
		key := extJSON(t, bson.D{{Key: "k", Value: field(field(op, "o2").(bson.D), "_id")}})
		doc, skipped, err := oplog.ApplyDiff(buckets[key], field(o, "diff").(bson.D))
		if err != nil || skipped != 0 {
			t.Fatalf("diff onto %s: %d skipped, %v", key, skipped, err)
		}
		buckets[key] = doc
	}
	if n := measurements(); n != 2164 {
		t.Fatalf("%d measurements after the replay, mongo-tools expects 2164", n)
	}
	// The effect is counted on the time-series collection, whose count
	// the applyOps path does not compare.
	if eff := rs.oplog["timeseries_test.foo_ts"]; eff == nil || eff.entries != 872 {
		t.Fatalf("effects %v", rs.oplog)
	}

	client := start(t)
	_, err = Run(ctx, client, bytes.NewReader(data), p, Options{Plain: true}, &Progress{})
	var ue *UnsupportedError
	if !errors.As(err, &ue) || !strings.HasPrefix(ue.Namespace, "timeseries_test.foo_ts") {
		t.Fatalf("embedded server: %v", err)
	}
}

// Entries in the form a 5.0-8.0 primary logs them (OpObserverImpl: inserts,
// updates and deletes of <db>.system.views for createView, collMod of a
// view and its drop, each with the ui of system.views; a plain insert into
// <db>.system.js; user management's writes to admin.system.users).
func systemEntries(t *testing.T) []bson.Raw {
	ui := bson.Binary{Subtype: 4, Data: bytes.Repeat([]byte{7}, 16)}
	e := func(ts uint32, op, ns string, o, o2 bson.D) bson.Raw {
		ui := ui
		if ns == "app.c" {
			ui = dumpedUI // the collection as the test dump lists it
		}
		d := bson.D{{Key: "op", Value: op}, {Key: "ns", Value: ns}, {Key: "ui", Value: ui}, {Key: "o", Value: o}}
		if o2 != nil {
			d = append(d, bson.E{Key: "o2", Value: o2})
		}
		d = append(d, bson.E{Key: "ts", Value: bson.Timestamp{T: ts, I: 1}}, bson.E{Key: "t", Value: int64(1)}, bson.E{Key: "v", Value: int64(2)})
		return mustRaw(t, d)
	}
	user := bson.D{{Key: "_id", Value: "app.alice"}, {Key: "userId", Value: bson.Binary{Subtype: 4, Data: bytes.Repeat([]byte{1}, 16)}},
		{Key: "user", Value: "alice"}, {Key: "db", Value: "app"}, {Key: "credentials", Value: bson.D{}}, {Key: "roles", Value: bson.A{}}}
	return []bson.Raw{
		e(1, "i", "app.c", bson.D{{Key: "_id", Value: 10}}, nil),
		e(2, "i", "app.system.views", bson.D{{Key: "_id", Value: "app.v"}, {Key: "viewOn", Value: "c"}, {Key: "pipeline", Value: bson.A{}}}, nil),
		e(3, "u", "app.system.views", bson.D{{Key: "_id", Value: "app.v"}, {Key: "viewOn", Value: "c"},
			{Key: "pipeline", Value: bson.A{bson.D{{Key: "$project", Value: bson.D{{Key: "a", Value: 1}}}}}}}, bson.D{{Key: "_id", Value: "app.v"}}),
		e(4, "d", "app.system.views", bson.D{{Key: "_id", Value: "app.v"}}, nil),
		e(5, "i", "app.system.js", bson.D{{Key: "_id", Value: "echo"}, {Key: "value", Value: bson.JavaScript("function(x){return x}")}}, nil),
		e(6, "i", "admin.system.users", user, nil),
		e(7, "u", "admin.system.users", bson.D{{Key: "$v", Value: 2}, {Key: "diff", Value: bson.D{{Key: "u", Value: bson.D{{Key: "credentials", Value: bson.D{{Key: "x", Value: 1}}}}}}}}, bson.D{{Key: "_id", Value: "app.alice"}}),
		e(8, "d", "admin.system.users", bson.D{{Key: "_id", Value: "app.alice"}}, nil),
		e(9, "i", "admin.system.version", bson.D{{Key: "_id", Value: "authSchema"}, {Key: "currentVersion", Value: 5}}, nil),
		e(10, "i", "config.system.sessions", bson.D{{Key: "_id", Value: 1}}, nil),
		e(11, "i", "config.settings", bson.D{{Key: "_id", Value: "balancer"}}, nil),
		e(12, "i", "app.system.profile", bson.D{{Key: "_id", Value: 1}}, nil),
	}
}

// TestReplaySystemNamespaces: the replay applies view, system.js, kept
// config and (with --users-and-roles only) user writes, never
// admin.system.version, config.system.sessions or system.profile, and
// names every entry it does not apply.
func TestReplaySystemNamespaces(t *testing.T) {
	ctx := context.Background()
	entries := systemEntries(t)
	var all []byte
	for _, e := range entries {
		all = append(all, e...)
	}
	app := coll{db: "app", name: "c", docs: users(1)}
	data := oplogDump([]coll{app}, entries).archive(t)
	nsOf := func(ops []bson.D) []string {
		var out []string
		for _, o := range ops {
			out = append(out, field(o, "op").(string)+" "+field(o, "ns").(string))
		}
		return out
	}
	for _, tt := range []struct {
		users     bool
		sent      []string
		skippedNS map[string]map[string]int64
	}{
		{users: false,
			sent: []string{"i app.c", "i app.system.views", "u app.system.views", "d app.system.views", "i app.system.js"},
			skippedNS: map[string]map[string]int64{
				skipUsersNotRequested: {"admin.system.users": 3},
				// config.settings is kept, but not in this archive.
				skipNotRestored: {"admin.system.version": 1, "config.system.sessions": 1, "app.system.profile": 1, "config.settings": 1},
			}},
		{users: true,
			sent: []string{"i app.c", "i app.system.views", "u app.system.views", "d app.system.views", "i app.system.js",
				"i admin.system.users", "u admin.system.users", "d admin.system.users"},
			skippedNS: map[string]map[string]int64{
				skipNotRestored: {"admin.system.version": 1, "config.system.sessions": 1, "app.system.profile": 1, "config.settings": 1},
			}},
	} {
		opts := Options{UsersAndRoles: tt.users}
		p, err := Plan(ctx, bytes.NewReader(data), opts)
		if err != nil {
			t.Fatal(err)
		}
		// system.js only the oplog names: restored from empty, behind
		// the non-empty guard; views are not, nor a config collection
		// (the dump does not read config: not new).
		if want := []string{"app.system.js"}; !reflect.DeepEqual(p.OplogOnly, want) {
			t.Fatalf("oplog only %v", p.OplogOnly)
		}
		cmds, rs := replayApplyOps(t, p, opts, all)
		ops := sentOps(t, cmds)
		if got := nsOf(ops); !reflect.DeepEqual(got, tt.sent) {
			t.Fatalf("users %v: sent\n got %v\nwant %v", tt.users, got, tt.sent)
		}
		for _, o := range ops {
			// As the entry, reduced: the view's definition and the
			// user's document reach the server whole.
			if field(o, "ui") != nil || field(o, "t") == nil {
				t.Fatalf("sent %v", o)
			}
		}
		if !reflect.DeepEqual(rs.skippedNS, tt.skippedNS) {
			t.Fatalf("users %v: skipped %v", tt.users, rs.skippedNS)
		}
		if eff := rs.oplog["app.v"]; eff == nil || eff.entries != 3 {
			t.Fatalf("view writes not counted on the view: %v", rs.oplog)
		}
	}

	t.Run("embedded server: refused by name before any write", func(t *testing.T) {
		client := start(t)
		p, err := Plan(ctx, bytes.NewReader(data), Options{Drop: true, UsersAndRoles: true})
		if err != nil {
			t.Fatal(err)
		}
		_, err = Run(ctx, client, bytes.NewReader(data), p, Options{Drop: true, UsersAndRoles: true}, &Progress{})
		var ue *UnsupportedError
		if !errors.As(err, &ue) || !strings.Contains(ue.Namespace, "app.v") || !strings.Contains(ue.Namespace, "admin.system.users") ||
			!strings.Contains(ue.Feature, "view") || !strings.Contains(err.Error(), "nothing was restored") {
			t.Fatalf("got %v", err)
		}
		if n, _ := client.Database("app").Collection("c").CountDocuments(ctx, bson.D{}); n != 0 {
			t.Fatal("data written before the refusal")
		}
	})
}

// TestSkippedEntriesCreateNothing: mongo-tools' oplog_ignore_index (a
// startIndexBuild and an abortIndexBuild of test.skip_index_entries, written
// by a real server) names a namespace only through entries the replay
// skips: it is not a collection created during the dump, so a non-empty
// target is not refused and --drop does not drop it; both entries are named.
func TestSkippedEntriesCreateNothing(t *testing.T) {
	ctx := context.Background()
	client := start(t)
	target := client.Database("test").Collection("skip_index_entries")
	if _, err := target.InsertOne(ctx, bson.D{{Key: "_id", Value: "keep"}}); err != nil {
		t.Fatal(err)
	}
	data := dirArchive(t, oracle.Fixture(t, "mongorestore", "oplog_ignore_index"))
	for _, drop := range []bool{false, true} {
		opts := Options{Plain: true, Drop: drop}
		p, err := Plan(ctx, bytes.NewReader(data), opts)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.OplogOnly) != 0 {
			t.Fatalf("oplog only %v", p.OplogOnly)
		}
		rep, err := Run(ctx, client, bytes.NewReader(data), p, opts, &Progress{})
		if err != nil {
			t.Fatalf("drop %v: %v", drop, err)
		}
		want := map[string]map[string]int64{"startIndexBuild": {"test.skip_index_entries": 1}, "abortIndexBuild": {"test.skip_index_entries": 1}}
		if !reflect.DeepEqual(rep.OplogSkippedNamespaces, want) {
			t.Fatalf("skipped %v", rep.OplogSkippedNamespaces)
		}
		if n, _ := target.CountDocuments(ctx, bson.D{}); n != 1 {
			t.Fatalf("drop %v: the collection outside the restore was dropped", drop)
		}
	}
}

// TestReplayDropDatabaseDropsViews: a dropDatabase drops the views the
// restore wrote in that database (here one the oplog created), not only its
// collections.
func TestReplayDropDatabaseDropsViews(t *testing.T) {
	ctx := context.Background()
	entries := []bson.Raw{
		mustRaw(t, opEntry(1, "i", "app.system.views", bson.D{{Key: "_id", Value: "app.v"}, {Key: "viewOn", Value: "c"}, {Key: "pipeline", Value: bson.A{}}}, nil)),
		mustRaw(t, opEntry(2, "i", "app.c", bson.D{{Key: "_id", Value: 5}}, nil)),
		mustRaw(t, opEntry(3, "c", "app.$cmd", bson.D{{Key: "dropDatabase", Value: 1}}, nil)),
	}
	var all []byte
	for _, e := range entries {
		all = append(all, e...)
	}
	data := oplogDump([]coll{{db: "app", name: "c", docs: users(1)}}, entries).archive(t)
	p, err := Plan(ctx, bytes.NewReader(data), Options{})
	if err != nil {
		t.Fatal(err)
	}
	cmds, _ := replayApplyOps(t, p, Options{}, all)
	var drops []string
	for _, c := range cmds {
		if c[0].Key == "$db" {
			drops = append(drops, extJSON(t, c))
		}
	}
	want := []string{`{"$db":"app","drop":"v"}`, `{"$db":"app","drop":"c"}`}
	if !reflect.DeepEqual(drops, want) {
		t.Fatalf("drops %v", drops)
	}
}

// TestReplayTransactionChecks: an 8.0 retryable vectored insert
// (multiOpType 1) whose prevOpTime points before the capture is applied,
// not refused as a transaction that lost its start (mongo-tools'
// linked_vectored_inserts, second entry alone); a real transaction whose
// chain is broken is refused by Plan, before any write.
func TestReplayTransactionChecks(t *testing.T) {
	ctx := context.Background()
	client := start(t)
	linked := readBSONFile(t, oracle.Fixture(t, "mongorestore", "oplogs", "bson", "linked_vectored_inserts.bson"))
	rep, _, err := replayWith(t, client, oplogDump(nil, linked[1:]).archive(t), modeWrites, Options{Drop: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OplogApplied == 0 || !rep.OK {
		t.Fatalf("report %+v", rep)
	}

	b, err := os.ReadFile(oracle.Fixture(t, "txn", "oplog_entries.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases map[string]txnCase
	if err := bson.UnmarshalExtJSON(bytes.TrimSpace(b), false, &cases); err != nil {
		t.Fatal(err)
	}
	broken := cases["large, prepared, committed"].Ops[1:]
	_, err = Plan(ctx, bytes.NewReader(oplogDump(nil, broken).archive(t)), Options{})
	if !errors.Is(err, ErrOplogEntry) || !errors.Is(err, oplog.ErrTxnChain) {
		t.Fatalf("plan: %v", err)
	}
}

// TestReplayNewTimeseries: a time-series collection created during the dump
// (a 5.0-8.0 server logs the buckets collection's create with its
// timeseries options, the view's definition in system.views, and bucket
// inserts) is replayed through applyOps, counted on the collection's own
// name, and restored from empty behind the non-empty guard.
func TestReplayNewTimeseries(t *testing.T) {
	ctx := context.Background()
	ui := bson.Binary{Subtype: 4, Data: bytes.Repeat([]byte{9}, 16)}
	ts := bson.D{{Key: "timeField", Value: "ts"}, {Key: "metaField", Value: "meta"}, {Key: "granularity", Value: "seconds"}, {Key: "bucketMaxSpanSeconds", Value: int32(3600)}}
	oid := bson.NewObjectID()
	when := bson.DateTime(1700000000000)
	entries := []bson.Raw{
		mustRaw(t, bson.D{{Key: "op", Value: "c"}, {Key: "ns", Value: "app.$cmd"}, {Key: "ui", Value: ui},
			{Key: "o", Value: bson.D{{Key: "create", Value: "system.buckets.m"}, {Key: "clusteredIndex", Value: true}, {Key: "timeseries", Value: ts}}},
			{Key: "ts", Value: bson.Timestamp{T: 1, I: 1}}, {Key: "t", Value: int64(1)}, {Key: "v", Value: int64(2)}}),
		mustRaw(t, bson.D{{Key: "op", Value: "i"}, {Key: "ns", Value: "app.system.views"}, {Key: "ui", Value: bson.Binary{Subtype: 4, Data: bytes.Repeat([]byte{8}, 16)}},
			{Key: "o", Value: bson.D{{Key: "_id", Value: "app.m"}, {Key: "viewOn", Value: "system.buckets.m"},
				{Key: "pipeline", Value: bson.A{bson.D{{Key: "$_internalUnpackBucket", Value: bson.D{{Key: "timeField", Value: "ts"}, {Key: "metaField", Value: "meta"}, {Key: "bucketMaxSpanSeconds", Value: int32(3600)}}}}}}}},
			{Key: "ts", Value: bson.Timestamp{T: 2, I: 1}}, {Key: "t", Value: int64(1)}, {Key: "v", Value: int64(2)}}),
		mustRaw(t, bson.D{{Key: "op", Value: "i"}, {Key: "ns", Value: "app.system.buckets.m"}, {Key: "ui", Value: ui},
			{Key: "o", Value: bson.D{{Key: "_id", Value: oid},
				{Key: "control", Value: bson.D{{Key: "version", Value: int32(1)}, {Key: "min", Value: bson.D{{Key: "_id", Value: oid}, {Key: "ts", Value: when}}}, {Key: "max", Value: bson.D{{Key: "_id", Value: oid}, {Key: "ts", Value: when}}}}},
				{Key: "meta", Value: "sensor1"},
				{Key: "data", Value: bson.D{{Key: "_id", Value: bson.D{{Key: "0", Value: oid}}}, {Key: "ts", Value: bson.D{{Key: "0", Value: when}}}}}}},
			{Key: "ts", Value: bson.Timestamp{T: 3, I: 1}}, {Key: "t", Value: int64(1)}, {Key: "v", Value: int64(2)}}),
	}
	var all []byte
	for _, e := range entries {
		all = append(all, e...)
	}
	data := oplogDump([]coll{{db: "app", name: "c", docs: users(1)}}, entries).archive(t)
	p, err := Plan(ctx, bytes.NewReader(data), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p.OplogOnly, []string{"app.m"}) {
		t.Fatalf("oplog only %v", p.OplogOnly)
	}
	cmds, rs := replayApplyOps(t, p, Options{}, all)
	ops := sentOps(t, cmds)
	if len(ops) != 3 || field(ops[0], "ns") != "app.$cmd" || field(ops[1], "ns") != "app.system.views" || field(ops[2], "ns") != "app.system.buckets.m" {
		t.Fatalf("sent %v", ops)
	}
	if eff := rs.oplog["app.m"]; eff == nil || eff.entries != 3 || len(rs.skipped) != 0 {
		t.Fatalf("effects %v, skipped %v", rs.oplog, rs.skippedNS)
	}
}

// TestReplayKeptConfig: a config collection mongorestore keeps is restored
// from the archive and its oplog writes replayed; the other config
// collections are neither.
func TestReplayKeptConfig(t *testing.T) {
	ctx := context.Background()
	entries := []bson.Raw{
		mustRaw(t, opEntry(1, "i", "config.settings", bson.D{{Key: "_id", Value: "balancer"}}, nil)),
		mustRaw(t, opEntry(2, "i", "config.system.sessions", bson.D{{Key: "_id", Value: 1}}, nil)),
	}
	var all []byte
	for _, e := range entries {
		all = append(all, e...)
	}
	data := oplogDump([]coll{{db: "config", name: "settings", docs: users(1)}, {db: "config", name: "mongos", docs: users(1)}}, entries).archive(t)
	p, err := Plan(ctx, bytes.NewReader(data), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Collections) != 1 || p.Collections[0].Namespace() != "config.settings" || !reflect.DeepEqual(p.Skipped, []string{"config.mongos"}) {
		t.Fatalf("planned %v, skipped %v", p.Collections, p.Skipped)
	}
	cmds, rs := replayApplyOps(t, p, Options{}, all)
	if ops := sentOps(t, cmds); len(ops) != 1 || field(ops[0], "ns") != "config.settings" {
		t.Fatalf("sent %v", ops)
	}
	if !reflect.DeepEqual(rs.skippedNS, map[string]map[string]int64{skipNotRestored: {"config.system.sessions": 1}}) {
		t.Fatalf("skipped %v", rs.skippedNS)
	}
}

// TestReplayTimeseriesDrop: a time-series collection dropped during the
// dump (5.0+: its view's definition deleted, then a drop of its buckets),
// and a 5.0+ dropDatabase (each collection dropped, system.views
// included, then the entry) replay on the MongoDB path: the drop of the
// buckets resets the time-series collection's count (it crashed the
// replay: the buckets' namespace has no count of its own).
func TestReplayTimeseriesDrop(t *testing.T) {
	ctx := context.Background()
	l := &serverLog{t: t}
	tsOpts := bson.D{{Key: "timeField", Value: "ts"}, {Key: "granularity", Value: "seconds"}, {Key: "bucketMaxSpanSeconds", Value: int32(3600)}}
	l.create("app", "system.buckets.m", uuidTmp, bson.E{Key: "clusteredIndex", Value: true}, bson.E{Key: "timeseries", Value: tsOpts})
	l.add("i", "app.system.views", uuidTmp2, bson.D{{Key: "_id", Value: "app.m"}, {Key: "viewOn", Value: "system.buckets.m"},
		{Key: "pipeline", Value: bson.A{bson.D{{Key: "$_internalUnpackBucket", Value: bson.D{{Key: "timeField", Value: "ts"}, {Key: "bucketMaxSpanSeconds", Value: int32(3600)}}}}}}}, nil)
	l.add("i", "app.system.buckets.m", uuidTmp, bson.D{{Key: "_id", Value: bson.NewObjectID()}, {Key: "control", Value: bson.D{{Key: "version", Value: int32(1)}}}}, nil)
	l.add("d", "app.system.views", uuidTmp2, bson.D{{Key: "_id", Value: "app.m"}}, nil)
	l.drop("app.system.buckets.m", uuidTmp, 1)
	l.drop("app.c", uuidC, 1)
	l.drop("app.system.views", uuidTmp2, 0)
	l.add("c", "app.$cmd", uuidC, bson.D{{Key: "dropDatabase", Value: 1}}, nil)
	var all []byte
	for _, e := range l.entries {
		all = append(all, e...)
	}
	data := oplogDump([]coll{{db: "app", name: "c", docs: users(1), uuid: uuidC}}, l.entries).archive(t)
	p, err := Plan(ctx, bytes.NewReader(data), Options{})
	if err != nil {
		t.Fatal(err)
	}
	cmds, rs := replayApplyOps(t, p, Options{}, all)
	var got []string
	for _, o := range sentOps(t, cmds) {
		got = append(got, field(o, "op").(string)+" "+field(o, "ns").(string))
	}
	want := []string{"c app.$cmd", "i app.system.views", "i app.system.buckets.m", "d app.system.views", "c app.$cmd", "c app.$cmd", "c app.$cmd"}
	if !reflect.DeepEqual(got, want) || len(rs.skipped) != 0 {
		t.Fatalf("sent %v, skipped %v", got, rs.skippedNS)
	}
	if eff := rs.oplog["app.m"]; eff == nil || !eff.reset || eff.net != 0 || eff.entries < 5 {
		t.Fatalf("app.m: %+v", eff)
	}
	if _, ok := rs.oplog["app.system.buckets.m"]; ok {
		t.Fatal("the buckets counted apart from their collection")
	}
}
