package restore

import (
	"bytes"
	"context"
	"encoding/hex"
	"reflect"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Entries as a 5.0-8.0 primary logs them (OpObserverImpl): every entry
// carries its collection's ui; create logs the options and the idIndex;
// preRenameCollection logs {renameCollection: from, to, stayTemp,
// dropTarget: <UUID of the dropped target>} on "<from db>.$cmd" with the
// source's ui, and o2 {numRecords} when it drops a target; a drop logs
// o2 {numRecords}.
type serverLog struct {
	t       *testing.T
	ts      uint32
	entries []bson.Raw
}

func uuidOf(t *testing.T, h string) bson.Binary {
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != 16 {
		t.Fatalf("uuid %q", h)
	}
	return bson.Binary{Subtype: 4, Data: b}
}

func (l *serverLog) add(op, ns, ui string, o, o2 bson.D) {
	l.ts++
	d := bson.D{{Key: "op", Value: op}, {Key: "ns", Value: ns}, {Key: "ui", Value: uuidOf(l.t, ui)}, {Key: "o", Value: o}}
	if o2 != nil {
		d = append(d, bson.E{Key: "o2", Value: o2})
	}
	d = append(d, bson.E{Key: "ts", Value: bson.Timestamp{T: 1700000000 + l.ts, I: 1}}, bson.E{Key: "t", Value: int64(1)},
		bson.E{Key: "v", Value: int64(2)}, bson.E{Key: "wall", Value: bson.DateTime(1700000000000)})
	l.entries = append(l.entries, mustRaw(l.t, d))
}

func (l *serverLog) create(db, coll, ui string, opts ...bson.E) {
	o := append(bson.D{{Key: "create", Value: coll}}, opts...)
	o = append(o, bson.E{Key: "idIndex", Value: bson.D{{Key: "v", Value: 2}, {Key: "key", Value: bson.D{{Key: "_id", Value: 1}}}, {Key: "name", Value: "_id_"}}})
	l.add("c", db+".$cmd", ui, o, nil)
}

func (l *serverLog) insert(ns, ui string, id any) {
	l.add("i", ns, ui, bson.D{{Key: "_id", Value: id}, {Key: "v", Value: ns}}, nil)
}

func (l *serverLog) rename(from, to, ui, dropTarget string, n int64) {
	db, _, _ := strings.Cut(from, ".")
	o := bson.D{{Key: "renameCollection", Value: from}, {Key: "to", Value: to}, {Key: "stayTemp", Value: false}}
	var o2 bson.D
	if dropTarget != "" {
		o = append(o, bson.E{Key: "dropTarget", Value: uuidOf(l.t, dropTarget)})
		o2 = bson.D{{Key: "numRecords", Value: n}}
	}
	l.add("c", db+".$cmd", ui, o, o2)
}

func (l *serverLog) drop(ns, ui string, n int64) {
	db, coll, _ := strings.Cut(ns, ".")
	l.add("c", db+".$cmd", ui, bson.D{{Key: "drop", Value: coll}}, bson.D{{Key: "numRecords", Value: n}})
}

const (
	uuidSrc  = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	uuidOut  = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	uuidTmp  = "cccccccccccccccccccccccccccccccc"
	uuidC    = "dddddddddddddddddddddddddddddddd"
	uuidTmp2 = "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"
)

func ids(t *testing.T, docs []bson.D) []string {
	var out []string
	for _, d := range docs {
		out = append(out, extJSON(t, bson.D{d[0]}))
	}
	return out
}

// TestReplayRenames: $out into an existing collection, convertToCapped and
// a rename across databases (as 5.0+ servers log each: a temporary
// collection renamed over the target with dropTarget) replay on the
// embedded server to the state at consistent_to, and on MongoDB send the
// renameCollection commands those entries require; a collection the dump
// read under its new name gets the writes made under its old one, with no
// rename sent.
func TestReplayRenames(t *testing.T) {
	ctx := context.Background()
	client := start(t)
	src := coll{db: "app", name: "src", docs: []bson.D{{{Key: "_id", Value: 1}}, {{Key: "_id", Value: 2}}}, uuid: uuidSrc}
	out := coll{db: "app", name: "out", docs: []bson.D{{{Key: "_id", Value: "stale"}}}, uuid: uuidOut,
		indexes: []bson.D{{{Key: "v", Value: 2}, {Key: "key", Value: bson.D{{Key: "v", Value: 1}}}, {Key: "name", Value: "v_1"}}}}
	c := coll{db: "app", name: "c", docs: []bson.D{{{Key: "_id", Value: 10}}}, uuid: uuidC}

	l := &serverLog{t: t}
	// $out: a temporary collection, the target's indexes built on it, the
	// results inserted, renamed over the target.
	l.create("app", "tmp.agg_out.1", uuidTmp)
	l.add("c", "app.$cmd", uuidTmp, bson.D{{Key: "createIndexes", Value: "tmp.agg_out.1"}, {Key: "v", Value: 2},
		{Key: "key", Value: bson.D{{Key: "v", Value: 1}}}, {Key: "name", Value: "v_1"}}, nil)
	l.insert("app.tmp.agg_out.1", uuidTmp, "r1")
	l.insert("app.tmp.agg_out.1", uuidTmp, "r2")
	l.rename("app.tmp.agg_out.1", "app.out", uuidTmp, uuidOut, 1)
	// convertToCapped: a capped clone renamed over the original.
	l.insert("app.c", uuidC, 11)
	l.create("app", "tmp1a2b3.convertToCapped.c", uuidTmp2, bson.E{Key: "capped", Value: true}, bson.E{Key: "size", Value: int64(4096)})
	l.insert("app.tmp1a2b3.convertToCapped.c", uuidTmp2, 10)
	l.insert("app.tmp1a2b3.convertToCapped.c", uuidTmp2, 11)
	l.rename("app.tmp1a2b3.convertToCapped.c", "app.c", uuidTmp2, uuidC, 2)
	l.insert("app.c", uuidTmp2, 12)
	// A rename across databases: copied into a temporary collection of
	// the target database, renamed within it, the source dropped.
	const uuidX = "ffffffffffffffffffffffffffffffff"
	l.insert("app.src", uuidSrc, 3)
	l.create("other", "tmpAbCdE.renameCollection", uuidX)
	for _, id := range []int{1, 2, 3} {
		l.insert("other.tmpAbCdE.renameCollection", uuidX, id)
	}
	l.rename("other.tmpAbCdE.renameCollection", "other.moved", uuidX, "", 0)
	l.drop("app.src", uuidSrc, 3)
	l.insert("other.moved", uuidX, 4)

	data := oplogDump([]coll{src, out, c}, l.entries).archive(t)
	rep, cmds, err := replayWith(t, client, data, modeWrites, Options{Drop: true})
	if err != nil {
		t.Fatal(err)
	}
	var renames []string
	for _, cmd := range cmds {
		// The rename commands, and what the copy that stands in for one
		// sends (an insert without "ordered", a drop).
		if strings.HasPrefix(cmd, `admin {"renameCollection"`) || strings.Contains(cmd, `{"drop":`) ||
			strings.Contains(cmd, `{"insert":`) && !strings.Contains(cmd, `"ordered"`) {
			renames = append(renames, cmd)
		}
	}
	// FerretDB has no dropTarget: the target is dropped first; it renames
	// no name with a dot: the documents are copied, the source dropped.
	wantWrites := []string{
		`app {"drop":"out"}`, `admin {"renameCollection":"app.tmp.agg_out.1","to":"app.out"}`,
		`app {"insert":"out","documents":[{"_id":"r1","v":"app.tmp.agg_out.1"},{"_id":"r2","v":"app.tmp.agg_out.1"}]}`,
		`app {"drop":"tmp.agg_out.1"}`,
		`app {"drop":"c"}`, `admin {"renameCollection":"app.tmp1a2b3.convertToCapped.c","to":"app.c"}`,
		`app {"insert":"c","documents":[{"_id":10,"v":"app.tmp1a2b3.convertToCapped.c"},{"_id":11,"v":"app.tmp1a2b3.convertToCapped.c"}]}`,
		`app {"drop":"tmp1a2b3.convertToCapped.c"}`,
		`other {"drop":"moved"}`, `admin {"renameCollection":"other.tmpAbCdE.renameCollection","to":"other.moved"}`,
		`other {"insert":"moved","documents":[{"_id":1,"v":"other.tmpAbCdE.renameCollection"},{"_id":2,"v":"other.tmpAbCdE.renameCollection"},{"_id":3,"v":"other.tmpAbCdE.renameCollection"}]}`,
		`other {"drop":"tmpAbCdE.renameCollection"}`,
		`app {"drop":"src"}`,
	}
	if !reflect.DeepEqual(renames, wantWrites) {
		t.Fatalf("renames\n got %v\nwant %v", renames, wantWrites)
	}
	wantRenames := []string{
		`admin {"renameCollection":"app.tmp.agg_out.1","to":"app.out","dropTarget":true}`,
		`admin {"renameCollection":"app.tmp1a2b3.convertToCapped.c","to":"app.c","dropTarget":true}`,
		`admin {"renameCollection":"other.tmpAbCdE.renameCollection","to":"other.moved","dropTarget":true}`,
	}
	for ns, want := range map[string][]string{
		"app.out":           {`{"_id":"r1"}`, `{"_id":"r2"}`},
		"app.c":             {`{"_id":10}`, `{"_id":11}`, `{"_id":12}`},
		"other.moved":       {`{"_id":1}`, `{"_id":2}`, `{"_id":3}`, `{"_id":4}`},
		"app.src":           nil,
		"app.tmp.agg_out.1": nil,
	} {
		db, name, _ := strings.Cut(ns, ".")
		if got := ids(t, readAll(t, client.Database(db).Collection(name))); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %v, want %v", ns, got, want)
		}
	}
	var cs []struct {
		Options struct {
			Capped bool `bson:"capped"`
		} `bson:"options"`
	}
	cur, err := client.Database("app").ListCollections(ctx, bson.D{{Key: "name", Value: "c"}})
	if err != nil || cur.All(ctx, &cs) != nil || len(cs) != 1 || !cs[0].Options.Capped {
		t.Errorf("app.c is not capped after convertToCapped: %+v %v", cs, err)
	}
	if got := indexSet(t, client.Database("app").Collection("out")); !reflect.DeepEqual(got, []string{"_id_", "v_1"}) {
		t.Errorf("app.out indexes %v", got)
	}
	if !rep.OK {
		t.Fatalf("report %+v", rep)
	}

	_, applied, err := replayWith(t, client, data, modeApplyOps, Options{Drop: true})
	if err != nil {
		t.Fatal(err)
	}
	renames = renames[:0]
	for _, cmd := range applied {
		if strings.HasPrefix(cmd, `admin {"renameCollection"`) {
			renames = append(renames, cmd)
		}
	}
	if !reflect.DeepEqual(renames, wantRenames) {
		t.Fatalf("applyOps path renames\n got %v\nwant %v", renames, wantRenames)
	}

	t.Run("read under its new name", func(t *testing.T) {
		// The dump read app.d after app.c was renamed to it: same UUID.
		d := coll{db: "app", name: "d", docs: []bson.D{{{Key: "_id", Value: 1}}, {{Key: "_id", Value: 2}}}, uuid: uuidSrc}
		l := &serverLog{t: t}
		l.insert("app.c", uuidSrc, 2)
		l.rename("app.c", "app.d", uuidSrc, "", 0)
		l.insert("app.d", uuidSrc, 3)
		data := oplogDump([]coll{d}, l.entries).archive(t)
		p, err := Plan(ctx, bytes.NewReader(data), Options{Drop: true})
		if err != nil {
			t.Fatal(err)
		}
		rep, cmds, err := replayWith(t, client, data, modeWrites, Options{Drop: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cmds {
			if strings.Contains(c, "renameCollection") || strings.Contains(c, `"insert":"c"`) {
				t.Fatalf("sent %s (oplog only: %v)", c, p.OplogOnly)
			}
		}
		if got := ids(t, readAll(t, client.Database("app").Collection("d"))); !reflect.DeepEqual(got, []string{`{"_id":1}`, `{"_id":2}`, `{"_id":3}`}) {
			t.Fatalf("app.d %v", got)
		}
		if !rep.OK {
			t.Fatalf("report %+v", rep)
		}
	})
}
