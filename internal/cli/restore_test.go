package cli

import (
	"bytes"
	"context"
	"github.com/a0backup/a0/internal/agent"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
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
		if !strings.Contains(r.stdout, "would restore") {
			t.Fatalf("%+v", r)
		}
		if got := userNamespaces(t, dst.client()); len(got) != 0 {
			t.Fatalf("dry run wrote %v", got)
		}
	})

	t.Run("tampered files refused before the database is touched", func(t *testing.T) {
		full := readFile(t, file)
		dst := startNode(t, "", "")
		dst.authorize("ops", op.home)
		const chunk = 1 << 20
		swap := func(b []byte) []byte {
			// Two records of (chunk + 32-byte tag) after the 128-byte header.
			rec := chunk + 32
			if len(b) < 128+2*rec+1 {
				return nil
			}
			out := append([]byte(nil), b...)
			copy(out[128:128+rec], b[128+rec:128+2*rec])
			copy(out[128+rec:128+2*rec], b[128:128+rec])
			return out
		}
		cases := []struct {
			name string
			mut  func([]byte) []byte
		}{
			{"bit in header", func(b []byte) []byte { b = clone(b); b[40] ^= 1; return b }},
			{"bit at start of data", func(b []byte) []byte { b = clone(b); b[130] ^= 1; return b }},
			{"bit in the middle", func(b []byte) []byte { b = clone(b); b[len(b)/2] ^= 0x10; return b }},
			{"bit at the end", func(b []byte) []byte { b = clone(b); b[len(b)-1] ^= 0x80; return b }},
			{"truncated", func(b []byte) []byte { return clone(b[:len(b)-100]) }},
			{"chunks swapped", swap},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				bad := tc.mut(full)
				if bad == nil {
					t.Skip("backup smaller than two chunks")
				}
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
	plain := bytes.Repeat([]byte("legacy appliance backup\n"), 50000)
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
	if !strings.Contains(r.stdout, "previous_unfinished") {
		t.Fatalf("the next restore did not report the unfinished one: %s", r.stdout)
	}
	if r := op.mustOn(dst2, "node-status"); strings.Contains(r.stdout, "did not finish") {
		t.Fatalf("marker left after a successful restore:\n%s", r.stdout)
	}
	sameCollection(t, src.client(), dst2.client(), "auth0.users")
}
