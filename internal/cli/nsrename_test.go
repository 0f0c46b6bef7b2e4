package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/a0backup/a0/internal/oracle"
)

// nsSnapshot is every document (raw bytes, by _id) and every index (name
// and key) of every collection of a database.
type nsSnapshot map[string]nsCollSnapshot

type nsCollSnapshot struct {
	docs    []bson.Raw
	indexes []string
}

func snapshotDB(t *testing.T, c *mongo.Client, db string) nsSnapshot {
	t.Helper()
	ctx := context.Background()
	out := nsSnapshot{}
	for _, name := range collectionNames(t, c, db) {
		coll := c.Database(db).Collection(name)
		cur, err := coll.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
		if err != nil {
			t.Fatal(err)
		}
		var cs nsCollSnapshot
		for cur.Next(ctx) {
			cs.docs = append(cs.docs, append(bson.Raw(nil), cur.Current...))
		}
		if err := cur.Err(); err != nil {
			t.Fatal(err)
		}
		icur, err := coll.Indexes().List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for icur.Next(ctx) {
			cs.indexes = append(cs.indexes, icur.Current.Lookup("name").StringValue()+" "+icur.Current.Lookup("key").String())
		}
		slices.Sort(cs.indexes)
		out[name] = cs
	}
	return out
}

// sameSnapshot fails unless a and b hold the same collections, documents
// (byte for byte) and indexes.
func sameSnapshot(t *testing.T, what string, want, got nsSnapshot) {
	t.Helper()
	if len(want) == 0 {
		t.Fatalf("%s: nothing to compare", what)
	}
	var wn, gn []string
	for n := range want {
		wn = append(wn, n)
	}
	for n := range got {
		gn = append(gn, n)
	}
	slices.Sort(wn)
	slices.Sort(gn)
	if !slices.Equal(wn, gn) {
		t.Fatalf("%s: collections %v, want %v", what, gn, wn)
	}
	for n, w := range want {
		g := got[n]
		if len(w.docs) != len(g.docs) {
			t.Fatalf("%s: %s holds %d documents, want %d", what, n, len(g.docs), len(w.docs))
		}
		for i := range w.docs {
			if !bytes.Equal(w.docs[i], g.docs[i]) {
				t.Fatalf("%s: %s document %d differs:\n got %s\nwant %s", what, n, i, g.docs[i], w.docs[i])
			}
		}
		if !reflect.DeepEqual(w.indexes, g.indexes) {
			t.Fatalf("%s: %s indexes %v, want %v", what, n, g.indexes, w.indexes)
		}
	}
}

// TestRestoreRenamed (issue 29): `restore --ns-from 'auth0.*' --ns-to
// 'auth0_check.*'` through the real agent onto the node that holds auth0,
// written to after the backup: auth0_check equals the backup (documents
// and indexes), auth0 is unchanged byte for byte, also with --drop; the
// non-empty rule applies to the new names; a dry run shows the mapping;
// bad renamings are refused before any write (exit 2). Stock mongorestore's
// --nsFrom/--nsTo on the decrypted dump gives the same auth0_check.
func TestRestoreRenamed(t *testing.T) {
	n, op, _ := backupNode(t, 300)
	ctx := context.Background()
	const pw = "Passw0rd-rename"
	atBackup := snapshotDB(t, n.client(), "auth0")
	op.mustOn(n, "backup", "--password", pw)
	if st := decodeStatus(t, op.waitStatus(n, "backup-status")); st.Message != "Backup found" {
		t.Fatalf("%+v\n%s", st, n.log.String())
	}
	// Writes after the backup: the live auth0 is not what the backup holds.
	users := n.client().Database("auth0").Collection("users")
	if _, err := users.InsertOne(ctx, bson.D{{Key: "_id", Value: "after-the-backup"}, {Key: "email", Value: "late@example.com"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.client().Database("auth0").Collection("tenants").DeleteOne(ctx, bson.D{}); err != nil {
		t.Fatal(err)
	}
	live := snapshotDB(t, n.client(), "auth0")
	if reflect.DeepEqual(live, atBackup) {
		t.Fatal("the writes after the backup changed nothing")
	}
	rename := []string{"--ns-from", "auth0.*", "--ns-to", "auth0_check.*", "--password", pw}

	r := op.mustOn(n, append([]string{"restore", "--dry-run"}, rename...)...)
	for _, want := range []string{"renamed (the old names are not touched):", "  auth0.users -> auth0_check.users", "would restore: auth0_check."} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("dry run lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "would restore: auth0.") || len(collectionNames(t, n.client(), "auth0_check")) != 0 {
		t.Fatalf("dry run:\n%s", r.stdout)
	}

	op.mustOn(n, append([]string{"restore"}, rename...)...)
	sameSnapshot(t, "auth0_check after the restore", atBackup, snapshotDB(t, n.client(), "auth0_check"))
	sameSnapshot(t, "auth0 after the renamed restore", live, snapshotDB(t, n.client(), "auth0"))

	// The new names hold documents now: refused without --drop (exit 4),
	// replaced with it; auth0 is never touched.
	if r := op.on(n, append([]string{"restore"}, rename...)...); r.code != ExitRefused || !strings.Contains(r.stderr, "auth0_check.users") || strings.Contains(r.stderr, "auth0.users") {
		t.Fatalf("second restore without --drop: %+v", r)
	}
	if _, err := n.client().Database("auth0_check").Collection("users").InsertOne(ctx, bson.D{{Key: "_id", Value: "stray"}}); err != nil {
		t.Fatal(err)
	}
	op.mustOn(n, append([]string{"restore", "--drop"}, rename...)...)
	sameSnapshot(t, "auth0_check after restore --drop", atBackup, snapshotDB(t, n.client(), "auth0_check"))
	sameSnapshot(t, "auth0 after restore --drop", live, snapshotDB(t, n.client(), "auth0"))

	t.Run("bad renamings", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"--ns-from", "auth0.*"}, "1 --ns-from and 0 --ns-to"},
			{[]string{"--ns-from", "auth0.*", "--ns-to", "x.y"}, "1 '*' in --ns-from and 0 in --ns-to"},
			{[]string{"--ns-from", "auth0.$c$", "--ns-to", "auth0_one.all"}, "would both be renamed auth0_one.all"},
			{[]string{"--ns-from", "auth0.*", "--ns-to", "admin.*"}, "into the server's own database admin"},
			{[]string{"--ns-from", "auth0.*", "--ns-to", "auth0.system.*"}, "a system namespace"},
			{[]string{"--ns-from", "nosuchdb.*", "--ns-to", "x.*"}, "--ns-from nosuchdb.* matches no collection"},
		} {
			args := append(append([]string{"restore", "--drop"}, tc.args...), "--password", pw)
			if r := op.on(n, args...); r.code != ExitUsage || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("%v: exit %d, want %d with %q\n%s", tc.args, r.code, ExitUsage, tc.want, r.stderr)
			}
		}
		sameSnapshot(t, "auth0 after the refusals", live, snapshotDB(t, n.client(), "auth0"))
		for _, db := range []string{"auth0_one", "admin", "x"} {
			for _, c := range collectionNames(t, n.client(), db) {
				if db != "admin" || !strings.HasPrefix(c, "system.") {
					t.Errorf("a refused restore wrote %s.%s", db, c)
				}
			}
		}
	})

	t.Run("stock mongorestore --nsFrom --nsTo gives the same", func(t *testing.T) {
		mongorestore := oracle.Tool(t, "mongorestore")
		op.mustOn(n, "backup-retrieve")
		enc := filepath.Join(op.dir, "backup-retrieve.tar.gz.enc")
		tgz := filepath.Join(op.dir, "plain.tar.gz")
		if r := op.run("decrypt", enc, "-o", tgz, "--password", pw); r.code != 0 {
			t.Fatalf("decrypt: %+v", r)
		}
		dir := t.TempDir()
		untar(t, tgz, dir)
		if _, err := os.Stat(filepath.Join(dir, "auth0")); err != nil {
			t.Fatal(err)
		}
		uri, dst := freshServer(t)
		// --noIndexRestore: stock mongorestore 100.18 sends the index
		// specs with "ns", which FerretDB refuses (as in the interop
		// tests); a0's indexes are compared with the backup's above.
		runTool(t, mongorestore, "--uri", uri, "--dir", dir, "--noIndexRestore",
			"--nsInclude", "auth0.*", "--nsFrom", "auth0.*", "--nsTo", "auth0_check.*")
		docsOnly := func(s nsSnapshot) nsSnapshot {
			out := nsSnapshot{}
			for n, c := range s {
				out[n] = nsCollSnapshot{docs: c.docs}
			}
			return out
		}
		sameSnapshot(t, "stock mongorestore's auth0_check", docsOnly(snapshotDB(t, n.client(), "auth0_check")), docsOnly(snapshotDB(t, dst, "auth0_check")))
		if got := collectionNames(t, dst, "auth0"); len(got) != 0 {
			t.Fatalf("stock mongorestore wrote auth0: %v", got)
		}

		// restore --plain of the same dump renames the same way.
		plain := startNode(t, "", "")
		plain.authorize("ops", op.home)
		op.mustOn(plain, "restore", "--plain", tgz, "--ns-from", "auth0.*", "--ns-to", "auth0_check.*")
		sameSnapshot(t, "restore --plain's auth0_check", docsOnly(snapshotDB(t, dst, "auth0_check")), docsOnly(snapshotDB(t, plain.client(), "auth0_check")))
		if got := collectionNames(t, plain.client(), "auth0"); len(got) != 0 {
			t.Fatalf("restore --plain wrote auth0: %v", got)
		}
	})
}
