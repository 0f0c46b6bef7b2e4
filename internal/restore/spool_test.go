package restore

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/manifest"
)

// TestOplogSpoolInSpoolDir (issue 13 finding 5): when oplog.bson precedes
// some data, Run spools it (encrypted, package spool) into
// Options.SpoolDir, never $TMPDIR, replays it after the data, and leaves
// nothing behind.
func TestOplogSpoolInSpoolDir(t *testing.T) {
	client := start(t)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	spoolDir := t.TempDir()
	d := dump{
		colls:  []coll{{db: "app", name: "c", docs: []bson.D{{{Key: "_id", Value: 1}}}}},
		oplog:  []bson.D{opEntry(11, "i", "app.c", bson.D{{Key: "_id", Value: 2}, {Key: "secret", Value: "spooled"}}, nil)},
		consTo: &manifest.OplogPos{T: 11, I: 1},
	}
	// Move oplog.bson before the collection's data.
	var fs, rest []file
	for _, f := range d.files(t) {
		if strings.HasSuffix(f.name, "oplog.bson") || strings.HasSuffix(f.name, "prelude.json") {
			fs = append(fs, f)
		} else {
			rest = append(rest, f)
		}
	}
	data := tgz(t, append(fs, rest...))
	ctx := context.Background()
	opts := Options{SpoolDir: spoolDir}
	p, err := Plan(ctx, bytes.NewReader(data), opts)
	if err != nil {
		t.Fatal(err)
	}
	if !p.oplogEarly {
		t.Fatal("the test archive does not put the oplog first")
	}
	if _, err := Run(ctx, client, bytes.NewReader(data), p, opts, &Progress{}); err != nil {
		t.Fatal(err)
	}
	if n, err := client.Database("app").Collection("c").CountDocuments(ctx, bson.D{{Key: "_id", Value: 2}}); err != nil || n != 1 {
		t.Fatalf("spooled oplog not replayed: %d %v", n, err)
	}
	for _, dir := range []string{tmp, spoolDir} {
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Fatalf("%s holds %v after the restore", dir, ents)
		}
	}
}
