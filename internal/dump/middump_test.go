package dump

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/a0backup/a0/internal/archive"
	"github.com/a0backup/a0/internal/dumpname"
	"github.com/a0backup/a0/internal/embedded"
	"github.com/a0backup/a0/internal/manifest"
	"github.com/a0backup/a0/internal/oracle"
	"github.com/a0backup/a0/internal/restore"
)

// TestRunMidDumpChanges holds the dump between its listing and its reads
// (and, for one collection, between its index listing and its data read),
// drops, renames and recreates collections there, and checks that the
// backup records each change and is accepted by restore's own validation:
// never a backup that its restore refuses.
func TestRunMidDumpChanges(t *testing.T) {
	client := startServer(t, embedded.Config{})
	ctx := context.Background()
	fill := func(db, coll string, n int) {
		t.Helper()
		docs := make([]any, n)
		for i := range docs {
			docs[i] = bson.D{{Key: "_id", Value: i}, {Key: "v", Value: coll}}
		}
		if _, err := client.Database(db).Collection(coll).InsertMany(ctx, docs); err != nil {
			t.Fatal(err)
		}
	}
	fill("app", "keep", 3)
	fill("app", "gone", 5)
	fill("app", "moved", 4)
	fill("app", "late", 6) // dropped after its indexes were listed
	fill("app", "again", 2)
	if _, err := client.Database("app").Collection("moved").Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys: bson.D{{Key: "v", Value: 1}}, Options: options.Index().SetName("v_1")}); err != nil {
		t.Fatal(err)
	}
	run := func(db *mongo.Database, cmd bson.D) {
		t.Helper()
		if err := db.RunCommand(ctx, cmd).Err(); err != nil {
			t.Errorf("%v: %v", cmd, err)
		}
	}
	afterList := func(ctx context.Context) {
		app := client.Database("app")
		if err := app.Collection("gone").Drop(ctx); err != nil {
			t.Error(err)
		}
		run(client.Database("admin"), bson.D{{Key: "renameCollection", Value: "app.moved"}, {Key: "to", Value: "app.moved2"}})
		if err := app.Collection("again").Drop(ctx); err != nil {
			t.Error(err)
		}
		fill("app", "again", 7)
	}
	beforeRead := func(ctx context.Context, db, coll string) {
		if db == "app" && coll == "late" {
			if err := client.Database("app").Collection("late").Drop(ctx); err != nil {
				t.Error(err)
			}
		}
	}

	var buf bytes.Buffer
	aw, err := archive.NewWriter(&buf, archive.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := Run(ctx, client, aw, Options{SpoolDir: t.TempDir(), Oplog: OplogOff, AfterList: afterList, BeforeRead: beforeRead}, nil)
	if err != nil {
		t.Fatalf("a dump during which collections changed failed: %v", err)
	}
	if err := aw.Close(); err != nil {
		t.Fatal(err)
	}

	want := map[string]manifest.Change{
		"gone":  {DB: "app", Name: "gone", Change: manifest.ChangeDropped},
		"late":  {DB: "app", Name: "late", Change: manifest.ChangeDropped},
		"moved": {DB: "app", Name: "moved", Change: manifest.ChangeRenamed, NewName: "moved2"},
		"again": {DB: "app", Name: "again", Change: manifest.ChangeRecreated, NewName: "again"},
	}
	if len(m.ChangedDuringDump) != len(want) {
		t.Fatalf("changes recorded: %+v, want %d", m.ChangedDuringDump, len(want))
	}
	for _, c := range m.ChangedDuringDump {
		if w := want[c.Name]; c != w {
			t.Errorf("change %+v, want %+v", c, w)
		}
	}

	// The archive passes restore's validation, and holds exactly what the
	// server holds at the end.
	p, err := restore.Plan(ctx, bytes.NewReader(buf.Bytes()), restore.Options{})
	if err != nil {
		t.Fatalf("restore refuses the backup: %v", err)
	}
	got := map[string]restore.PlannedCollection{}
	for _, c := range p.Collections {
		got[c.Namespace()] = c
	}
	for ns, docs := range map[string]int64{"app.keep": 3, "app.moved2": 4, "app.again": 7} {
		if c, ok := got[ns]; !ok || c.Documents != docs {
			t.Errorf("%s: planned %+v, want %d documents", ns, c, docs)
		}
	}
	if c := got["app.moved2"]; len(c.Indexes) != 1 {
		t.Errorf("the renamed collection lost its index: %+v", c.Indexes)
	}
	for _, ns := range []string{"app.gone", "app.late", "app.moved"} {
		if _, ok := got[ns]; ok {
			t.Errorf("%s is in the backup although it was gone at the end", ns)
		}
	}
	if p.Manifest == nil || len(p.Manifest.ChangedDuringDump) != len(want) {
		t.Errorf("the manifest read back lost the changes: %+v", p.Manifest)
	}
}

// TestBucketsLayout: a time-series collection is written as a real
// mongodump 100.18 wrote one (the fixture): its documents are its buckets,
// in system.buckets.<name>.bson beside <name>.metadata.json.
func TestBucketsLayout(t *testing.T) {
	dir := oracle.Fixture(t, "mongorestore", "timeseries_tests", "ts_dump")
	coll, base := bucketsOf("timeseries_test", "foo_ts")
	if coll != "system.buckets.foo_ts" {
		t.Fatalf("buckets collection %q", coll)
	}
	if _, err := os.Stat(filepath.Join(dir, base+".bson")); err != nil {
		t.Fatalf("mongodump wrote no %s.bson: %v", base, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "timeseries_test", dumpname.Escape("foo_ts")+".metadata.json")); err != nil {
		t.Fatal(err)
	}
}
