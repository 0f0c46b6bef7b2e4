package embedded

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// TestCopyOplogSince: the copy of the oplog's tail holds, byte for byte and
// in the same order, every entry a find on local.oplog.rs with
// {ts: {$gte: since}} returns, leaves out entries inserted before since's
// second, writes nothing to the oplog itself, and is dropped by its release
// (and, if left behind, when the server starts again).
func TestCopyOplogSince(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Start(ctx, Config{Dir: dir, Oplog: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	c, err := s.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { c.Disconnect(ctx) }()
	coll := c.Database("app").Collection("c")
	for i := range 20 {
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: i}, {Key: "v", Value: "before"}}); err != nil {
			t.Fatal(err)
		}
	}
	// The next second: entries from here on are the tail.
	since := time.Now().Truncate(time.Second).Add(time.Second)
	time.Sleep(time.Until(since))
	for i := range 30 {
		if _, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: i % 20}}, bson.D{{Key: "$set", Value: bson.D{{Key: "v", Value: i}}}}); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 {
			if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 100 + i}, {Key: "v", Value: "after"}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: 3}}); err != nil {
		t.Fatal(err)
	}
	oplog := c.Database(OplogDB).Collection(OplogColl)
	filter := bson.D{{Key: "ts", Value: bson.D{{Key: "$gte", Value: bson.Timestamp{T: uint32(since.Unix())}}}}}
	read := func(c *mongo.Collection, f bson.D) []bson.Raw {
		t.Helper()
		cur, err := c.Find(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []bson.Raw
		if err := cur.All(ctx, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	all := read(oplog, bson.D{})
	want := read(oplog, filter)
	if len(want) != 34 { // 30 updates, 3 inserts, 1 delete
		t.Fatalf("the oplog holds %d entries since %v, want 34", len(want), since)
	}
	name, release, err := s.CopyOplogSince(ctx, c, since)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(name, OplogTailPrefix) {
		t.Fatalf("copy named %q", name)
	}
	tail := c.Database(OplogDB).Collection(name)
	copied := read(tail, bson.D{})
	if len(copied) >= len(all) || len(copied) < len(want) {
		t.Fatalf("copied %d entries: want at least the %d since %v and fewer than all %d", len(copied), len(want), since, len(all))
	}
	got := read(tail, filter)
	if len(got) != len(want) {
		t.Fatalf("copy with the filter: %d entries, oplog: %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("entry %d differs:\n copy  %s\n oplog %s", i, got[i], want[i])
		}
	}
	if n := len(read(oplog, bson.D{})); n != len(all) {
		t.Fatalf("the copy wrote to the oplog: %d entries, were %d", n, len(all))
	}
	if err := release(ctx); err != nil {
		t.Fatal(err)
	}
	if names, _ := c.Database(OplogDB).ListCollectionNames(ctx, bson.D{{Key: "name", Value: name}}); len(names) != 0 {
		t.Fatalf("release left %v", names)
	}
	// A copy left behind (a crash) is dropped when the server starts.
	name, _, err = s.CopyOplogSince(ctx, c, since)
	if err != nil {
		t.Fatal(err)
	}
	c.Disconnect(ctx)
	s.Close()
	if s, err = Start(ctx, Config{Dir: dir, Oplog: true}); err != nil {
		t.Fatal(err)
	}
	if c, err = s.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if names, _ := c.Database(OplogDB).ListCollectionNames(ctx, bson.D{}); strings.Contains(strings.Join(names, " "), name) {
		t.Fatalf("a copy left behind survived a restart: %v", names)
	}
}
