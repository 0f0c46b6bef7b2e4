package cli

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/bson"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"

	"github.com/a0backup/a0/internal/archive"
	"github.com/a0backup/a0/internal/dumpname"
	"github.com/a0backup/a0/internal/embedded"
	"github.com/a0backup/a0/internal/oracle"
)

// The interoperability tests check a0 against the stock MongoDB Database
// Tools 100.18.0 (located only through internal/oracle), both directions.

// interopDB is the database of the awkward data set.
const interopDB = "interop"

// awkwardCollections are names mongodump escapes, cuts (also inside a %XX
// escape) and hashes, within what the embedded server accepts (at most
// 235 bytes, no "$", no leading ".").
func awkwardCollections() []string {
	return []string{
		"c++ 100% a/b",
		"cafés",
		"dots.in.the.name",
		"日本語のコレクション",
		"emoji 🦫 and tabs\t!",
		strings.Repeat("long/", 40) + "tail", // escaped past 238 bytes: hashed
		strings.Repeat("a", 205) + strings.Repeat("é", 15), // the 208-byte cut falls inside a %XX escape
		strings.Repeat("b", 206) + strings.Repeat("é", 14),
		strings.Repeat("c", 207) + strings.Repeat("é", 14),
	}
}

// randomCollectionNames draws n collection names from all of Unicode that
// the embedded server accepts, weighted towards the characters escaping
// and the length rule care about, from 1 character to the server's limit:
// 235 characters (FerretDB), within MongoDB's 255-byte namespace. FerretDB
// v1.24 fails on '"' in a name (an SQL error) and everyone refuses "$".
func randomCollectionNames(r *rand.Rand, n int) []string {
	special := []rune("+%/ .&=?#\\'*<>|:;,~!@^()[]{}`\t")
	ranges := [][2]rune{{0x01, 0x1f}, {0x21, 0x7e}, {0xa0, 0x24f}, {0x370, 0x3ff}, {0x4e00, 0x9fff}, {0x1f300, 0x1f64f}, {0x10000, 0x1000f}}
	maxBytes := 255 - len(interopDB) - 1
	seen := map[string]bool{}
	var out []string
	for len(out) < n {
		limit := 1 + r.IntN(235)
		if r.IntN(3) == 0 {
			limit = 200 + r.IntN(36) // often near the limit, where names are hashed
		}
		// Every other name leaves out "%" and "+", which stock mongorestore
		// mangles in long names (see the stock leg below).
		plainOnly := len(out)%2 == 1
		var b strings.Builder
		for runes := 0; runes < limit; runes++ {
			var c rune
			if r.IntN(10) < 3 {
				c = special[r.IntN(len(special))]
			} else {
				rg := ranges[r.IntN(len(ranges))]
				c = rg[0] + rune(r.IntN(int(rg[1]-rg[0]+1)))
			}
			if c == '$' || c == '"' || plainOnly && (c == '%' || c == '+') {
				continue
			}
			if b.Len()+utf8.RuneLen(c) > maxBytes {
				break
			}
			b.WriteRune(c)
		}
		s := b.String()
		if s == "" || strings.HasPrefix(s, ".") || strings.HasPrefix(s, "system.") || seen[s] {
			continue
		}
		seen[s] = true
		out = append(out, s)
	}
	return out
}

// propertySeed is A0_PROPERTY_SEED or the time: logged so that a failure
// can be replayed.
func propertySeed(t *testing.T) uint64 {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("A0_PROPERTY_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		seed = v
	}
	t.Logf("random collection names from A0_PROPERTY_SEED=%d", seed)
	return seed
}

// typedDocs are documents with every BSON type the embedded server holds.
func typedDocs(n int) []any {
	out := make([]any, n)
	base := time.Date(2024, 2, 29, 12, 0, 0, 0, time.UTC)
	for i := range out {
		out[i] = bson.D{
			{Key: "_id", Value: int32(i)},
			{Key: "s", Value: fmt.Sprintf("naïve ✓ %d", i)},
			{Key: "i64", Value: int64(i) << 40},
			{Key: "f", Value: float64(i) / 3},
			{Key: "b", Value: i%2 == 0},
			{Key: "null", Value: nil},
			{Key: "date", Value: bson.NewDateTimeFromTime(base.Add(time.Duration(i) * time.Hour))},
			{Key: "oid", Value: bson.ObjectID{byte(i), 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}},
			{Key: "bin", Value: bson.Binary{Subtype: 0, Data: []byte{0, byte(i), 0xff}}},
			{Key: "uuid", Value: bson.Binary{Subtype: 4, Data: bytes.Repeat([]byte{byte(i)}, 16)}},
			{Key: "re", Value: bson.Regex{Pattern: "^a.*z$", Options: "i"}},
			{Key: "ts", Value: bson.Timestamp{T: uint32(1700000000 + i), I: 1}},
			{Key: "nested", Value: bson.D{{Key: "a", Value: bson.A{int32(1), "two", bson.D{{Key: "x", Value: 3.5}}}}}},
		}
	}
	return out
}

// fillInterop creates the awkward data set: typed documents and indexes in
// every named collection.
func fillInterop(t *testing.T, c *mongo.Client, names []string) {
	t.Helper()
	ctx := context.Background()
	for i, name := range names {
		coll := c.Database(interopDB).Collection(name)
		if _, err := coll.InsertMany(ctx, typedDocs(3+i%5)); err != nil {
			t.Fatalf("insert into %q: %v", name, err)
		}
	}
	idx := c.Database(interopDB).Collection(names[0]).Indexes()
	if _, err := idx.CreateMany(ctx, []mongo.IndexModel{
		{Keys: bson.D{{Key: "s", Value: 1}}, Options: options.Index().SetUnique(true)},
		{Keys: bson.D{{Key: "b", Value: 1}, {Key: "i64", Value: -1}}},
	}); err != nil {
		t.Fatal(err)
	}
}

// sameDocuments compares every document of ns on two servers, byte for
// byte, in _id order.
func sameDocuments(t *testing.T, a, b *mongo.Client, db, coll string) {
	t.Helper()
	ctx := context.Background()
	read := func(c *mongo.Client) []bson.Raw {
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
	da, dbb := read(a), read(b)
	if len(da) == 0 || len(da) != len(dbb) {
		t.Fatalf("%s.%q: %d documents in the source, %d restored", db, coll, len(da), len(dbb))
	}
	for i := range da {
		if !bytes.Equal(da[i], dbb[i]) {
			t.Fatalf("%s.%q: document %d differs:\n%s\n%s", db, coll, i, da[i], dbb[i])
		}
	}
}

func collectionNames(t *testing.T, c *mongo.Client, db string) []string {
	t.Helper()
	names, err := c.Database(db).ListCollectionNames(context.Background(), bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}

// freshServer starts an embedded server and returns its URI and a client.
func freshServer(t *testing.T) (string, *mongo.Client) {
	t.Helper()
	ctx := context.Background()
	srv, err := embedded.Start(ctx, embedded.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	c, err := srv.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect(context.Background()) })
	return srv.URI(), c
}

// runTool runs a stock tool (a name for oracle.Tool, or its path).
func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	if !filepath.IsAbs(name) {
		name = oracle.Tool(t, name)
	}
	cmd := exec.Command(name, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// untar extracts a plain .tar.gz with a0's own safe extraction.
func untar(t *testing.T, tgz, dir string) {
	t.Helper()
	f, err := os.Open(tgz)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ar, err := archive.NewReader(f, archive.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer ar.Close()
	if err := archive.Extract(context.Background(), ar, dir); err != nil {
		t.Fatal(err)
	}
}

// TestInteropA0BackupToMongorestore: an a0 backup, decrypted and untarred,
// restores with stock mongorestore: every document equal byte for byte,
// every collection name equal, for awkward names and for random names
// (the property test of issue 11). The same backup restores with a0.
func TestInteropA0BackupToMongorestore(t *testing.T) {
	mongorestore := oracle.Tool(t, "mongorestore")
	src, op, _ := backupNode(t, 0)
	names := append(awkwardCollections(), randomCollectionNames(rand.New(rand.NewPCG(propertySeed(t), 11)), 24)...)
	fillInterop(t, src.client(), names)
	const pw = "Passw0rd-interop"
	op.env["A0_BACKUP_PASSWORD"] = pw
	op.mustOn(src, "backup")
	if st := decodeStatus(t, op.waitStatus(src, "backup-status")); st.Message != "Backup found" {
		t.Fatalf("%+v\n%s", st, src.log.String())
	}
	op.mustOn(src, "backup-retrieve")
	enc := filepath.Join(op.dir, "backup-retrieve.tar.gz.enc")
	want := collectionNames(t, src.client(), interopDB)
	if len(want) != len(names) {
		t.Fatalf("source holds %d collections, made %d", len(want), len(names))
	}

	t.Run("verify", func(t *testing.T) {
		if r := op.run("verify", enc); r.code != 0 {
			t.Fatalf("verify: %+v", r)
		}
	})

	t.Run("decrypt, untar, stock mongorestore", func(t *testing.T) {
		tgz := filepath.Join(op.dir, "plain.tar.gz")
		if r := op.run("decrypt", enc, "-o", tgz); r.code != 0 {
			t.Fatalf("decrypt: %+v", r)
		}
		dir := t.TempDir()
		untar(t, tgz, dir)
		// The layout is mongodump 100.18's, byte for byte: file names and prelude.
		for _, n := range names {
			if _, err := os.Stat(filepath.Join(dir, interopDB, dumpname.Escape(n)+".bson")); err != nil {
				t.Errorf("no file for %q: %v", n, err)
			}
		}
		// Stock mongorestore 100.18 runs the collectionName of a hashed
		// file through QueryUnescape (mongorestore/filepath.go): a long
		// name with "%" fails the whole restore, one with "+" comes back
		// with a space. Its own mongodump writes the same files, so those
		// collections are taken out of the stock leg (a0 restores them).
		var stock []string
		for _, n := range want {
			if dumpname.Hashed(dumpname.Escape(n)) && strings.ContainsAny(n, "%+") {
				for _, ext := range []string{".bson", ".metadata.json"} {
					if err := os.Remove(filepath.Join(dir, interopDB, dumpname.Escape(n)+ext)); err != nil {
						t.Fatal(err)
					}
				}
				continue
			}
			stock = append(stock, n)
		}
		t.Logf("%d of %d collections go to stock mongorestore", len(stock), len(want))
		uri, dst := freshServer(t)
		out := runTool(t, mongorestore, "--uri", uri, "--noIndexRestore", "--dir", dir)
		got := collectionNames(t, dst, interopDB)
		if !slices.Equal(got, stock) {
			t.Fatalf("mongorestore restored collections\n%q\nwant\n%q\n%s", got, stock, out)
		}
		for _, n := range stock {
			sameDocuments(t, src.client(), dst, interopDB, n)
		}
	})

	t.Run("a0 restore", func(t *testing.T) {
		dst := startNode(t, "", "")
		dst.authorize("ops", op.home)
		op.mustOn(dst, "restore", enc)
		if got := collectionNames(t, dst.client(), interopDB); !slices.Equal(got, want) {
			t.Fatalf("a0 restored collections\n%q\nwant\n%q", got, want)
		}
		for _, n := range want {
			sameDocuments(t, src.client(), dst.client(), interopDB, n)
		}
		sameCollection(t, src.client(), dst.client(), interopDB+"."+names[0])
	})
}

// TestInteropMongodumpToA0: what stock mongodump writes of a server, as a
// directory packed with tar and as an archive (plain and gzipped), restores
// with `a0cli restore --plain`: every document and index equal.
func TestInteropMongodumpToA0(t *testing.T) {
	oracle.Tool(t, "mongodump")
	uri, src := freshServer(t)
	names := awkwardCollections()
	fillInterop(t, src, names)
	// Larger collections, so that mongodump's parallel readers interleave
	// their documents in the archive.
	for i := range 4 {
		docs := make([]any, 3000)
		for j := range docs {
			docs[j] = bson.D{{Key: "_id", Value: int32(j)}, {Key: "pad", Value: strings.Repeat("x", 200)}}
		}
		name := fmt.Sprintf("bulk%d", i)
		if _, err := src.Database(interopDB).Collection(name).InsertMany(context.Background(), docs); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	work := t.TempDir()
	out := filepath.Join(work, "out")
	runTool(t, "mongodump", "--uri", uri, "--out", out)
	tgz := filepath.Join(work, "dump.tar.gz")
	packDir(t, out, "dump", tgz)
	archivePath := filepath.Join(work, "dump.archive")
	runTool(t, "mongodump", "--uri", uri, "--archive="+archivePath)
	gzPath := filepath.Join(work, "dump.archive.gz")
	runTool(t, "mongodump", "--uri", uri, "--archive="+gzPath, "--gzip")
	t.Logf("mongodump --archive: %d segments for %d collections", archiveSegments(t, archivePath), len(names))

	dst := startNode(t, "", "")
	op := newOperator(t).withKey(dst)
	want := collectionNames(t, src, interopDB)
	for _, tc := range []struct{ name, file string }{
		{"mongodump --out, packed as tar.gz", tgz},
		{"mongodump --archive", archivePath},
		{"mongodump --archive --gzip", gzPath},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := op.mustOn(dst, "restore", "--plain", "--drop", tc.file)
			if !strings.Contains(r.stdout, "Restore finished") {
				t.Fatalf("%+v", r)
			}
			if got := collectionNames(t, dst.client(), interopDB); !slices.Equal(got, want) {
				t.Fatalf("restored collections\n%q\nwant\n%q", got, want)
			}
			for _, n := range want {
				sameCollection(t, src, dst.client(), interopDB+"."+n)
			}
		})
	}
}

// packDir writes the files under dir into a .tar.gz, under prefix ("" for
// none), as `tar czf` of a dump directory does.
func packDir(t *testing.T, dir, prefix, out string) {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if prefix != "" {
			name = prefix + "/" + name
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg, ModTime: time.Unix(1700000000, 0)}); err != nil {
			return err
		}
		_, err = tw.Write(b)
		return err
	})
	if err == nil {
		err = tw.Close()
	}
	if err == nil {
		err = gz.Close()
	}
	if err == nil {
		err = os.WriteFile(out, buf.Bytes(), 0o600)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// archiveSegments counts the namespace segments (not EOF blocks) of a
// mongodump archive: more segments than collections means their documents
// interleave.
func archiveSegments(t *testing.T, path string) int {
	t.Helper()
	b := readFile(t, path)[4:]
	next := func() (bsoncore.Document, bool) {
		if len(b) < 4 {
			t.Fatal("archive truncated")
		}
		n := binary.LittleEndian.Uint32(b)
		if n == 0xffffffff {
			b = b[4:]
			return nil, true
		}
		d := bsoncore.Document(b[:n])
		b = b[n:]
		return d, false
	}
	next() // header
	for _, term := next(); !term; _, term = next() {
	}
	segments := 0
	for len(b) > 0 {
		h, _ := next()
		if eof, _ := h.Lookup("EOF").BooleanOK(); !eof {
			segments++
		}
		for _, term := next(); !term; _, term = next() {
		}
	}
	return segments
}
