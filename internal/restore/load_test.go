package restore

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/a0backup/a0/internal/embedded"
	"github.com/a0backup/a0/internal/spool"
)

// TestLoadDatabasesAtOnce: the collections of different databases load at
// once. The first insert into db "a" is held until an insert into db "b"
// has started (b's collection comes after a's in the archive): loading
// one collection after the other never gets there. Everything is restored
// and counted, and no spool file is left.
func TestLoadDatabasesAtOnce(t *testing.T) {
	ctx := context.Background()
	srv, err := embedded.Start(ctx, embedded.Config{Dir: filepath.Join(t.TempDir(), "db")})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var (
		once     sync.Once
		bStarted = make(chan struct{})
		overlap  = make(chan bool, 1)
	)
	mon := &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		if e.CommandName != "insert" {
			return
		}
		switch e.DatabaseName {
		case "b":
			once.Do(func() { close(bStarted) })
		case "a":
			select {
			case <-bStarted:
				select {
				case overlap <- true:
				default:
				}
			case <-time.After(10 * time.Second):
				select {
				case overlap <- false:
				default:
				}
			}
		}
	}}
	client, err := mongo.Connect(options.Client().ApplyURI(srv.URI()).SetMonitor(mon))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(ctx)
	d := dump{colls: []coll{
		{db: "a", name: "one", docs: users(3000)},
		{db: "a", name: "two", docs: users(10)},
		{db: "b", name: "three", docs: users(2000)},
	}}
	spoolDir := t.TempDir()
	rep, err := restore(t, client, d.archive(t), Options{SpoolDir: spoolDir})
	if err != nil {
		t.Fatal(err)
	}
	if !<-overlap {
		t.Error("no insert into b while an insert into a was under way: the databases loaded one after the other")
	}
	if !rep.OK {
		t.Fatalf("report not OK: %+v", rep.Collections)
	}
	want := map[string]int64{"a.one": 3000, "a.two": 10, "b.three": 2000}
	for _, c := range rep.Collections {
		if c.DocumentsFound != want[c.Namespace] {
			t.Errorf("%s: %d documents, want %d", c.Namespace, c.DocumentsFound, want[c.Namespace])
		}
	}
	if left, _ := os.ReadDir(spoolDir); len(left) != 0 {
		t.Errorf("spool files left: %v", left)
	}
}

// TestCountsAtOnce: the count check asks for collections' counts
// Options.Parallel at a time: the first collStats is held until a second
// one has started, which counting one collection after the other never
// gets to. The counts are still each collection's own.
func TestCountsAtOnce(t *testing.T) {
	ctx := context.Background()
	srv, err := embedded.Start(ctx, embedded.Config{Dir: filepath.Join(t.TempDir(), "db")})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var (
		mu      sync.Mutex
		started int
		second  = make(chan struct{})
		overlap = make(chan bool, 1)
	)
	mon := &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		if e.CommandName != "collStats" {
			return
		}
		mu.Lock()
		started++
		n := started
		mu.Unlock()
		switch n {
		case 1:
			select {
			case <-second:
				overlap <- true
			case <-time.After(10 * time.Second):
				overlap <- false
			}
		case 2:
			close(second)
		}
	}}
	client, err := mongo.Connect(options.Client().ApplyURI(srv.URI()).SetMonitor(mon))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(ctx)
	d := dump{colls: []coll{
		{db: "a", name: "one", docs: users(30)},
		{db: "a", name: "two", docs: users(20)},
		{db: "a", name: "three", docs: users(10)},
	}}
	// Recount: the server counts every collection (without it the counts
	// come from the inserts, TestCountsFromWrites).
	rep, err := restore(t, client, d.archive(t), Options{Parallel: 2, Recount: true})
	if err != nil {
		t.Fatal(err)
	}
	if !<-overlap {
		t.Error("no second collStats while the first was under way: the counts ran one after the other")
	}
	want := map[string]int64{"a.one": 30, "a.two": 20, "a.three": 10}
	for _, c := range rep.Collections {
		if c.DocumentsFound != want[c.Namespace] || c.IndexesFound != 1 || !c.OK {
			t.Errorf("%s: %d documents, %d indexes, ok %v; want %d, 1, true", c.Namespace, c.DocumentsFound, c.IndexesFound, c.OK, want[c.Namespace])
		}
	}
}

// TestDataSpoolCleaned: what a killed restore leaves of its data spools is
// removed by the clean the agent runs at start (with OplogSpoolPattern).
func TestDataSpoolCleaned(t *testing.T) {
	dir := t.TempDir()
	f, err := spool.Create(dir, DataSpoolPattern)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	removed, err := spool.Clean(dir, OplogSpoolPattern)
	if err != nil || len(removed) != 1 || removed[0] != f.Name() {
		t.Fatalf("clean removed %v (%v), want %s", removed, err, f.Name())
	}
}
