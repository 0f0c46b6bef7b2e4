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
	"github.com/a0backup/a0/internal/manifest"
)

// TestOnePassQuietOplog: on FerretDB, where a find on the oplog by ts
// decodes every entry, a dump during which nothing was written captures an
// empty oplog without that find (the entry count and the oldest entry
// tell); one write during the dump still makes the full read, and its entry
// is captured.
func TestOnePassQuietOplog(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write bool
	}{
		{"nothing written during the dump", false},
		{"one write during the dump", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			srv, err := embedded.Start(ctx, embedded.Config{Dir: filepath.Join(t.TempDir(), "db"), Oplog: true})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			var tsFinds atomic.Int64
			mon := &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
				if e.CommandName != "find" {
					return
				}
				if coll, _ := e.Command.Lookup("find").StringValueOK(); coll != oplogColl {
					return
				}
				if _, err := e.Command.LookupErr("filter", "ts"); err == nil {
					tsFinds.Add(1)
				}
			}}
			client, err := mongo.Connect(options.Client().ApplyURI(srv.URI()).SetMonitor(mon))
			if err != nil {
				t.Fatal(err)
			}
			defer client.Disconnect(ctx)
			seed(t, client, 200)

			opts := Options{SpoolDir: t.TempDir()}
			if tc.write {
				opts.AfterList = func(ctx context.Context) {
					if _, err := client.Database("auth0").Collection("logs").InsertOne(ctx, bson.D{{Key: "quiet", Value: "no"}}); err != nil {
						t.Error(err)
					}
				}
			}
			m, entries, err := runDump(ctx, t, client, opts)
			if err != nil {
				t.Fatal(err)
			}
			if m.Consistency != manifest.ConsistencyPointInTime || m.OplogStart == nil || m.ConsistentTo == nil {
				t.Fatalf("consistency %q start %v to %v", m.Consistency, m.OplogStart, m.ConsistentTo)
			}
			var oplog []byte
			for _, e := range entries {
				if e.name == OplogName {
					oplog = e.data
				}
			}
			found := false
			for b := oplog; len(b) > 0; {
				l := int(b[0]) | int(b[1])<<8 | int(b[2])<<16 | int(b[3])<<24
				if v, ok := bson.Raw(b[:l]).Lookup("o", "quiet").StringValueOK(); ok && v == "no" {
					found = true
				}
				b = b[l:]
			}
			if !tc.write {
				if n := tsFinds.Load(); n != 0 {
					t.Errorf("%d finds by ts on the oplog, want none: nothing was written", n)
				}
				if m.OplogEntries != 0 || *m.ConsistentTo != *m.OplogStart {
					t.Errorf("oplog entries %d, consistent_to %+v, start %+v: want none, the start", m.OplogEntries, *m.ConsistentTo, *m.OplogStart)
				}
				return
			}
			if tsFinds.Load() == 0 {
				t.Error("no read of the oplog although a write landed during the dump")
			}
			if !found {
				t.Errorf("the write during the dump is not in the captured oplog (%d entries)", m.OplogEntries)
			}
		})
	}
}
