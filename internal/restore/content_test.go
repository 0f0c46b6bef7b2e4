package restore

import (
	"context"
	"errors"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// dupDump holds documents the server refuses on restore: a repeated _id
// and a repeated value under a unique index.
func dupDump() dump {
	docs := users(1500)
	docs = append(docs[:700:700], append([]bson.D{
		{{Key: "_id", Value: int32(5)}, {Key: "email", Value: "dup-id@example.com"}},   // _id of document 5
		{{Key: "_id", Value: int32(90000)}, {Key: "email", Value: "u9@example.com"}},   // email of document 9
		{{Key: "_id", Value: int32(90001)}, {Key: "email", Value: "fine@example.com"}}, // accepted
	}, docs[700:]...)...)
	return dump{colls: []coll{{db: "shop", name: "users", docs: docs, indexes: []bson.D{
		{{Key: "v", Value: 2}, {Key: "key", Value: bson.D{{Key: "email", Value: 1}}}, {Key: "name", Value: "email_1"}, {Key: "unique", Value: true}},
	}}}}
}

// TestInsertErrorsCounted: by default, as mongorestore, documents the
// server refuses are counted and shown, the rest is restored, and the report
// is not OK; with StopOnError the restore stops at the first with its
// position.
func TestInsertErrorsCounted(t *testing.T) {
	client := start(t)
	ctx := context.Background()
	// The unique index must exist while the data goes in for the email
	// duplicate to be refused at insert time: create it first.
	if _, err := client.Database("shop").Collection("users").Indexes().CreateOne(ctx, mongoIndex("email")); err != nil {
		t.Fatal(err)
	}
	data := dupDump().archive(t)
	rep, err := restore(t, client, data, Options{Drop: false, Parallel: 3})
	if err != nil {
		t.Fatalf("default mode stopped: %v", err)
	}
	cr := rep.Collections[0]
	if rep.OK || cr.OK || rep.DocumentsFailed != 2 || cr.DocumentsFailed != 2 || cr.DuplicateKeys != 2 || len(cr.InsertErrors) != 2 {
		t.Fatalf("report %+v, collection %+v: want 2 refused duplicate keys, not OK", rep, cr)
	}
	if n, _ := client.Database("shop").Collection("users").CountDocuments(ctx, bson.D{}); n != 1501 || cr.DocumentsFound != 1501 {
		t.Fatalf("%d documents restored (report %d), want every accepted one: 1501", n, cr.DocumentsFound)
	}

	t.Run("stop on error", func(t *testing.T) {
		if err := client.Database("shop").Drop(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := client.Database("shop").Collection("users").Indexes().CreateOne(ctx, mongoIndex("email")); err != nil {
			t.Fatal(err)
		}
		_, err := restore(t, client, data, Options{StopOnError: true, Parallel: 3})
		var ie *InsertError
		if !errors.As(err, &ie) || ie.Namespace != "shop.users" || (ie.Document != 700 && ie.Document != 701) || ie.Code != codeDuplicateKey {
			t.Fatalf("stop on error: %v (%+v), want an InsertError at document 700 or 701", err, ie)
		}
	})
}

// TestCappedOrder: a capped collection's content is its insertion order;
// restore writes it as one ordered stream over many batches, also when a
// document in the middle is refused.
func TestCappedOrder(t *testing.T) {
	client := start(t)
	ctx := context.Background()
	const n = 4 * batchDocs
	docs := make([]bson.D, 0, n+1)
	for i := range n {
		// _id descending: an order no index or sort can give back.
		docs = append(docs, bson.D{{Key: "_id", Value: int32(n - i)}, {Key: "seq", Value: int32(i)}})
		if i == n/2 {
			docs = append(docs, bson.D{{Key: "_id", Value: int32(n)}, {Key: "seq", Value: int32(-1)}}) // refused: duplicate _id
		}
	}
	d := dump{colls: []coll{{db: "logs", name: "events", options: bson.D{{Key: "capped", Value: true}, {Key: "size", Value: int64(64 << 20)}}, docs: docs}}}
	rep, err := restore(t, client, d.archive(t), Options{Parallel: 4})
	if err != nil {
		t.Fatal(err)
	}
	if cr := rep.Collections[0]; cr.DocumentsFailed != 1 || cr.DocumentsFound != n {
		t.Fatalf("capped restore: %+v, want 1 refused and %d found", cr, n)
	}
	cur, err := client.Database("logs").Collection("events").Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "$natural", Value: 1}}))
	if err != nil {
		t.Fatal(err)
	}
	var got []struct {
		Seq int32 `bson:"seq"`
	}
	if err := cur.All(ctx, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("%d documents back, want %d", len(got), n)
	}
	for i, g := range got {
		if g.Seq != int32(i) {
			t.Fatalf("document %d in natural order has seq %d: the insertion order was lost", i, g.Seq)
		}
	}
}

func mongoIndex(field string) mongo.IndexModel {
	return mongo.IndexModel{Keys: bson.D{{Key: field, Value: 1}}, Options: options.Index().SetUnique(true).SetName(field + "_1")}
}
