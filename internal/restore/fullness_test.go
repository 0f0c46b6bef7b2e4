package restore

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/oracle"
)

// dirTGZ packs a dump directory written by a real mongodump as tar.gz, as
// an operator would (tar czf dump.tar.gz dump/).
func dirTGZ(t *testing.T, dir string) []byte {
	t.Helper()
	var fs_ []file
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(filepath.Dir(dir), p)
		fs_ = append(fs_, file{filepath.ToSlash(rel), b})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tgz(t, fs_)
}

// TestTimeSeriesFixture: a real mongodump of a time-series collection
// (<name>.metadata.json of type "timeseries", its buckets in
// system.buckets.<name>.bson) is planned as one time-series collection
// holding the buckets; the embedded server cannot create time-series
// collections, and the restore says so, naming the collection, before it
// writes anything.
func TestTimeSeriesFixture(t *testing.T) {
	data := dirTGZ(t, oracle.Fixture(t, "mongorestore", "timeseries_tests", "ts_dump"))
	ctx := context.Background()
	p, err := Plan(ctx, bytes.NewReader(data), Options{Plain: true})
	if err != nil {
		t.Fatalf("plan of a real time-series dump: %v", err)
	}
	var ts *PlannedCollection
	for i, c := range p.Collections {
		if c.Namespace() == "timeseries_test.foo_ts" {
			ts = &p.Collections[i]
		}
	}
	if ts == nil || ts.Type != "timeseries" || ts.Documents == 0 || len(ts.Indexes) != 2 {
		t.Fatalf("time-series collection planned as %+v (plan %+v)", ts, p.Collections)
	}
	client := start(t)
	_, err = Run(ctx, client, bytes.NewReader(data), p, Options{Plain: true}, nil)
	var ue *UnsupportedError
	if !errors.As(err, &ue) || ue.Feature != "time-series collection" || ue.Namespace != "timeseries_test.foo_ts" {
		t.Fatalf("restore of a time-series collection onto FerretDB: %v, want an UnsupportedError naming it", err)
	}
	names, err := client.Database("timeseries_test").ListCollectionNames(ctx, bson.D{})
	if err != nil || len(names) != 0 {
		t.Fatalf("the refused restore left collections %v (%v)", names, err)
	}
}

// TestUsersAndRolesFixture: users and roles of a real mongodump are
// counted and skipped by default (as mongorestore without
// --restoreDbUsersAndRoles), and with UsersAndRoles the embedded server,
// which manages no users, is named as the reason before any write.
func TestUsersAndRolesFixture(t *testing.T) {
	data := dirTGZ(t, oracle.Fixture(t, "mongorestore", "usersdump"))
	ctx := context.Background()
	p, err := Plan(ctx, bytes.NewReader(data), Options{Plain: true})
	if err != nil {
		t.Fatal(err)
	}
	if p.Users == 0 || p.Roles == 0 || len(p.Collections) != 0 {
		t.Fatalf("plan: %d users, %d roles, collections %v; want users and roles counted, nothing else", p.Users, p.Roles, p.Collections)
	}
	skipped := map[string]bool{}
	for _, ns := range p.Skipped {
		skipped[ns] = true
	}
	if !skipped["admin.system.users"] || !skipped["admin.system.roles"] {
		t.Fatalf("users and roles not listed as skipped: %v", p.Skipped)
	}
	client := start(t)
	if rep, err := Run(ctx, client, bytes.NewReader(data), p, Options{Plain: true}, nil); err != nil || !rep.OK {
		t.Fatalf("restore without users: %+v, %v", rep, err)
	}
	opts := Options{Plain: true, UsersAndRoles: true}
	p, err = Plan(ctx, bytes.NewReader(data), opts)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Run(ctx, client, bytes.NewReader(data), p, opts, nil)
	var ue *UnsupportedError
	if !errors.As(err, &ue) || ue.Feature != "users and roles of" {
		t.Fatalf("users and roles onto FerretDB: %v, want an UnsupportedError", err)
	}
	for _, tmp := range []string{"tempusers", "temproles"} {
		if n, _ := client.Database("admin").Collection(tmp).CountDocuments(ctx, bson.D{}); n != 0 {
			t.Fatalf("admin.%s holds %d documents after the refusal", tmp, n)
		}
	}
}

// TestServerFeaturesRefused: collections that need a server feature the
// embedded server lacks (a view, a clustered collection, a custom _id
// index) are refused with an error naming the collection and the feature,
// and nothing else is written: never restored silently as something else.
func TestServerFeaturesRefused(t *testing.T) {
	client := start(t)
	ctx := context.Background()
	src := file{"db1/src.bson", bsonFile(t, users(5))}
	srcMeta := file{"db1/src.metadata.json", []byte(`{"options":{},"indexes":[{"v":2,"key":{"_id":1},"name":"_id_"}],"collectionName":"src","type":"collection"}`)}
	for _, tc := range []struct {
		name, feature string
		meta          file
		data          *file
	}{
		{"view", "view", file{"db1/v.metadata.json", []byte(`{"options":{"viewOn":"src","pipeline":[{"$match":{"tenant":"t1"}}]},"indexes":[],"collectionName":"v","type":"view"}`)}, nil},
		{"clustered", "clustered collection", file{"db1/cl.metadata.json", []byte(`{"options":{"clusteredIndex":{"key":{"_id":1},"unique":true,"v":2}},"indexes":[{"v":2,"key":{"_id":1},"name":"_id_","unique":true,"clustered":true}],"collectionName":"cl","type":"collection"}`)},
			&file{"db1/cl.bson", bsonFile(t, users(3))}},
		{"custom _id index", "collection with a custom _id index", file{"db1/cid.metadata.json", []byte(`{"options":{},"indexes":[{"v":2,"key":{"_id":1},"name":"_id_","collation":{"locale":"fr","strength":2}}],"collectionName":"cid","type":"collection"}`)},
			&file{"db1/cid.bson", bsonFile(t, users(3))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := []file{src, srcMeta, tc.meta}
			if tc.data != nil {
				fs = append(fs, *tc.data)
			}
			data := tgz(t, fs)
			p, err := Plan(ctx, bytes.NewReader(data), Options{Plain: true})
			if err != nil {
				t.Fatal(err)
			}
			_, err = Run(ctx, client, bytes.NewReader(data), p, Options{Plain: true, Drop: true}, nil)
			var ue *UnsupportedError
			if !errors.As(err, &ue) || ue.Feature != tc.feature || ue.Namespace != "db1."+tc.meta.name[4:len(tc.meta.name)-len(".metadata.json")] {
				t.Fatalf("%s onto FerretDB: %v, want an UnsupportedError for the %s", tc.name, err, tc.feature)
			}
			names, _ := client.Database("db1").ListCollectionNames(ctx, bson.D{})
			if len(names) != 0 {
				t.Fatalf("the refused restore left %v", names)
			}
		})
	}
}

// TestZeroTimestamps: a top-level Timestamp(0,0) comes back as it went in
// (MongoDB would replace it on a plain insert; FerretDB does not, and the
// batch carries bypassEmptyTsReplacement as mongorestore's does).
func TestZeroTimestamps(t *testing.T) {
	client := start(t)
	docs := []bson.D{
		{{Key: "_id", Value: int32(1)}, {Key: "ts", Value: bson.Timestamp{}}},
		{{Key: "ts", Value: bson.Timestamp{}}, {Key: "_id", Value: int32(2)}},
		{{Key: "_id", Value: int32(3)}, {Key: "ts", Value: bson.Timestamp{T: 7, I: 1}}, {Key: "in", Value: bson.D{{Key: "z", Value: bson.Timestamp{}}}}},
	}
	d := dump{colls: []coll{{db: "tsdb", name: "c", docs: docs}}}
	rep, err := restore(t, client, d.archive(t), Options{})
	if err != nil || !rep.OK {
		t.Fatalf("%+v %v", rep, err)
	}
	got := readAll(t, client.Database("tsdb").Collection("c"))
	// Servers (MongoDB and FerretDB alike) move _id to the front.
	stored := append([]bson.D{}, docs...)
	stored[1] = bson.D{{Key: "_id", Value: int32(2)}, {Key: "ts", Value: bson.Timestamp{}}}
	if len(got) != len(docs) {
		t.Fatalf("%d documents back, want %d", len(got), len(docs))
	}
	for i, g := range got {
		want, _ := bson.Marshal(stored[i])
		have, _ := bson.Marshal(g)
		if !bytes.Equal(want, have) {
			t.Errorf("document %d came back as %v, went in as %v", i, g, docs[i])
		}
	}
	for _, tc := range []struct {
		doc  bson.D
		want bool
	}{
		{docs[0], true}, {docs[1], true}, {docs[2], false}, {bson.D{}, false},
	} {
		raw, _ := bson.Marshal(tc.doc)
		if hasZeroTimestamp(raw) != tc.want {
			t.Errorf("hasZeroTimestamp(%v) = %v", tc.doc, !tc.want)
		}
	}
}
