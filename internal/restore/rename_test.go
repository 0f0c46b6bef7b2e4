package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/manifest"
	"github.com/a0backup/a0/internal/oplog"
)

// TestRenamer: mongorestore's --nsFrom/--nsTo syntax (mongo-tools
// mongorestore/ns): "*" pairs, $var$ captures (shortest match), escapes,
// the last matching pair winning, and each malformed pair refused.
func TestRenamer(t *testing.T) {
	type hit struct{ ns, want string } // want "" when no pair matches
	for _, tc := range []struct {
		name     string
		from, to []string
		hits     []hit
		err      string
	}{
		{name: "star", from: []string{"auth0.*"}, to: []string{"auth0_check.*"},
			hits: []hit{{"auth0.users", "auth0_check.users"}, {"auth0.a.b", "auth0_check.a.b"}, {"auth01.users", ""}, {"other.users", ""}}},
		{name: "two stars", from: []string{"*.users_*"}, to: []string{"*_copy.*"},
			hits: []hit{{"app.users_eu", "app_copy.eu"}, {"app.logs", ""}}},
		{name: "variables swap", from: []string{"data.$prefix$_$customer$"}, to: []string{"$customer$.$prefix$"},
			hits: []hit{{"data.orders_acme", "acme.orders"}, {"data.a_b_c", "b_c.a"}, {"data.x", ""}}},
		{name: "star literal with variables", from: []string{"a.$x$*"}, to: []string{"b.$x$"},
			hits: []hit{{"a.c*", "b.c"}, {"a.c", ""}}},
		{name: "escaped star", from: []string{`a.x\*`}, to: []string{`b.y\*`},
			hits: []hit{{"a.x*", "b.y*"}, {"a.xz", ""}}},
		{name: "regexp characters are literal", from: []string{"a.(x)+"}, to: []string{"b.y"},
			hits: []hit{{"a.(x)+", "b.y"}, {"a.xx", ""}}},
		{name: "last pair wins", from: []string{"a.*", "a.special"}, to: []string{"b.*", "c.special"},
			hits: []hit{{"a.special", "c.special"}, {"a.other", "b.other"}}},
		{name: "several pairs", from: []string{"a.*", "x.$c$"}, to: []string{"b.*", "y.$c$_old"},
			hits: []hit{{"a.one", "b.one"}, {"x.two", "y.two_old"}, {"z.two", ""}}},
		{name: "counts differ", from: []string{"a.*", "b.*"}, to: []string{"c.*"}, err: "2 --ns-from and 1 --ns-to"},
		{name: "stars differ", from: []string{"a.*"}, to: []string{"b.c"}, err: "1 '*' in --ns-from and 0 in --ns-to"},
		{name: "odd dollars", from: []string{"a.$x"}, to: []string{"b.$x$"}, err: "odd number of '$'"},
		{name: "unknown variable", from: []string{"a.$x$"}, to: []string{"b.$y$"}, err: "variable $y$ is not in --ns-from"},
		{name: "variable twice", from: []string{"$x$.$x$"}, to: []string{"b.$x$"}, err: "variable $x$ used more than once"},
		{name: "variable in to only", from: []string{"a.*"}, to: []string{"b.$x$*"}, err: "'$' in --ns-to"},
		{name: "empty", from: []string{""}, to: []string{"b.c"}, err: "empty pattern"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := NewRenamer(tc.from, tc.to)
			if tc.err != "" {
				if !errors.Is(err, ErrBadRename) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want ErrBadRename with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range tc.hits {
				got, ok := r.Map(h.ns)
				if ok != (h.want != "") || ok && got != h.want {
					t.Errorf("%s: %q %v, want %q", h.ns, got, ok, h.want)
				}
			}
		})
	}
	if r, err := NewRenamer(nil, nil); r != nil || err != nil {
		t.Fatalf("no pairs: %v %v", r, err)
	}
}

// TestPlanRefusesBadRenames: collisions, system and server namespaces, a
// new name that is renamed too, a --ns-from naming nothing, users and
// roles: refused by Plan, before any write, each saying what.
func TestPlanRefusesBadRenames(t *testing.T) {
	data := dump{colls: []coll{
		{db: "a", name: "x", docs: users(2)}, {db: "a", name: "y", docs: users(2)}, {db: "b", name: "x", docs: users(1)},
	}}.archive(t)
	for _, tc := range []struct {
		name     string
		opts     Options
		noMatch  bool
		contains string
	}{
		{"two onto one", Options{NSFrom: []string{"$db$.x"}, NSTo: []string{"c.x"}}, false, "a.x and b.x would both be renamed c.x"},
		{"into admin", Options{NSFrom: []string{"a.*"}, NSTo: []string{"admin.*"}}, false, "into the server's own database admin"},
		{"into local", Options{NSFrom: []string{"a.*"}, NSTo: []string{"local.*"}}, false, "into the server's own database local"},
		{"into config", Options{NSFrom: []string{"a.*"}, NSTo: []string{"config.*"}}, false, "into the server's own database config"},
		{"system namespace", Options{NSFrom: []string{"a.*"}, NSTo: []string{"c.system.*"}}, false, "a system namespace"},
		{"stored javascript", Options{NSFrom: []string{"a.$c$"}, NSTo: []string{"c.system.js"}}, false, "a system namespace"},
		{"same name", Options{NSFrom: []string{"a.x", "b.x"}, NSTo: []string{"a.x", "c.x"}}, false, "a.x would keep its name"},
		{"not db.coll", Options{NSFrom: []string{"a.$c$"}, NSTo: []string{"$c$"}}, false, `not "db.collection"`},
		{"bad database name", Options{NSFrom: []string{"a.*"}, NSTo: []string{"c d.*"}}, false, "bad database name"},
		{"onto a renamed one", Options{NSFrom: []string{"a.x", "a.y"}, NSTo: []string{"a.y", "a.z"}}, false, "a.x would be renamed a.y, which is renamed too"},
		{"users and roles", Options{NSFrom: []string{"a.*"}, NSTo: []string{"c.*"}, UsersAndRoles: true}, false, "users and roles"},
		{"matches nothing", Options{NSFrom: []string{"a.*", "zz.*"}, NSTo: []string{"c.*", "d.*"}}, true, "--ns-from zz.* matches no collection"},
		{"not selected by --ns", Options{NS: []string{"b"}, NSFrom: []string{"a.*"}, NSTo: []string{"c.*"}}, true, "--ns-from a.* matches no collection"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Plan(context.Background(), bytes.NewReader(data), tc.opts)
			want := ErrBadRename
			if tc.noMatch {
				want = ErrNoMatch
			}
			if !errors.Is(err, want) || !strings.Contains(err.Error(), tc.contains) {
				t.Fatalf("err %v, want %v with %q", err, want, tc.contains)
			}
		})
	}
}

// TestRenameRestore: the planned collections, their indexes and a view
// land under the new names; --ns selects on the old names first; what no
// pair renames is not restored; the old namespaces, which hold other
// documents on the server, are untouched, also with Drop; the non-empty
// rule looks at the new names.
func TestRenameRestore(t *testing.T) {
	ctx := context.Background()
	client := start(t)
	d := sampleDump()
	data := d.archive(t)
	live := []any{bson.D{{Key: "_id", Value: "live"}}}
	if _, err := client.Database("auth0").Collection("users").InsertMany(ctx, live); err != nil {
		t.Fatal(err)
	}
	opts := Options{NS: []string{"auth0.users", "auth0.logs", "other"}, NSFrom: []string{"auth0.*"}, NSTo: []string{"auth0_check.*"}}
	p, err := Plan(ctx, bytes.NewReader(data), opts)
	if err != nil {
		t.Fatal(err)
	}
	var planned []string
	for _, c := range p.Collections {
		planned = append(planned, c.Namespace())
	}
	sort.Strings(planned)
	if want := []string{"auth0_check.logs", "auth0_check.users"}; !reflect.DeepEqual(planned, want) {
		t.Fatalf("planned %v, want %v", planned, want)
	}
	if want := map[string]string{"auth0.logs": "auth0_check.logs", "auth0.users": "auth0_check.users"}; !reflect.DeepEqual(p.Renamed, want) {
		t.Fatalf("renamed %v", p.Renamed)
	}
	for i := range 2 {
		rep, err := Run(ctx, client, bytes.NewReader(data), p, Options{NS: opts.NS, NSFrom: opts.NSFrom, NSTo: opts.NSTo, Drop: i == 1}, &Progress{})
		if i == 1 {
			if err != nil || !rep.OK {
				t.Fatalf("with drop: %v %+v", err, rep)
			}
		} else if err != nil || !rep.OK {
			t.Fatalf("%v %+v", err, rep)
		}
		got := normalize(t, readAll(t, client.Database("auth0_check").Collection("users")))
		if want := normalize(t, d.colls[0].docs); !reflect.DeepEqual(got, want) {
			t.Fatalf("auth0_check.users: %d documents, want %d", len(got), len(want))
		}
		if got := indexSet(t, client.Database("auth0_check").Collection("users")); !reflect.DeepEqual(got, []string{"_id_", "email_1", "tenant_1_n_-1"}) {
			t.Fatalf("auth0_check.users indexes %v", got)
		}
		if got := normalize(t, readAll(t, client.Database("auth0").Collection("users"))); !reflect.DeepEqual(got, []string{`{"_id":"live"}`}) {
			t.Fatalf("auth0.users was written: %v", got)
		}
		for _, ns := range []string{"other.things", "auth0.logs", "auth0_check.empty"} {
			db, name, _ := strings.Cut(ns, ".")
			if n, _ := client.Database(db).Collection(name).CountDocuments(ctx, bson.D{}); n != 0 {
				t.Fatalf("%s was written (%d documents)", ns, n)
			}
		}
	}
	// Without Drop the new names, which now hold documents, are refused.
	_, err = Run(ctx, client, bytes.NewReader(data), p, opts, &Progress{})
	var ne *NonEmptyError
	if !errors.As(err, &ne) || !reflect.DeepEqual(ne.Namespaces, []string{"auth0_check.logs", "auth0_check.users"}) {
		t.Fatalf("err %v, want the new names refused as non-empty", err)
	}
}

// TestRenameReplay: an oplog on the renamed namespaces (inserts, updates,
// deletes, an applyOps, a committed transaction, createIndexes, a
// collection the oplog creates, a rename and a drop within the set, a
// dropDatabase) lands on the new names, on FerretDB (writes) and in the
// applyOps the MongoDB path sends; entries of other namespaces are
// skipped; the old names are never written.
func TestRenameReplay(t *testing.T) {
	ctx := context.Background()
	client := start(t)
	const ui = "00112233445566778899aabbccddeeff"
	id := func(v any) bson.D { return bson.D{{Key: "_id", Value: v}} }
	inner := func(op, ns string, o bson.D) bson.D {
		return bson.D{{Key: "op", Value: op}, {Key: "ns", Value: ns}, {Key: "o", Value: o}}
	}
	lsid := bson.D{{Key: "id", Value: bson.Binary{Subtype: 4, Data: make([]byte, 16)}}}
	entries := []bson.D{
		opEntry(10, "i", "app.c", bson.D{{Key: "_id", Value: 4}, {Key: "v", Value: "d"}}, nil),
		opEntry(11, "u", "app.c", bson.D{{Key: "$v", Value: 2}, {Key: "diff", Value: bson.D{{Key: "u", Value: bson.D{{Key: "v", Value: "A"}}}}}}, id(1)),
		opEntry(12, "d", "app.c", id(3), nil),
		opEntry(13, "c", "admin.$cmd", bson.D{{Key: "applyOps", Value: bson.A{
			inner("i", "app.c", bson.D{{Key: "_id", Value: 5}}),
			inner("i", "other.c", bson.D{{Key: "_id", Value: 1}}),
		}}}, nil),
		append(opEntry(14, "c", "admin.$cmd", bson.D{{Key: "applyOps", Value: bson.A{
			inner("u", "app.c", bson.D{{Key: "$v", Value: 2}, {Key: "diff", Value: bson.D{{Key: "i", Value: bson.D{{Key: "t", Value: true}}}}}}),
			inner("i", "app.c", bson.D{{Key: "_id", Value: 6}}),
		}}}, nil), bson.E{Key: "lsid", Value: lsid}, bson.E{Key: "txnNumber", Value: int64(1)},
			bson.E{Key: "prevOpTime", Value: bson.D{{Key: "ts", Value: bson.Timestamp{}}, {Key: "t", Value: int64(-1)}}}),
		opEntry(15, "c", "app.$cmd", bson.D{{Key: "createIndexes", Value: "c"}, {Key: "v", Value: 2}, {Key: "key", Value: bson.D{{Key: "v", Value: 1}}}, {Key: "name", Value: "v_1"}}, nil),
		opEntry(16, "c", "app.$cmd", bson.D{{Key: "create", Value: "new"}}, nil),
		opEntry(17, "i", "app.new", bson.D{{Key: "_id", Value: 1}}, nil),
		opEntry(18, "c", "app.$cmd", bson.D{{Key: "create", Value: "tmp"}}, nil),
		opEntry(19, "i", "app.tmp", bson.D{{Key: "_id", Value: 7}}, nil),
		opEntry(20, "c", "app.$cmd", bson.D{{Key: "renameCollection", Value: "app.tmp"}, {Key: "to", Value: "app.moved"}, {Key: "dropTarget", Value: false}}, nil),
		opEntry(21, "c", "gone.$cmd", bson.D{{Key: "dropDatabase", Value: 1}}, nil),
		opEntry(22, "i", "other.c", bson.D{{Key: "_id", Value: 2}}, nil),
	}
	// The transaction's update names its document in o2.
	entries[4][3].Value.(bson.D)[0].Value.(bson.A)[0] = append(entries[4][3].Value.(bson.D)[0].Value.(bson.A)[0].(bson.D), bson.E{Key: "o2", Value: id(2)})
	d := dump{colls: []coll{
		{db: "app", name: "c", uuid: ui, docs: []bson.D{{{Key: "_id", Value: 1}, {Key: "v", Value: "a"}}, {{Key: "_id", Value: 2}}, {{Key: "_id", Value: 3}}}},
		{db: "gone", name: "g", docs: []bson.D{{{Key: "_id", Value: 1}}}},
		{db: "other", name: "c"},
	}, oplog: entries, consTo: &manifest.OplogPos{T: 22, I: 1}}
	data := d.archive(t)
	// What the server holds under the old names stays as it is.
	for _, ns := range []string{"app.c", "gone.g", "other.c"} {
		db, name, _ := strings.Cut(ns, ".")
		if _, err := client.Database(db).Collection(name).InsertOne(ctx, bson.D{{Key: "_id", Value: "live"}}); err != nil {
			t.Fatal(err)
		}
	}
	opts := Options{NSFrom: []string{"app.*", "gone.*"}, NSTo: []string{"app_r.*", "gone_r.*"}}
	rep, cmds, err := replayWith(t, client, data, modeWrites, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cmds {
		if db, _, _ := strings.Cut(c, " "); db == "app" || db == "gone" || db == "other" || strings.Contains(c, `"app.`) {
			t.Errorf("a command names an old namespace: %s", c)
		}
	}
	want := map[string][]string{
		"app_r.c":     {`{"_id":1,"v":"A"}`, `{"_id":2,"t":true}`, `{"_id":4,"v":"d"}`, `{"_id":5}`, `{"_id":6}`},
		"app_r.new":   {`{"_id":1}`},
		"app_r.moved": {`{"_id":7}`},
		"app_r.tmp":   nil,
		"gone_r.g":    nil,
		"app.c":       {`{"_id":"live"}`},
		"gone.g":      {`{"_id":"live"}`},
		"other.c":     {`{"_id":"live"}`},
		"app.new":     nil,
		"app.moved":   nil,
	}
	for ns, w := range want {
		db, name, _ := strings.Cut(ns, ".")
		if got := normalizeRelaxed(t, readAll(t, client.Database(db).Collection(name))); len(got)+len(w) > 0 && !reflect.DeepEqual(got, w) {
			t.Errorf("%s: %v, want %v", ns, got, w)
		}
	}
	if got := indexSet(t, client.Database("app_r").Collection("c")); !reflect.DeepEqual(got, []string{"_id_", "v_1"}) {
		t.Errorf("app_r.c indexes %v", got)
	}
	if !rep.OK || rep.OplogSkippedNamespaces[skipNotRestored]["other.c"] != 2 {
		t.Errorf("report %+v", rep)
	}

	// The MongoDB path: each operation goes to applyOps under its new name.
	_, applied, err := replayWith(t, client, data, modeApplyOps, Options{NSFrom: opts.NSFrom, NSTo: opts.NSTo, Drop: true})
	if err != nil {
		t.Fatal(err)
	}
	var ops []string
	for _, c := range applied {
		if strings.HasPrefix(c, `admin {"applyOps":[{`) {
			ops = append(ops, c)
		}
		if strings.Contains(c, `"ns":"app.`) || strings.Contains(c, `"ns":"other.`) || strings.Contains(c, `"ns":"gone.`) {
			t.Errorf("applyOps names an old namespace: %s", c)
		}
	}
	for _, w := range []string{`"op":"i","ns":"app_r.c","o":{"_id":5}`, `"op":"u","ns":"app_r.c"`, `"ns":"app_r.$cmd","o":{"create":"new"}`,
		`"op":"i","ns":"app_r.tmp","o":{"_id":7}`} {
		found := false
		for _, c := range ops {
			found = found || strings.Contains(c, w)
		}
		if !found {
			t.Errorf("no applyOps with %s in\n%s", w, strings.Join(ops, "\n"))
		}
	}
	found := false
	for _, c := range applied {
		found = found || c == `admin {"renameCollection":"app_r.tmp","to":"app_r.moved","dropTarget":true}`
	}
	if !found {
		t.Errorf("no rename of the new names in %v", applied)
	}
}

// TestRenameExtraReplay: a point-in-time restore's archived entries
// (Options.Extra) are renamed as the backup's own oplog is: they land on
// the new names, the old ones are not written.
func TestRenameExtraReplay(t *testing.T) {
	client := start(t)
	ctx := context.Background()
	id := func(v any) bson.D { return bson.D{{Key: "_id", Value: v}} }
	d := dump{
		colls:  []coll{{db: "app", name: "c", docs: []bson.D{{{Key: "_id", Value: 1}, {Key: "v", Value: "a"}}, {{Key: "_id", Value: 2}}}}},
		oplog:  []bson.D{opEntry(10, "i", "app.c", bson.D{{Key: "_id", Value: 3}}, nil)},
		consTo: &manifest.OplogPos{T: 16, I: 1},
	}
	data := d.archive(t)
	archived := []bson.D{
		opEntry(17, "d", "app.c", id(3), nil),
		opEntry(18, "u", "app.c", bson.D{{Key: "$v", Value: 1}, {Key: "$set", Value: bson.D{{Key: "_id", Value: 1}, {Key: "v", Value: "A"}}}}, id(1)),
		opEntry(19, "i", "app.new", bson.D{{Key: "_id", Value: 9}}, nil),
		opEntry(21, "d", "app.c", id(1), nil), // after ExtraTo
	}
	after, to := Position{T: 16, I: 1}, Position{T: 20, I: 1}
	if _, err := client.Database("app").Collection("c").InsertOne(ctx, bson.D{{Key: "_id", Value: "live"}}); err != nil {
		t.Fatal(err)
	}
	reads := 0
	opts := Options{NSFrom: []string{"app.*"}, NSTo: []string{"pit.*"}, Extra: extraSource(t, archived, &reads), ExtraAfter: &after, ExtraTo: &to}
	p, err := Plan(ctx, bytes.NewReader(data), opts)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p.OplogOnly, []string{"pit.new"}) {
		t.Fatalf("oplog only %v", p.OplogOnly)
	}
	rep, err := Run(ctx, client, bytes.NewReader(data), p, opts, &Progress{})
	if err != nil || !rep.OK {
		t.Fatalf("%v %+v", err, rep)
	}
	for ns, want := range map[string][]string{
		"pit.c":   {`{"_id":1,"v":"A"}`, `{"_id":2}`},
		"pit.new": {`{"_id":9}`},
		"app.c":   {`{"_id":"live"}`},
	} {
		db, name, _ := strings.Cut(ns, ".")
		if got := normalizeRelaxed(t, readAll(t, client.Database(db).Collection(name))); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %v, want %v", ns, got, want)
		}
	}
	if n, _ := client.Database("app").Collection("new").CountDocuments(ctx, bson.D{}); n != 0 {
		t.Errorf("app.new was written")
	}
}

// TestRenameView: a renamed view keeps reading its collection: viewOn
// follows it when it is renamed into the view's new database, and stays
// as it is otherwise.
func TestRenameView(t *testing.T) {
	viewMeta := []byte(`{"options":{"viewOn":"c","pipeline":[]},"indexes":[],"collectionName":"v","type":"view"}`)
	data := dump{
		colls:   []coll{{db: "app", name: "c", docs: users(2)}, {db: "app", name: "v"}},
		replace: map[string][]byte{"app/v.metadata.json": viewMeta},
		tweak:   func(m *manifest.Manifest) { m.Collections[1].Type, m.Collections[1].Indexes = "view", 0 },
	}.archive(t)
	for _, tc := range []struct {
		name     string
		from, to []string
		viewNS   string
		viewOn   string
	}{
		{"same database", []string{"app.$c$"}, []string{"copy.$c$_old"}, "copy.v_old", "c_old"},
		{"view moved alone", []string{"app.v", "app.c"}, []string{"other.v", "copy.c"}, "other.v", "c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Plan(context.Background(), bytes.NewReader(data), Options{NSFrom: tc.from, NSTo: tc.to})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range p.Collections {
				if c.Type != "view" {
					continue
				}
				var on any
				for _, o := range c.Options {
					if o.Key == "viewOn" {
						on = o.Value
					}
				}
				if c.Namespace() != tc.viewNS || on != tc.viewOn {
					t.Fatalf("view %s on %v, want %s on %s", c.Namespace(), on, tc.viewNS, tc.viewOn)
				}
				return
			}
			t.Fatalf("no view planned: %+v", p.Collections)
		})
	}
}

// TestRenameEntry: each operation form the replay meets, rewritten under
// the new names (ns, a command's collection, a view definition's _id and
// viewOn, a time-series collection's buckets, a rename's two names, a
// dropDatabase as drops), skipped when it names no renamed namespace, and
// refused when a rename crosses the renamed set.
func TestRenameEntry(t *testing.T) {
	r, err := NewRenamer([]string{"app.*"}, []string{"copy.*"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		e    bson.D
		want []string // the rewritten entries' ns and o (and o2), "" parts left out
		skip string
		err  string
	}{
		{name: "insert", e: opEntry(1, "i", "app.c", bson.D{{Key: "_id", Value: 1}}, nil),
			want: []string{`copy.c {"_id":1}`}},
		{name: "update keeps o2", e: opEntry(1, "u", "app.c", bson.D{{Key: "$set", Value: bson.D{{Key: "x", Value: 1}}}}, bson.D{{Key: "_id", Value: 1}}),
			want: []string{`copy.c {"$set":{"x":1}} {"_id":1}`}},
		{name: "other namespace", e: opEntry(1, "d", "other.c", bson.D{{Key: "_id", Value: 1}}, nil), skip: "other.c"},
		{name: "server namespace", e: opEntry(1, "i", "admin.system.users", bson.D{{Key: "_id", Value: "app.u"}}, nil), skip: "admin.system.users"},
		{name: "view definition", e: opEntry(1, "i", "app.system.views", bson.D{{Key: "_id", Value: "app.v"}, {Key: "viewOn", Value: "c"}, {Key: "pipeline", Value: bson.A{}}}, nil),
			want: []string{`copy.system.views {"_id":"copy.v","viewOn":"c","pipeline":[]}`}},
		{name: "view update", e: opEntry(1, "u", "app.system.views", bson.D{{Key: "$set", Value: bson.D{{Key: "pipeline", Value: bson.A{}}}}}, bson.D{{Key: "_id", Value: "app.v"}}),
			want: []string{`copy.system.views {"$set":{"pipeline":[]}} {"_id":"copy.v"}`}},
		{name: "time-series buckets", e: opEntry(1, "i", "app.system.buckets.ts", bson.D{{Key: "_id", Value: 1}}, nil),
			want: []string{`copy.system.buckets.ts {"_id":1}`}},
		{name: "create view", e: opEntry(1, "c", "app.$cmd", bson.D{{Key: "create", Value: "v"}, {Key: "viewOn", Value: "c"}, {Key: "pipeline", Value: bson.A{}}}, nil),
			want: []string{`copy.$cmd {"create":"v","viewOn":"c","pipeline":[]}`}},
		{name: "createIndexes", e: opEntry(1, "c", "app.$cmd", bson.D{{Key: "createIndexes", Value: "c"}, {Key: "v", Value: 2}, {Key: "key", Value: bson.D{{Key: "x", Value: 1}}}, {Key: "name", Value: "x_1"}}, nil),
			want: []string{`copy.$cmd {"createIndexes":"c","v":2,"key":{"x":1},"name":"x_1"}`}},
		{name: "rename within", e: opEntry(1, "c", "app.$cmd", bson.D{{Key: "renameCollection", Value: "app.a"}, {Key: "to", Value: "app.b"}}, nil),
			want: []string{`copy.$cmd {"renameCollection":"copy.a","to":"copy.b"}`}},
		{name: "rename outside", e: opEntry(1, "c", "other.$cmd", bson.D{{Key: "renameCollection", Value: "other.a"}, {Key: "to", Value: "other.b"}}, nil),
			skip: "other.a to other.b"},
		{name: "rename across", e: opEntry(1, "c", "app.$cmd", bson.D{{Key: "renameCollection", Value: "app.a"}, {Key: "to", Value: "other.b"}}, nil),
			err: "one name is renamed and the other is not"},
		{name: "dropDatabase", e: opEntry(1, "c", "app.$cmd", bson.D{{Key: "dropDatabase", Value: 1}}, nil),
			want: []string{`copy.$cmd {"drop":"a"}`, `copy.$cmd {"drop":"b"}`, `copy.$cmd {"drop":"c"}`}},
		{name: "dropDatabase outside", e: opEntry(1, "c", "other.$cmd", bson.D{{Key: "dropDatabase", Value: 1}}, nil), skip: "other"},
		{name: "refused kind inside", e: opEntry(1, "c", "app.$cmd", bson.D{{Key: "importCollection", Value: "app.i"}}, nil),
			err: "importCollection"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The namespaces the plan renamed (dropDatabase drops them).
			n := newNSRename(r, nil, map[string]string{"app.a": "copy.a", "app.b": "copy.b", "app.c": "copy.c"})
			e, err := oplog.Parse(mustRaw(t, tc.e))
			if err != nil {
				t.Fatal(err)
			}
			out, skip, err := n.entry(e, oplog.Decide(e))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || skip != tc.skip {
				t.Fatalf("skip %q err %v, want skip %q", skip, err, tc.skip)
			}
			var got []string
			for _, o := range out {
				s := o.NS + " " + extJSON(t, o.O)
				if o.O2 != nil {
					s += " " + extJSON(t, o.O2)
				}
				got = append(got, s)
				if o.TS != e.TS {
					t.Errorf("position %v, want %v", o.TS, e.TS)
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestRenameOntoDatabaseNotHeld: --ns-to onto a database name the server
// refuses (FerretDB takes [a-zA-Z0-9_-] only) is refused before the first
// write, with --drop too, as an *UnsupportedError naming the namespace; it
// was found at the first drop, as a restore that failed part way (the node
// then set its restore marker: "partly restored" where nothing was written).
func TestRenameOntoDatabaseNotHeld(t *testing.T) {
	d := dump{colls: []coll{{db: "a", name: "x", docs: users(3)}, {db: "a", name: "y", docs: users(2)}}}
	data := d.archive(t)
	ctx := context.Background()
	client := start(t)
	for _, drop := range []bool{false, true} {
		t.Run(fmt.Sprintf("drop=%v", drop), func(t *testing.T) {
			opts := Options{Drop: drop, NSFrom: []string{"a.$c$"}, NSTo: []string{"üni.$c$"}}
			p, err := Plan(ctx, bytes.NewReader(data), opts)
			if err != nil {
				t.Fatal(err)
			}
			err = CheckTargets(ctx, client, p, opts)
			if err == nil {
				_, err = Run(ctx, client, bytes.NewReader(data), p, opts, nil)
			}
			var ue *UnsupportedError
			if !errors.As(err, &ue) || !strings.HasPrefix(ue.Namespace, "üni.") {
				t.Fatalf("restore onto üni.*: %v, want an UnsupportedError naming the namespace, before any write", err)
			}
		})
	}
}
