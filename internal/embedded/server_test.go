package embedded

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

func TestStartInsertFind(t *testing.T) {
	ctx := context.Background()
	s, err := Start(ctx, Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := s.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(ctx)
	coll := c.Database("t").Collection("c")
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "x", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	n, err := coll.CountDocuments(ctx, bson.D{})
	if err != nil || n != 1 {
		t.Fatalf("count = %d, %v; want 1", n, err)
	}
}

// TestStartSetsAsideUninitialisedDatabase: a database file without
// FerretDB's metadata (a crash between creating it and its first table)
// does not stop the server from starting, and other data survives.
func TestStartSetsAsideUninitialisedDatabase(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Start(ctx, Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := s.Connect(ctx)
	if _, err := c.Database("keep").Collection("c").InsertOne(ctx, bson.D{{Key: "x", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	c.Disconnect(ctx)
	s.Close()
	// An empty SQLite file, as a crash leaves it.
	if err := os.WriteFile(filepath.Join(dir, "halfmade.sqlite"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err = Start(ctx, Config{Dir: dir})
	if err != nil {
		t.Fatalf("start with an uninitialised database file: %v", err)
	}
	defer s.Close()
	c, _ = s.Connect(ctx)
	defer c.Disconnect(ctx)
	if n, err := c.Database("keep").Collection("c").CountDocuments(ctx, bson.D{}); err != nil || n != 1 {
		t.Fatalf("data lost: %d %v", n, err)
	}
	if aside, _ := filepath.Glob(filepath.Join(dir, "halfmade.sqlite.orphan-*")); len(aside) != 1 {
		t.Fatalf("file not set aside: %v", aside)
	}
}
