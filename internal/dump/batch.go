package dump

import "strings"

// A cursor's batches are sized in bytes here, not left to the server.
// MongoDB ends a batch at 16 MiB whatever batchSize asks for; FerretDB
// (1.24) returns as many documents as asked for, and a reply larger than
// the driver's message limit (maxMessageSizeBytes, 48 MB) fails the read
// with "length of read message too large" and closes the connection: 10000
// documents of 8 KB, or 249 of 128 KiB with the default batch size, were
// enough to make a backup fail. A batch of that size is also that much
// memory held at once.
const (
	// batchBytes is what one batch should hold: MongoDB's own cap. It is
	// a third of the driver's limit, so a batch of documents up to three
	// times the largest seen so far still arrives.
	batchBytes = 16 << 20
	// batchSize is the most documents a batch asks for (small documents:
	// fewer round trips).
	batchSize = 10000
	// safeBatch fits in one reply whatever the documents: two of BSON's
	// 16 MiB maximum are under 48 MB.
	safeBatch = 2
	// firstBatch is the first batch of a cursor that knows nothing of its
	// documents' size yet (MongoDB's default first batch).
	firstBatch = 101
)

// batcher chooses the batch size of one cursor from the largest document
// it has seen. Not safe for concurrent use.
type batcher struct {
	largest int
	// safe is set after a reply was too large: every batch is safeBatch.
	safe bool
}

// newBatcher starts from a mean document size (0 for unknown). The
// largest document is at least the mean.
func newBatcher(meanSize int64) *batcher {
	return &batcher{largest: int(max(meanSize, 0))}
}

// size is the number of documents the next batch should ask for.
func (b *batcher) size() int32 {
	switch {
	case b.safe:
		return safeBatch
	case b.largest == 0:
		return firstBatch
	}
	return int32(min(max(batchBytes/b.largest, safeBatch), batchSize))
}

// see records one document's size and reports whether the batch size to
// ask for has changed.
func (b *batcher) see(n int) bool {
	if n <= b.largest {
		return false
	}
	before := b.size()
	b.largest = n
	return b.size() != before
}

// retry reports whether err is a reply over the driver's message limit
// and, if it is, makes every later batch safeBatch documents: the read
// can then start again and will get through. A second such failure is not
// retried.
func (b *batcher) retry(err error) bool {
	if b.safe || !replyTooLarge(err) {
		return false
	}
	b.safe = true
	return true
}

// replyTooLarge matches the driver's refusal of a reply over its message
// size limit. The driver does not export that error (x/mongo/driver/
// topology errResponseTooLarge, wrapped in a ConnectionError): its text
// is all there is to match.
func replyTooLarge(err error) bool {
	return err != nil && strings.Contains(err.Error(), "length of read message too large")
}
