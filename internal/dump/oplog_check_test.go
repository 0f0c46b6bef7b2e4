package dump

import (
	"bufio"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/a0backup/a0/internal/embedded"
	"github.com/a0backup/a0/internal/manifest"
)

func rawEntry(t *testing.T, d bson.D) bson.Raw {
	t.Helper()
	b, err := bson.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func insertEntry(ts, term int64) bson.D {
	return bson.D{{Key: "ts", Value: bson.Timestamp{T: uint32(ts), I: 1}}, {Key: "t", Value: term},
		{Key: "op", Value: "i"}, {Key: "ns", Value: "app.c"}, {Key: "o", Value: bson.D{{Key: "_id", Value: ts}}}}
}

// TestTakeRefusesWhatCannotBeReplayed: the capture takes a rename (also
// inside applyOps) and fails the backup on a term change (a failover while the
// oplog was tailed), with crafted entries as a replica set writes them:
// FerretDB writes neither commands nor terms.
func TestTakeRefusesWhatCannotBeReplayed(t *testing.T) {
	rename := bson.D{{Key: "ts", Value: bson.Timestamp{T: 11, I: 1}}, {Key: "t", Value: int64(1)}, {Key: "op", Value: "c"}, {Key: "ns", Value: "app.$cmd"},
		{Key: "o", Value: bson.D{{Key: "renameCollection", Value: "app.c"}, {Key: "to", Value: "app.d"}}}}
	inApplyOps := bson.D{{Key: "ts", Value: bson.Timestamp{T: 11, I: 1}}, {Key: "t", Value: int64(1)}, {Key: "op", Value: "c"}, {Key: "ns", Value: "admin.$cmd"},
		{Key: "o", Value: bson.D{{Key: "applyOps", Value: bson.A{bson.D{{Key: "op", Value: "c"}, {Key: "ns", Value: "app.$cmd"},
			{Key: "o", Value: bson.D{{Key: "renameCollection", Value: "app.c"}, {Key: "to", Value: "app.d"}}}}}}}}}
	tests := []struct {
		name  string
		next  bson.D
		check func(error) bool
	}{
		// A rename ($out, mapReduce, convertToCapped) is captured and
		// replayed (issue 24), also inside applyOps.
		{"rename", rename, func(err error) bool { return err == nil }},
		{"rename in applyOps", inApplyOps, func(err error) bool { return err == nil }},
		// A new primary (a planned stepdown) is no failure by itself
		// (issue 24): checkRolledBack checks the old term's last entry.
		{"term change", insertEntry(11, 2), func(err error) bool { return err == nil }},
		{"same term", insertEntry(11, 1), func(err error) bool { return err == nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tl := &tailer{bw: bufio.NewWriter(io.Discard)}
			st := &cursorState{}
			if _, err := tl.take(rawEntry(t, insertEntry(10, 1)), st); err != nil {
				t.Fatal(err)
			}
			_, err := tl.take(rawEntry(t, tt.next), st)
			if !tt.check(err) {
				t.Fatalf("got %v", err)
			}
		})
	}
}

// TestCheckRolledBack: the entry the capture ended at must still be in the
// oplog with its term; one removed by a rollback fails the backup.
func TestCheckRolledBack(t *testing.T) {
	ctx := context.Background()
	client := startServer(t, embedded.Config{Oplog: true})
	coll := client.Database(oplogDB).Collection(oplogColl)
	for _, e := range []bson.D{insertEntry(10, 1), insertEntry(11, 1)} {
		if _, err := coll.InsertOne(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	tl := &tailer{coll: coll, active: true, bw: bufio.NewWriter(io.Discard)}
	st := &cursorState{}
	for _, e := range []bson.D{insertEntry(10, 1), insertEntry(11, 1)} {
		if _, err := tl.take(rawEntry(t, e), st); err != nil {
			t.Fatal(err)
		}
	}
	if err := tl.checkRolledBack(ctx); err != nil {
		t.Fatalf("entry present: %v", err)
	}
	if _, err := coll.DeleteOne(ctx, bson.D{{Key: "ts", Value: bson.Timestamp{T: 11, I: 1}}}); err != nil {
		t.Fatal(err)
	}
	var fe *FailoverError
	if err := tl.checkRolledBack(ctx); !errors.As(err, &fe) || !fe.RolledBack || !strings.Contains(err.Error(), "rolled back") {
		t.Fatalf("got %v", err)
	}
	if _, err := coll.InsertOne(ctx, insertEntry(11, 2)); err != nil {
		t.Fatal(err)
	}
	if err := tl.checkRolledBack(ctx); !errors.As(err, &fe) || fe.To != 2 {
		t.Fatalf("other term: %v", err)
	}

	t.Run("stepdown: the old term's last entry stays", func(t *testing.T) {
		if _, err := coll.DeleteMany(ctx, bson.D{}); err != nil {
			t.Fatal(err)
		}
		for _, e := range []bson.D{insertEntry(20, 1), insertEntry(21, 1), insertEntry(22, 2)} {
			if _, err := coll.InsertOne(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		tl := &tailer{coll: coll, active: true, bw: bufio.NewWriter(io.Discard)}
		st := &cursorState{}
		for _, e := range []bson.D{insertEntry(20, 1), insertEntry(21, 1), insertEntry(22, 2)} {
			if _, err := tl.take(rawEntry(t, e), st); err != nil {
				t.Fatal(err)
			}
		}
		if err := tl.checkRolledBack(ctx); err != nil {
			t.Fatalf("planned stepdown: %v", err)
		}
		// The old primary's entry 21 was rolled back after the failover:
		// the capture holds a write the set no longer has.
		if _, err := coll.DeleteOne(ctx, bson.D{{Key: "ts", Value: bson.Timestamp{T: 21, I: 1}}}); err != nil {
			t.Fatal(err)
		}
		var fe *FailoverError
		if err := tl.checkRolledBack(ctx); !errors.As(err, &fe) || !fe.RolledBack || fe.At.T != 21 {
			t.Fatalf("rolled back old term: %v", err)
		}
	})
}

// TestRunRefusesRename: a collection renamed during a point-in-time dump
// fails it clearly (FerretDB: seen by its UUID under the new name).
func TestRunRefusesRename(t *testing.T) {
	ctx := context.Background()
	client := startServer(t, embedded.Config{Oplog: true})
	seed(t, client, 50)
	beforeOplogEnd := func(ctx context.Context) {
		err := client.Database("admin").RunCommand(ctx, bson.D{{Key: "renameCollection", Value: "auth0.clients"}, {Key: "to", Value: "auth0.clients_old"}}).Err()
		if err != nil {
			t.Error(err)
		}
	}
	spool := t.TempDir()
	_, _, err := runDump(ctx, t, client, Options{SpoolDir: spool, BeforeOplogEnd: beforeOplogEnd})
	var re *RenamedError
	if !errors.As(err, &re) || re.From != "auth0.clients" || re.To != "auth0.clients_old" {
		t.Fatalf("got %v", err)
	}
	assertSpoolEmpty(t, spool)
}

// TestPinMember: with Pin, the collections and the oplog are read through
// the pinned client alone, and the manifest names its member.
func TestPinMember(t *testing.T) {
	ctx := context.Background()
	srvClient := startServer(t, embedded.Config{Oplog: true})
	var h helloReply
	if err := srvClient.Database("admin").RunCommand(ctx, bson.D{{Key: "hello", Value: 1}}).Decode(&h); err != nil {
		t.Fatal(err)
	}
	// FerretDB has no replica set: pinMember itself is checked here.
	pinned, me, err := pinMember(ctx, srvClient, nil, func(ctx context.Context, member string) (*mongo.Client, error) {
		if member != h.Me {
			t.Errorf("pinned %q, hello says %q", member, h.Me)
		}
		return srvClient, nil
	})
	if h.Me == "" {
		if err == nil || !strings.Contains(err.Error(), "names no member") {
			t.Fatalf("no me: %v", err)
		}
		return // the embedded server's hello names no member
	}
	if err != nil || pinned != srvClient || me != h.Me {
		t.Fatalf("%v %v %q", err, pinned, me)
	}
}

// TestCheckMember: a member that left its set (here: a server that is in
// none) fails the backup with a MemberError.
func TestCheckMember(t *testing.T) {
	ctx := context.Background()
	client := startServer(t, embedded.Config{})
	var me *MemberError
	err := checkMember(ctx, client, manifest.Source{ReplicaSet: "rs0", ReadFrom: "db1:27017"})
	if !errors.As(err, &me) || !strings.Contains(err.Error(), "db1:27017") || !strings.Contains(err.Error(), "left replica set") {
		t.Fatalf("got %v", err)
	}
	if err := checkMember(ctx, client, manifest.Source{}); err != nil {
		t.Fatalf("standalone: %v", err)
	}
}

// TestRunRefusesInvisibleDDL: on FerretDB, whose oplog records no drop nor
// index build, a collection dropped or an index built during the dump
// fails it clearly instead of restoring a mix.
func TestRunRefusesInvisibleDDL(t *testing.T) {
	tests := []struct {
		name string
		ddl  func(ctx context.Context, c *mongo.Client) error
		want string
	}{
		{"drop", func(ctx context.Context, c *mongo.Client) error {
			return c.Database("other").Collection("things").Drop(ctx)
		}, "other.things was dropped"},
		{"index", func(ctx context.Context, c *mongo.Client) error {
			_, err := c.Database("auth0").Collection("clients").Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "client_id", Value: 1}}})
			return err
		}, "auth0.clients had its indexes changed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			client := startServer(t, embedded.Config{Oplog: true})
			seed(t, client, 50)
			beforeOplogEnd := func(ctx context.Context) {
				if err := tt.ddl(ctx, client); err != nil {
					t.Error(err)
				}
			}
			_, _, err := runDump(ctx, t, client, Options{SpoolDir: t.TempDir(), BeforeOplogEnd: beforeOplogEnd})
			var de *DDLError
			if !errors.As(err, &de) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v", err)
			}
		})
	}
}

// TestOldestOpenTxnErrors: the open-transaction lookup's failure fails the
// dump (mongodump fails too), instead of a capture that may start inside
// a transaction; no open transaction is no error.
func TestOldestOpenTxnErrors(t *testing.T) {
	ctx := context.Background()
	client := startServer(t, embedded.Config{})
	if _, open, err := oldestOpenTxn(ctx, client); open || err != nil {
		t.Fatalf("none open: %v %v", open, err)
	}
	txns := client.Database("config").Collection("transactions")
	if _, err := txns.InsertOne(ctx, bson.D{{Key: "_id", Value: 1}, {Key: "state", Value: "inProgress"},
		{Key: "startOpTime", Value: bson.D{{Key: "ts", Value: "not a timestamp"}}}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := oldestOpenTxn(ctx, client); err == nil || !strings.Contains(err.Error(), "config.transactions") {
		t.Fatalf("got %v", err)
	}
}
