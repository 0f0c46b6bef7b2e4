package restore

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/a0backup/a0/internal/embedded"
	"github.com/a0backup/a0/internal/manifest"
)

// monitored starts an embedded server and connects to it with mon watching
// every command.
func monitored(t *testing.T, mon *event.CommandMonitor) *mongo.Client {
	t.Helper()
	ctx := context.Background()
	srv, err := embedded.Start(ctx, embedded.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	c, err := mongo.Connect(options.Client().ApplyURI(srv.URI()).SetMonitor(mon))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect(context.Background()) })
	return c
}

// TestIndexesBuiltWhileOthersLoad (issue 27c): with no oplog to replay, on
// a server that builds beside inserts (MongoDB; forced here), a
// collection's indexes are built as soon as its data is in, while another
// database's collection still loads: the second collection's first insert
// is held until the first collection's index exists, which before this
// change came only after every collection had loaded.
func TestIndexesBuiltWhileOthersLoad(t *testing.T) {
	ctx := context.Background()
	var (
		once   sync.Once
		client *mongo.Client
		built  = make(chan bool, 1)
	)
	hasIndex := func() bool {
		cur, err := client.Database("a").Collection("first").Indexes().List(ctx)
		if err != nil {
			return false
		}
		var idx []bson.M
		cur.All(ctx, &idx)
		for _, ix := range idx {
			if ix["name"] == "email_1" {
				return true
			}
		}
		return false
	}
	mon := &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		if e.CommandName != "insert" || e.DatabaseName != "b" {
			return
		}
		once.Do(func() {
			// Held here, b.second cannot finish loading: only an index
			// built beside the loads can appear.
			deadline := time.Now().Add(30 * time.Second)
			for !hasIndex() && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			built <- hasIndex()
		})
	}}
	client = monitored(t, mon)
	email := []bson.D{{{Key: "v", Value: 2}, {Key: "key", Value: bson.D{{Key: "email", Value: 1}}}, {Key: "name", Value: "email_1"}}}
	d := dump{colls: []coll{
		{db: "a", name: "first", docs: users(500), indexes: email},
		{db: "b", name: "second", docs: users(500), indexes: email},
	}}
	// On FerretDB a restore builds after the data (a build there stops
	// the loads); the test asks for what a MongoDB server gets.
	rep, err := restore(t, client, d.archive(t), Options{testEarlyIndexes: true})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK {
		t.Fatalf("report not OK: %+v", rep.Collections)
	}
	select {
	case ok := <-built:
		if !ok {
			t.Fatal("a.first's index was not built while b.second was loading")
		}
	default:
		t.Fatal("no insert into b was seen")
	}
}

// TestCountsFromWrites (issue 27c): the count check takes a collection's
// documents from what the inserts wrote, with no count command, unless a
// rescan is what proves something: a capped collection (the server may
// trim) and a collection the oplog replay wrote to are counted by the
// server.
func TestCountsFromWrites(t *testing.T) {
	var mu sync.Mutex
	counted := map[string]int{}
	mon := &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		var coll string
		switch e.CommandName {
		case "collStats", "count":
			coll, _ = e.Command.Lookup(e.CommandName).StringValueOK()
		case "aggregate":
			coll, _ = e.Command.Lookup("aggregate").StringValueOK()
			if !strings.Contains(e.Command.String(), "$count") && !strings.Contains(e.Command.String(), "$group") {
				return
			}
		default:
			return
		}
		mu.Lock()
		counted[e.DatabaseName+"."+coll]++
		mu.Unlock()
	}}
	client := monitored(t, mon)
	d := sampleDump()
	d.colls = append(d.colls, coll{db: "app", name: "c", docs: users(5)})
	d.oplog = []bson.D{opEntry(10, "i", "app.c", bson.D{{Key: "_id", Value: 100}}, nil)}
	d.consTo = &manifest.OplogPos{T: 10, I: 1}
	rep, err := restore(t, client, d.archive(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK {
		t.Fatalf("report not OK: %+v", rep.Collections)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, c := range rep.Collections {
		if c.CountCompared && c.DocumentsFound != c.DocumentsExpected {
			t.Errorf("%s: found %d, expected %d", c.Namespace, c.DocumentsFound, c.DocumentsExpected)
		}
		if c.Namespace == "app.c" && c.DocumentsFound != 6 {
			t.Errorf("app.c after the replay: %+v", c)
		}
		rescan := c.Namespace == "auth0.logs" || c.Namespace == "app.c"
		if got := counted[c.Namespace] > 0; got != rescan {
			t.Errorf("%s: counted by the server %v, want %v (%v)", c.Namespace, got, rescan, counted)
		}
	}
}
