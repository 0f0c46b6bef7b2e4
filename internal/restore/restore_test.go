package restore

import (
	"archive/tar"
	"bufio"
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/a0backup/a0/internal/archive"
	"github.com/a0backup/a0/internal/dumpname"
	"github.com/a0backup/a0/internal/embedded"
	"github.com/a0backup/a0/internal/embedded/embeddedtest"
	"github.com/a0backup/a0/internal/manifest"
)

// coll is one collection of a test dump.
type coll struct {
	db, name string
	options  bson.D
	indexes  []bson.D
	docs     []bson.D
	// file overrides the file name (dumpname.Escape(name) by default) and
	// metaName the collectionName of the metadata (name by default; "-"
	// leaves it out): crafted archives.
	file, metaName string
	// uuid is the metadata's uuid (hex; 00112233... by default).
	uuid string
}

type file struct {
	name string
	data []byte
}

// dump is a test archive in the mongodump layout, built in memory.
type dump struct {
	colls   []coll
	oplog   []bson.D
	consTo  *manifest.OplogPos
	prefix  string // "dump/" for a plain dump with a wrapper
	plain   bool   // no manifest
	tweak   func(m *manifest.Manifest)
	extra   []file // appended before the manifest
	replace map[string][]byte
}

func bsonFile(t testing.TB, docs []bson.D) []byte {
	t.Helper()
	var b []byte
	for _, d := range docs {
		raw, err := bson.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, raw...)
	}
	return b
}

func (d dump) files(t testing.TB) []file {
	t.Helper()
	var fs []file
	add := func(name string, data []byte) {
		if r, ok := d.replace[name]; ok {
			data = r
		}
		fs = append(fs, file{d.prefix + name, data})
	}
	add("prelude.json", []byte(`{"ServerVersion":"7.0.0","ToolVersion":"test"}`))
	m := &manifest.Manifest{FormatVersion: manifest.FormatVersion, Kind: manifest.KindBackup, ToolVersion: "test", ConsistentTo: d.consTo}
	for _, c := range d.colls {
		idx := append([]bson.D{{{Key: "v", Value: 2}, {Key: "key", Value: bson.D{{Key: "_id", Value: 1}}}, {Key: "name", Value: "_id_"}}}, c.indexes...)
		md := bson.D{
			{Key: "options", Value: append(bson.D{}, c.options...)},
			{Key: "indexes", Value: idx},
			{Key: "uuid", Value: cmp.Or(c.uuid, "00112233445566778899aabbccddeeff")},
		}
		switch c.metaName {
		case "":
			md = append(md, bson.E{Key: "collectionName", Value: c.name})
		case "-":
		default:
			md = append(md, bson.E{Key: "collectionName", Value: c.metaName})
		}
		meta, err := bson.MarshalExtJSON(append(md, bson.E{Key: "type", Value: "collection"}), false, false)
		if err != nil {
			t.Fatal(err)
		}
		base := c.file
		if base == "" {
			base = dumpname.Escape(c.name)
		}
		add(c.db+"/"+base+".metadata.json", meta)
		data := bsonFile(t, c.docs)
		add(c.db+"/"+base+".bson", data)
		m.Collections = append(m.Collections, manifest.Collection{DB: c.db, Name: c.name, Type: "collection",
			Documents: int64(len(c.docs)), Bytes: int64(len(data)), Indexes: len(idx)})
	}
	if d.oplog != nil {
		add("oplog.bson", bsonFile(t, d.oplog))
		m.OplogEntries = int64(len(d.oplog))
	}
	fs = append(fs, d.extra...)
	if !d.plain {
		if d.tweak != nil {
			d.tweak(m)
		}
		b, err := m.Encode()
		if err != nil {
			t.Fatal(err)
		}
		add("manifest.json", b)
	}
	return fs
}

func tgz(t testing.TB, fs []file) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, f := range fs {
		h := &tar.Header{Name: f.name, Typeflag: tar.TypeReg, Mode: 0o600, Size: int64(len(f.data)), ModTime: time.Unix(1700000000, 0)}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func (d dump) archive(t testing.TB) []byte { return tgz(t, d.files(t)) }

func start(t *testing.T) *mongo.Client {
	t.Helper()
	return embeddedtest.Client(t, embedded.Config{})
}

func users(n int) []bson.D {
	docs := make([]bson.D, n)
	for i := range docs {
		docs[i] = bson.D{{Key: "_id", Value: int32(i)}, {Key: "email", Value: fmt.Sprintf("u%d@example.com", i)}, {Key: "tenant", Value: fmt.Sprintf("t%d", i%3)}, {Key: "n", Value: int64(i * 7)}}
	}
	return docs
}

func sampleDump() dump {
	return dump{colls: []coll{
		{db: "auth0", name: "users", docs: users(2500), indexes: []bson.D{
			{{Key: "v", Value: 2}, {Key: "key", Value: bson.D{{Key: "email", Value: 1}}}, {Key: "name", Value: "email_1"}, {Key: "unique", Value: true}, {Key: "ns", Value: "auth0.users"}},
			{{Key: "v", Value: 2}, {Key: "key", Value: bson.D{{Key: "tenant", Value: 1}, {Key: "n", Value: -1}}}, {Key: "name", Value: "tenant_1_n_-1"}},
		}},
		{db: "auth0", name: "logs", options: bson.D{{Key: "capped", Value: true}, {Key: "size", Value: int64(1 << 20)}}, docs: users(10)},
		{db: "auth0", name: "empty"},
		{db: "other", name: "things", docs: users(3)},
	}}
}

func restore(t *testing.T, client *mongo.Client, data []byte, opts Options) (*Report, error) {
	t.Helper()
	ctx := context.Background()
	p, err := Plan(ctx, bytes.NewReader(data), opts)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	return Run(ctx, client, bytes.NewReader(data), p, opts, &Progress{})
}

func readAll(t *testing.T, c *mongo.Collection) []bson.D {
	t.Helper()
	cur, err := c.Find(context.Background(), bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		t.Fatal(err)
	}
	var out []bson.D
	if err := cur.All(context.Background(), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func indexNames(t *testing.T, c *mongo.Collection) map[string]bson.M {
	t.Helper()
	cur, err := c.Indexes().List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var specs []bson.M
	if err := cur.All(context.Background(), &specs); err != nil {
		t.Fatal(err)
	}
	out := map[string]bson.M{}
	for _, s := range specs {
		out[s["name"].(string)] = s
	}
	return out
}

func TestRestore(t *testing.T) {
	client := start(t)
	ctx := context.Background()
	d := sampleDump()
	data := d.archive(t)
	prog := &Progress{}
	p, err := Plan(ctx, bytes.NewReader(data), Options{})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(ctx, client, bytes.NewReader(data), p, Options{Parallel: 3}, prog)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK {
		t.Fatalf("report not OK: %+v", rep)
	}
	if s := prog.Snapshot(); s.Documents != 2513 || s.CollectionsDone != 4 || s.CollectionsTotal != 4 || s.Step != StepReport {
		t.Fatalf("progress %+v", s)
	}

	t.Run("documents equal", func(t *testing.T) {
		for _, c := range d.colls {
			got := readAll(t, client.Database(c.db).Collection(c.name))
			want := c.docs
			if len(got) != len(want) || (len(want) > 0 && !reflect.DeepEqual(normalize(t, got), normalize(t, want))) {
				t.Fatalf("%s.%s: %d documents, want %d", c.db, c.name, len(got), len(want))
			}
		}
	})
	t.Run("capped option", func(t *testing.T) {
		specs, err := client.Database("auth0").ListCollectionSpecifications(ctx, bson.D{{Key: "name", Value: "logs"}})
		if err != nil || len(specs) != 1 {
			t.Fatalf("%v %v", specs, err)
		}
		var o struct{ Capped bool }
		if err := bson.Unmarshal(specs[0].Options, &o); err != nil || !o.Capped {
			t.Fatalf("options %v, err %v", specs[0].Options, err)
		}
	})
	t.Run("indexes", func(t *testing.T) {
		idx := indexNames(t, client.Database("auth0").Collection("users"))
		if idx["email_1"]["unique"] != true {
			t.Fatalf("email_1 not unique: %v", idx)
		}
		if _, ok := idx["tenant_1_n_-1"]; !ok {
			t.Fatalf("compound index missing: %v", idx)
		}
		_, err := client.Database("auth0").Collection("users").InsertOne(ctx, bson.D{{Key: "_id", Value: -1}, {Key: "email", Value: "u1@example.com"}})
		if !mongo.IsDuplicateKeyError(err) {
			t.Fatalf("unique index not enforced: %v", err)
		}
	})
	t.Run("refuses non-empty targets", func(t *testing.T) {
		_, err := Run(ctx, client, bytes.NewReader(data), p, Options{}, nil)
		var ne *NonEmptyError
		if !errors.As(err, &ne) {
			t.Fatalf("err = %v, want NonEmptyError", err)
		}
		sort.Strings(ne.Namespaces)
		want := []string{"auth0.logs", "auth0.users", "other.things"}
		if !reflect.DeepEqual(ne.Namespaces, want) {
			t.Fatalf("namespaces %v, want %v", ne.Namespaces, want)
		}
	})
	t.Run("drop replaces", func(t *testing.T) {
		users := client.Database("auth0").Collection("users")
		if _, err := users.InsertOne(ctx, bson.D{{Key: "_id", Value: "intruder"}, {Key: "email", Value: "x"}}); err != nil {
			t.Fatal(err)
		}
		rep, err := Run(ctx, client, bytes.NewReader(data), p, Options{Drop: true}, nil)
		if err != nil || !rep.OK {
			t.Fatalf("rep %+v, err %v", rep, err)
		}
		if n, _ := users.CountDocuments(ctx, bson.D{}); n != 2500 {
			t.Fatalf("%d documents after drop restore", n)
		}
	})
}

// normalize round-trips documents so that int32/int64 and D/M differences
// introduced by the driver do not matter.
func normalize(t *testing.T, docs []bson.D) []string {
	t.Helper()
	out := make([]string, len(docs))
	for i, d := range docs {
		b, err := bson.MarshalExtJSON(d, true, false)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = string(b)
	}
	return out
}

func TestSelective(t *testing.T) {
	client := start(t)
	ctx := context.Background()
	data := sampleDump().archive(t)
	opts := Options{NS: []string{"auth0.u*", "other"}}
	p, err := Plan(ctx, bytes.NewReader(data), opts)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range p.Collections {
		got = append(got, c.Namespace())
	}
	if want := []string{"auth0.users", "other.things"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("planned %v, want %v", got, want)
	}
	if _, err := Run(ctx, client, bytes.NewReader(data), p, opts, nil); err != nil {
		t.Fatal(err)
	}
	names, err := client.Database("auth0").ListCollectionNames(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(names, []string{"users"}) {
		t.Fatalf("auth0 holds %v", names)
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	client := start(t)
	ctx := context.Background()
	data := sampleDump().archive(t)
	rep, err := restore(t, client, data, Options{DryRun: true})
	if err != nil || !rep.DryRun || len(rep.Collections) != 4 {
		t.Fatalf("rep %+v, err %v", rep, err)
	}
	dbs, err := client.ListDatabaseNames(ctx, bson.D{{Key: "name", Value: bson.D{{Key: "$in", Value: bson.A{"auth0", "other"}}}}})
	if err != nil || len(dbs) != 0 {
		t.Fatalf("databases %v after a dry run, err %v", dbs, err)
	}
}

func TestPlanRefuses(t *testing.T) {
	good := sampleDump()
	badLen := []byte{0xff, 0xff, 0xff, 0x7f, 0}
	truncated := bsonFile(t, users(2))[:30]
	badElem, _ := bson.Marshal(bson.D{{Key: "a", Value: "b"}})
	badElem[4] = 0x77 // unknown element type
	for _, tc := range []struct {
		name string
		d    func() dump
		want error
	}{
		{"traversal", func() dump { d := good; d.extra = []file{{"../evil.bson", nil}}; return d }, archive.ErrUnsafe},
		{"unknown file", func() dump { d := good; d.extra = []file{{"auth0/users.txt", nil}}; return d }, ErrInvalidArchive},
		{"too deep", func() dump { d := good; d.extra = []file{{"a/b/c.bson", nil}}; return d }, ErrInvalidArchive},
		{"bad length", func() dump { d := good; d.replace = map[string][]byte{"auth0/users.bson": badLen}; return d }, ErrInvalidArchive},
		{"truncated document", func() dump { d := good; d.replace = map[string][]byte{"auth0/users.bson": truncated}; return d }, ErrInvalidArchive},
		{"bad element", func() dump { d := good; d.replace = map[string][]byte{"auth0/users.bson": badElem}; return d }, ErrInvalidArchive},
		{"bad metadata", func() dump {
			d := good
			d.replace = map[string][]byte{"auth0/users.metadata.json": []byte(`{"options":`)}
			return d
		}, ErrInvalidArchive},
		{"index without key", func() dump {
			d := good
			d.replace = map[string][]byte{"auth0/users.metadata.json": []byte(`{"options":{},"indexes":[{"name":"x"}]}`)}
			return d
		}, ErrInvalidArchive},
		{"count mismatch", func() dump {
			d := good
			d.tweak = func(m *manifest.Manifest) { m.Collections[0].Documents++ }
			return d
		}, ErrInvalidArchive},
		{"unlisted collection", func() dump {
			d := good
			d.tweak = func(m *manifest.Manifest) { m.Collections = m.Collections[1:] }
			return d
		}, ErrInvalidArchive},
		{"no manifest", func() dump { d := good; d.plain = true; return d }, ErrInvalidArchive},
		{"manifest not last", func() dump {
			d := good
			d.plain = true
			m, _ := (&manifest.Manifest{FormatVersion: 1, Kind: manifest.KindBackup}).Encode()
			d.extra = []file{{"manifest.json", m}, {"x/y.bson", nil}}
			return d
		}, ErrInvalidArchive},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Plan(context.Background(), bytes.NewReader(tc.d().archive(t)), Options{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func opEntry(ts uint32, op, ns string, o, o2 bson.D) bson.D {
	e := bson.D{{Key: "ts", Value: bson.Timestamp{T: ts, I: 1}}, {Key: "op", Value: op}, {Key: "ns", Value: ns}, {Key: "o", Value: o}}
	if o2 != nil {
		e = append(e, bson.E{Key: "o2", Value: o2})
	}
	return e
}

func TestOplogReplay(t *testing.T) {
	client := start(t)
	ctx := context.Background()
	id := func(v any) bson.D { return bson.D{{Key: "_id", Value: v}} }
	d := dump{
		colls: []coll{{db: "app", name: "c", docs: []bson.D{
			{{Key: "_id", Value: 1}, {Key: "v", Value: "a"}},
			{{Key: "_id", Value: 2}, {Key: "v", Value: "b"}, {Key: "gone", Value: true}},
			{{Key: "_id", Value: 3}, {Key: "v", Value: "c"}},
		}}},
		oplog: []bson.D{
			// The insert of 1 is already in the dump: replaying it is harmless.
			opEntry(10, "i", "app.c", bson.D{{Key: "_id", Value: 1}, {Key: "v", Value: "a"}}, nil),
			opEntry(11, "i", "app.c", bson.D{{Key: "_id", Value: 4}, {Key: "v", Value: "d"}}, nil),
			// FerretDB's shape: the whole new document under $set.
			opEntry(12, "u", "app.c", bson.D{{Key: "$v", Value: 1}, {Key: "$set", Value: bson.D{{Key: "_id", Value: 2}, {Key: "v", Value: "B"}}}}, id(2)),
			// MongoDB >= 5 delta.
			opEntry(13, "u", "app.c", bson.D{{Key: "$v", Value: 2}, {Key: "diff", Value: bson.D{{Key: "u", Value: bson.D{{Key: "v", Value: "A"}}}, {Key: "i", Value: bson.D{{Key: "x", Value: 1}}}}}}, id(1)),
			opEntry(14, "d", "app.c", id(3), nil),
			opEntry(15, "n", "", bson.D{{Key: "msg", Value: "noop"}}, nil),
			opEntry(16, "i", "other.c", bson.D{{Key: "_id", Value: 1}}, nil), // not selected
			// After ConsistentTo: must not be applied.
			opEntry(99, "d", "app.c", id(1), nil),
		},
		consTo: &manifest.OplogPos{T: 16, I: 1},
	}
	data := d.archive(t)
	want := []string{
		`{"_id":1,"v":"A","x":1}`,
		`{"_id":2,"v":"B"}`,
		`{"_id":4,"v":"d"}`,
	}
	opts := Options{NS: []string{"app.*"}}
	for i := range 2 {
		t.Run(fmt.Sprintf("pass %d", i+1), func(t *testing.T) {
			rep, err := restore(t, client, data, Options{NS: opts.NS, Drop: i == 1})
			if err != nil {
				t.Fatal(err)
			}
			got := normalizeRelaxed(t, readAll(t, client.Database("app").Collection("c")))
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got %v\nwant %v", got, want)
			}
			if !rep.OK || rep.OplogApplied != 5 || rep.Collections[0].DocumentsExpected != 3 || !rep.Collections[0].CountCompared {
				t.Fatalf("report %+v", rep)
			}
			if n, _ := client.Database("other").Collection("c").CountDocuments(ctx, bson.D{}); n != 0 {
				t.Fatal("replayed an unselected namespace")
			}
		})
	}
	t.Run("replay twice is idempotent", func(t *testing.T) {
		p, err := Plan(ctx, bytes.NewReader(data), opts)
		if err != nil {
			t.Fatal(err)
		}
		rs := &runState{client: client, opts: opts, done: map[string]bool{}, rep: map[string]*CollectionReport{}}
		sel, _ := newMatcher(opts.NS)
		var buf bytes.Buffer
		buf.Write(bsonFile(t, d.oplog))
		if err := rs.replayOplog(ctx, bufioReader(&buf), p, sel); err != nil {
			t.Fatal(err)
		}
		got := normalizeRelaxed(t, readAll(t, client.Database("app").Collection("c")))
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %v\nwant %v", got, want)
		}
	})
}

func normalizeRelaxed(t *testing.T, docs []bson.D) []string {
	t.Helper()
	out := make([]string, len(docs))
	for i, d := range docs {
		b, err := bson.MarshalExtJSON(d, false, false)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = string(b)
	}
	return out
}

func TestPlainDump(t *testing.T) {
	client := start(t)
	ctx := context.Background()
	d := sampleDump()
	d.plain, d.prefix = true, "dump/"
	d.oplog = []bson.D{opEntry(5, "i", "other.things", bson.D{{Key: "_id", Value: 100}}, nil)}
	fs := d.files(t)
	// A metadata file without data: the collection is created all the same.
	fs = append(fs, file{"dump/other/metaonly.metadata.json", []byte(`{"options":{"capped":true,"size":4096},"indexes":[{"v":2,"key":{"_id":1},"name":"_id_"}]}`)})
	// tar of a dump directory may list the oplog first.
	fs = append([]file{fs[len(fs)-1]}, fs[:len(fs)-1]...)
	data := tgz(t, fs)
	p, err := Plan(ctx, bytes.NewReader(data), Options{Plain: true})
	if err != nil {
		t.Fatal(err)
	}
	if p.Manifest != nil || len(p.Collections) != 5 || p.OplogEntries != 1 {
		t.Fatalf("plan %+v", p)
	}
	rep, err := Run(ctx, client, bytes.NewReader(data), p, Options{Plain: true}, nil)
	if err != nil || !rep.OK {
		t.Fatalf("rep %+v, err %v", rep, err)
	}
	if n, _ := client.Database("other").Collection("things").CountDocuments(ctx, bson.D{}); n != 4 {
		t.Fatalf("other.things holds %d documents, want 3 dumped + 1 replayed", n)
	}
	specs, err := client.Database("other").ListCollectionSpecifications(ctx, bson.D{{Key: "name", Value: "metaonly"}})
	if err != nil || len(specs) != 1 {
		t.Fatalf("metadata-only collection not created: %v, %v", specs, err)
	}
	if _, err := Plan(ctx, bytes.NewReader(data), Options{}); !errors.Is(err, ErrInvalidArchive) {
		t.Fatalf("a0 mode accepted a plain dump: %v", err)
	}
}

func bufioReader(r *bytes.Buffer) *bufio.Reader { return bufio.NewReader(r) }

func TestRunReports(t *testing.T) {
	client := start(t)
	ctx := context.Background()

	t.Run("rejected index is reported, data restored", func(t *testing.T) {
		d := dump{colls: []coll{{db: "ttl", name: "s", docs: users(5), indexes: []bson.D{
			{{Key: "key", Value: bson.D{{Key: "n", Value: 1}}}, {Key: "name", Value: "n_1"}, {Key: "expireAfterSeconds", Value: 60}},
			{{Key: "key", Value: bson.D{{Key: "tenant", Value: 1}}}, {Key: "name", Value: "tenant_1"}},
		}}}}
		rep, err := restore(t, client, d.archive(t), Options{})
		if err != nil {
			t.Fatal(err)
		}
		cr := rep.Collections[0]
		// FerretDB refuses TTL indexes; MongoDB would accept both.
		if cr.DocumentsFound != 5 || cr.IndexesExpected != 3 || cr.IndexesFound != 2 || len(cr.IndexErrors) != 1 ||
			!strings.HasPrefix(cr.IndexErrors[0], "n_1:") || cr.OK || rep.OK {
			t.Fatalf("report %+v", rep)
		}
	})

	t.Run("archive changed between passes", func(t *testing.T) {
		a := dump{colls: []coll{{db: "chg", name: "c", docs: users(5)}}}
		b := dump{colls: []coll{{db: "chg", name: "c", docs: users(6)}}}
		p, err := Plan(ctx, bytes.NewReader(a.archive(t)), Options{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = Run(ctx, client, bytes.NewReader(b.archive(t)), p, Options{}, nil)
		if !errors.Is(err, ErrInvalidArchive) {
			t.Fatalf("err = %v, want ErrInvalidArchive", err)
		}
	})
}
