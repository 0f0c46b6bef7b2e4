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
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"

	"github.com/a0backup/a0/internal/embedded"
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
		{"nothing known: two documents", 0, nil, safeBatch, false},
		{"small documents: the most documents", 100, nil, batchSize, false},
		{"8 KB documents: 16 MiB of them", 8 << 10, nil, 2048, false},
		{"a larger document lowers the size", 100, []int{128 << 10}, 128, true},
		{"a smaller one changes nothing", 128 << 10, []int{100}, 128, false},
		{"the first document sizes the batches", 0, []int{4 << 10}, 4096, true},
		{"16 MiB documents: never under two", 0, []int{16 << 20}, safeBatch, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := newBatcher(c.mean)
			b.next()
			changed := false
			for _, n := range c.seen {
				changed = b.see(n)
			}
			if got := b.next(); got != c.want || changed != c.change {
				t.Errorf("size %d (changed %v), want %d (%v)", got, changed, c.want, c.change)
			}
		})
	}

	// The driver's chain for Find and getMore: CommandError, driver.Error,
	// ConnectionError, errResponseTooLarge.
	tooLarge := fmt.Errorf("dump: read a.b: %w", mongo.CommandError{Message: "x", Wrapped: driver.Error{
		Message: "x", Wrapped: topology.ConnectionError{ConnectionID: "c1", Wrapped: errors.New("length of read message too large")}}})
	t.Run("a reply too large: a sixteenth of the batch, down to two", func(t *testing.T) {
		b := newBatcher(100)
		sizes := []int32{b.next()}
		for b.retry(tooLarge) {
			sizes = append(sizes, b.next())
			if len(sizes) > 20 {
				t.Fatalf("no end to the retries: %v", sizes)
			}
		}
		if want := []int32{batchSize, batchSize / 16, batchSize / 16 / 16, safeBatch}; fmt.Sprint(sizes) != fmt.Sprint(want) {
			t.Fatalf("sizes %v, want %v", sizes, want)
		}
		// The limit holds whatever the documents seen next: small ones
		// do not raise the size again, a large one still lowers it.
		if b.see(10); b.next() != safeBatch {
			t.Errorf("small documents raised the size to %d", b.next())
		}
	})
	t.Run("the limit after a failure holds for small documents", func(t *testing.T) {
		b := newBatcher(100)
		b.next()
		b.retry(tooLarge)
		if b.see(200); b.next() != batchSize/16 {
			t.Errorf("size %d, want %d", b.next(), batchSize/16)
		}
		if b.see(4 << 20); b.next() != 4 {
			t.Errorf("a 4 MiB document: size %d, want 4", b.next())
		}
	})
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"another error", errors.New("connection reset by peer"), false},
		{"the text alone (the pool's error quoting another operation's)", errors.New("connection pool for x was cleared because another operation failed with: length of read message too large"), false},
		{"a pool cleared under the read", fmt.Errorf("dump: %w", poolCleared{}), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := newBatcher(100)
			before := b.next()
			if got := b.retry(c.err); got != c.want || b.next() != before {
				t.Errorf("retry = %v (size %d -> %d), want %v and the same size", got, before, b.next(), c.want)
			}
		})
	}
	t.Run("a pool cleared, a bounded number of times", func(t *testing.T) {
		b := newBatcher(100)
		n := 0
		for b.retry(poolCleared{}) {
			n++
		}
		if n != maxPoolRestarts {
			t.Errorf("%d restarts, want %d", n, maxPoolRestarts)
		}
	})
}

// poolCleared stands for the driver's unexported poolClearedError, which
// only its pool can make.
type poolCleared struct{}

func (poolCleared) Error() string   { return "connection pool was cleared" }
func (poolCleared) Retryable() bool { return true }

// blobs inserts n documents of size random bytes into coll, _id from
// first on.
func blobs(ctx context.Context, coll *mongo.Collection, first, n, size int) error {
	var docs []any
	for i := first; i < first+n; i++ {
		b := make([]byte, size)
		rand.Read(b)
		docs = append(docs, bson.D{{Key: "_id", Value: i}, {Key: "b", Value: b}})
		if len(docs) == 8 || i == first+n-1 {
			if _, err := coll.InsertMany(ctx, docs); err != nil {
				return err
			}
			docs = docs[:0]
		}
	}
	return nil
}

// TestRunLargeDocuments backs up, from a real FerretDB (which, unlike
// MongoDB, does not end a batch at 16 MiB), a collection whose batches
// would not fit in one reply of the driver's (48 MB): its first documents
// are small, so the estimate asks for large batches, and 48 MiB of 1 MiB
// documents are written into it as the dump begins to read it. The read
// meets a reply too large and starts again; so does the oplog capture,
// which holds those writes. Each mode of oplog capture gets through with
// every document and entry.
func TestRunLargeDocuments(t *testing.T) { inBothCaptureModes(t, testRunLargeDocuments) }

func testRunLargeDocuments(t *testing.T, tail bool) {
	ctx := context.Background()
	client := startServer(t, embedded.Config{Oplog: true})
	coll := client.Database("files").Collection("mixed")
	const small, large = 200, 48
	if err := blobs(ctx, coll, 0, small, 64); err != nil {
		t.Fatal(err)
	}
	var reads atomic.Int32
	var during error
	beforeRead := func(ctx context.Context, _, _ string) {
		if reads.Add(1) == 1 {
			during = blobs(ctx, coll, small, large, 1<<20)
		}
	}
	spool := t.TempDir()
	m, entries, err := runDump(ctx, t, client, Options{SpoolDir: spool, BeforeRead: beforeRead, tailFerretDB: tail})
	if during != nil {
		t.Fatalf("the writes during the dump: %v", during)
	}
	if err != nil {
		t.Fatal(err)
	}
	assertSpoolEmpty(t, spool)
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
