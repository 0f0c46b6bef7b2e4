package embedded

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// TestIndexIDLookups: FerretDB's own plan for a find by a string or
// ObjectId _id is a table scan; after IndexIDLookups the same query, and
// the update and delete by _id, search the new index, and they still find,
// change and remove the right documents. Plans come from the server's
// explain (SQLite's EXPLAIN QUERY PLAN), not from timing.
func TestIndexIDLookups(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Start(ctx, Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := s.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(ctx)
	db := c.Database("app")
	oid := bson.NewObjectID()
	docs := []any{bson.D{{Key: "_id", Value: oid}, {Key: "v", Value: 0}}}
	for i := range 50 {
		docs = append(docs, bson.D{{Key: "_id", Value: fmt.Sprintf("s%d", i)}, {Key: "v", Value: i}})
	}
	if _, err := db.Collection("c").InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Collection("other").InsertOne(ctx, bson.D{{Key: "_id", Value: "x"}}); err != nil {
		t.Fatal(err)
	}
	plan := func(coll string, id any) string {
		t.Helper()
		var res bson.Raw
		err := db.RunCommand(ctx, bson.D{{Key: "explain", Value: bson.D{{Key: "find", Value: coll}, {Key: "filter", Value: bson.D{{Key: "_id", Value: id}}}}}}).Decode(&res)
		if err != nil {
			t.Fatal(err)
		}
		return res.Lookup("queryPlanner").String()
	}
	for _, id := range []any{"s7", oid} {
		if p := plan("c", id); strings.Contains(p, idLookupSuffix) || !strings.Contains(p, "SCAN") {
			t.Fatalf("before: plan of _id %v = %s; want a scan", id, p)
		}
	}
	n, err := s.IndexIDLookups(ctx, "app", []string{"c", "missing"})
	if err != nil || n != 1 {
		t.Fatalf("IndexIDLookups = %d, %v; want 1 index", n, err)
	}
	if n, err := s.IndexIDLookups(ctx, "app", []string{"c"}); err != nil || n != 0 {
		t.Fatalf("second IndexIDLookups = %d, %v; want 0 (already there)", n, err)
	}
	if n, err := s.IndexIDLookups(ctx, "nodb", []string{"c"}); err != nil || n != 0 {
		t.Fatalf("IndexIDLookups of a missing database = %d, %v", n, err)
	}
	coll := db.Collection("c")
	if r, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: "s7"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "v", Value: 700}}}}); err != nil || r.ModifiedCount != 1 {
		t.Fatalf("update by _id: %+v, %v", r, err)
	}
	if r, err := coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: oid}}); err != nil || r.DeletedCount != 1 {
		t.Fatalf("delete by _id: %+v, %v", r, err)
	}
	var got struct{ V int }
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "s7"}}).Decode(&got); err != nil || got.V != 700 {
		t.Fatalf("find by _id after update: %+v, %v", got, err)
	}
	if n, err := coll.CountDocuments(ctx, bson.D{}); err != nil || n != 50 {
		t.Fatalf("count = %d, %v; want 50", n, err)
	}
	// A duplicate _id is still refused (FerretDB's own unique index).
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "s8"}}); err == nil {
		t.Fatal("duplicate _id accepted")
	}
	// The index is not listed to clients.
	specs, err := coll.Indexes().ListSpecifications(ctx)
	if err != nil || len(specs) != 1 {
		t.Fatalf("listIndexes = %v, %v; want only _id_", specs, err)
	}
	// The Catalog counts rows and lists database files as FerretDB does.
	cat := s.Catalog()
	if dbs, err := cat.Databases(ctx); err != nil || strings.Join(dbs, ",") != "app" {
		t.Fatalf("Catalog databases = %v, %v; want [app]", dbs, err)
	}
	if n, err := cat.Count(ctx, "app", "c"); err != nil || n != 50 {
		t.Fatalf("Catalog count = %d, %v; want 50", n, err)
	}
	if n, err := cat.Count(ctx, "app", "missing"); err != nil || n != 0 {
		t.Fatalf("Catalog count of a missing collection = %d, %v", n, err)
	}
	// SQLite re-reads the schema on a connection's next transaction, but
	// its EXPLAIN QUERY PLAN does not start one: the plans are checked on
	// fresh connections, after a restart on the same files.
	c.Disconnect(ctx)
	s.Close()
	if s, err = Start(ctx, Config{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if c, err = s.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(ctx)
	db = c.Database("app")
	coll = db.Collection("c")
	for _, id := range []any{"s7", "s9", oid} {
		if p := plan("c", id); !strings.Contains(p, idLookupSuffix) {
			t.Fatalf("after: plan of _id %v = %s; want the index", id, p)
		}
	}
	if p := plan("other", "x"); strings.Contains(p, idLookupSuffix) {
		t.Fatalf("a collection not named got the index: %s", p)
	}
	// Dropping the collection drops its table and the index with it; a
	// new collection of the same name starts without it.
	if err := coll.Drop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "s1"}}); err != nil {
		t.Fatal(err)
	}
	if p := plan("c", "s1"); strings.Contains(p, idLookupSuffix) {
		t.Fatalf("recreated collection kept the index: %s", p)
	}
}
