package restore

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/embedded"
)

// TestReplayDeletesOneRead: on FerretDB a delete by an _id it cannot
// search an index for (a number; any _id without Options.IndexIDLookups)
// reads the whole collection, once per statement. The deletes of one
// batch go as one $in statement (one read); with the lookup index, a
// string or ObjectId _id keeps its own statement (an index search each).
// Either way the collection ends as the oplog left it.
func TestReplayDeletesOneRead(t *testing.T) {
	for _, tc := range []struct {
		name    string
		id      func(i int) any
		indexed bool
		// want are the delete statements sent, in order.
		want func(id func(int) any) []string
	}{
		{name: "numbers", id: func(i int) any { return int64(i) }, want: func(id func(int) any) []string {
			in := bson.A{}
			for _, i := range []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 500} {
				in = append(in, id(i))
			}
			return []string{
				extJSON(t, bson.D{{Key: "q", Value: bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: in}}}}}, {Key: "limit", Value: 0}}),
				extJSON(t, bson.D{{Key: "q", Value: bson.D{{Key: "_id", Value: id(0)}}}, {Key: "limit", Value: 1}}),
			}
		}},
		{name: "objectids indexed", indexed: true, id: objectIDs(), want: func(id func(int) any) []string {
			var out []string
			for _, i := range []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 500, 0} {
				out = append(out, extJSON(t, bson.D{{Key: "q", Value: bson.D{{Key: "_id", Value: id(i)}}}, {Key: "limit", Value: 1}}))
			}
			return out
		}},
		{name: "objectids without the lookup index", id: objectIDs(), want: func(id func(int) any) []string {
			in := bson.A{}
			for _, i := range []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 500} {
				in = append(in, id(i))
			}
			return []string{
				extJSON(t, bson.D{{Key: "q", Value: bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: in}}}}}, {Key: "limit", Value: 0}}),
				extJSON(t, bson.D{{Key: "q", Value: bson.D{{Key: "_id", Value: id(0)}}}, {Key: "limit", Value: 1}}),
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			srv, err := embedded.Start(ctx, embedded.Config{Dir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { srv.Close() })
			client, err := srv.Connect(ctx)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { client.Disconnect(context.Background()) })

			doc := func(i int, v string) bson.D { return bson.D{{Key: "_id", Value: tc.id(i)}, {Key: "v", Value: v}} }
			var docs []bson.D
			want := map[string]bool{}
			for i := range 30 {
				docs = append(docs, doc(i, "a"))
			}
			// Deletes of 0-9, an update of 10, an insert of 100, deletes
			// of 11-14 and of 500 (not in the data): one batch. A second
			// delete of 0 is on a document of that batch: a batch of its
			// own, after it.
			var entries []bson.Raw
			ts := uint32(1700000000)
			add := func(e bson.D) {
				e[0].Value = bson.Timestamp{T: ts, I: uint32(len(entries) + 1)}
				entries = append(entries, mustRaw(t, e))
			}
			for i := range 10 {
				add(opEntry(ts, "d", "app.c", bson.D{{Key: "_id", Value: tc.id(i)}}, nil))
			}
			add(opEntry(ts, "u", "app.c", bson.D{{Key: "$v", Value: 1}, {Key: "$set", Value: doc(10, "b")}}, bson.D{{Key: "_id", Value: tc.id(10)}}))
			add(opEntry(ts, "i", "app.c", doc(100, "new"), nil))
			for _, i := range []int{11, 12, 13, 14, 500} {
				add(opEntry(ts, "d", "app.c", bson.D{{Key: "_id", Value: tc.id(i)}}, nil))
			}
			add(opEntry(ts, "d", "app.c", bson.D{{Key: "_id", Value: tc.id(0)}}, nil))
			for i := 15; i < 30; i++ {
				want[extJSON(t, doc(i, "a"))] = true
			}
			want[extJSON(t, doc(10, "b"))] = true
			want[extJSON(t, doc(100, "new"))] = true

			var mu sync.Mutex
			var deletes []string
			opts := Options{Drop: true, testMode: modeWrites, testCommandHook: func(next commander) commander {
				return func(ctx context.Context, db string, cmd bson.D) (bson.Raw, error) {
					if cmd[0].Key == "delete" {
						mu.Lock()
						for _, st := range cmd[1].Value.(bson.A) {
							deletes = append(deletes, extJSON(t, st))
						}
						mu.Unlock()
					}
					return next(ctx, db, cmd)
				}
			}}
			if tc.indexed {
				opts.IndexIDLookups = func(ctx context.Context, db string, colls []string) error {
					n, err := srv.IndexIDLookups(ctx, db, colls)
					if err == nil && n != 1 {
						err = fmt.Errorf("%d lookup indexes made, want 1", n)
					}
					return err
				}
			}
			data := oplogDump([]coll{{db: "app", name: "c", docs: docs}}, entries).archive(t)
			p, err := Plan(ctx, bytes.NewReader(data), opts)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := Run(ctx, client, bytes.NewReader(data), p, opts, &Progress{})
			if err != nil {
				t.Fatal(err)
			}
			if !rep.OK || rep.OplogApplied != int64(len(entries)) {
				t.Fatalf("report OK %v, applied %d of %d", rep.OK, rep.OplogApplied, len(entries))
			}
			if w := tc.want(tc.id); !reflect.DeepEqual(deletes, w) {
				t.Fatalf("delete statements\n got %d: %v\nwant %d: %v", len(deletes), deletes, len(w), w)
			}
			var got []string
			for _, d := range readAll(t, client.Database("app").Collection("c")) {
				got = append(got, extJSON(t, d))
			}
			var wantList []string
			for k := range want {
				wantList = append(wantList, k)
			}
			sort.Strings(got)
			sort.Strings(wantList)
			if !reflect.DeepEqual(got, wantList) {
				t.Fatalf("collection after the replay\n got %s\nwant %s", strings.Join(got, "\n"), strings.Join(wantList, "\n"))
			}
		})
	}
}

// objectIDs gives the i-th of a fixed set of ObjectIds.
func objectIDs() func(i int) any {
	ids := map[int]bson.ObjectID{}
	var mu sync.Mutex
	return func(i int) any {
		mu.Lock()
		defer mu.Unlock()
		if _, ok := ids[i]; !ok {
			ids[i] = bson.NewObjectID()
		}
		return ids[i]
	}
}
