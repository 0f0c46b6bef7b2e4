package dump

import (
	"errors"
	"strings"

	"go.mongodb.org/mongo-driver/v2/x/mongo/driver"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"
)

// A cursor's batches are sized in bytes here, not left to the server.
// MongoDB ends a batch at 16 MiB whatever batchSize asks for; FerretDB
// (1.24) returns as many documents as asked for, and a reply larger than
// the driver's message limit (maxMessageSizeBytes, 48 MB) fails the read
// with "length of read message too large" and closes the connection: the
// 10000 documents a batch the dump asked for made a backup fail from 8 KB
// documents on (FerretDB's own getMore default, 249, would from about
// 190 KB). A batch of that size is also that much memory held at once.
const (
	// batchBytes is what one batch should hold: MongoDB's own cap. A
	// batch of documents up to 2.8 times the largest seen so far still
	// fits in maxReply.
	batchBytes = 16 << 20
	// maxReply is the driver's limit on a reply (the maxMessageSizeBytes
	// both servers announce).
	maxReply = 48_000_000
	// batchSize is the most documents a batch asks for (small documents:
	// fewer round trips).
	batchSize = 10000
	// safeBatch fits in one reply whatever the documents: two of BSON's
	// 16 MiB maximum are under maxReply. It is also the first batch of a
	// cursor that knows nothing of its documents' size yet.
	safeBatch = 2
	// maxPoolRestarts bounds the reads started again because the
	// driver's connection pool was cleared under them.
	maxPoolRestarts = 3
)

// batcher chooses the batch sizes of one cursor from the largest document
// it has seen. Not safe for concurrent use.
type batcher struct {
	largest int
	// asked is the batch size last returned by next: the one a failed
	// reply answered.
	asked int32
	// limit caps the batch size after replies too large (0: batchSize).
	limit        int32
	poolRestarts int
}

// newBatcher starts from a mean document size (0 or less for unknown).
// The largest document is at least the mean.
func newBatcher(meanSize int64) *batcher {
	return &batcher{largest: int(max(meanSize, 0))}
}

// next is the number of documents the next batch should ask for.
func (b *batcher) next() int32 {
	b.asked = safeBatch
	if b.largest > 0 {
		b.asked = int32(min(max(batchBytes/b.largest, safeBatch), batchSize))
	}
	if b.limit > 0 {
		b.asked = min(b.asked, b.limit)
	}
	return b.asked
}

// see records one document's size and reports whether next would now
// ask for a different size.
func (b *batcher) see(n int) bool {
	if n <= b.largest {
		return false
	}
	before := b.asked
	b.largest = n
	return b.next() != before
}

// retry reports whether a read that failed with err should start again.
// After a reply too large for the driver, no batch asks for more than a
// sixteenth of the one that failed, down to safeBatch, which always fits:
// the documents seen so far cannot tell how large the next ones are (a
// collection of small documents, then large ones), and a limit that
// shrinks fast ends in at most three restarts from batchSize. A
// connection pool cleared by another operation's failure (another
// cursor's reply too large, a primary stepping down) is retried with the
// same sizes, maxPoolRestarts times.
func (b *batcher) retry(err error) bool {
	if replyTooLarge(err) {
		if b.asked <= safeBatch {
			return false
		}
		b.limit = max(b.asked/16, safeBatch)
		return true
	}
	var pool driver.RetryablePoolError
	if errors.As(err, &pool) && pool.Retryable() && b.poolRestarts < maxPoolRestarts {
		b.poolRestarts++
		return true
	}
	return false
}

// replyTooLarge matches the driver's refusal of a reply over its message
// size limit: a ConnectionError (not the pool's error that quotes it for
// the other operations) around the driver's unexported
// errResponseTooLarge, whose text is all there is to match.
func replyTooLarge(err error) bool {
	var ce topology.ConnectionError
	return errors.As(err, &ce) && ce.Wrapped != nil &&
		strings.Contains(ce.Wrapped.Error(), "length of read message too large")
}
