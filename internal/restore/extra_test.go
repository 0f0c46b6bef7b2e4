package restore

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/manifest"
)

// extraSource streams entries as Options.Extra, counting its reads.
func extraSource(t *testing.T, entries []bson.D, reads *int) ExtraSource {
	return func(ctx context.Context, fn func(bson.Raw) error) error {
		*reads++
		for _, e := range entries {
			raw, err := bson.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			if err := fn(raw); err != nil {
				return err
			}
		}
		return nil
	}
}

// Options.Extra is replayed after the backup's own oplog, by the same
// replayer, up to ExtraTo inclusive: a point-in-time restore's archive.
func TestExtraReplay(t *testing.T) {
	client := start(t)
	ctx := context.Background()
	id := func(v any) bson.D { return bson.D{{Key: "_id", Value: v}} }
	d := dump{
		colls: []coll{{db: "app", name: "c", docs: []bson.D{
			{{Key: "_id", Value: 1}, {Key: "v", Value: "a"}},
			{{Key: "_id", Value: 2}, {Key: "v", Value: "b"}},
		}}},
		oplog: []bson.D{
			opEntry(10, "i", "app.c", bson.D{{Key: "_id", Value: 3}, {Key: "v", Value: "c"}}, nil),
			// After consistent_to: the archive holds it again.
			opEntry(17, "d", "app.c", id(3), nil),
		},
		consTo: &manifest.OplogPos{T: 16, I: 1},
	}
	data := d.archive(t)
	archived := []bson.D{
		opEntry(17, "d", "app.c", id(3), nil),
		opEntry(18, "u", "app.c", bson.D{{Key: "$v", Value: 1}, {Key: "$set", Value: bson.D{{Key: "_id", Value: 1}, {Key: "v", Value: "A"}}}}, id(1)),
		opEntry(19, "i", "app.new", bson.D{{Key: "_id", Value: 9}}, nil),
		opEntry(20, "i", "app.c", bson.D{{Key: "_id", Value: 5}, {Key: "v", Value: "e"}}, nil),
		// After ExtraTo: not replayed.
		opEntry(21, "d", "app.c", id(1), nil),
		opEntry(22, "i", "app.new", bson.D{{Key: "_id", Value: 10}}, nil),
	}
	after, to := Position{T: 16, I: 1}, Position{T: 20, I: 1}

	t.Run("replayed to ExtraTo after the backup's oplog", func(t *testing.T) {
		reads := 0
		opts := Options{NS: []string{"app.*"}, Drop: true, Extra: extraSource(t, archived, &reads), ExtraAfter: &after, ExtraTo: &to}
		p, err := Plan(ctx, bytes.NewReader(data), opts)
		if err != nil {
			t.Fatal(err)
		}
		if p.ExtraEntries != int64(len(archived)) || !reflect.DeepEqual(p.OplogOnly, []string{"app.new"}) {
			t.Fatalf("plan: %d archived entries, oplog only %v", p.ExtraEntries, p.OplogOnly)
		}
		rep, err := Run(ctx, client, bytes.NewReader(data), p, opts, &Progress{})
		if err != nil {
			t.Fatal(err)
		}
		got := normalizeRelaxed(t, readAll(t, client.Database("app").Collection("c")))
		want := []string{`{"_id":1,"v":"A"}`, `{"_id":2,"v":"b"}`, `{"_id":5,"v":"e"}`}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %v, want %v", got, want)
		}
		if got := normalizeRelaxed(t, readAll(t, client.Database("app").Collection("new"))); !reflect.DeepEqual(got, []string{`{"_id":9}`}) {
			t.Fatalf("app.new: %v", got)
		}
		// 1 of the backup's, 4 of the archive's; 3 after an end.
		if !rep.OK || rep.OplogApplied != 5 || rep.OplogSkipped[skipAfterEnd] != 3 || reads != 2 {
			t.Fatalf("report %+v (%d reads)", rep, reads)
		}
	})

	t.Run("a base whose consistent_to is not ExtraAfter is refused in Plan", func(t *testing.T) {
		reads := 0
		other := Position{T: 15, I: 1}
		_, err := Plan(ctx, bytes.NewReader(data), Options{Extra: extraSource(t, archived, &reads), ExtraAfter: &other, ExtraTo: &to})
		if !errors.Is(err, ErrInvalidArchive) || !errors.Is(err, ErrBaseMismatch) || reads != 0 {
			t.Fatalf("%v (%d reads)", err, reads)
		}
	})

	t.Run("the source's failure ends Plan, before any write", func(t *testing.T) {
		boom := errors.New("slice X is not authentic")
		opts := Options{Drop: true, ExtraAfter: &after, ExtraTo: &to,
			Extra: func(ctx context.Context, fn func(bson.Raw) error) error { return boom }}
		if _, err := Plan(ctx, bytes.NewReader(data), opts); !errors.Is(err, boom) {
			t.Fatalf("%v", err)
		}
	})

	t.Run("Plan tells the base's replica set before it reads the archive", func(t *testing.T) {
		d := d
		d.tweak = func(m *manifest.Manifest) { m.Source.ReplicaSet = "rsA" }
		data := d.archive(t)
		var told []string
		reads := 0
		opts := Options{ExtraAfter: &after, ExtraTo: &to, ExtraReplicaSet: func(set string) { told = append(told, set) },
			Extra: func(ctx context.Context, fn func(bson.Raw) error) error {
				if len(told) == 0 {
					t.Error("the archive was read before its replica set was told")
				}
				return extraSource(t, archived, &reads)(ctx, fn)
			}}
		if _, err := Plan(ctx, bytes.NewReader(data), opts); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(told, []string{"rsA"}) || reads != 1 {
			t.Fatalf("told %q, %d reads: want rsA once", told, reads)
		}
	})

	t.Run("an archived entry at or before consistent_to is refused", func(t *testing.T) {
		reads := 0
		bad := append([]bson.D{opEntry(16, "i", "app.c", id(7), nil)}, archived...)
		_, err := Plan(ctx, bytes.NewReader(data), Options{Extra: extraSource(t, bad, &reads), ExtraAfter: &after, ExtraTo: &to})
		if !errors.Is(err, ErrInvalidArchive) {
			t.Fatalf("%v", err)
		}
	})
}
