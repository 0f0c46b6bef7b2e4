package restore

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/a0backup/a0/internal/embedded"
)

// wireClient starts an embedded server and returns a client to it whose
// commands named in names are recorded as sent on the wire ("db cmd",
// relaxed Extended JSON, without the driver's own fields).
func wireClient(t *testing.T, names ...string) (*mongo.Client, func() []string) {
	t.Helper()
	ctx := context.Background()
	srv, err := embedded.Start(ctx, embedded.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	var mu sync.Mutex
	var sent []string
	mon := &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		for _, n := range names {
			if e.CommandName != n {
				continue
			}
			var d bson.D
			if err := bson.Unmarshal(e.Command, &d); err != nil {
				t.Error(err)
				return
			}
			var keep bson.D
			for _, f := range d {
				switch f.Key {
				case "$db", "lsid", "$clusterTime", "$readPreference", "writeConcern":
				default:
					keep = append(keep, f)
				}
			}
			mu.Lock()
			sent = append(sent, e.DatabaseName+" "+extJSON(t, keep))
			mu.Unlock()
		}
	}}
	client, err := mongo.Connect(options.Client().ApplyURI(srv.URI()).SetMonitor(mon))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Disconnect(context.Background()) })
	return client, func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), sent...) }
}

// TestRestoreLegacyOptions: what older servers wrote restores on a newer
// one as mongorestore restores it (checked on the wire against the real
// embedded server): createIndexes carries ignoreUnknownIndexOptions, a
// legacy key value (0, "", true) becomes 1, create drops autoIndexId and
// recordIdsReplicated (from metadata.json and from an oplog create), and a
// dropIdent entry is a known kind, skipped and named.
func TestRestoreLegacyOptions(t *testing.T) {
	client, sent := wireClient(t, "create", "createIndexes")
	old := coll{db: "app", name: "old", docs: users(2),
		options: bson.D{{Key: "autoIndexId", Value: false}, {Key: "recordIdsReplicated", Value: true}},
		indexes: []bson.D{
			{{Key: "v", Value: 1}, {Key: "key", Value: bson.D{{Key: "email", Value: 0}}}, {Key: "name", Value: "email_0"}},
			{{Key: "v", Value: 1}, {Key: "key", Value: bson.D{{Key: "tenant", Value: ""}, {Key: "n", Value: true}}}, {Key: "name", Value: "legacy"}},
		}}
	entries := []bson.Raw{
		mustRaw(t, opEntry(1, "c", "app.$cmd", bson.D{{Key: "create", Value: "fresh"}, {Key: "autoIndexId", Value: false}, {Key: "recordIdsReplicated", Value: true}}, nil)),
		mustRaw(t, opEntry(2, "i", "app.fresh", bson.D{{Key: "_id", Value: 1}}, nil)),
		mustRaw(t, opEntry(3, "c", "app.$cmd", bson.D{{Key: "dropIdent", Value: "collection-7-123"}}, nil)),
	}
	data := oplogDump([]coll{old}, entries).archive(t)
	rep, _, err := replayWith(t, client, data, modeWrites, Options{Drop: true})
	if err != nil {
		t.Fatal(err)
	}
	got := sent()
	want := map[string]bool{
		`app {"create":"old"}`:   true,
		`app {"create":"fresh"}`: true,
		`app {"createIndexes":"old","indexes":[{"key":{"email":1},"name":"email_0"},{"key":{"tenant":1,"n":1},"name":"legacy"}],"ignoreUnknownIndexOptions":true}`: true,
	}
	for _, c := range got {
		if strings.Contains(c, "a0.probe") {
			continue
		}
		if !want[c] {
			t.Errorf("sent %s", c)
		}
		delete(want, c)
	}
	if len(want) != 0 {
		t.Fatalf("not sent %v (sent %v)", want, got)
	}
	if rep.OplogSkippedNamespaces["dropIdent"]["app.$cmd"] != 1 {
		t.Fatalf("dropIdent: %v", rep.OplogSkippedNamespaces)
	}
	if !rep.OK {
		t.Fatalf("report %+v", rep)
	}
}

// TestUsersMergedBeforeReplay: with --users-and-roles the backup's users
// are merged (_mergeAuthzCollections, seen on the wire) before the replay
// sends anything, so the users' own oplog changes apply over them. The
// embedded server has no _mergeAuthzCollections: the restore stops there,
// loudly, before the replay (on the old order the replay ran first).
func TestUsersMergedBeforeReplay(t *testing.T) {
	ctx := context.Background()
	client, sent := wireClient(t, "_mergeAuthzCollections")
	usersColl := coll{db: "admin", name: "system.users", docs: []bson.D{{{Key: "_id", Value: "app.alice"}, {Key: "user", Value: "alice"}, {Key: "db", Value: "app"}}}}
	app := coll{db: "app", name: "c", docs: users(1)}
	data := oplogDump([]coll{usersColl, app}, []bson.Raw{mustRaw(t, opEntry(1, "i", "app.c", bson.D{{Key: "_id", Value: 100}}, nil))}).archive(t)
	opts := Options{Drop: true, UsersAndRoles: true, testMode: modeWrites}
	p, err := Plan(ctx, bytes.NewReader(data), opts)
	if err != nil {
		t.Fatal(err)
	}
	p.preflighted = true // the embedded server has no usersInfo: reach the merge
	var replayed []string
	opts.testCommandHook = func(next commander) commander {
		return func(ctx context.Context, db string, cmd bson.D) (bson.Raw, error) {
			replayed = append(replayed, cmd[0].Key)
			return next(ctx, db, cmd)
		}
	}
	_, err = Run(ctx, client, bytes.NewReader(data), p, opts, &Progress{})
	var ue *UnsupportedError
	if !errors.As(err, &ue) || !strings.Contains(ue.Namespace, "admin.system.users") {
		t.Fatalf("got %v", err)
	}
	if got := sent(); len(got) != 1 {
		t.Fatalf("merge commands %v", got)
	}
	if len(replayed) != 0 {
		t.Fatalf("the replay sent %v before the users were merged", replayed)
	}
}
