package dump

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/a0backup/a0/internal/embedded"
)

// TestDataSizeThenTotalsListOnce: on FerretDB, where every listDatabases
// walks the pages of every database file (the oplog's too), the size check
// and the totals of one backup request list the databases once; the size
// is still the sum of dbStats dataSize, and the totals still count every
// collection. A listing is taken once: the next Totals lists again.
func TestDataSizeThenTotalsListOnce(t *testing.T) {
	ctx := context.Background()
	srv, err := embedded.Start(ctx, embedded.Config{Dir: filepath.Join(t.TempDir(), "db"), Oplog: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var lists atomic.Int64
	mon := &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		if e.CommandName == "listDatabases" {
			lists.Add(1)
		}
	}}
	client, err := mongo.Connect(options.Client().ApplyURI(srv.URI()).SetMonitor(mon))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(ctx)
	seed(t, client, 200)

	var want int64
	dbs, err := databases(ctx, client)
	if err != nil {
		t.Fatal(err)
	}
	for _, db := range dbs {
		var st bson.Raw
		if err := client.Database(db).RunCommand(ctx, bson.D{{Key: "dbStats", Value: 1}}).Decode(&st); err != nil {
			t.Fatal(err)
		}
		want += number(st.Lookup("dataSize"))
	}
	wantColls, _, err := Totals(ctx, client, nil, nil)
	if err != nil {
		t.Fatal(err)
	}

	lists.Store(0)
	size, err := DataSize(ctx, client)
	if err != nil {
		t.Fatal(err)
	}
	colls, bytes, err := Totals(ctx, client, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := lists.Load(); n != 1 {
		t.Errorf("DataSize then Totals: %d listDatabases, want 1", n)
	}
	if size != want || size == 0 {
		t.Errorf("DataSize %d, want the sum of dbStats dataSize %d", size, want)
	}
	if colls != wantColls || bytes <= 0 {
		t.Errorf("Totals %d collections %d bytes, want %d collections and some bytes", colls, bytes, wantColls)
	}
	lists.Store(0)
	if _, _, err := Totals(ctx, client, nil, nil); err != nil {
		t.Fatal(err)
	}
	if n := lists.Load(); n != 1 {
		t.Errorf("a second Totals: %d listDatabases, want 1 (the shared listing is taken once)", n)
	}
}
