package restore

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// TestReplayOnlyRestoredNamespaces: a crafted oplog.bson cannot write
// outside the namespaces being restored, nor past the non-empty-target
// guard (issue 13, finding 2).
func TestReplayOnlyRestoredNamespaces(t *testing.T) {
	client := start(t)
	ctx := context.Background()
	prod := client.Database("prod").Collection("orders")
	if _, err := prod.InsertOne(ctx, bson.D{{Key: "_id", Value: "precious"}}); err != nil {
		t.Fatal(err)
	}
	app := coll{db: "app", name: "c", docs: users(2)}
	raw := func(d bson.D) bson.Raw { return mustRaw(t, d) }
	ins := func(ts uint32, ns string, id any) bson.Raw {
		return raw(opEntry(ts, "i", ns, bson.D{{Key: "_id", Value: id}}, nil))
	}
	del := func(ts uint32, ns string, id any) bson.D {
		return opEntry(ts, "d", ns, bson.D{{Key: "_id", Value: id}}, nil)
	}
	rename := raw(opEntry(5, "c", "app.$cmd", bson.D{{Key: "renameCollection", Value: "app.c"}, {Key: "to", Value: "prod.orders"}, {Key: "dropTarget", Value: true}}, nil))
	applyOps := raw(opEntry(6, "c", "admin.$cmd", bson.D{{Key: "applyOps", Value: bson.A{
		bson.D{{Key: "op", Value: "d"}, {Key: "ns", Value: "prod.orders"}, {Key: "o", Value: bson.D{{Key: "_id", Value: "precious"}}}},
		bson.D{{Key: "op", Value: "i"}, {Key: "ns", Value: "app.c"}, {Key: "o", Value: bson.D{{Key: "_id", Value: 100}}}},
	}}}, nil))
	renameProd := raw(opEntry(5, "c", "prod.$cmd", bson.D{{Key: "renameCollection", Value: "prod.tmp"}, {Key: "to", Value: "prod.orders"}, {Key: "dropTarget", Value: true}}, nil))
	sysUsers := ins(7, "admin.system.users", "evil")
	dropProd := raw(opEntry(8, "c", "prod.$cmd", bson.D{{Key: "drop", Value: "orders"}}, nil))
	dropDB := raw(opEntry(9, "c", "prod.$cmd", bson.D{{Key: "dropDatabase", Value: 1}}, nil))
	precious := func(t *testing.T) {
		t.Helper()
		n, err := prod.CountDocuments(ctx, bson.D{{Key: "_id", Value: "precious"}})
		if err != nil || n != 1 {
			t.Fatalf("prod.orders was written: %d %v", n, err)
		}
		if n, _ := client.Database("admin").Collection("system.users").CountDocuments(ctx, bson.D{{Key: "_id", Value: "evil"}}); n != 0 {
			t.Fatal("admin.system.users was written")
		}
	}

	t.Run("outside --ns: skipped and counted", func(t *testing.T) {
		entries := []bson.Raw{ins(1, "prod.orders", "x"), raw(del(2, "prod.orders", "precious")), applyOps, sysUsers, dropProd, dropDB, renameProd}
		rep, cmds, err := replayWith(t, client, oplogDump([]coll{app}, entries).archive(t), modeWrites, Options{NS: []string{"app.*"}, Drop: true})
		if err != nil {
			t.Fatal(err)
		}
		precious(t)
		// 2 writes, 1 applyOps operation, system.users, drop, dropDatabase, rename.
		if got := rep.OplogSkipped[skipNotRestored]; got != 7 {
			t.Fatalf("namespace-not-restored %d, report %+v", got, rep)
		}
		for _, c := range cmds {
			if strings.HasPrefix(c, "prod ") || strings.HasPrefix(c, "admin ") {
				t.Fatalf("sent %s", c)
			}
		}
		if n, _ := client.Database("app").Collection("c").CountDocuments(ctx, bson.D{{Key: "_id", Value: 100}}); n != 1 {
			t.Fatal("the restored namespace's operation of the applyOps was not applied")
		}
	})
	t.Run("rename naming a restored namespace: refused before any write", func(t *testing.T) {
		data := oplogDump([]coll{app}, []bson.Raw{ins(1, "app.c", 50), rename}).archive(t)
		// Renames are replayed (issue 24), but not out of --ns.
		_, err := Plan(ctx, bytesReader(data), Options{NS: []string{"app.*"}})
		if !errors.Is(err, ErrOplogEntry) || !strings.Contains(err.Error(), "renameCollection of app.c to prod.orders") {
			t.Fatalf("plan: %v", err)
		}
		precious(t)
	})
	t.Run("oplog-only namespace: the non-empty guard holds", func(t *testing.T) {
		// No --ns: prod.orders is restorable, only the oplog names it,
		// and it holds a document: refused without --drop, before writing.
		data := oplogDump([]coll{app}, []bson.Raw{ins(1, "prod.orders", "x"), raw(del(2, "prod.orders", "precious"))}).archive(t)
		if err := client.Database("app").Collection("c").Drop(ctx); err != nil {
			t.Fatal(err)
		}
		_, _, err := replayWith(t, client, data, modeWrites, Options{})
		var ne *NonEmptyError
		if !errors.As(err, &ne) || !strings.Contains(err.Error(), "prod.orders") {
			t.Fatalf("got %v", err)
		}
		precious(t)
		if n, _ := client.Database("app").Collection("c").CountDocuments(ctx, bson.D{}); n != 0 {
			t.Fatal("app.c was written before the refusal")
		}
	})
	t.Run("oplog-only namespace with --drop: restored from empty, reported", func(t *testing.T) {
		data := oplogDump([]coll{app}, []bson.Raw{ins(1, "app.new", "x"), ins(2, "app.new", "y"), raw(del(3, "app.new", "x"))}).archive(t)
		if _, err := client.Database("app").Collection("new").InsertOne(ctx, bson.D{{Key: "_id", Value: "stale"}}); err != nil {
			t.Fatal(err)
		}
		rep, _, err := replayWith(t, client, data, modeWrites, Options{NS: []string{"app.*"}, Drop: true})
		if err != nil {
			t.Fatal(err)
		}
		got := relaxed(t, readAll(t, client.Database("app").Collection("new")))
		if strings.Join(got, ",") != `{"_id":"y"}` {
			t.Fatalf("app.new %v", got)
		}
		var found bool
		for _, c := range rep.Collections {
			if c.Namespace == "app.new" {
				found = c.DocumentsExpected == 1 && c.DocumentsFound == 1 && c.OK
			}
		}
		if !found || !rep.OK {
			t.Fatalf("report %+v", rep)
		}
	})
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// TestReplayManyUpdates: a batch of more updates than the embedded
// server has SQLite connections is applied, not left waiting forever
// (FerretDB holds one connection per statement of an update command).
func TestReplayManyUpdates(t *testing.T) {
	client := start(t)
	const n = 300
	docs := users(n)
	var entries []bson.Raw
	for i := range n {
		e := opEntry(uint32(10+i), "u", "app.c", bson.D{{Key: "$set", Value: bson.D{{Key: "email", Value: "changed"}}}}, bson.D{{Key: "_id", Value: int32(i)}})
		entries = append(entries, mustRaw(t, e))
	}
	done := make(chan error, 1)
	go func() {
		_, _, err := replayWith(t, client, oplogDump([]coll{{db: "app", name: "c", docs: docs}}, entries).archive(t), modeWrites, Options{Drop: true})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the replay of 300 updates did not finish: an update command waits for the server's connections")
	}
	got, err := client.Database("app").Collection("c").CountDocuments(context.Background(), bson.D{{Key: "email", Value: "changed"}})
	if err != nil || got != n {
		t.Fatalf("%d of %d documents updated (%v)", got, n, err)
	}
}

// TestReplayCreatedThenDropped: a collection created and dropped while the
// dump ran (a temporary collection) is gone after the restore, and the
// report says ok: there is no index to expect of it.
func TestReplayCreatedThenDropped(t *testing.T) {
	client := start(t)
	app := coll{db: "app", name: "c", docs: users(2)}
	entries := []bson.Raw{
		mustRaw(t, opEntry(5, "c", "app.$cmd", bson.D{{Key: "create", Value: "tmp"}}, nil)),
		mustRaw(t, opEntry(6, "i", "app.tmp", bson.D{{Key: "_id", Value: 1}}, nil)),
		mustRaw(t, opEntry(7, "c", "app.$cmd", bson.D{{Key: "drop", Value: "tmp"}}, nil)),
	}
	rep, _, err := replayWith(t, client, oplogDump([]coll{app}, entries).archive(t), modeWrites, Options{Drop: true})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK {
		t.Fatalf("report differs: %+v", rep.Collections)
	}
	names, err := client.Database("app").ListCollectionNames(context.Background(), bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if n == "tmp" {
			t.Fatal("app.tmp exists after the restore")
		}
	}
}
