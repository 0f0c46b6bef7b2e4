package embedded

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// TestHoldsCommand: HoldsCommand answers, from the bytes alone, what the
// real embedded server does with each oplog command as a restore's replay
// sends it: the create (without autoIndexId), the index the restore
// builds from createIndexes, commitIndexBuild or a collMod of an index,
// the command itself otherwise. Every form a real mongod logs here is
// from the mongo-tools fixtures (../shared/fixtures/mongo-tools-100.18.0:
// oplogs/bson, create_indexes, commit_indexes_build, collMod_ttl_index)
// or built as the server's oplog writes it; a form held is accepted and
// kept, one not held is refused, dropped, or not kept.
func TestHoldsCommand(t *testing.T) {
	tests := []struct {
		name string
		o    string // Extended JSON of the entry's o
		path string // "" when held; the NotHeldError's path ("-": none, the command itself)
	}{
		{"create with the default idIndex", `{"create":"c0","idIndex":{"v":{"$numberInt":"2"},"key":{"_id":{"$numberInt":"1"}},"name":"_id_"}}`, ""},
		{"create with the default idIndex and its ns (4.x)", `{"create":"c1","idIndex":{"v":{"$numberInt":"2"},"key":{"_id":{"$numberInt":"1"}},"name":"_id_","ns":"holds.c1"}}`, ""},
		{"create capped", `{"create":"c2","capped":true,"size":{"$numberLong":"4096"},"idIndex":{"v":2,"key":{"_id":1},"name":"_id_"}}`, ""},
		{"create with a $jsonSchema validator", `{"create":"c3","validator":{"$jsonSchema":{"bsonType":"object","title":"Test validator","properties":{"testField":{"enum":["valid"]}}}},"idIndex":{"v":{"$numberInt":"2"},"key":{"_id":{"$numberInt":"1"}},"name":"_id_"}}`, "validator"},
		{"create with a collation", `{"create":"c4","collation":{"locale":"en_US","strength":2},"idIndex":{"v":2,"key":{"_id":1},"name":"_id_","collation":{"locale":"en_US","strength":2}}}`, "collation"},
		{"create clustered", `{"create":"c5","clusteredIndex":{"v":2,"key":{"_id":1},"name":"_id_","unique":true}}`, "clusteredIndex"},
		{"create with an _id index of a collation", `{"create":"c6","idIndex":{"v":2,"key":{"_id":1},"name":"_id_","collation":{"locale":"fr"}}}`, "idIndex.collation"},
		{"createIndexes", `{"createIndexes":"c0","v":{"$numberInt":"2"},"key":{"a":{"$numberDouble":"1.0"}},"name":"a_1"}`, ""},
		{"createIndexes unique descending", `{"createIndexes":"c0","v":2,"unique":true,"key":{"b":-1},"name":"b_-1"}`, ""},
		{"createIndexes partial", `{"createIndexes":"c0","v":{"$numberInt":"2"},"key":{"b":{"$numberDouble":"1.0"}},"partialFilterExpression":{"a":{"$numberDouble":"1.0"}},"name":"b_1"}`, "partialFilterExpression"},
		{"createIndexes hidden", `{"createIndexes":"c0","v":{"$numberInt":"2"},"hidden":true,"key":{"b":{"$numberInt":"1"}},"name":"b_1"}`, "hidden"},
		{"createIndexes TTL", `{"createIndexes":"c0","v":{"$numberInt":"2"},"key":{"c":{"$numberInt":"1"}},"name":"c_1","expireAfterSeconds":{"$numberInt":"100000"}}`, "expireAfterSeconds"},
		{"createIndexes with a collation", `{"createIndexes":"c0","v":2,"key":{"d":1},"name":"d_1","collation":{"locale":"en_US","strength":2}}`, "collation"},
		{"createIndexes text", `{"createIndexes":"c0","v":2,"key":{"_fts":"text","_ftsx":1},"name":"t_text","weights":{"t":1},"default_language":"english","language_override":"language","textIndexVersion":3}`, "key._fts"},
		{"createIndexes hashed", `{"createIndexes":"c0","v":2,"key":{"h":"hashed"},"name":"h_hashed"}`, "key.h"},
		{"commitIndexBuild", `{"commitIndexBuild":"c0","indexBuildUUID":{"$binary":{"base64":"SbJXR0RfS9msi9AGHjoCmQ==","subType":"04"}},"indexes":[{"v":{"$numberInt":"2"},"key":{"e":{"$numberDouble":"1.0"}},"name":"e_1"}]}`, ""},
		{"commitIndexBuild partial", `{"commitIndexBuild":"c0","indexBuildUUID":{"$binary":{"base64":"SbJXR0RfS9msi9AGHjoCmQ==","subType":"04"}},"indexes":[{"v":{"$numberInt":"2"},"key":{"f":{"$numberDouble":"1.0"}},"partialFilterExpression":{"a":{"$numberDouble":"1.0"}},"name":"f_1"}]}`, "indexes.0.partialFilterExpression"},
		{"collMod index unique", `{"collMod":"c0","index":{"name":"a_1","unique":true}}`, ""},
		{"collMod index TTL", `{"collMod":"c0","index":{"name":"a_1","expireAfterSeconds":{"$numberLong":"1000"}}}`, "index.expireAfterSeconds"},
		{"collMod index hidden", `{"collMod":"c0","index":{"name":"a_1","hidden":true}}`, "index.hidden"},
		{"collMod index prepareUnique", `{"collMod":"c0","index":{"name":"a_1","prepareUnique":true}}`, "index.prepareUnique"},
		{"collMod validator (the replay skips it: no collMod)", `{"collMod":"c0","validator":{"p":{"$gt":1}}}`, ""},
		{"collMod validator with a Decimal128 (drops the connection)", `{"collMod":"c0","validator":{"p":{"$gt":{"$numberDecimal":"1"}}}}`, "validator.p.$gt"},
		{"convertToCapped", `{"convertToCapped":"c0","size":{"$numberLong":"100000"}}`, "-"},
		{"emptycapped", `{"emptycapped":"c2"}`, "-"},
		{"create with a Decimal128 in its validator", `{"create":"c7","validator":{"price":{"$gt":{"$numberDecimal":"0.01"}}}}`, "validator.price.$gt"},
	}
	ctx := context.Background()
	c := startClient(t, Config{})
	db := c.Database("holds")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var o bson.Raw
			if err := bson.UnmarshalExtJSON([]byte(tc.o), false, &o); err != nil {
				t.Fatal(err)
			}
			err := HoldsCommand(o)
			var nh *NotHeldError
			want := tc.path
			if want == "-" {
				want = ""
			}
			switch {
			case tc.path == "" && err != nil:
				t.Fatalf("not held: %v", err)
			case tc.path != "" && (!errors.As(err, &nh) || nh.Path != want):
				t.Fatalf("HoldsCommand: %v, want a *NotHeldError at %q", err, want)
			}
			held := err == nil
			serr := replayOn(ctx, db, o)
			if (serr == nil) != held {
				t.Errorf("HoldsCommand says held=%v (%v), the server: %v", held, err, serr)
			}
		})
	}
}

// modded numbers the indexes replayOn builds for a collMod.
var modded int

// replayOn does with o on db what a restore's replay into the embedded
// server does: an index is built (after the replay, by the restore) on
// c0 from its spec, a collMod's index change applied to the index a_1
// it names; any other command is sent as it is (create without
// autoIndexId), and a create's options read back.
func replayOn(ctx context.Context, db *mongo.Database, o bson.Raw) error {
	var d bson.D
	if err := bson.Unmarshal(o, &d); err != nil {
		return err
	}
	build := func(spec bson.D) error {
		clean := bson.D{}
		for _, f := range spec {
			if f.Key != "v" && f.Key != "ns" {
				clean = append(clean, f)
			}
		}
		return db.RunCommand(ctx, bson.D{{Key: "createIndexes", Value: "c0"}, {Key: "indexes", Value: bson.A{clean}}}).Err()
	}
	switch d[0].Key {
	case "createIndexes":
		return build(d[1:])
	case "commitIndexBuild":
		for _, f := range d {
			if f.Key == "indexes" {
				for _, s := range f.Value.(bson.A) {
					if err := build(s.(bson.D)); err != nil {
						return err
					}
				}
			}
		}
		return nil
	case "collMod":
		if _, ok := o.Lookup("index").DocumentOK(); !ok {
			// The replay sends the rest and skips it when the server
			// has no collMod; anything else (the connection dropped)
			// fails it.
			var ce mongo.CommandError
			if err := db.RunCommand(ctx, d).Err(); err != nil && !(errors.As(err, &ce) && (ce.Code == 238 || ce.Code == 59)) {
				return err
			}
			return nil
		}
		// An index of its own (a key and name no other case uses), with
		// the change applied as the restore's catalog does.
		modded++
		field := fmt.Sprintf("m%d", modded)
		spec := bson.D{{Key: "key", Value: bson.D{{Key: field, Value: 1}}}, {Key: "name", Value: field + "_1"}}
		for _, f := range d[1].Value.(bson.D) {
			if f.Key != "name" {
				spec = append(spec, f)
			}
		}
		if err := build(spec); err != nil {
			return err
		}
		return checkIndex(ctx, db, field+"_1", spec)
	}
	if err := db.RunCommand(ctx, d).Err(); err != nil {
		return err
	}
	if d[0].Key != "create" {
		return nil
	}
	// FerretDB accepts some options and drops them: they must be kept.
	specs, err := db.ListCollectionSpecifications(ctx, bson.D{{Key: "name", Value: d[0].Value}})
	if err != nil {
		return err
	}
	if len(specs) != 1 {
		return fmt.Errorf("%d collections named %v", len(specs), d[0].Value)
	}
	var opts bson.D
	if err := bson.Unmarshal(specs[0].Options, &opts); err != nil {
		return err
	}
	for _, f := range d[1:] {
		switch f.Key {
		case "idIndex":
			want := false
			for _, g := range f.Value.(bson.D) {
				want = want || g.Key == "collation"
			}
			cur, err := db.Collection(fmt.Sprint(d[0].Value)).Indexes().List(ctx)
			if err != nil {
				return err
			}
			var idx []bson.Raw
			if err := cur.All(ctx, &idx); err != nil {
				return err
			}
			for _, x := range idx {
				if x.Lookup("name").StringValue() == "_id_" {
					if _, err := x.LookupErr("collation"); want && err != nil {
						return fmt.Errorf("the _id index's collation not kept: %v", x)
					}
				}
			}
		case "clusteredIndex", "validator", "collation":
			kept := false
			for _, g := range opts {
				kept = kept || g.Key == f.Key
			}
			if !kept {
				return fmt.Errorf("option %s not kept: %v", f.Key, opts)
			}
		}
	}
	return nil
}

// checkIndex says whether the index name on c0 has every option of spec.
func checkIndex(ctx context.Context, db *mongo.Database, name string, spec bson.D) error {
	cur, err := db.Collection("c0").Indexes().List(ctx)
	if err != nil {
		return err
	}
	var idx []bson.Raw
	if err := cur.All(ctx, &idx); err != nil {
		return err
	}
	for _, x := range idx {
		if x.Lookup("name").StringValue() != name {
			continue
		}
		for _, f := range spec {
			if _, err := x.LookupErr(f.Key); err != nil {
				return fmt.Errorf("index %s: option %s not kept: %v", name, f.Key, x)
			}
		}
		return nil
	}
	return fmt.Errorf("index %s not built", name)
}
