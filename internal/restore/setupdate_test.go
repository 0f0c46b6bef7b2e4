package restore

import (
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// TestApplySetUnsetUncertain: the forms the Go side does not compute are
// refused (ok false: the entry keeps the server's own statement), never
// guessed. What it computes is compared with FerretDB itself in
// TestReplayUpdatesSetBased.
func TestApplySetUnsetUncertain(t *testing.T) {
	doc := bson.D{{Key: "_id", Value: int32(1)}, {Key: "a", Value: bson.D{{Key: "b", Value: int32(1)}}},
		{Key: "arr", Value: bson.A{int32(1)}}, {Key: "s", Value: "x"}, {Key: "f", Value: 1.0}}
	set := func(k string, v any) bson.D { return bson.D{{Key: "$set", Value: bson.D{{Key: k, Value: v}}}} }
	for _, tc := range []struct {
		name string
		u    bson.D
		ok   bool
	}{
		{name: "plain set", u: set("s", "y"), ok: true},
		{name: "nested set", u: set("a.b", int32(2)), ok: true},
		{name: "unset under a missing field", u: bson.D{{Key: "$unset", Value: bson.D{{Key: "no.b", Value: true}}}}, ok: true},
		{name: "through an array", u: set("arr.0", int32(2))},
		{name: "numeric component", u: set("a.0", int32(2))},
		{name: "missing parent", u: set("no.b", int32(2))},
		{name: "through a scalar", u: set("s.b", int32(2))},
		{name: "empty component", u: set("a..b", int32(2))},
		{name: "dollar component", u: set("a.$b", int32(2))},
		{name: "the _id", u: set("_id", int32(1))},
		{name: "equal as a number", u: set("f", int32(1))},
		{name: "overlapping paths", u: bson.D{{Key: "$set", Value: bson.D{{Key: "a", Value: int32(1)}, {Key: "a-b", Value: int32(1)}, {Key: "a.b", Value: int32(1)}}}}},
		{name: "set and unset of one field", u: bson.D{{Key: "$set", Value: bson.D{{Key: "s", Value: "y"}}}, {Key: "$unset", Value: bson.D{{Key: "s", Value: true}}}}},
		{name: "another operator", u: bson.D{{Key: "$inc", Value: bson.D{{Key: "f", Value: int32(1)}}}}},
		{name: "an empty set beside an unset", u: bson.D{{Key: "$set", Value: bson.D{}}, {Key: "$unset", Value: bson.D{{Key: "s", Value: true}}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, ok := applySetUnset(doc, tc.u); ok != tc.ok {
				t.Fatalf("ok %v, want %v", ok, tc.ok)
			}
		})
	}
}

// TestReplaceDocUncertain: a replacement FerretDB may find equal to the
// document (and so not write), or whose _id differs in its bytes, is not
// computed.
func TestReplaceDocUncertain(t *testing.T) {
	doc := bson.D{{Key: "_id", Value: int32(1)}, {Key: "v", Value: int64(1)}, {Key: "a", Value: bson.A{int32(1), bson.D{{Key: "k", Value: 1.0}}}}}
	for _, tc := range []struct {
		name string
		repl bson.D
		ok   bool
		want bson.D
	}{
		{name: "changed", repl: bson.D{{Key: "_id", Value: int32(1)}, {Key: "v", Value: int64(2)}}, ok: true,
			want: bson.D{{Key: "_id", Value: int32(1)}, {Key: "v", Value: int64(2)}}},
		{name: "without _id", repl: bson.D{{Key: "w", Value: "x"}}, ok: true,
			want: bson.D{{Key: "_id", Value: int32(1)}, {Key: "w", Value: "x"}}},
		{name: "_id later", repl: bson.D{{Key: "w", Value: "x"}, {Key: "_id", Value: int32(1)}}, ok: true,
			want: bson.D{{Key: "_id", Value: int32(1)}, {Key: "w", Value: "x"}}},
		{name: "same", repl: doc, ok: true, want: doc},
		{name: "equal as numbers", repl: bson.D{{Key: "_id", Value: int32(1)}, {Key: "v", Value: 1.0}, {Key: "a", Value: bson.A{int32(1), bson.D{{Key: "k", Value: int32(1)}}}}}},
		{name: "_id of another type", repl: bson.D{{Key: "_id", Value: int64(1)}, {Key: "v", Value: int64(2)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := replaceDoc(doc, tc.repl)
			if ok != tc.ok || (ok && !sameBytes(got, tc.want)) {
				t.Fatalf("replaceDoc = %v, %v; want %v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}
