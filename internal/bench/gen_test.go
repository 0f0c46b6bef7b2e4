package bench

import (
	"bytes"
	"os"
	"testing"

	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

func TestGenerateValidAndDeterministic(t *testing.T) {
	a, err := Generate(t.TempDir(), 2<<20, 7)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Generate(t.TempDir(), 2<<20, 7)
	if err != nil {
		t.Fatal(err)
	}
	if a.Bytes() < 2<<20 || a.Documents() == 0 {
		t.Fatalf("generated %d bytes, %d docs", a.Bytes(), a.Documents())
	}
	for i, c := range a.Collections {
		x, err := os.ReadFile(c.BSONPath(a.DumpDir()))
		if err != nil {
			t.Fatal(err)
		}
		y, err := os.ReadFile(b.Collections[i].BSONPath(b.DumpDir()))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(x, y) {
			t.Fatalf("%s.%s differs between two runs with the same seed", c.DB, c.Name)
		}
		var docs int64
		err = ReadDocs(bytes.NewReader(x), func(d bsoncore.Document) error { docs++; return d.Validate() })
		if err != nil || docs != c.Documents || int64(len(x)) != c.Bytes {
			t.Fatalf("%s.%s: %d docs, %d bytes, err %v; recorded %+v", c.DB, c.Name, docs, len(x), err, c)
		}
	}
}
