package dump

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/a0backup/a0/internal/devappliance"
	"github.com/a0backup/a0/internal/manifest"
)

func TestBatcher(t *testing.T) {
	for _, c := range []struct {
		name   string
		mean   int64
		seen   []int
		want   int32
		change bool // whether the last see changed the size
	}{
		{"nothing known: MongoDB's first batch", 0, nil, firstBatch, false},
		{"small documents: the most documents", 100, nil, batchSize, false},
		{"8 KB documents: 16 MiB of them", 8 << 10, nil, 2048, false},
		{"a larger document lowers the size", 100, []int{128 << 10}, 128, true},
		{"a smaller one changes nothing", 128 << 10, []int{100}, 128, false},
		{"16 MiB documents: never under two", 0, []int{16 << 20}, safeBatch, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := newBatcher(c.mean)
			changed := false
			for _, n := range c.seen {
				changed = b.see(n)
			}
			if got := b.size(); got != c.want || changed != c.change {
				t.Errorf("size %d (changed %v), want %d (%v)", got, changed, c.want, c.change)
			}
		})
	}
	t.Run("retry once, on a reply too large only", func(t *testing.T) {
		b := newBatcher(100)
		if b.retry(errors.New("connection reset")) || b.size() != batchSize {
			t.Fatal("another error made the batches safe")
		}
		tooLarge := fmt.Errorf("dump: read a.b: %w", errors.New("connection(x) length of read message too large: length of read message too large"))
		if !b.retry(tooLarge) || b.size() != safeBatch {
			t.Fatalf("a reply too large: size %d", b.size())
		}
		if b.see(1); b.size() != safeBatch || b.retry(tooLarge) {
			t.Fatal("a second reply too large was retried, or the size left safeBatch")
		}
	})
}

// blobs inserts n documents of size random bytes into coll, _id from
// first on.
func blobs(t *testing.T, ctx context.Context, coll *mongo.Collection, first, n, size int) {
	t.Helper()
	var docs []any
	for i := first; i < first+n; i++ {
		b := make([]byte, size)
		rand.Read(b)
		docs = append(docs, bson.D{{Key: "_id", Value: i}, {Key: "b", Value: b}})
		if len(docs) == 8 || i == first+n-1 {
			if _, err := coll.InsertMany(ctx, docs); err != nil {
				t.Fatal(err)
			}
			docs = docs[:0]
		}
	}
}

// TestRunLargeDocuments backs up, from a real FerretDB (which, unlike
// MongoDB, does not end a batch at 16 MiB), a collection whose batches
// would not fit in one reply of the driver's (48 MB): its first documents
// are small, so the estimate asks for large batches, and 48 MiB of 1 MiB
// documents are written into it as the dump begins to read it. The read
// meets a reply too large and starts again; so does the oplog capture,
// which holds those writes. Each mode of oplog capture gets through with
// every document and entry.
func TestRunLargeDocuments(t *testing.T) {
	t.Run("one pass (FerretDB)", testRunLargeDocuments)
	t.Run("tailable cursor (MongoDB)", func(t *testing.T) {
		testHookTailFerretDB = true
		defer func() { testHookTailFerretDB = false }()
		testRunLargeDocuments(t)
	})
}

func testRunLargeDocuments(t *testing.T) {
	ctx := context.Background()
	client := startServer(t, devappliance.Config{Oplog: true})
	coll := client.Database("files").Collection("mixed")
	const small, large = 200, 48
	blobs(t, ctx, coll, 0, small, 64)
	var reads atomic.Int32
	testHookBeforeRead = func(ctx context.Context, _, _ string) {
		if reads.Add(1) == 1 {
			blobs(t, ctx, coll, small, large, 1<<20)
		}
	}
	t.Cleanup(func() { testHookBeforeRead = nil })
	m, entries, err := runDump(ctx, t, client, Options{SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if m.Consistency != manifest.ConsistencyPointInTime {
		t.Errorf("consistency %q", m.Consistency)
	}
	var docs, inserts int64
	for _, e := range entries {
		switch e.name {
		case "files/mixed.bson":
			docs = countBSON(t, e.data)
		case OplogName:
			for b := e.data; len(b) > 0; {
				l := int(b[0]) | int(b[1])<<8 | int(b[2])<<16 | int(b[3])<<24
				if id, ok := bson.Raw(b[:l]).Lookup("o", "_id").Int32OK(); ok && id >= small {
					inserts++
				}
				b = b[l:]
			}
		}
	}
	if docs != small+large {
		t.Errorf("files/mixed.bson: %d documents, want %d", docs, small+large)
	}
	if inserts != large {
		t.Errorf("the oplog capture holds %d of the %d large inserts made during the dump", inserts, large)
	}

	// The oracle for the matcher: the driver's own refusal of a reply
	// too large, as FerretDB makes it happen with the old batch size.
	cur, err := coll.Find(ctx, bson.D{}, options.Find().SetBatchSize(batchSize))
	if err == nil {
		for cur.Next(ctx) {
		}
		err = cur.Err()
		cur.Close(ctx)
	}
	if !replyTooLarge(err) {
		t.Fatalf("a batch of %d documents of 64 B and 1 MiB: %v, want the driver's reply-too-large error", batchSize, err)
	}
}
