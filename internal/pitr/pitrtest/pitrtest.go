package pitrtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// DB holds the writer's collections.
const DB = "shop"

// Colls are the writer's collections.
var Colls = []string{"orders", "users", "events"}

// Writer inserts, updates and deletes documents across Colls, one
// operation per Step.
type Writer struct {
	client *mongo.Client
	rng    *rand.Rand
	ids    map[string][]int
	next   int
	// Ops counts the steps taken.
	Ops int
}

// NewWriter writes through client, choosing with rng.
func NewWriter(client *mongo.Client, rng *rand.Rand) *Writer {
	return &Writer{client: client, rng: rng, ids: map[string][]int{}}
}

// Step makes one write: an insert (half the time, or while a collection
// holds fewer than 5 documents), an update ($set, $inc, sometimes
// $unset) or a delete.
func (w *Writer) Step(ctx context.Context) error {
	coll := Colls[w.rng.IntN(len(Colls))]
	c := w.client.Database(DB).Collection(coll)
	ids := w.ids[coll]
	w.Ops++
	switch r := w.rng.IntN(10); {
	case r < 5 || len(ids) < 5:
		w.next++
		_, err := c.InsertOne(ctx, bson.D{{Key: "_id", Value: w.next}, {Key: "v", Value: w.rng.IntN(1000)},
			{Key: "s", Value: fmt.Sprintf("doc-%d", w.next)}, {Key: "tags", Value: bson.A{"a", int32(w.next % 7)}}})
		w.ids[coll] = append(ids, w.next)
		return err
	case r < 8:
		id := ids[w.rng.IntN(len(ids))]
		upd := bson.D{{Key: "$set", Value: bson.D{{Key: "v", Value: w.rng.IntN(1000)}}}, {Key: "$inc", Value: bson.D{{Key: "n", Value: 1}}}}
		if w.rng.IntN(4) == 0 {
			upd = append(upd, bson.E{Key: "$unset", Value: bson.D{{Key: "s", Value: ""}}})
		}
		_, err := c.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, upd)
		return err
	default:
		i := w.rng.IntN(len(ids))
		_, err := c.DeleteOne(ctx, bson.D{{Key: "_id", Value: ids[i]}})
		w.ids[coll] = append(ids[:i], ids[i+1:]...)
		return err
	}
}

// Model is the test's own reading of the source's oplog: each collection
// as it was at a position, computed from the entries alone (inserts,
// FerretDB's whole-document updates, deletes), not by restore's replay.
type Model struct {
	// Entries are DB's, in ts order.
	Entries []bson.Raw
}

// ReadModel reads DB's entries of the oplog of the server c talks to.
func ReadModel(tb testing.TB, c *mongo.Client) *Model {
	tb.Helper()
	ctx := context.Background()
	cur, err := c.Database("local").Collection("oplog.rs").Find(ctx, bson.D{{Key: "ns", Value: bson.D{{Key: "$regex", Value: "^" + DB + `\.`}}}})
	if err != nil {
		tb.Fatal(err)
	}
	defer cur.Close(ctx)
	m := &Model{}
	for cur.Next(ctx) {
		m.Entries = append(m.Entries, append(bson.Raw(nil), cur.Current...))
	}
	if err := cur.Err(); err != nil {
		tb.Fatal(err)
	}
	sort.SliceStable(m.Entries, func(i, j int) bool { return TS(m.Entries[i]).Compare(TS(m.Entries[j])) < 0 })
	return m
}

// TS is an entry's ts.
func TS(raw bson.Raw) bson.Timestamp {
	t, i, _ := raw.Lookup("ts").TimestampOK()
	return bson.Timestamp{T: t, I: i}
}

// Newest is the ts of the newest entry (zero: none).
func (m *Model) Newest() bson.Timestamp {
	if len(m.Entries) == 0 {
		return bson.Timestamp{}
	}
	return TS(m.Entries[len(m.Entries)-1])
}

// After are the ts of the entries after ts.
func (m *Model) After(ts bson.Timestamp) []bson.Timestamp {
	var out []bson.Timestamp
	for _, e := range m.Entries {
		if TS(e).After(ts) {
			out = append(out, TS(e))
		}
	}
	return out
}

// At returns every collection at position to (inclusive): collection to
// _id (as extended JSON) to the document.
func (m *Model) At(tb testing.TB, to bson.Timestamp) map[string]map[string]bson.M {
	tb.Helper()
	out := map[string]map[string]bson.M{}
	for _, c := range Colls {
		out[c] = map[string]bson.M{}
	}
	for _, raw := range m.Entries {
		if TS(raw).After(to) {
			break
		}
		op := raw.Lookup("op").StringValue()
		ns := raw.Lookup("ns").StringValue()
		_, coll, _ := strings.Cut(ns, ".")
		docs := out[coll]
		if docs == nil {
			continue
		}
		o := raw.Lookup("o").Document()
		switch op {
		case "i":
			docs[idOf(tb, o.Lookup("_id"))] = decodeM(tb, o)
		case "d":
			delete(docs, idOf(tb, o.Lookup("_id")))
		case "u":
			// FerretDB logs the whole new document: {$v: 1, $set: doc}.
			set, ok := o.Lookup("$set").DocumentOK()
			if !ok {
				tb.Fatalf("update entry of a shape this model does not read: %s", o)
			}
			docs[idOf(tb, set.Lookup("_id"))] = decodeM(tb, set)
		case "c", "n":
		default:
			tb.Fatalf("entry op %q", op)
		}
	}
	return out
}

func idOf(tb testing.TB, v bson.RawValue) string {
	tb.Helper()
	b, err := bson.MarshalExtJSON(bson.D{{Key: "_id", Value: v}}, true, false)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

func decodeM(tb testing.TB, raw bson.Raw) bson.M {
	tb.Helper()
	var m bson.M
	if err := bson.Unmarshal(raw, &m); err != nil {
		tb.Fatal(err)
	}
	return m
}

// Current reads the collections as they are on the server.
func Current(tb testing.TB, c *mongo.Client) map[string]map[string]bson.M {
	tb.Helper()
	ctx := context.Background()
	out := map[string]map[string]bson.M{}
	for _, coll := range Colls {
		out[coll] = map[string]bson.M{}
		cur, err := c.Database(DB).Collection(coll).Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
		if err != nil {
			tb.Fatal(err)
		}
		for cur.Next(ctx) {
			out[coll][idOf(tb, cur.Current.Lookup("_id"))] = decodeM(tb, cur.Current)
		}
		if err := cur.Err(); err != nil {
			tb.Fatal(err)
		}
		cur.Close(ctx)
	}
	return out
}

// Same fails tb unless got holds exactly want's documents.
func Same(tb testing.TB, what string, want, got map[string]map[string]bson.M) {
	tb.Helper()
	for _, coll := range Colls {
		w, g := want[coll], got[coll]
		if len(w) != len(g) {
			tb.Errorf("%s: %s holds %d documents, the oplog says %d", what, coll, len(g), len(w))
		}
		for id, doc := range w {
			if !reflect.DeepEqual(doc, g[id]) {
				tb.Errorf("%s: %s %s is %v, the oplog says %v", what, coll, id, g[id], doc)
			}
		}
	}
}
