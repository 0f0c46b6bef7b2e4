package restore

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/dumpname"
)

// awkwardNames are collection names whose files mongodump escapes, cuts and
// hashes: every one must plan under its real name.
func awkwardNames() []string {
	return []string{
		"c++ 100% a/b",
		"cafés",
		"dots.in.the.name",
		strings.Repeat("long", 50) + strings.Repeat("/", 15), // hashed
		strings.Repeat("a", 207) + strings.Repeat("é", 10),   // cut inside a %XX escape
		strings.Repeat("b", 206) + "%+ " + strings.Repeat("x", 40),
		"日本語のコレクション",
	}
}

func TestPlanResolvesNames(t *testing.T) {
	var d dump
	for i, n := range awkwardNames() {
		d.colls = append(d.colls, coll{db: "names", name: n, docs: users(i + 1)})
	}
	for _, plain := range []bool{false, true} {
		d.plain = plain
		p, err := Plan(context.Background(), bytes.NewReader(d.archive(t)), Options{Plain: plain})
		if err != nil {
			t.Fatalf("plain=%v: %v", plain, err)
		}
		var got []string
		for _, c := range p.Collections {
			got = append(got, c.Name)
		}
		want := awkwardNames()
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("plain=%v: planned %q, want %q", plain, got, want)
		}
	}
	// --ns selects by the real name, also for a hashed file.
	long := strings.Repeat("long", 50) + strings.Repeat("/", 15)
	p, err := Plan(context.Background(), bytes.NewReader(d.archive(t)), Options{Plain: true, NS: []string{"names." + long}})
	if err != nil || len(p.Collections) != 1 || p.Collections[0].Name != long {
		t.Fatalf("--ns on a hashed name: %+v, %v", p, err)
	}
}

// TestPlanChecksResolvedName: the name taken from metadata.json passes the
// same checks as a file name, after it is resolved (security issue 13.1),
// and must be the name the file was made from.
func TestPlanChecksResolvedName(t *testing.T) {
	long := strings.Repeat("long", 50) + strings.Repeat("/", 15)
	hashed := dumpname.Escape(long)
	for _, tc := range []struct {
		name string
		c    coll
	}{
		{"file u claims system.users", coll{db: "admin", name: "system.users", file: "u"}},
		{"file u claims another collection", coll{db: "shop", name: "orders", file: "u"}},
		{"unhashed file claims a longer name", coll{db: "shop", name: "orders", file: "order"}},
		{"hashed file with a foreign hash", coll{db: "shop", name: long, file: hashed[:dumpname.PrefixLen] + "%24" + strings.Repeat("A", 27)}},
		{"hashed file with a foreign prefix", coll{db: "shop", name: "system.users" + long, file: hashed}},
		{"hashed file without collectionName", coll{db: "shop", name: long, metaName: "-"}},
		{"metadata name with a dollar", coll{db: "shop", name: "a$b", file: "a%24b"}},
		{"file name with a dollar", coll{db: "shop", name: "a$b", file: "a%24b", metaName: "-"}},
		{"bad escape", coll{db: "shop", name: "x", file: "x%zz", metaName: "-"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.c
			c.docs = users(2)
			d := dump{colls: []coll{c, {db: "shop", name: "fine", docs: users(1)}}}
			for _, plain := range []bool{false, true} {
				d.plain = plain
				for _, drop := range []bool{false, true} {
					_, err := Plan(context.Background(), bytes.NewReader(d.archive(t)), Options{Plain: plain, Drop: drop})
					if !errors.Is(err, ErrInvalidArchive) {
						t.Fatalf("plain=%v drop=%v: err = %v, want ErrInvalidArchive", plain, drop, err)
					}
				}
			}
		})
	}
	// A system collection under its own name is skipped, as before.
	d := dump{colls: []coll{{db: "admin", name: "system.users", docs: users(1)}, {db: "shop", name: "fine", docs: users(1)}}}
	p, err := Plan(context.Background(), bytes.NewReader(d.archive(t)), Options{})
	if err != nil || len(p.Collections) != 1 || !slices.Contains(p.Skipped, "admin.system.users") {
		t.Fatalf("plan %+v, %v", p, err)
	}
}

// TestPlanOldLayouts: backups written before a0 followed mongodump 100.x
// (the archive header's fields in prelude.json, path-escaped names) still
// plan and restore under their real names.
func TestPlanOldLayouts(t *testing.T) {
	name := "c++ 100% a/b"
	d := dump{colls: []coll{{db: "shop", name: name, file: "c++%20100%25%20a%2Fb", docs: users(3)}},
		replace: map[string][]byte{"prelude.json": []byte(`{"concurrent_collections":4,"version":"0.1","server_version":"7.0.0","tool_version":"a0 0.1"}`)}}
	client := start(t)
	rep, err := restore(t, client, d.archive(t), Options{})
	if err != nil || !rep.OK {
		t.Fatalf("%+v %v", rep, err)
	}
	if n, _ := client.Database("shop").Collection(name).CountDocuments(context.Background(), bson.D{}); n != 3 {
		t.Fatalf("%q holds %d documents", name, n)
	}
}

// TestPlanLinuxDatabaseNames: a database name MongoDB accepts on Linux
// but not on Windows is dumped by mongodump, so it plans (issue 11); the
// characters every server refuses are still refused.
func TestPlanLinuxDatabaseNames(t *testing.T) {
	for _, tc := range []struct {
		db string
		ok bool
	}{
		{"we*ird?db", true},
		{"a<b>c:d|e", true},
		{"has space", false},
		{"dollar$db", false},
	} {
		t.Run(tc.db, func(t *testing.T) {
			d := dump{colls: []coll{{db: tc.db, name: "c", docs: users(2)}}}
			p, err := Plan(context.Background(), bytes.NewReader(d.archive(t)), Options{})
			if tc.ok && (err != nil || len(p.Collections) != 1 || p.Collections[0].DB != tc.db) {
				t.Fatalf("plan: %+v, %v", p, err)
			}
			if !tc.ok && err == nil {
				t.Fatalf("database %q planned", tc.db)
			}
		})
	}
}

// TestNameErrorSaysWhat: a namespace refused for its database name (a
// --ns-to onto "üni2", which FerretDB refuses) must not be blamed on its
// collection name's length, which is what a long name gets.
func TestNameErrorSaysWhat(t *testing.T) {
	refused := errors.New("(InvalidNamespace) Invalid namespace specified")
	for _, tc := range []struct {
		name, db, coll string
		want, notWant  string
	}{
		{"short name, odd database", "üni2", "big", "cannot hold the name of üni2.big", "bytes"},
		{"long name", "db", strings.Repeat("c", 240), "collection name (240 bytes) of db.", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := nameError(PlannedCollection{DB: tc.db, Name: tc.coll}, refused).Error()
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not say %q", msg, tc.want)
			}
			if tc.notWant != "" && strings.Contains(msg, tc.notWant) {
				t.Errorf("error %q says %q", msg, tc.notWant)
			}
			if !strings.Contains(msg, "Invalid namespace") {
				t.Errorf("error %q lost the server's reason", msg)
			}
		})
	}
}
