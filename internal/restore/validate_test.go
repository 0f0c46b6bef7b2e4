package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/manifest"
)

// rawDump is an a0 archive whose one collection holds exactly raw (BSON
// documents as the test wrote them), with a manifest that agrees, so only
// the documents themselves can make Plan refuse it.
func rawDump(t testing.TB, raw []byte, docs int) []byte {
	t.Helper()
	d := dump{colls: []coll{{db: "app", name: "c", docs: users(1)}}}
	d.replace = map[string][]byte{"app/c.bson": raw}
	d.tweak = func(m *manifest.Manifest) {
		m.Collections[0].Documents, m.Collections[0].Bytes = int64(docs), int64(len(raw))
	}
	return d.archive(t)
}

func marshal(t testing.TB, d any) []byte {
	t.Helper()
	b, err := bson.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// nested returns a document nested depth levels deep ({a:{a:...{}}}),
// the top level counted as 1.
func nested(depth int) bson.D {
	d := bson.D{{Key: "_id", Value: 1}}
	// Not empty: the server does not count an empty subdocument.
	inner := bson.D{{Key: "x", Value: 1}}
	for range depth - 2 {
		inner = bson.D{{Key: "a", Value: inner}}
	}
	if depth > 1 {
		d = append(d, bson.E{Key: "a", Value: inner})
	}
	return d
}

// emptyAt returns a value that puts an empty document at level depth+1
// of the document holding it (itself at level 2).
func emptyAt(depth int) bson.D {
	inner := bson.D{}
	for range depth - 1 {
		inner = bson.D{{Key: "a", Value: inner}}
	}
	return inner
}

// sized returns a document of exactly n bytes.
func sized(t testing.TB, n int) []byte {
	t.Helper()
	base := len(marshal(t, bson.D{{Key: "_id", Value: int32(1)}, {Key: "s", Value: ""}}))
	b := marshal(t, bson.D{{Key: "_id", Value: int32(1)}, {Key: "s", Value: strings.Repeat("x", n-base)}})
	if len(b) != n {
		t.Fatalf("sized %d, want %d", len(b), n)
	}
	return b
}

// TestPlanValidatesDeeply (issue 13 finding 3): garbage inside nested
// documents and arrays, documents above the server's 16 MiB limit, nesting
// deeper than the server stores and _id values the server refuses are all
// refused by Plan (and so by verify) before anything is written, where
// they used to pass and fail during the writes, after targets were dropped.
func TestPlanValidatesDeeply(t *testing.T) {
	good := marshal(t, bson.D{{Key: "_id", Value: 1}, {Key: "sub", Value: bson.D{{Key: "k", Value: "v"}, {Key: "n", Value: int32(5)}}},
		{Key: "arr", Value: bson.A{"x", bson.D{{Key: "t", Value: true}}}}})
	at := func(b []byte, sub []byte) int {
		i := bytes.Index(b, sub)
		if i < 0 {
			t.Fatalf("%q not in the document", sub)
		}
		return i
	}
	mutate := func(f func(b []byte)) []byte { b := bytes.Clone(good); f(b); return b }
	for _, tc := range []struct {
		name string
		raw  []byte
	}{
		{"unknown type in a nested document", mutate(func(b []byte) { b[at(b, []byte("k\x00"))-1] = 0x77 })},
		{"string length past its nested document", mutate(func(b []byte) { b[at(b, []byte("k\x00"))+2] = 0x40 })},
		{"nested document not NUL-terminated", mutate(func(b []byte) { b[at(b, []byte("n\x00"))+6] = 1 })},
		{"boolean 2 in an array's document", mutate(func(b []byte) { b[at(b, []byte("t\x00"))+2] = 2 })},
		{"nested length shorter than its elements", mutate(func(b []byte) { b[at(b, []byte("sub\x00"))+4] -= 3 })},
		{"document of 16 MiB + 1 byte", sized(t, maxUserDocSize+1)},
		{"nested 101 levels deep", marshal(t, nested(maxDepth+1))},
		{"array _id", marshal(t, bson.D{{Key: "_id", Value: bson.A{1, 2}}})},
		{"regex _id", marshal(t, bson.D{{Key: "_id", Value: bson.Regex{Pattern: "a", Options: ""}}})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Plan(context.Background(), bytes.NewReader(rawDump(t, tc.raw, 1)), Options{})
			if !errors.Is(err, ErrInvalidArchive) {
				t.Fatalf("err = %v, want ErrInvalidArchive", err)
			}
		})
	}
	for _, tc := range []struct {
		name string
		raw  []byte
	}{
		{"the sample", good},
		{"document of exactly 16 MiB", sized(t, maxUserDocSize)},
		{"nested 100 levels deep", marshal(t, nested(maxDepth))},
		// As mongod's validateDepth: empty ones do not count (issue 24).
		{"nested 100 levels deep and an empty document below", marshal(t, append(bson.D{{Key: "_id", Value: 1}},
			bson.E{Key: "a", Value: nested(maxDepth)[1].Value}, bson.E{Key: "e", Value: emptyAt(maxDepth)}))},
		{"every BSON type", marshal(t, everyType())},
	} {
		t.Run("accepts "+tc.name, func(t *testing.T) {
			if _, err := Plan(context.Background(), bytes.NewReader(rawDump(t, tc.raw, 1)), Options{}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func everyType() bson.D {
	return bson.D{{Key: "_id", Value: 1}, {Key: "d", Value: 1.5}, {Key: "s", Value: "x"}, {Key: "o", Value: bson.D{}},
		{Key: "a", Value: bson.A{}}, {Key: "b", Value: bson.Binary{Subtype: 0, Data: []byte{1}}},
		{Key: "b2", Value: bson.Binary{Subtype: 2, Data: []byte{1, 2}}}, {Key: "u", Value: bson.Undefined{}},
		{Key: "oid", Value: bson.NewObjectID()}, {Key: "t", Value: false}, {Key: "dt", Value: bson.DateTime(5)},
		{Key: "n", Value: nil}, {Key: "re", Value: bson.Regex{Pattern: "p", Options: "i"}},
		{Key: "ptr", Value: bson.DBPointer{DB: "x.y", Pointer: bson.NewObjectID()}}, {Key: "js", Value: bson.JavaScript("f()")},
		{Key: "sym", Value: bson.Symbol("s")}, {Key: "cws", Value: bson.CodeWithScope{Code: "c", Scope: bson.D{{Key: "x", Value: 1}}}},
		{Key: "i", Value: int32(1)}, {Key: "ts", Value: bson.Timestamp{T: 1, I: 2}}, {Key: "l", Value: int64(1)},
		{Key: "dec", Value: bson.NewDecimal128(1, 2)}, {Key: "min", Value: bson.MinKey{}}, {Key: "max", Value: bson.MaxKey{}}}
}

// TestPlanBoundsMetadata (issue 13 finding 6): Plan keeps every parsed
// metadata.json until the archive ends, so their total is bounded: five
// of 15 MiB each (valid, padded with whitespace) are refused.
func TestPlanBoundsMetadata(t *testing.T) {
	d := dump{replace: map[string][]byte{}}
	for i := range 5 {
		d.colls = append(d.colls, coll{db: "app", name: fmt.Sprintf("c%d", i), docs: users(1)})
	}
	for _, f := range d.files(t) {
		if strings.HasSuffix(f.name, ".metadata.json") {
			d.replace[f.name] = append(bytes.Clone(f.data), bytes.Repeat([]byte(" "), 15<<20)...)
		}
	}
	_, err := Plan(context.Background(), bytes.NewReader(d.archive(t)), Options{})
	if !errors.Is(err, ErrInvalidArchive) || !strings.Contains(err.Error(), "metadata files exceed") {
		t.Fatalf("err = %v, want the metadata total refused", err)
	}
	// Four fit.
	d.colls = d.colls[:4]
	if _, err := Plan(context.Background(), bytes.NewReader(d.archive(t)), Options{}); err != nil {
		t.Fatalf("four metadata files of 15 MiB: %v", err)
	}
}
