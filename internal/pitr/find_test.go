package pitr

import (
	"context"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

func TestFind(t *testing.T) {
	ts := func(s, i uint32) bson.Timestamp { return bson.Timestamp{T: 1_700_000_000 + s, I: i} }
	entries := []bson.Raw{
		entry(t, ts(0, 1), "i", "shop.orders", bson.D{{Key: "_id", Value: 1}}),
		entry(t, ts(1, 0), "d", "shop.orders", bson.D{{Key: "_id", Value: 1}}),
		entry(t, ts(1, 1), "d", "shop.orders", bson.D{{Key: "_id", Value: 2}}),
		entry(t, ts(2, 5), "d", "shop.orders", bson.D{{Key: "_id", Value: 3}}),
		entry(t, ts(2, 6), "d", "shop.users", bson.D{{Key: "_id", Value: 3}}),
		entry(t, ts(3, 1), "c", "shop.$cmd", bson.D{{Key: "drop", Value: "users"}}),
		entry(t, ts(4, 1), "c", "admin.$cmd", bson.D{{Key: "renameCollection", Value: "shop.a"}, {Key: "to", Value: "shop.b"}}),
		entry(t, ts(9, 1), "d", "shop.orders", bson.D{{Key: "_id", Value: 4}}),
		entry(t, ts(10, 1), "c", "shop.$cmd", bson.D{{Key: "dropDatabase", Value: 1}}),
		entry(t, ts(11, 1), "c", "admin.$cmd", bson.D{{Key: "applyOps", Value: bson.A{
			bson.D{{Key: "op", Value: "d"}, {Key: "ns", Value: "crm.people"}, {Key: "o", Value: bson.D{{Key: "_id", Value: 7}}}},
		}}}),
	}
	src := func(ctx context.Context, fn func(bson.Raw) error) error {
		for _, e := range entries {
			if err := fn(e); err != nil {
				return err
			}
		}
		return nil
	}
	type want struct {
		op    string
		ns    string
		ts    bson.Timestamp
		count int64
		toTS  bson.Timestamp
	}
	cases := []struct {
		name string
		f    Filter
		want []want
	}{
		{"all", Filter{}, []want{
			{OpDelete, "shop.orders", ts(1, 0), 3, ts(0, ^uint32(0))},
			{OpDelete, "shop.users", ts(2, 6), 1, ts(2, 5)},
			{OpDrop, "shop.users", ts(3, 1), 1, ts(3, 0)},
			{OpRename, "shop.a", ts(4, 1), 1, ts(4, 0)},
			{OpDelete, "shop.orders", ts(9, 1), 1, ts(9, 0)},
			{OpDropDatabase, "shop", ts(10, 1), 1, ts(10, 0)},
			{OpDelete, "crm.people", ts(11, 1), 1, ts(11, 0)},
		}},
		{"ops", Filter{Ops: []string{OpDrop, OpDropDatabase}}, []want{
			{OpDrop, "shop.users", ts(3, 1), 1, ts(3, 0)},
			{OpDropDatabase, "shop", ts(10, 1), 1, ts(10, 0)},
		}},
		{"ns", Filter{NS: "shop.users"}, []want{
			{OpDelete, "shop.users", ts(2, 6), 1, ts(2, 5)},
			{OpDrop, "shop.users", ts(3, 1), 1, ts(3, 0)},
			{OpDropDatabase, "shop", ts(10, 1), 1, ts(10, 0)},
		}},
		{"time", Filter{Since: time.Unix(1_700_000_003, 0), Until: time.Unix(1_700_000_004, 0)}, []want{
			{OpDrop, "shop.users", ts(3, 1), 1, ts(3, 0)},
			{OpRename, "shop.a", ts(4, 1), 1, ts(4, 0)},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Find(context.Background(), src, c.f)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(c.want) {
				t.Fatalf("got %d findings %+v, want %d", len(got), got, len(c.want))
			}
			for i, w := range c.want {
				g := got[i]
				if g.Op != w.op || g.NS != w.ns || g.TS != w.ts || g.Count != w.count || g.ToTS != w.toTS {
					t.Errorf("finding %d: %+v, want %+v", i, g, w)
				}
			}
		})
	}
	if _, err := Find(context.Background(), src, Filter{Ops: []string{"truncate"}}); err == nil {
		t.Fatal("an unknown operation was accepted")
	}
}
