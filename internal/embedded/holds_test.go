package embedded

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// TestHolds: Holds answers, from the bytes alone, what the real embedded
// server does with each document: every document it accepts comes back
// byte for byte, every one it refuses is refused, or comes back changed
// (or drops the connection: the reason it must be known beforehand).
func TestHolds(t *testing.T) {
	dec, err := bson.ParseDecimal128("1.50")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		doc  bson.D // after _id
		path string // "" when held
	}{
		{"plain", bson.D{{Key: "a", Value: "x"}, {Key: "n", Value: int64(1)}, {Key: "f", Value: 1.5}, {Key: "sub", Value: bson.D{{Key: "b", Value: bson.A{1, "two", bson.D{{Key: "c", Value: true}}}}}}}, ""},
		{"dot in a field name", bson.D{{Key: "a.b", Value: 1}}, "a.b"},
		{"dot in a nested field name", bson.D{{Key: "hosts", Value: bson.D{{Key: "db1.example.com", Value: 1}}}}, "hosts.db1.example.com"},
		{"dollar field name (DBRef)", bson.D{{Key: "owner", Value: bson.D{{Key: "$ref", Value: "users"}, {Key: "$id", Value: 7}}}}, "owner.$ref"},
		{"dollar in an array's document", bson.D{{Key: "l", Value: bson.A{bson.D{{Key: "$x", Value: 1}}}}}, "l.0.$x"},
		{"Decimal128", bson.D{{Key: "price", Value: dec}}, "price"},
		{"Decimal128 in an array", bson.D{{Key: "p", Value: bson.A{1, dec}}}, "p.1"},
		{"MinKey", bson.D{{Key: "k", Value: bson.MinKey{}}}, "k"},
		{"JavaScript", bson.D{{Key: "js", Value: bson.JavaScript("x")}}, "js"},
		{"Symbol", bson.D{{Key: "s", Value: bson.Symbol("x")}}, "s"},
		{"Undefined", bson.D{{Key: "u", Value: bson.Undefined{}}}, "u"},
		{"NaN", bson.D{{Key: "f", Value: math.NaN()}}, "f"},
		{"Inf", bson.D{{Key: "f", Value: math.Inf(-1)}}, "f"},
		{"negative zero", bson.D{{Key: "f", Value: math.Copysign(0, -1)}}, "f"},
		{"nested array", bson.D{{Key: "m", Value: bson.A{bson.A{1, 2}}}}, "m.0"},
		{"duplicate field name", bson.D{{Key: "a", Value: 1}, {Key: "a", Value: 2}}, "a"},
		{"duplicate field name in a large document", append(many(20), bson.E{Key: "f3", Value: 0}), "f3"},
		{"a large document", many(20), ""},
		{"NUL in a string (held on SQLite)", bson.D{{Key: "s", Value: "a\x00b"}}, ""},
		{"invalid UTF-8 in a string", bson.D{{Key: "s", Value: "a\xffb"}}, "s"},
	}
	ctx := context.Background()
	s, err := Start(ctx, Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := s.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(ctx)
	db := c.Database("holds")
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc, err := bson.Marshal(append(bson.D{{Key: "_id", Value: i}}, tc.doc...))
			if err != nil {
				t.Fatal(err)
			}
			err = Holds(doc)
			var nh *NotHeldError
			switch {
			case tc.path == "" && err != nil:
				t.Fatalf("not held: %v", err)
			case tc.path != "" && (!errors.As(err, &nh) || nh.Path != tc.path):
				t.Fatalf("Holds: %v, want a *NotHeldError at %q", err, tc.path)
			}
			// The real server: each case its own collection.
			coll := fmt.Sprintf("c%d", i)
			var res bson.Raw
			werr := db.RunCommand(ctx, bson.D{{Key: "insert", Value: coll}, {Key: "documents", Value: bson.A{bson.Raw(doc)}}}).Decode(&res)
			if werr == nil {
				if we, ok := res.Lookup("writeErrors").ArrayOK(); ok && len(we) > 5 {
					werr = fmt.Errorf("write errors: %v", we)
				}
			}
			var back bson.Raw
			if werr == nil {
				back, werr = db.Collection(coll).FindOne(ctx, bson.D{{Key: "_id", Value: i}}).Raw()
			}
			same := werr == nil && bytes.Equal(back, doc)
			if same != (tc.path == "") {
				t.Errorf("Holds says held=%v, the server: error %v, same bytes %v", tc.path == "", werr, same)
			}
		})
	}
}

// many is a document of n fields f0, f1...
func many(n int) bson.D {
	d := make(bson.D, n)
	for i := range d {
		d[i] = bson.E{Key: fmt.Sprintf("f%d", i), Value: i}
	}
	return d
}
