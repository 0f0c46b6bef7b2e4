package restore

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/embedded"
	"github.com/a0backup/a0/internal/manifest"
)

// TestPlanHolds: with Options.Holds, Plan counts per collection the
// documents it refuses and per namespace the oplog entries writing one,
// among what is selected; an update's operand is asked as one (its "a.b"
// is a path, not a field name); and Plan itself refuses nothing.
func TestPlanHolds(t *testing.T) {
	dec, err := bson.ParseDecimal128("1.5")
	if err != nil {
		t.Fatal(err)
	}
	id := func(v any) bson.D { return bson.D{{Key: "_id", Value: v}} }
	d := dump{
		colls: []coll{
			{db: "app", name: "c", docs: []bson.D{
				{{Key: "_id", Value: 1}, {Key: "v", Value: "a"}},
				{{Key: "_id", Value: 2}, {Key: "a.b", Value: 1}},
				{{Key: "_id", Value: 3}, {Key: "$x", Value: 1}},
			}},
			{db: "app", name: "d", docs: []bson.D{{{Key: "_id", Value: 1}}}},
			{db: "other", name: "c", docs: []bson.D{{{Key: "_id", Value: 1}, {Key: "p", Value: dec}}}},
		},
		oplog: []bson.D{
			opEntry(10, "u", "app.c", bson.D{{Key: "$set", Value: bson.D{{Key: "sub.x", Value: 1}}}}, id(1)),
			opEntry(11, "i", "app.d", bson.D{{Key: "_id", Value: 2}, {Key: "p", Value: dec}}, nil),
			opEntry(12, "u", "app.e", bson.D{{Key: "$v", Value: 2}, {Key: "diff", Value: bson.D{{Key: "u", Value: bson.D{{Key: "p", Value: dec}}}}}}, id(1)),
			opEntry(13, "i", "other.c", bson.D{{Key: "_id", Value: 2}, {Key: "p", Value: dec}}, nil), // not selected
		},
		consTo: &manifest.OplogPos{T: 13, I: 1},
	}
	holds := func(doc []byte, update bool) error {
		if update {
			return embedded.HoldsValues(doc)
		}
		return embedded.Holds(doc)
	}
	p, err := Plan(context.Background(), bytes.NewReader(d.archive(t)), Options{NS: []string{"app.*"}, Holds: holds})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, c := range p.Collections {
		got[c.Namespace()] = c.NotHeld.Count
	}
	if got["app.c"] != 2 || got["app.d"] != 0 || len(got) != 2 {
		t.Errorf("collections' documents not held: %v, want app.c 2, app.d 0", got)
	}
	for _, c := range p.Collections {
		if c.Namespace() == "app.c" && !strings.Contains(c.NotHeld.Why, `"a.b"`) {
			t.Errorf("app.c: first reason %q, want the field a.b", c.NotHeld.Why)
		}
	}
	want := map[string]int64{"app.d": 1, "app.e": 1}
	if len(p.OplogNotHeld) != len(want) {
		t.Errorf("oplog entries not held: %+v, want %v", p.OplogNotHeld, want)
	}
	for ns, n := range want {
		if p.OplogNotHeld[ns].Count != n || !strings.Contains(p.OplogNotHeld[ns].Why, "Decimal128") {
			t.Errorf("%s: %+v, want %d entry with a Decimal128", ns, p.OplogNotHeld[ns], n)
		}
	}
	// Without Holds nothing is counted.
	p, err = Plan(context.Background(), bytes.NewReader(d.archive(t)), Options{NS: []string{"app.*"}})
	if err != nil {
		t.Fatal(err)
	}
	if p.OplogNotHeld != nil || p.Collections[0].NotHeld.Count != 0 {
		t.Errorf("counted without Holds: %+v", p)
	}
}

// TestPlanHoldsCommandAndDigest: with Options.HoldsCommand, Plan counts
// the selected oplog commands it refuses by their collection (commands
// not selected are not asked); OplogFeatures names a view the oplog
// writes; with Options.Holds each collection's
// Digest is the dump's sum (manifest.Digest) of its documents as the
// archive holds them, and empty without it.
func TestPlanHoldsCommandAndDigest(t *testing.T) {
	docs := []bson.D{{{Key: "_id", Value: 1}, {Key: "v", Value: "a"}}, {{Key: "_id", Value: 2}}}
	var want manifest.Digest
	for _, d := range docs {
		b, err := bson.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		want.Add(b)
	}
	collation := bson.D{{Key: "locale", Value: "en_US"}}
	d := dump{
		colls: []coll{{db: "app", name: "c", docs: docs}, {db: "app", name: "d"}},
		oplog: []bson.D{
			opEntry(10, "c", "app.$cmd", bson.D{{Key: "createIndexes", Value: "c"}, {Key: "v", Value: 2}, {Key: "key", Value: bson.D{{Key: "v", Value: 1}}}, {Key: "name", Value: "v_1"}, {Key: "collation", Value: collation}}, nil),
			opEntry(11, "c", "app.$cmd", bson.D{{Key: "createIndexes", Value: "d"}, {Key: "v", Value: 2}, {Key: "key", Value: bson.D{{Key: "v", Value: 1}}}, {Key: "name", Value: "v_1"}}, nil),
			opEntry(12, "c", "other.$cmd", bson.D{{Key: "create", Value: "x"}, {Key: "collation", Value: collation}}, nil), // not selected
			opEntry(13, "i", "app.system.views", bson.D{{Key: "_id", Value: "app.v"}, {Key: "viewOn", Value: "c"}, {Key: "pipeline", Value: bson.A{}}}, nil),
		},
		consTo: &manifest.OplogPos{T: 13, I: 1},
	}
	holds := func(doc []byte, update bool) error { return embedded.Holds(doc) }
	p, err := Plan(context.Background(), bytes.NewReader(d.archive(t)), Options{NS: []string{"app.*"}, Holds: holds, HoldsCommand: embedded.HoldsCommand})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.OplogNotHeld) != 1 || p.OplogNotHeld["app.c"].Count != 1 || !strings.Contains(p.OplogNotHeld["app.c"].Why, "collation") {
		t.Errorf("oplog commands not held: %+v, want app.c's createIndexes with a collation", p.OplogNotHeld)
	}
	if len(p.OplogFeatures) != 1 || p.OplogFeatures["app.v"] != "view" {
		t.Errorf("oplog features: %v, want app.v: view", p.OplogFeatures)
	}
	for _, c := range p.Collections {
		if c.Namespace() == "app.c" && c.Digest != want.String() {
			t.Errorf("app.c: digest %q, want %q", c.Digest, want.String())
		}
	}
	p, err = Plan(context.Background(), bytes.NewReader(d.archive(t)), Options{NS: []string{"app.*"}})
	if err != nil {
		t.Fatal(err)
	}
	if p.OplogNotHeld != nil || p.Collections[0].Digest != "" {
		t.Errorf("asked or summed without Holds: %+v", p)
	}
}
