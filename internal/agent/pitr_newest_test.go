package agent

import (
	"context"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/a0backup/a0/internal/ops/dbjob"
)

// TestServerNewestBounded (issue 29): the server's newest oplog entry,
// which the archive's lag metric asks for every 5 s, is read from the
// embedded server without decoding the oplog: what one read allocates
// stays far below what the oplog holds (a {$natural: -1} find made
// FerretDB decode and sort all of it, and go on after its timeout: during a
// restore of 40,000 documents those reads piled up to 24 GB). The entry
// it names is the newest one that is not local.*, exactly as a read of the
// whole oplog finds it.
func TestServerNewestBounded(t *testing.T) {
	a, err := New(context.Background(), Config{Jobs: dbjob.Runners(), StateDir: t.TempDir(), Listen: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	ctx := context.Background()
	// About 40 MiB of oplog entries.
	const docs, batch = 20_000, 1000
	pad := strings.Repeat("x", 2000)
	coll := a.client.Database("app").Collection("c")
	for i := 0; i < docs; i += batch {
		var b []any
		for j := i; j < i+batch; j++ {
			b = append(b, bson.D{{Key: "_id", Value: j}, {Key: "pad", Value: pad}})
		}
		if _, err := coll.InsertMany(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	// The reference: every entry of the oplog, read in one pass.
	cur, err := a.client.Database("local").Collection("oplog.rs").Find(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	var want bson.Timestamp
	var entries, entryBytes int
	for cur.Next(ctx) {
		entries++
		entryBytes += len(cur.Current)
		if ns, _ := cur.Current.Lookup("ns").StringValueOK(); strings.HasPrefix(ns, "local.") {
			continue
		}
		if ts, i, ok := cur.Current.Lookup("ts").TimestampOK(); ok && (ts > want.T || ts == want.T && i > want.I) {
			want = bson.Timestamp{T: ts, I: i}
		}
	}
	if err := cur.Err(); err != nil {
		t.Fatal(err)
	}
	cur.Close(ctx)
	if entries < docs || entryBytes < docs*len(pad) {
		t.Fatalf("the oplog holds %d entries, %d bytes: the test needs %d", entries, entryBytes, docs)
	}

	const reads = 3
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range reads {
		if got := a.serverNewest(ctx); got != want {
			t.Fatalf("serverNewest = %d.%d, the oplog's newest entry is %d.%d", got.T, got.I, want.T, want.I)
		}
	}
	runtime.ReadMemStats(&after)
	// A generous bound (other goroutines of the agent allocate too): the
	// old read allocated several times the oplog's size per call.
	perRead := (after.TotalAlloc - before.TotalAlloc) / reads
	t.Logf("oplog: %d entries, %d MiB; one read allocated %d KiB", entries, entryBytes>>20, perRead>>10)
	if limit := uint64(entryBytes) / 4; perRead > limit {
		t.Fatalf("one read of the newest entry allocated %d MiB; the oplog holds %d MiB", perRead>>20, entryBytes>>20)
	}
}

// TestNewestByFindBoundsTheServer: on a server a0 reaches only by the wire
// (an external FerretDB decodes its whole oplog for this read and goes on
// after the client gives up), the newest-entry read carries maxTimeMS, so
// the server stops it; and it names the oplog's newest entry outside
// local.*.
func TestNewestByFindBoundsTheServer(t *testing.T) {
	a, err := New(context.Background(), Config{Jobs: dbjob.Runners(), StateDir: t.TempDir(), Listen: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	ctx := context.Background()
	var mu sync.Mutex
	var finds []bson.Raw
	mon := &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		if e.CommandName == "find" {
			mu.Lock()
			finds = append(finds, append(bson.Raw(nil), e.Command...))
			mu.Unlock()
		}
	}}
	c, err := mongo.Connect(options.Client().ApplyURI(a.embed.URI()).SetMonitor(mon))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect(context.Background()) })
	if _, err := c.Database("app").Collection("c").InsertOne(ctx, bson.D{{Key: "x", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	want := a.serverNewest(ctx) // the embedded read by key
	if want.IsZero() {
		t.Fatal("the embedded server's newest entry is unknown")
	}
	if got := newestByFind(ctx, c.Database("local")); got != want {
		t.Errorf("newestByFind = %d.%d, the oplog's newest entry is %d.%d", got.T, got.I, want.T, want.I)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(finds) != 1 {
		t.Fatalf("%d finds sent, want 1", len(finds))
	}
	if ms, ok := finds[0].Lookup("maxTimeMS").AsInt64OK(); !ok || ms <= 0 || ms > newestMaxTime.Milliseconds() {
		t.Errorf("the find carries maxTimeMS %v (ok %v): the server would go on after the client gave up", finds[0].Lookup("maxTimeMS"), ok)
	}
}
