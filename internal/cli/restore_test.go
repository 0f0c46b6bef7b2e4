package cli

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/a0backup/a0/internal/agent"
	"github.com/a0backup/a0/internal/crypt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// userNamespaces lists db.coll of every user collection.
func userNamespaces(t *testing.T, c *mongo.Client) []string {
	t.Helper()
	ctx := context.Background()
	dbs, err := c.ListDatabaseNames(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, db := range dbs {
		if db == "admin" || db == "local" || db == "config" {
			continue
		}
		colls, err := c.Database(db).ListCollectionNames(ctx, bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		for _, coll := range colls {
			out = append(out, db+"."+coll)
		}
	}
	sort.Strings(out)
	return out
}

func splitNS(ns string) (string, string) {
	i := strings.IndexByte(ns, '.')
	return ns[:i], ns[i+1:]
}

// sameCollection compares documents (byte for byte, in _id order), options
// and indexes of a namespace on two servers.
func sameCollection(t *testing.T, a, b *mongo.Client, ns string) {
	t.Helper()
	ctx := context.Background()
	db, coll := splitNS(ns)
	docs := func(c *mongo.Client) []bson.Raw {
		cur, err := c.Database(db).Collection(coll).Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
		if err != nil {
			t.Fatal(err)
		}
		var out []bson.Raw
		for cur.Next(ctx) {
			out = append(out, append(bson.Raw(nil), cur.Current...))
		}
		return out
	}
	da, db2 := docs(a), docs(b)
	if len(da) != len(db2) {
		t.Fatalf("%s: %d documents in source, %d restored", ns, len(da), len(db2))
	}
	for i := range da {
		if !bytes.Equal(da[i], db2[i]) {
			t.Fatalf("%s: document %d differs:\n%s\n%s", ns, i, da[i], db2[i])
		}
	}
	indexes := func(c *mongo.Client) []string {
		specs, err := c.Database(db).Collection(coll).Indexes().ListSpecifications(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, s := range specs {
			u := s.Unique != nil && *s.Unique
			out = append(out, s.Name+"|"+s.KeysDocument.String()+"|"+map[bool]string{true: "unique"}[u])
		}
		sort.Strings(out)
		return out
	}
	if ia, ib := indexes(a), indexes(b); strings.Join(ia, ";") != strings.Join(ib, ";") {
		t.Fatalf("%s: indexes differ:\n%v\n%v", ns, ia, ib)
	}
	opts := func(c *mongo.Client) string {
		specs, err := c.Database(db).ListCollectionSpecifications(ctx, bson.D{{Key: "name", Value: coll}})
		if err != nil || len(specs) != 1 {
			t.Fatal(err)
		}
		return specs[0].Options.String()
	}
	if oa, ob := opts(a), opts(b); oa != ob {
		t.Fatalf("%s: options differ: %s vs %s", ns, oa, ob)
	}
}

func TestRestoreRoundTrip(t *testing.T) {
	src, op, _ := backupNode(t, 300)
	// A capped collection checks that options travel too.
	ctx := context.Background()
	if err := src.client().Database("audit").CreateCollection(ctx, "events", options.CreateCollection().SetCapped(true).SetSizeInBytes(1<<20)); err != nil {
		t.Fatal(err)
	}
	src.client().Database("audit").Collection("events").InsertOne(ctx, bson.D{{Key: "_id", Value: 1}, {Key: "what", Value: "login"}})
	const pw = "Passw0rd-restore"
	op.env["A0_BACKUP_PASSWORD"] = pw
	op.mustOn(src, "backup")
	if st := decodeStatus(t, op.waitStatus(src, "backup-status")); st.Message != "Backup found" {
		t.Fatalf("%+v\n%s", st, src.log.String())
	}
	op.mustOn(src, "backup-retrieve")
	file := filepath.Join(op.dir, "backup-retrieve.tar.gz.enc")
	want := userNamespaces(t, src.client())

	t.Run("verify", func(t *testing.T) {
		r := op.run("verify", file)
		if r.code != 0 || !strings.Contains(r.stdout, "OK: every byte") || !strings.Contains(r.stdout, "auth0.users") {
			t.Fatalf("%+v", r)
		}
		if r := op.run("verify", file, "--json"); r.code != 0 || !strings.Contains(r.stdout, `"authentic":true`) {
			t.Fatalf("%+v", r)
		}
	})

	t.Run("round trip into a fresh node", func(t *testing.T) {
		dst := startNode(t, "", "")
		dst.authorize("ops", op.home)
		r := op.mustOn(dst, "restore", file)
		if !strings.Contains(r.stdout, "Restore finished") {
			t.Fatalf("%+v", r)
		}
		// Issue 28.7: said once the node writes, before the report.
		if i, j := strings.Index(r.stdout, "Restore in progress."), strings.Index(r.stdout, "collection "); i < 0 || j < i {
			t.Fatalf("want \"Restore in progress.\" before the report:\n%s", r.stdout)
		}
		got := userNamespaces(t, dst.client())
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("namespaces: %v, want %v", got, want)
		}
		for _, ns := range want {
			sameCollection(t, src.client(), dst.client(), ns)
		}
		t.Run("non-empty targets refused, --drop replaces", func(t *testing.T) {
			r := op.on(dst, "restore", file)
			if r.code != ExitRefused || !strings.Contains(r.stderr, "auth0.users") {
				t.Fatalf("%+v", r)
			}
			// Issue 28.7: a refusal is not announced as a restore.
			if strings.Contains(r.stdout, "Restore in progress") {
				t.Fatalf("a refused restore printed \"Restore in progress\":\n%s", r.stdout)
			}
			// A dry run shows the plan and what --drop replaces, exit 0,
			// with or without --drop, and writes nothing.
			before := countDocs(t, dst.client(), "auth0.users")
			for _, args := range [][]string{{"--dry-run"}, {"--dry-run", "--drop"}} {
				r := op.on(dst, append([]string{"restore", file}, args...)...)
				if r.code != 0 || !strings.Contains(r.stdout, "would restore: ") ||
					!strings.Contains(r.stdout, "already hold documents (--drop drops and replaces them; without it the restore refuses them): ") ||
					!strings.Contains(r.stdout, "auth0.users") || !strings.Contains(r.stdout, "Dry run finished: nothing was written") {
					t.Fatalf("restore %v: %+v", args, r)
				}
				if strings.Contains(r.stdout, "Restore in progress") {
					t.Fatalf("restore %v printed \"Restore in progress\":\n%s", args, r.stdout)
				}
			}
			if r := op.on(dst, "restore", file, "--dry-run", "--json"); r.code != 0 || !strings.Contains(r.stdout, `"non_empty":[`) {
				t.Fatalf("--json: %+v", r)
			}
			if after := countDocs(t, dst.client(), "auth0.users"); after != before {
				t.Fatalf("the dry run changed auth0.users: %d -> %d documents", before, after)
			}
			op.mustOn(dst, "restore", file, "--drop")
			sameCollection(t, src.client(), dst.client(), "auth0.users")
		})
	})

	t.Run("selective restore", func(t *testing.T) {
		dst := startNode(t, "", "")
		dst.authorize("ops", op.home)
		op.mustOn(dst, "restore", file, "--ns", "auth0.u*", "--ns", "logs.logs")
		got := userNamespaces(t, dst.client())
		if strings.Join(got, ",") != "auth0.users,logs.logs" {
			t.Fatalf("restored %v", got)
		}
		sameCollection(t, src.client(), dst.client(), "auth0.users")
	})

	t.Run("dry run writes nothing", func(t *testing.T) {
		dst := startNode(t, "", "")
		dst.authorize("ops", op.home)
		r := op.mustOn(dst, "restore", file, "--dry-run")
		if !strings.Contains(r.stdout, "would restore") || !strings.Contains(r.stdout, "Dry run finished: nothing was written") {
			t.Fatalf("%+v", r)
		}
		if strings.Contains(r.stdout, "Restore in progress") || strings.Contains(r.stdout, "already hold documents") {
			t.Fatalf("a dry run on an empty node: %+v", r)
		}
		// A --ns that names nothing is refused, not an empty success.
		if r := op.on(dst, "restore", file, "--dry-run", "--ns", "nosuch.*"); r.code != ExitUsage || !strings.Contains(r.stderr, "--ns nosuch.* matches no collection of the backup") {
			t.Fatalf("--ns matching nothing: exit %d %s", r.code, r.stderr)
		}
		if got := userNamespaces(t, dst.client()); len(got) != 0 {
			t.Fatalf("dry run wrote %v", got)
		}
	})

	t.Run("tampered files refused before the database is touched", func(t *testing.T) {
		full := readFile(t, file)
		dst := startNode(t, "", "")
		dst.authorize("ops", op.home)
		cases := []struct {
			name string
			mut  func([]byte) []byte
		}{
			{"bit in header", func(b []byte) []byte { b = clone(b); b[40] ^= 1; return b }},
			{"bit at start of data", func(b []byte) []byte { b = clone(b); b[130] ^= 1; return b }},
			{"bit in the middle", func(b []byte) []byte { b = clone(b); b[len(b)/2] ^= 0x10; return b }},
			{"bit at the end", func(b []byte) []byte { b = clone(b); b[len(b)-1] ^= 0x80; return b }},
			{"truncated", func(b []byte) []byte { return clone(b[:len(b)-100]) }},
			// Damage to the last of several records, and reordered
			// records: TestRestoreRefusesTamperingInTheLastRecord.
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				bad := tc.mut(full)
				p := filepath.Join(op.dir, "bad-"+strings.ReplaceAll(tc.name, " ", "-")+".enc")
				os.WriteFile(p, bad, 0o600)
				r := op.on(dst, "restore", p)
				if r.code != ExitIntegrity {
					t.Fatalf("exit %d: %s", r.code, r.stderr)
				}
				if got := userNamespaces(t, dst.client()); len(got) != 0 {
					t.Fatalf("database touched: %v", got)
				}
				if v := op.run("verify", p); v.code != ExitIntegrity {
					t.Fatalf("verify accepted it: %+v", v)
				}
				out := p + ".tar.gz"
				d := op.run("decrypt", p, "-o", out)
				if d.code != ExitIntegrity || !strings.Contains(d.stderr, "byte") {
					t.Fatalf("decrypt: exit %d, stderr %q (want the byte offset)", d.code, d.stderr)
				}
				if _, err := os.Stat(out); err == nil {
					t.Fatal("decrypt left an output file that looks complete")
				}
			})
		}
		t.Run("wrong password", func(t *testing.T) {
			r := op.on(dst, "restore", file, "--password", "not-the-password")
			if r.code != ExitIntegrity || !strings.Contains(r.stderr, "wrong password") {
				t.Fatalf("%+v", r)
			}
			// Issue 28.3: a version 1 file's password is checked on the
			// workstation: nothing uploaded, no "Restore in progress.".
			if hdr, err := readLocalHeader(file); err != nil || crypt.Version(hdr) != 1 {
				t.Fatalf("want a version 1 file: %v", err)
			}
			if !strings.Contains(r.stderr, "checked on this workstation") || strings.Contains(r.stdout, "Restore in progress") {
				t.Fatalf("the password was not checked locally: %+v", r)
			}
			sum := sha256.Sum256(full)
			if _, err := os.Stat(filepath.Join(dst.state, "uploads", hex.EncodeToString(sum[:])[:32]+".upload")); err == nil {
				t.Fatal("the file was uploaded")
			}
			if got := userNamespaces(t, dst.client()); len(got) != 0 {
				t.Fatalf("database touched: %v", got)
			}
		})
	})

	t.Run("decrypt then restore --plain", func(t *testing.T) {
		out := filepath.Join(op.dir, "plain.tar.gz")
		if r := op.run("decrypt", file, "-o", out); r.code != 0 {
			t.Fatalf("%+v", r)
		}
		if b := readFile(t, out); !bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
			t.Fatal("decrypt did not produce gzip")
		}
		dst := startNode(t, "", "")
		dst.authorize("ops", op.home)
		op.mustOn(dst, "restore", "--plain", out)
		sameCollection(t, src.client(), dst.client(), "auth0.users")
		// Wrong password: no output file at all.
		bad := filepath.Join(op.dir, "never.tar.gz")
		if r := op.run("decrypt", file, "-o", bad, "--password", "not-the-password"); r.code != ExitIntegrity {
			t.Fatalf("%+v", r)
		}
		if _, err := os.Stat(bad); err == nil {
			t.Fatal("wrong password left an output file")
		}
	})
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

func TestLegacyDecrypt(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		skipOutsideCI(t, "openssl not installed: apt-get install openssl")
	}
	dir := t.TempDir()
	// A gzip stream, as the original appliance's files hold.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(bytes.Repeat([]byte("legacy appliance backup\n"), 50000))
	zw.Close()
	plain := gz.Bytes()
	in := filepath.Join(dir, "plain.tar.gz")
	os.WriteFile(in, plain, 0o600)
	enc := filepath.Join(dir, "legacy.tar.gz.enc")
	cmd := exec.Command("openssl", "enc", "-aes-256-ctr", "-md", "md5", "-nosalt", "-k", "Passw0rd", "-in", in, "-out", enc)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("openssl: %v %s", err, out)
	}
	op := newOperator(t)
	out := filepath.Join(dir, "out.tar.gz")
	r := op.run("decrypt", enc, "--legacy", "--password", "Passw0rd", "-o", out)
	if r.code != 0 || !strings.Contains(r.stderr, "cannot be authenticated") {
		t.Fatalf("%+v", r)
	}
	if !bytes.Equal(readFile(t, out), plain) {
		t.Fatal("legacy decrypt differs from openssl's input")
	}
	if r := op.run("decrypt", enc, "--password", "Passw0rd", "-o", filepath.Join(dir, "x")); r.code != ExitIntegrity || !strings.Contains(r.stderr, "--legacy") {
		t.Fatalf("a legacy file without --legacy: %+v", r)
	}
	// A wrong password: the plaintext is no gzip stream; nothing written.
	wrong := filepath.Join(dir, "wrong.tar.gz")
	if r := op.run("decrypt", enc, "--legacy", "--password", "Wr0ng-pass", "-o", wrong); r.code != ExitIntegrity || !strings.Contains(r.stderr, "wrong password") {
		t.Fatalf("legacy decrypt with a wrong password: %+v", r)
	}
	if _, err := os.Stat(wrong); err == nil {
		t.Fatal("legacy decrypt with a wrong password wrote its output")
	}
}

// TestRestoreInterrupted: a restore stopped half way (the agent closed
// while the restore is held after its marker is written) says so in
// restore-status, in node-status (from the marker in the database) and in
// the next restore, never silently.
func TestRestoreInterrupted(t *testing.T) {
	src, op, _ := backupNode(t, 300)
	op.env["A0_BACKUP_PASSWORD"] = "Passw0rd-interrupt"
	op.mustOn(src, "backup")
	op.waitStatus(src, "backup-status")
	op.mustOn(src, "backup-retrieve")
	file := filepath.Join(op.dir, "backup-retrieve.tar.gz.enc")

	h := newHolds(agent.HoldRestore)
	dst := startNodeWith(t, "", "", agent.Config{Hold: h.hook})
	dst.authorize("ops", op.home)
	op.mustOn(dst, "restore", file, "--detach")
	h.wait(t, agent.HoldRestore)
	state := dst.state
	dst.stop() // as SIGTERM would: the job is cancelled half way
	dst2 := startNode(t, state, "")
	if r := op.mustOn(dst2, "restore-status"); !strings.Contains(r.stdout, "Restore failed") || !strings.Contains(r.stdout, "interrupted") {
		t.Fatalf("restore-status after the interruption: %s", r.stdout)
	}
	if r := op.mustOn(dst2, "node-status"); !strings.Contains(r.stdout, "did not finish") {
		t.Fatalf("node-status does not report the half-written database:\n%s", r.stdout)
	}
	r := op.mustOn(dst2, "restore", file, "--drop", "--json")
	if !json.Valid([]byte(r.stdout)) {
		t.Fatalf("restore --json printed more than one JSON document: %q", r.stdout)
	}
	if !strings.Contains(r.stdout, "previous_unfinished") {
		t.Fatalf("the next restore did not report the unfinished one: %s", r.stdout)
	}
	if r := op.mustOn(dst2, "node-status"); strings.Contains(r.stdout, "did not finish") {
		t.Fatalf("marker left after a successful restore:\n%s", r.stdout)
	}
	sameCollection(t, src.client(), dst2.client(), "auth0.users")
}

// seedBlobs adds about mib MiB of incompressible documents (blobs.random),
// so that a backup spans several 1 MiB records of the encrypted format.
func seedBlobs(t *testing.T, c *mongo.Client, mib int) {
	t.Helper()
	var docs []any
	for i := range mib * 8 {
		b := make([]byte, 128<<10)
		rand.Read(b)
		docs = append(docs, bson.D{{Key: "_id", Value: i}, {Key: "blob", Value: b}})
	}
	if _, err := c.Database("blobs").Collection("random").InsertMany(context.Background(), docs); err != nil {
		t.Fatal(err)
	}
}

// dbSnapshot is every database, collection and document of a server but the
// restore marker's own database: what "untouched" compares.
func dbSnapshot(t *testing.T, c *mongo.Client) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	dbs, err := c.ListDatabaseNames(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(dbs)
	for _, db := range dbs {
		if db == "local" {
			continue
		}
		colls, err := c.Database(db).ListCollectionNames(ctx, bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(colls)
		for _, coll := range colls {
			fmt.Fprintf(&b, "%s.%s:", db, coll)
			cur, err := c.Database(db).Collection(coll).Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.New()
			for cur.Next(ctx) {
				h.Write(cur.Current)
			}
			fmt.Fprintf(&b, "%x\n", h.Sum(nil))
		}
	}
	return b.String()
}

// restoreMarkerOf is the node's restore marker document, or "" when there
// is none.
func restoreMarkerOf(t *testing.T, c *mongo.Client) string {
	t.Helper()
	raw, err := c.Database("local").Collection("a0_restore_marker").FindOne(context.Background(), bson.D{}).Raw()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return raw.String()
}

// TestRestoreRefusesTamperingInTheLastRecord: a backup of several 1 MiB
// records, damaged only in its last records, is refused before the first
// database write: the node authenticates the whole file first, not each
// record as it writes it.
func TestRestoreRefusesTamperingInTheLastRecord(t *testing.T) {
	t.Parallel()
	src, op, _ := backupNode(t, 50)
	seedBlobs(t, src.client(), 5)
	const pw = "Passw0rd-lastrecord"
	op.env["A0_BACKUP_PASSWORD"] = pw
	op.mustOn(src, "backup", "--wait")
	op.mustOn(src, "backup-retrieve")
	file := filepath.Join(op.dir, "backup-retrieve.tar.gz.enc")
	full := readFile(t, file)
	const header, rec = 128, 1<<20 + 32
	records := (len(full) - header + rec - 1) / rec
	if records < 4 {
		t.Fatalf("backup of %d bytes holds %d records, the test needs at least 4", len(full), records)
	}
	last := header + (records-1)*rec // start of the last record
	prev := last - rec               // start of the one before it
	cases := []struct {
		name string
		mut  func([]byte) []byte
	}{
		{"bit flipped in the last record's data", func(b []byte) []byte { b[last+(len(b)-last)/2] ^= 0x04; return b }},
		{"bit flipped in the last record's tag", func(b []byte) []byte { b[len(b)-1] ^= 0x80; return b }},
		{"truncated inside the last record", func(b []byte) []byte { return b[:len(b)-100] }},
		{"last record dropped", func(b []byte) []byte { return b[:last] }},
		{"last two records reordered", func(b []byte) []byte {
			return append(append(append([]byte(nil), b[:prev]...), b[last:]...), b[prev:last]...)
		}},
		{"two full records before the last swapped", func(b []byte) []byte {
			out := clone(b)
			copy(out[prev-rec:prev], b[prev:last])
			copy(out[prev:last], b[prev-rec:prev])
			return out
		}},
	}
	// The target already holds the backup's data (a good restore), and each
	// damaged file is restored over it with --drop: a restore that wrote
	// (or dropped) before it had authenticated the last record would change
	// it.
	dst := startNode(t, "", "")
	dst.authorize("ops", op.home)
	op.mustOn(dst, "restore", file)
	sameCollection(t, src.client(), dst.client(), "blobs.random")
	before := dbSnapshot(t, dst.client())
	if !strings.Contains(before, "blobs.random") {
		t.Fatalf("snapshot misses the restored data:\n%s", before)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(op.dir, "bad-"+strings.ReplaceAll(tc.name, " ", "-")+".enc")
			os.WriteFile(p, tc.mut(clone(full)), 0o600)
			r := op.on(dst, "restore", p, "--drop")
			if r.code != ExitIntegrity || !strings.Contains(r.stderr, "authentication") {
				t.Fatalf("restore: exit %d, want %d (authentication failed)\n%s%s", r.code, ExitIntegrity, r.stdout, r.stderr)
			}
			if after := dbSnapshot(t, dst.client()); after != before {
				t.Fatalf("database touched by a refused restore:\nbefore:\n%s\nafter:\n%s", before, after)
			}
			if m := restoreMarkerOf(t, dst.client()); m != "" {
				t.Fatalf("a refused restore left a restore marker: %s", m)
			}
			if s := op.mustOn(dst, "node-status").stdout; strings.Contains(s, "did not finish") {
				t.Fatalf("node-status warns of a half-written database after a refused restore:\n%s", s)
			}
			if v := op.run("verify", p); v.code != ExitIntegrity {
				t.Fatalf("verify: %+v", v)
			}
			// decrypt names its output only after the last byte is
			// authenticated: nothing under the name, nothing left beside it.
			outDir := t.TempDir()
			out := filepath.Join(outDir, "plain.tar.gz")
			if d := op.run("decrypt", p, "-o", out); d.code != ExitIntegrity {
				t.Fatalf("decrypt: %+v", d)
			}
			if left, _ := os.ReadDir(outDir); len(left) != 0 {
				t.Fatalf("a refused decrypt left %v", left)
			}
		})
	}
}

// countDocs counts the documents of db.coll.
func countDocs(t *testing.T, c *mongo.Client, ns string) int64 {
	t.Helper()
	db, coll, _ := strings.Cut(ns, ".")
	n, err := c.Database(db).Collection(coll).CountDocuments(context.Background(), bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
