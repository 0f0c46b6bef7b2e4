package restore

import (
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// TestIDKey: _ids the server takes as one (numbers of different types, also
// inside documents and arrays) get one batch key, so that two entries on
// them never share a batch (whose commands run at once); different _ids
// keep different keys.
func TestIDKey(t *testing.T) {
	val := func(t *testing.T, v any) bson.RawValue {
		t.Helper()
		raw, err := bson.Marshal(bson.D{{Key: "_id", Value: v}})
		if err != nil {
			t.Fatal(err)
		}
		return bson.Raw(raw).Lookup("_id")
	}
	dec, err := bson.ParseDecimal128("1.0")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		a, b  any
		equal bool
	}{
		{"int32 and double", int32(1), 1.0, true},
		{"int64 and double", int64(7), 7.0, true},
		{"decimal and int", dec, int32(1), true},
		{"-0 and 0", 0.0 * -1, int32(0), true},
		{"2^53 as long and double", int64(1 << 53), float64(1 << 53), true},
		{"in a document", bson.D{{Key: "k", Value: int32(1)}}, bson.D{{Key: "k", Value: 1.0}}, true},
		{"in an array", bson.A{int64(2), "x"}, bson.A{2.0, "x"}, true},
		{"different numbers", int32(1), int32(2), false},
		{"1.5 and 1", 1.5, int32(1), false},
		{"string and number", "1", int32(1), false},
		{"different keys", bson.D{{Key: "k", Value: 1}}, bson.D{{Key: "j", Value: 1}}, false},
		{"document and array", bson.D{{Key: "0", Value: 1}}, bson.A{1}, false},
		{"object ids", bson.ObjectID{1}, bson.ObjectID{2}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			ka, kb := idKey(val(t, c.a)), idKey(val(t, c.b))
			if (ka == kb) != c.equal {
				t.Fatalf("idKey(%v) = %q, idKey(%v) = %q: equal %v, want %v", c.a, ka, c.b, kb, ka == kb, c.equal)
			}
		})
	}
}

// TestReplayEqualIDsOfDifferentTypes: an insert, a delete and an insert
// again of one _id written as {k: 1} and then {k: 1.0} must end with the
// document present: the delete and the second insert may not share a
// batch, whose commands run at once.
func TestReplayEqualIDsOfDifferentTypes(t *testing.T) {
	client := start(t)
	ts := uint32(1_700_000_000)
	var entries []bson.Raw
	for i, e := range []bson.D{
		opEntry(ts, "i", "idk.c", bson.D{{Key: "_id", Value: bson.D{{Key: "k", Value: int32(1)}}}, {Key: "v", Value: "first"}}, nil),
		opEntry(ts, "d", "idk.c", bson.D{{Key: "_id", Value: bson.D{{Key: "k", Value: int32(1)}}}}, nil),
		opEntry(ts, "i", "idk.c", bson.D{{Key: "_id", Value: bson.D{{Key: "k", Value: 1.0}}}, {Key: "v", Value: "second"}}, nil),
	} {
		e[0].Value = bson.Timestamp{T: ts, I: uint32(i + 1)}
		entries = append(entries, mustRaw(t, e))
	}
	for run := range 5 { // the commands' order at once is up to the scheduler
		rep, _, err := replayWith(t, client, oplogDump(nil, entries).archive(t), modeWrites, Options{Drop: true})
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK {
			t.Fatalf("report %+v", rep)
		}
		docs := readAll(t, client.Database("idk").Collection("c"))
		if len(docs) != 1 || docs[0][1].Value != "second" {
			t.Fatalf("run %d: collection %v, want the second insert", run, docs)
		}
	}
}
