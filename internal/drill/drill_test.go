package drill_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"

	"github.com/a0backup/a0/internal/archive"
	"github.com/a0backup/a0/internal/drill"
	"github.com/a0backup/a0/internal/drill/drilltest"
	"github.com/a0backup/a0/internal/dump"
	"github.com/a0backup/a0/internal/embedded"
	"github.com/a0backup/a0/internal/embedded/embeddedtest"
	"github.com/a0backup/a0/internal/manifest"
)

// dumpOf seeds a fresh embedded server (with its oplog) and dumps it into
// a tar.gz as a backup does; with writes, the dump's oplog holds an update,
// an insert and a delete in auth0.users made after its data was read.
func dumpOf(t *testing.T, writes ...bool) ([]byte, *manifest.Manifest) {
	t.Helper()
	ctx := context.Background()
	client := embeddedtest.Client(t, embedded.Config{Oplog: true})
	insert := func(db, coll string, n int, mk func(i int) bson.D) {
		docs := make([]any, 0, n)
		for i := range n {
			docs = append(docs, mk(i))
		}
		if _, err := client.Database(db).Collection(coll).InsertMany(ctx, docs); err != nil {
			t.Fatal(err)
		}
	}
	insert("auth0", "users", 300, func(i int) bson.D {
		return bson.D{{Key: "_id", Value: i}, {Key: "email", Value: fmt.Sprintf("user%05d@example.com", i)}, {Key: "n", Value: int64(i)}}
	})
	insert("auth0", "clients", 20, func(i int) bson.D { return bson.D{{Key: "client_id", Value: fmt.Sprintf("c%03d", i)}} })
	insert("other", "things", 3, func(i int) bson.D { return bson.D{{Key: "i", Value: i}} })
	if _, err := client.Database("auth0").Collection("users").Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys: bson.D{{Key: "email", Value: 1}}, Options: options.Index().SetUnique(true).SetName("email_1")}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	aw, err := archive.NewWriter(&buf, archive.Options{})
	if err != nil {
		t.Fatal(err)
	}
	opts := dump.Options{SpoolDir: t.TempDir()}
	if len(writes) > 0 && writes[0] {
		opts.BeforeOplogEnd = func(ctx context.Context) {
			users := client.Database("auth0").Collection("users")
			if _, err := users.UpdateOne(ctx, bson.D{{Key: "_id", Value: 7}}, bson.D{{Key: "$set", Value: bson.D{{Key: "n", Value: int64(-7)}}}}); err != nil {
				t.Error(err)
			}
			if _, err := users.InsertOne(ctx, bson.D{{Key: "_id", Value: 1000}, {Key: "email", Value: "late@example.com"}, {Key: "n", Value: int64(1000)}}); err != nil {
				t.Error(err)
			}
			if _, err := users.DeleteOne(ctx, bson.D{{Key: "_id", Value: 8}}); err != nil {
				t.Error(err)
			}
		}
	}
	m, err := dump.Run(ctx, client, aw, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := aw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), m
}

func opener(b []byte) func() (io.Reader, error) {
	return func() (io.Reader, error) { return bytes.NewReader(b), nil }
}

// leftIn lists what a drill left in parent.
func leftIn(t *testing.T, parent string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(parent, drill.DirPattern))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRun(t *testing.T) {
	tgz, man := dumpOf(t)
	for _, c := range man.Collections {
		if c.Digest == "" {
			t.Fatalf("the dump wrote no digest for %s", c.Namespace())
		}
	}
	altered, _, err := drilltest.Alter(tgz, []byte("user00042@"), []byte("user00042!"))
	if err != nil {
		t.Fatal(err)
	}
	stripped := stripDigests(t, tgz)
	tests := []struct {
		name    string
		archive []byte
		ok      bool
		status  map[string]string // namespace -> status (the others ok)
		digests bool
	}{
		{"intact", tgz, true, nil, true},
		{"altered after the dump", altered, false, map[string]string{"auth0.users": drill.StatusDiffers}, true},
		{"made before digests", stripped, true, map[string]string{"auth0.users": drill.StatusNoDigest, "auth0.clients": drill.StatusNoDigest, "other.things": drill.StatusNoDigest}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			rep, err := drill.Run(context.Background(), drill.Options{Open: opener(tc.archive), Parent: parent})
			if err != nil {
				t.Fatal(err)
			}
			if left := leftIn(t, parent); len(left) > 0 {
				t.Fatalf("left behind: %v", left)
			}
			if rep.OK != tc.ok || rep.Digests != tc.digests {
				t.Fatalf("OK %v digests %v, want %v %v: %+v", rep.OK, rep.Digests, tc.ok, tc.digests, rep)
			}
			if len(rep.Collections) != len(man.Collections) {
				t.Fatalf("%d collections reported, %d dumped", len(rep.Collections), len(man.Collections))
			}
			for _, c := range rep.Collections {
				want := tc.status[c.Namespace]
				if want == "" {
					want = drill.StatusOK
				}
				if c.Status != want {
					t.Errorf("%s: %s (%s), want %s", c.Namespace, c.Status, c.Reason, want)
				}
				if c.DocumentsFound != c.DocumentsExpected {
					t.Errorf("%s: %d documents found, %d expected", c.Namespace, c.DocumentsFound, c.DocumentsExpected)
				}
				if c.IndexesFound != c.IndexesExpected {
					t.Errorf("%s: %d indexes found, %d expected", c.Namespace, c.IndexesFound, c.IndexesExpected)
				}
				if c.Status == drill.StatusDiffers && (c.DigestFound == c.DigestExpected || c.Reason == "") {
					t.Errorf("%s differs without a reason or a digest difference: %+v", c.Namespace, c)
				}
			}
			if rep.RestoreTime <= 0 {
				t.Errorf("restore time %v", rep.RestoreTime)
			}
		})
	}
}

// TestRunComparesBeforeReplay: the digests are of the data as dumped; the
// oplog captured beside the dump (writes after the data was read) changes
// it. The drill compares before the replay, then replays, which must apply
// the entries; comparing after the replay would find auth0.users changed.
func TestRunComparesBeforeReplay(t *testing.T) {
	tgz, man := dumpOf(t, true)
	if man.OplogEntries < 3 {
		t.Fatalf("the dump's oplog holds %d entries, want the 3 writes", man.OplogEntries)
	}
	parent := t.TempDir()
	rep, err := drill.Run(context.Background(), drill.Options{Open: opener(tgz), Parent: parent})
	if err != nil {
		t.Fatal(err)
	}
	if left := leftIn(t, parent); len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
	if !rep.OK || rep.Same != len(man.Collections) {
		t.Fatalf("%+v", rep)
	}
	if rep.OplogEntries != man.OplogEntries || rep.OplogApplied < 3 {
		t.Fatalf("oplog: %d entries, %d applied, skipped %v", rep.OplogEntries, rep.OplogApplied, rep.OplogSkipped)
	}
}

// stripDigests repacks tgz with a manifest without digests: a backup made
// before the dump wrote them.
func stripDigests(t *testing.T, tgz []byte) []byte {
	t.Helper()
	return repack(t, tgz, func(name string, data []byte) []byte {
		if name != manifest.Name {
			return data
		}
		m, err := manifest.Decode(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		for i := range m.Collections {
			m.Collections[i].Digest = ""
		}
		if data, err = m.Encode(); err != nil {
			t.Fatal(err)
		}
		return data
	})
}

// TestRunCancelled: a cancelled drill removes its directory too.
func TestRunCancelled(t *testing.T) {
	tgz, _ := dumpOf(t)
	parent := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	_, err := drill.Run(ctx, drill.Options{Parent: parent, Open: func() (io.Reader, error) {
		n++
		if n == 2 { // the restore's pass: cancel as it starts
			// The decrypted data go in there: only this user may read it.
			dirs := leftIn(t, parent)
			if len(dirs) != 1 {
				t.Errorf("drill directories %v", dirs)
			} else if st, err := os.Stat(dirs[0]); err != nil || st.Mode().Perm() != 0o700 {
				t.Errorf("drill directory %v: %v", st.Mode(), err)
			}
			cancel()
		}
		return bytes.NewReader(tgz), nil
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	if left := leftIn(t, parent); len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
}

// TestRunNotHeld: a collection the embedded server cannot hold (here a
// validator, which FerretDB lacks) is left out, named and counted with
// the server's reason; the others are still restored and compared. When
// none is held, nothing is restored (not everything, as an empty
// selection would).
func TestRunNotHeld(t *testing.T) {
	tgz, man := dumpOf(t, true) // with an oplog naming auth0.users
	withValidator := func(metas ...string) []byte {
		return repack(t, tgz, func(name string, data []byte) []byte {
			if !slices.Contains(metas, name) {
				return data
			}
			var md map[string]any
			if err := json.Unmarshal(data, &md); err != nil {
				t.Fatal(err)
			}
			md["options"] = map[string]any{"validator": map[string]any{"i": map[string]any{"$exists": true}}}
			b, err := json.Marshal(md)
			if err != nil {
				t.Fatal(err)
			}
			return b
		})
	}
	all := []string{"auth0/users.metadata.json", "auth0/clients.metadata.json", "other/things.metadata.json"}
	tests := []struct {
		name    string
		archive []byte
		notHeld []string
	}{
		{"one", withValidator("other/things.metadata.json"), []string{"other.things"}},
		{"all", withValidator(all...), []string{"auth0.users", "auth0.clients", "other.things"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := drill.Run(context.Background(), drill.Options{Open: opener(tc.archive), Parent: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			if !rep.OK || rep.NotHeld != len(tc.notHeld) || rep.Same != len(man.Collections)-len(tc.notHeld) {
				t.Fatalf("%+v", rep)
			}
			if len(tc.notHeld) == len(man.Collections) && (rep.OplogApplied != 0 || man.OplogEntries == 0) {
				// The oplog names only collections not held: replaying it
				// would restore them after all.
				t.Errorf("nothing held, yet %d of %d oplog entries applied", rep.OplogApplied, man.OplogEntries)
			}
			for _, c := range rep.Collections {
				held := !slices.Contains(tc.notHeld, c.Namespace)
				if !held && (c.Status != drill.StatusNotHeld || !strings.Contains(c.Reason, "validator") || c.DocumentsFound != 0) {
					t.Errorf("%+v", c)
				}
				if held && c.Status != drill.StatusOK {
					t.Errorf("%+v", c)
				}
			}
		})
	}
}

// repack rewrites tgz entry by entry through edit.
func repack(t *testing.T, tgz []byte, edit func(name string, data []byte) []byte) []byte {
	t.Helper()
	ar, err := archive.NewReader(bytes.NewReader(tgz), archive.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	aw, err := archive.NewWriter(&out, archive.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for {
		e, err := ar.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(ar)
		if err != nil {
			t.Fatal(err)
		}
		if err := aw.AddBytes(e.Name, e.Mode, e.ModTime, edit(e.Name, data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := aw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestRunDocumentsNotHeld: documents a real mongod stores and the
// embedded server cannot hold (field names with '.' or a leading '$',
// Decimal128, on which it drops the connection) in an intact backup: each
// collection holding some is not restored, named and counted, with the
// documents it could not hold, and the drill passes for the rest; a real
// difference in another collection still fails it.
func TestRunDocumentsNotHeld(t *testing.T) {
	tgz, man := dumpOf(t, true) // with an oplog naming auth0.users
	raw := func(d bson.D) []byte {
		b, err := bson.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	dec, err := bson.ParseDecimal128("19.99")
	if err != nil {
		t.Fatal(err)
	}
	injected, err := drilltest.Inject(tgz, "other/things.bson", "other.things",
		raw(bson.D{{Key: "_id", Value: 100}, {Key: "hosts", Value: bson.D{{Key: "db1.example.com", Value: 1}}}}),
		raw(bson.D{{Key: "_id", Value: 101}, {Key: "owner", Value: bson.D{{Key: "$ref", Value: "users"}, {Key: "$id", Value: 7}}}}))
	if err != nil {
		t.Fatal(err)
	}
	injected, err = drilltest.Inject(injected, "auth0/clients.bson", "auth0.clients",
		raw(bson.D{{Key: "_id", Value: "priced"}, {Key: "price", Value: dec}}))
	if err != nil {
		t.Fatal(err)
	}
	altered, _, err := drilltest.Alter(injected, []byte("user00042@"), []byte("user00042!"))
	if err != nil {
		t.Fatal(err)
	}
	notHeld := map[string]struct {
		docs int64
		why  string
	}{"other.things": {2, "containing '.'"}, "auth0.clients": {1, "Decimal128"}}
	tests := []struct {
		name    string
		archive []byte
		ok      bool
		users   string // auth0.users' status
	}{
		{"intact", injected, true, drill.StatusOK},
		{"another collection altered", altered, false, drill.StatusDiffers},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			rep, err := drill.Run(context.Background(), drill.Options{Open: opener(tc.archive), Parent: parent})
			if err != nil {
				t.Fatal(err)
			}
			if left := leftIn(t, parent); len(left) > 0 {
				t.Fatalf("left behind: %v", left)
			}
			if rep.OK != tc.ok || rep.NotHeld != 2 || rep.DocumentsNotHeld != 3 || len(rep.Collections) != len(man.Collections) {
				t.Fatalf("OK %v, %d not held (%d documents), want %v, 2 (3): %+v", rep.OK, rep.NotHeld, rep.DocumentsNotHeld, tc.ok, rep)
			}
			if rep.OplogApplied < 3 {
				t.Errorf("the oplog of auth0.users was not replayed: %d applied", rep.OplogApplied)
			}
			for _, c := range rep.Collections {
				want, isNotHeld := notHeld[c.Namespace]
				switch {
				case isNotHeld:
					if c.Status != drill.StatusNotHeld || c.DocumentsNotHeld != want.docs || !strings.Contains(c.Reason, want.why) {
						t.Errorf("%+v, want not-held, %d documents, %q", c, want.docs, want.why)
					}
				case c.Namespace == "auth0.users":
					if c.Status != tc.users {
						t.Errorf("%+v, want %s", c, tc.users)
					}
				default:
					t.Errorf("unexpected collection %+v", c)
				}
			}
		})
	}
}

// TestRunOplogNotHeld: an oplog entry of the backup writing a document the
// embedded server cannot hold (an insert with a Decimal128 during the
// dump) leaves its collection out too, found in the plan's pass: the
// replay never sends it (FerretDB would drop the connection and end the
// drill), the collection is named not-held for the oplog, the others
// pass.
func TestRunOplogNotHeld(t *testing.T) {
	tgz, man := dumpOf(t, true) // the oplog inserts _id 1000 into auth0.users
	dec, err := bson.ParseDecimal128("1000.00")
	if err != nil {
		t.Fatal(err)
	}
	changed := false
	withDecimal := repack(t, tgz, func(name string, data []byte) []byte {
		if name != "oplog.bson" {
			return data
		}
		var out []byte
		for len(data) > 0 {
			doc, rest, ok := bsoncore.ReadDocument(data)
			if !ok {
				t.Fatal("oplog.bson: bad document")
			}
			data = rest
			var e bson.D
			if err := bson.Unmarshal(doc, &e); err != nil {
				t.Fatal(err)
			}
			if op, _ := bson.Raw(doc).Lookup("op").StringValueOK(); op == "i" && !changed {
				for i := range e {
					if e[i].Key == "o" {
						e[i].Value = append(e[i].Value.(bson.D), bson.E{Key: "balance", Value: dec})
						changed = true
					}
				}
			}
			b, err := bson.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b...)
		}
		return out
	})
	if !changed {
		t.Fatal("no insert in the dump's oplog")
	}
	rep, err := drill.Run(context.Background(), drill.Options{Open: opener(withDecimal), Parent: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || rep.NotHeld != 1 || rep.Same != len(man.Collections)-1 {
		t.Fatalf("%+v", rep)
	}
	for _, c := range rep.Collections {
		if c.Namespace == "auth0.users" && (c.Status != drill.StatusNotHeld || !strings.Contains(c.Reason, "oplog entries") || !strings.Contains(c.Reason, "Decimal128")) {
			t.Errorf("%+v", c)
		}
	}
}

// TestRunNotHeldBytes: a collection the embedded server cannot hold (a
// Decimal128 in one of its documents) is not restored, yet its documents
// as the archive holds them are compared with the manifest, as the dump
// summed them: intact, it is not-held with its bytes verified and the
// drill passes; with the Decimal128 document's bytes altered after the
// dump, the collection differs and the drill fails.
func TestRunNotHeldBytes(t *testing.T) {
	tgz, man := dumpOf(t)
	dec, err := bson.ParseDecimal128("19.99")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := bson.Marshal(bson.D{{Key: "_id", Value: "priced"}, {Key: "price", Value: dec}, {Key: "note", Value: "as dumped"}})
	if err != nil {
		t.Fatal(err)
	}
	intact, err := drilltest.Inject(tgz, "auth0/clients.bson", "auth0.clients", doc)
	if err != nil {
		t.Fatal(err)
	}
	altered, entry, err := drilltest.Alter(intact, []byte("as dumped"), []byte("as hacked"))
	if err != nil {
		t.Fatal(err)
	}
	if entry != "auth0/clients.bson" {
		t.Fatalf("altered %s, want auth0/clients.bson", entry)
	}
	tests := []struct {
		name    string
		archive []byte
		ok      bool
		status  string
	}{
		{"intact", intact, true, drill.StatusNotHeld},
		{"altered", altered, false, drill.StatusDiffers},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := drill.Run(context.Background(), drill.Options{Open: opener(tc.archive), Parent: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK != tc.ok || rep.Same != len(man.Collections)-1 {
				t.Fatalf("OK %v, %d same, want %v, %d: %+v", rep.OK, rep.Same, tc.ok, len(man.Collections)-1, rep)
			}
			var c drill.Collection
			for _, rc := range rep.Collections {
				if rc.Namespace == "auth0.clients" {
					c = rc
				}
			}
			if c.Status != tc.status || c.DocumentsNotHeld != 1 || c.DocumentsArchived != 21 || c.DocumentsFound != 0 || !strings.Contains(c.Reason, "Decimal128") {
				t.Fatalf("auth0.clients: %+v, want %s, 1 document not held, 21 archived", c, tc.status)
			}
			if tc.ok {
				if !c.BytesVerified || c.DigestArchived != c.DigestExpected || rep.NotHeld != 1 || rep.NotHeldVerified != 1 || !strings.Contains(c.Reason, "bytes verified") {
					t.Errorf("intact: %+v; report: %d not held, %d verified", c, rep.NotHeld, rep.NotHeldVerified)
				}
				return
			}
			if c.BytesVerified || c.DigestArchived == c.DigestExpected || rep.Differs != 1 || rep.NotHeld != 0 || rep.NotHeldVerified != 0 ||
				!strings.Contains(c.Reason, "content digest of its archived documents differs") {
				t.Errorf("altered: %+v; report: %d differ, %d not held, %d verified", c, rep.Differs, rep.NotHeld, rep.NotHeldVerified)
			}
		})
	}
}

// TestRunOplogCommandsNotHeld: command entries of the backup's oplog that
// the embedded server cannot take (the forms a real mongod logs: a
// createIndexes with a collation, a create with a $jsonSchema validator,
// a create whose validator holds a Decimal128; and a view the oplog
// creates, an insert into system.views) leave their collections out,
// named and counted as not-held, found in the plan's pass, instead of
// failing the replay or the index builds of a backup that is fine; a
// collection only the oplog creates is listed too. An alteration of
// another collection still fails the drill.
func TestRunOplogCommandsNotHeld(t *testing.T) {
	tgz, man := dumpOf(t, true) // the oplog writes auth0.users
	cmds := []string{
		`{"op":"i","ns":"other.system.views","o":{"_id":"other.v","viewOn":"things","pipeline":[]}}`,
		`{"createIndexes":"things","v":{"$numberInt":"2"},"key":{"i":{"$numberInt":"1"}},"name":"i_1","collation":{"locale":"en_US","strength":{"$numberInt":"2"}}}`,
		`{"create":"audit","validator":{"$jsonSchema":{"bsonType":"object","title":"Test validator","properties":{"testField":{"enum":["valid"]}}}},"idIndex":{"v":{"$numberInt":"2"},"key":{"_id":{"$numberInt":"1"}},"name":"_id_"}}`,
		`{"create":"prices","validator":{"price":{"$gt":{"$numberDecimal":"0.01"}}},"idIndex":{"v":{"$numberInt":"2"},"key":{"_id":{"$numberInt":"1"}},"name":"_id_"}}`,
	}
	injected := repack(t, tgz, func(name string, data []byte) []byte {
		if name == manifest.Name {
			// The dump counted them: the entries are the backup's own.
			m, err := manifest.Decode(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			m.OplogEntries += int64(len(cmds))
			if data, err = m.Encode(); err != nil {
				t.Fatal(err)
			}
			return data
		}
		if name != "oplog.bson" {
			return data
		}
		first, rest, ok := bsoncore.ReadDocument(data)
		if !ok {
			t.Fatal("oplog.bson: bad document")
		}
		ts, i, ok := bson.Raw(first).Lookup("ts").TimestampOK()
		if !ok {
			t.Fatal("oplog.bson: the first entry has no ts")
		}
		// The entries follow the first (the a0 noop) under its
		// timestamp: what comes next is FerretDB's, whose numbering this
		// test does not control; the replay goes by the file's order.
		out := append([]byte(nil), first...)
		for _, c := range cmds {
			var o bson.Raw
			if err := bson.UnmarshalExtJSON([]byte(c), false, &o); err != nil {
				t.Fatal(err)
			}
			op, ns := "c", "other.$cmd"
			if v, err := o.LookupErr("op"); err == nil {
				// A CRUD entry, given whole.
				op, ns, o = v.StringValue(), o.Lookup("ns").StringValue(), o.Lookup("o").Document()
			}
			e, err := bson.Marshal(bson.D{{Key: "op", Value: op}, {Key: "ns", Value: ns}, {Key: "o", Value: o},
				{Key: "ts", Value: bson.Timestamp{T: ts, I: i}}, {Key: "t", Value: int64(1)}, {Key: "v", Value: int64(2)}})
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, e...)
		}
		return append(out, rest...)
	})
	altered, _, err := drilltest.Alter(injected, []byte("user00042@"), []byte("user00042!"))
	if err != nil {
		t.Fatal(err)
	}
	notHeld := map[string]string{"other.things": "collation", "other.audit": "validator", "other.prices": "Decimal128", "other.v": "view"}
	tests := []struct {
		name    string
		archive []byte
		ok      bool
		users   string
	}{
		{"intact", injected, true, drill.StatusOK},
		{"another collection altered", altered, false, drill.StatusDiffers},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := drill.Run(context.Background(), drill.Options{Open: opener(tc.archive), Parent: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK != tc.ok || rep.NotHeld != len(notHeld) || len(rep.Collections) != len(man.Collections)+3 {
				t.Fatalf("OK %v, %d not held, %d collections; want %v, %d, %d: %+v", rep.OK, rep.NotHeld, len(rep.Collections), tc.ok, len(notHeld), len(man.Collections)+3, rep)
			}
			for _, c := range rep.Collections {
				why, isNotHeld := notHeld[c.Namespace]
				switch {
				case isNotHeld:
					if c.Status != drill.StatusNotHeld || !strings.Contains(c.Reason, why) || !strings.Contains(c.Reason, "oplog") {
						t.Errorf("%+v, want not-held for %q", c, why)
					}
					if c.Namespace == "other.things" && !c.BytesVerified {
						t.Errorf("other.things: its archived documents not verified: %+v", c)
					}
				case c.Namespace == "auth0.users":
					if c.Status != tc.users {
						t.Errorf("%+v, want %s", c, tc.users)
					}
				case c.Status != drill.StatusOK:
					t.Errorf("%+v, want ok", c)
				}
			}
		})
	}
}

// TestRunIndexesNotHeld: a dumped index the embedded server cannot build
// (a TTL index, which every real deployment's sessions or logs have)
// leaves its collection out, not-held with the index named and its
// archived documents verified, instead of failing the drill in the index
// builds of a backup that is fine.
func TestRunIndexesNotHeld(t *testing.T) {
	tgz, man := dumpOf(t, true)
	withTTL := repack(t, tgz, func(name string, data []byte) []byte {
		if name == manifest.Name {
			// The dump counted it: the index is the backup's own.
			m, err := manifest.Decode(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			for i := range m.Collections {
				if m.Collections[i].Namespace() == "auth0.users" {
					m.Collections[i].Indexes++
				}
			}
			if data, err = m.Encode(); err != nil {
				t.Fatal(err)
			}
			return data
		}
		if name != "auth0/users.metadata.json" {
			return data
		}
		var md map[string]any
		if err := json.Unmarshal(data, &md); err != nil {
			t.Fatal(err)
		}
		md["indexes"] = append(md["indexes"].([]any), map[string]any{"v": 2, "key": map[string]any{"n": 1}, "name": "n_1", "expireAfterSeconds": 3600})
		b, err := json.Marshal(md)
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
	rep, err := drill.Run(context.Background(), drill.Options{Open: opener(withTTL), Parent: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || rep.NotHeld != 1 || rep.NotHeldVerified != 1 || rep.Same != len(man.Collections)-1 {
		t.Fatalf("%+v", rep)
	}
	for _, c := range rep.Collections {
		if c.Namespace == "auth0.users" && (c.Status != drill.StatusNotHeld || !strings.Contains(c.Reason, "n_1") || !strings.Contains(c.Reason, "expireAfterSeconds") || !c.BytesVerified) {
			t.Errorf("%+v", c)
		}
	}
}
