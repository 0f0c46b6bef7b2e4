package dump

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"

	"github.com/a0backup/a0/internal/archive"
	"github.com/a0backup/a0/internal/embedded"
	"github.com/a0backup/a0/internal/embedded/embeddedtest"
	"github.com/a0backup/a0/internal/manifest"
)

func startServer(t *testing.T, cfg embedded.Config) *mongo.Client {
	t.Helper()
	return embeddedtest.Client(t, cfg)
}

// oddName is a collection name mongodump must escape ('/' and '%').
const oddName = "a/b%c d"

func seed(t *testing.T, client *mongo.Client, users int) {
	t.Helper()
	ctx := context.Background()
	insert := func(db, coll string, n int, mk func(i int) bson.D) {
		docs := make([]any, 0, 1000)
		for i := 0; i < n; i++ {
			docs = append(docs, mk(i))
			if len(docs) == cap(docs) || i == n-1 {
				if _, err := client.Database(db).Collection(coll).InsertMany(ctx, docs); err != nil {
					t.Fatal(err)
				}
				docs = docs[:0]
			}
		}
	}
	insert("auth0", "users", users, func(i int) bson.D {
		return bson.D{{Key: "_id", Value: i}, {Key: "email", Value: fmt.Sprintf("u%d@example.com", i)},
			{Key: "name", Value: strings.Repeat("n", 100)}, {Key: "created", Value: time.Unix(int64(i), 0)}}
	})
	insert("auth0", "clients", 30, func(i int) bson.D { return bson.D{{Key: "client_id", Value: fmt.Sprint(i)}} })
	insert("auth0", oddName, 7, func(i int) bson.D { return bson.D{{Key: "i", Value: i}} })
	insert("other", "things", 3, func(i int) bson.D { return bson.D{{Key: "i", Value: i}} })
	_, err := client.Database("auth0").Collection("users").Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys: bson.D{{Key: "email", Value: 1}}, Options: options.Index().SetUnique(true).SetName("email_1")})
	if err != nil {
		t.Fatal(err)
	}
}

type entry struct {
	name string
	data []byte
}

func readTGZ(t *testing.T, b []byte) []entry {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var out []entry
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		d, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, entry{h.Name, d})
	}
}

func runDump(ctx context.Context, t *testing.T, client *mongo.Client, opts Options) (*manifest.Manifest, []entry, error) {
	t.Helper()
	var buf bytes.Buffer
	aw, err := archive.NewWriter(&buf, archive.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := Run(ctx, client, aw, opts, nil)
	if err != nil {
		aw.Close()
		return nil, nil, err
	}
	if err := aw.Close(); err != nil {
		t.Fatal(err)
	}
	return m, readTGZ(t, buf.Bytes()), nil
}

func countBSON(t *testing.T, b []byte) int64 {
	t.Helper()
	var n int64
	for len(b) > 0 {
		if len(b) < 5 {
			t.Fatalf("trailing %d bytes", len(b))
		}
		l := int(b[0]) | int(b[1])<<8 | int(b[2])<<16 | int(b[3])<<24
		if err := bson.Raw(b[:l]).Validate(); err != nil {
			t.Fatalf("document %d: %v", n, err)
		}
		b = b[l:]
		n++
	}
	return n
}

func assertSpoolEmpty(t *testing.T, dir string) {
	t.Helper()
	left, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("spool dir holds %d files after the dump", len(left))
	}
}

func TestRunLayout(t *testing.T) {
	ctx := context.Background()
	client := startServer(t, embedded.Config{})
	seed(t, client, 500)
	spool := t.TempDir()

	m, entries, err := runDump(ctx, t, client, Options{SpoolDir: spool, ToolVersion: "test-1", Node: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	assertSpoolEmpty(t, spool)

	if entries[0].name != PreludeName {
		t.Errorf("first entry %q, want %s", entries[0].name, PreludeName)
	}
	// Exactly mongodump 100.x's directory-mode prelude: stock mongorestore
	// needs ServerVersion.
	var prelude map[string]any
	if err := json.Unmarshal(entries[0].data, &prelude); err != nil || prelude["ToolVersion"] != "test-1" ||
		prelude["ServerVersion"] == nil || prelude["ServerVersion"] == "" || len(prelude) != 2 {
		t.Errorf("prelude %s: %v", entries[0].data, err)
	}
	last := entries[len(entries)-1]
	if last.name != manifest.Name {
		t.Fatalf("last entry %q, want %s", last.name, manifest.Name)
	}
	dm, err := manifest.Decode(bytes.NewReader(last.data))
	if err != nil {
		t.Fatal(err)
	}
	if dm.Consistency != manifest.ConsistencyNone || dm.ConsistentTo != nil {
		t.Errorf("standalone: consistency %q, consistent_to %v", dm.Consistency, dm.ConsistentTo)
	}
	if dm.Source.ServerVersion == "" || dm.ToolVersion != "test-1" || dm.Source.Node != "n1" {
		t.Errorf("source %+v tool %q", dm.Source, dm.ToolVersion)
	}
	if len(dm.Collections) != len(m.Collections) {
		t.Fatalf("archived manifest has %d collections, returned %d", len(dm.Collections), len(m.Collections))
	}

	index := map[string]int{}
	for i, e := range entries {
		if _, dup := index[e.name]; dup {
			t.Errorf("duplicate entry %s", e.name)
		}
		index[e.name] = i
	}
	want := map[string]bool{"auth0.users": true, "auth0.clients": true, "auth0." + oddName: true, "other.things": true}
	for _, c := range dm.Collections {
		ns := c.Namespace()
		t.Run(ns, func(t *testing.T) {
			delete(want, ns)
			mi, ok := index[c.MetadataFile]
			if !ok {
				t.Fatalf("no %s", c.MetadataFile)
			}
			bi, ok := index[c.BSONFile]
			if !ok {
				t.Fatalf("no %s", c.BSONFile)
			}
			if mi > bi {
				t.Errorf("metadata after bson")
			}
			server, err := client.Database(c.DB).Collection(c.Name).CountDocuments(ctx, bson.D{})
			if err != nil {
				t.Fatal(err)
			}
			if got := countBSON(t, entries[bi].data); got != server || c.Documents != server {
				t.Errorf("archive %d docs, manifest %d, server %d", got, c.Documents, server)
			}
			if c.Bytes != int64(len(entries[bi].data)) {
				t.Errorf("manifest bytes %d, file %d", c.Bytes, len(entries[bi].data))
			}
			var md struct {
				Indexes        []map[string]any `json:"indexes"`
				UUID           *string          `json:"uuid"`
				CollectionName string           `json:"collectionName"`
				Type           string           `json:"type"`
				Options        map[string]any   `json:"options"`
			}
			if err := json.Unmarshal(entries[mi].data, &md); err != nil {
				t.Fatalf("metadata %s: %v", entries[mi].data, err)
			}
			if md.CollectionName != c.Name || md.Type != "collection" || md.Options == nil || md.UUID == nil || len(*md.UUID) != 32 {
				t.Errorf("metadata %s", entries[mi].data)
			}
			if len(md.Indexes) == 0 || len(md.Indexes) != c.Indexes {
				t.Errorf("metadata has %d indexes, manifest %d", len(md.Indexes), c.Indexes)
			}
		})
	}
	if len(want) != 0 {
		t.Errorf("collections missing from the manifest: %v", want)
	}
	if _, ok := index["auth0/a%2Fb%25c+d.bson"]; !ok {
		t.Errorf("odd collection not escaped as mongodump 100.x does (query escaping); entries: %v", index)
	}
	var users manifest.Collection
	for _, c := range dm.Collections {
		if c.Name == "users" {
			users = c
		}
	}
	if users.Indexes != 2 {
		t.Errorf("users: %d indexes, want 2 (_id, email)", users.Indexes)
	}
	if !strings.Contains(string(entries[index[users.MetadataFile]].data), `"unique":true`) {
		t.Errorf("users metadata lost the unique index: %s", entries[index[users.MetadataFile]].data)
	}

	size, err := DataSize(ctx, client)
	if err != nil || size <= 0 {
		t.Errorf("DataSize = %d, %v", size, err)
	}
}

func TestRunCancelled(t *testing.T) {
	client := startServer(t, embedded.Config{})
	seed(t, client, 5000)
	spool := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	// Cancelled in the middle of the job, whatever the machine's speed: as
	// the second collection's read begins (the first one is then spooled
	// or being read by the other worker).
	var reads atomic.Int32
	beforeRead := func(ctx context.Context, db, coll string) {
		if reads.Add(1) == 2 {
			cancel()
		}
	}
	_, _, err := runDump(ctx, t, client, Options{SpoolDir: spool, Parallel: 2, BeforeRead: beforeRead})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	if reads.Load() < 2 {
		t.Fatalf("the dump read %d collections: the cancel did not land mid-job", reads.Load())
	}
	assertSpoolEmpty(t, spool)
}

func TestRunNoSpoolDir(t *testing.T) {
	_, err := Run(context.Background(), nil, nil, Options{}, nil)
	if !errors.Is(err, ErrNoSpoolDir) {
		t.Fatalf("Run = %v, want ErrNoSpoolDir", err)
	}
}

func TestRunOplog(t *testing.T) { inBothCaptureModes(t, testRunOplog) }

// inBothCaptureModes runs test with FerretDB's one-pass oplog capture,
// then with MongoDB's tailable cursor on the same FerretDB; test passes
// tail on as Options.tailFerretDB.
func inBothCaptureModes(t *testing.T, test func(t *testing.T, tail bool)) {
	t.Run("one pass (FerretDB)", func(t *testing.T) { test(t, false) })
	t.Run("tailable cursor (MongoDB)", func(t *testing.T) { test(t, true) })
}

func testRunOplog(t *testing.T, tail bool) {
	ctx := context.Background()
	client := startServer(t, embedded.Config{Oplog: true})
	seed(t, client, 300)

	// Writes keep going for the whole dump.
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; wctx.Err() == nil; i++ {
			client.Database("auth0").Collection("logs").InsertOne(wctx, bson.D{{Key: "i", Value: i}})
			time.Sleep(5 * time.Millisecond)
		}
	}()
	spool := t.TempDir()
	time.Sleep(50 * time.Millisecond)
	m, entries, err := runDump(ctx, t, client, Options{SpoolDir: spool, tailFerretDB: tail})
	stop()
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	assertSpoolEmpty(t, spool)
	if m.Consistency != manifest.ConsistencyPointInTime || m.ConsistentTo == nil || m.OplogStart == nil {
		t.Fatalf("consistency %q start %v to %v", m.Consistency, m.OplogStart, m.ConsistentTo)
	}
	if m.ConsistentTo.T < m.OplogStart.T || m.ConsistentTo.Wall.IsZero() {
		t.Errorf("consistent_to %+v before start %+v", m.ConsistentTo, m.OplogStart)
	}
	var oplog []byte
	pos := map[string]int{}
	for i, e := range entries {
		pos[e.name] = i
		if e.name == OplogName {
			oplog = e.data
		}
	}
	if _, ok := pos[OplogName]; !ok {
		t.Fatal("no oplog.bson")
	}
	if pos[OplogName] != len(entries)-2 {
		t.Errorf("oplog.bson at %d of %d, want just before manifest.json", pos[OplogName], len(entries))
	}
	if n := countBSON(t, oplog); n == 0 || n != m.OplogEntries {
		t.Errorf("oplog.bson holds %d entries, manifest %d", n, m.OplogEntries)
	}
	// Every entry lies in [start, consistent_to], in order.
	prevT, prevI := m.OplogStart.T, m.OplogStart.I
	for b := oplog; len(b) > 0; {
		l := int(b[0]) | int(b[1])<<8 | int(b[2])<<16 | int(b[3])<<24
		tt, ii := bson.Raw(b[:l]).Lookup("ts").Timestamp()
		if tt < prevT || (tt == prevT && ii < prevI) {
			t.Fatalf("entry %d.%d before %d.%d", tt, ii, prevT, prevI)
		}
		if tt > m.ConsistentTo.T || (tt == m.ConsistentTo.T && ii > m.ConsistentTo.I) {
			t.Fatalf("entry %d.%d after consistent_to", tt, ii)
		}
		prevT, prevI = tt, ii
		b = b[l:]
	}
}

func TestRunOplogRolled(t *testing.T) {
	ctx := context.Background()
	const budget = 50
	client := startServer(t, embedded.Config{Oplog: true, OplogEntries: budget})
	seed(t, client, 100)
	beforeOplogEnd := func(ctx context.Context) {
		for i := 0; i < 3*budget; i++ {
			client.Database("auth0").Collection("logs").InsertOne(ctx, bson.D{{Key: "i", Value: i}})
		}
		if _, err := embedded.TrimOplog(ctx, client, budget); err != nil {
			t.Error(err)
		}
	}
	spool := t.TempDir()
	_, _, err := runDump(ctx, t, client, Options{SpoolDir: spool, BeforeOplogEnd: beforeOplogEnd})
	var rolled *OplogRolledError
	if !errors.As(err, &rolled) {
		t.Fatalf("Run = %v, want *OplogRolledError", err)
	}
	if rolled.NeededBytes <= 0 || !strings.Contains(err.Error(), "the oplog needs at least") {
		t.Errorf("no size in %q", err)
	}
	if !(rolled.Start.T < rolled.Oldest.T || (rolled.Start.T == rolled.Oldest.T && rolled.Start.I < rolled.Oldest.I)) {
		t.Errorf("oldest %v not after start %v", rolled.Oldest, rolled.Start)
	}
	assertSpoolEmpty(t, spool)
}

// TestRunOplogRolledAdvice: the size advice of a rolled oplog is computed
// from the oplog's real figures: its size (collStats), the seconds it holds
// (oldest to newest entry) and the seconds the dump spanned (start to
// newest), read back from the server after the failure; and it asks for more
// than the oplog has. The writes span clock seconds (FerretDB's oplog
// timestamps are wall-clock seconds), so every figure is non-zero.
func TestRunOplogRolledAdvice(t *testing.T) {
	ctx := context.Background()
	const budget = 50
	client := startServer(t, embedded.Config{Oplog: true, OplogEntries: budget})
	seed(t, client, 100)
	oplog := client.Database("local").Collection("oplog.rs")
	nextSecond := func() {
		for s := time.Now().Unix(); time.Now().Unix() == s; {
			time.Sleep(10 * time.Millisecond) // waiting for the clock, nothing timed
		}
	}
	beforeOplogEnd := func(ctx context.Context) {
		// 60 entries, then 30 in a later second and 30 in a later one: the
		// 50 kept span at least one second, the dump two.
		for _, n := range []int{60, 30, 30} {
			nextSecond()
			for i := 0; i < n; i++ {
				client.Database("auth0").Collection("logs").InsertOne(ctx, bson.D{{Key: "i", Value: i}})
			}
		}
		if _, err := embedded.TrimOplog(ctx, client, budget); err != nil {
			t.Error(err)
		}
	}
	_, _, err := runDump(ctx, t, client, Options{SpoolDir: t.TempDir(), BeforeOplogEnd: beforeOplogEnd})
	var rolled *OplogRolledError
	if !errors.As(err, &rolled) {
		t.Fatalf("Run = %v, want *OplogRolledError", err)
	}
	edge := func(dir int) bson.Timestamp {
		var e struct {
			TS bson.Timestamp `bson:"ts"`
		}
		if err := oplog.FindOne(ctx, bson.D{}, options.FindOne().SetSort(bson.D{{Key: "ts", Value: dir}})).Decode(&e); err != nil {
			t.Fatal(err)
		}
		return e.TS
	}
	oldest, newest := edge(1), edge(-1)
	var st struct {
		Size int64 `bson:"size"`
	}
	if err := client.Database("local").RunCommand(ctx, bson.D{{Key: "collStats", Value: "oplog.rs"}}).Decode(&st); err != nil {
		t.Fatal(err)
	}
	want := &OplogRolledError{Start: rolled.Start, Oldest: oldest,
		SpanSeconds: int64(newest.T - rolled.Start.T), WindowSeconds: int64(newest.T - oldest.T), OplogBytes: st.Size}
	if rolled.Oldest != want.Oldest || rolled.SpanSeconds != want.SpanSeconds || rolled.WindowSeconds != want.WindowSeconds || rolled.OplogBytes != want.OplogBytes {
		t.Fatalf("figures %+v, the server's %+v", rolled, want)
	}
	if want.SpanSeconds < 2 || want.WindowSeconds < 1 || want.OplogBytes <= 0 {
		t.Fatalf("the test's writes did not span the seconds it needs: %+v", want)
	}
	computed := want.OplogBytes * want.SpanSeconds / want.WindowSeconds
	if rolled.NeededBytes < computed || rolled.NeededBytes <= want.OplogBytes {
		t.Fatalf("advice %d bytes; the oplog holds %d bytes for %ds and the dump spanned %ds (at least %d)",
			rolled.NeededBytes, want.OplogBytes, want.WindowSeconds, want.SpanSeconds, computed)
	}
	for _, s := range []string{fmt.Sprintf("spanned %ds", want.SpanSeconds), fmt.Sprintf("holds %ds in %d bytes", want.WindowSeconds, want.OplogBytes),
		fmt.Sprintf("at least %d bytes", rolled.NeededBytes)} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("message lacks %q: %s", s, err)
		}
	}
}

func TestReadPreference(t *testing.T) {
	for _, tc := range []struct {
		name       string
		asked      *readpref.ReadPref
		replicaSet string
		want       readpref.Mode
	}{
		{"replica set: a secondary, the primary keeps serving", nil, "rs0", readpref.SecondaryPreferredMode},
		{"standalone or FerretDB (no setName): primary", nil, "", readpref.PrimaryMode},
		{"--allow-primary on a replica set", readpref.Primary(), "rs0", readpref.PrimaryMode},
		{"asked explicitly", readpref.Secondary(), "", readpref.SecondaryMode},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := readPreference(tc.asked, tc.replicaSet).Mode(); got != tc.want {
				t.Fatalf("mode %v, want %v", got, tc.want)
			}
		})
	}
}

func TestOplogRolledMessage(t *testing.T) {
	e := &OplogRolledError{Start: bson.Timestamp{T: 100, I: 1}, Oldest: bson.Timestamp{T: 130, I: 2},
		SpanSeconds: 60, WindowSeconds: 30, OplogBytes: 50 << 20, NeededBytes: 100 << 20}
	msg := e.Error()
	for _, want := range []string{"rolled over", "100.1", "130.2", "cannot be point-in-time", "spanned 60s",
		"holds 30s in 52428800 bytes", "at least 104857600 bytes (100.0 MiB)"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q: %s", want, msg)
		}
	}
}
