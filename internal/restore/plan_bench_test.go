package restore

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// BenchmarkPlan measures the validation pass alone (gunzip, tar, BSON
// framing and validation) in MB/s of BSON, with no server involved.
func BenchmarkPlan(b *testing.B) {
	docs := make([]bson.D, 20000)
	pad := strings.Repeat("x", 700)
	for i := range docs {
		docs[i] = bson.D{{Key: "_id", Value: int64(i)}, {Key: "email", Value: "user@example.com"}, {Key: "n", Value: i}, {Key: "nested", Value: bson.D{{Key: "a", Value: bson.A{1, 2, 3}}, {Key: "pad", Value: pad}}}}
	}
	d := dump{colls: []coll{{db: "bench", name: "a", docs: docs}, {db: "bench", name: "b", docs: docs}}}
	data := d.archive(b)
	p, err := Plan(context.Background(), bytes.NewReader(data), Options{})
	if err != nil {
		b.Fatal(err)
	}
	var n int64
	for _, c := range p.Collections {
		n += c.Bytes
	}
	b.SetBytes(n)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := Plan(context.Background(), bytes.NewReader(data), Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
