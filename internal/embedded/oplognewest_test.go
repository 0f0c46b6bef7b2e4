package embedded

import (
	"context"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// TestNewestOplogTS: the newest entry outside local.* is the one the
// oplog holds last (read back through the driver), read from SQLite;
// zero on a server without an oplog.
func TestNewestOplogTS(t *testing.T) {
	ctx := context.Background()
	s, err := Start(ctx, Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, err := s.NewestOplogTS(ctx); err != nil || !got.IsZero() {
		t.Fatalf("without an oplog: %v, %v", got, err)
	}
	s.Close()

	s, err = Start(ctx, Config{Dir: t.TempDir(), Oplog: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := s.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(ctx)
	coll := c.Database("shop").Collection("items")
	for i := range 300 {
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: i}}); err != nil {
			t.Fatal(err)
		}
	}
	var want bson.Timestamp
	for _, e := range oplogEntries(t, c, bson.D{{Key: "ns", Value: "shop.items"}}) {
		if tt, i, ok := e.Lookup("ts").TimestampOK(); ok && want.Before(bson.Timestamp{T: tt, I: i}) {
			want = bson.Timestamp{T: tt, I: i}
		}
	}
	got, err := s.NewestOplogTS(ctx)
	if err != nil || got != want || want.IsZero() {
		t.Fatalf("NewestOplogTS = %v, %v; want %v", got, err, want)
	}
}
