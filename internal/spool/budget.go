package spool

import (
	"errors"
	"fmt"
	"io"
	"sync"
)

// ErrBound is matched when a spool would pass a Budget's bound: a crafted
// archive (a gzip of zeros that inflates a thousand times) could
// otherwise fill the disk that holds the node's state.
var ErrBound = errors.New("spool bound reached")

// freeCheckEvery is how many bytes may be spooled between two measures of
// the free space: a statfs per document would cost more than the write.
const freeCheckEvery = 4 << 20

// Budget bounds what the spools of one job write together. Take is called
// before the bytes are written, so a refused write writes nothing. The
// zero value bounds nothing; a nil *Budget neither.
type Budget struct {
	// Dir is where the spools are written: its file system's free space
	// is measured.
	Dir string
	// Max bounds the bytes spooled in all (0: no bound). MaxWhy says what
	// it is, for the error ("100 times the upload's 979 KB").
	Max    int64
	MaxWhy string
	// Reserve is the free space that must stay on Dir's file system after
	// every write (0: free space is not measured).
	Reserve int64

	mu        sync.Mutex
	used      int64
	measured  bool
	checkedAt int64 // used when free space was last measured
	free      int64 // free space then
}

// Take accounts for n bytes about to be spooled, or refuses them with an
// error matching ErrBound that names the bound.
func (b *Budget) Take(n int64) error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.Max > 0 && b.used+n > b.Max {
		return fmt.Errorf("%w: the spools would hold more than %d bytes (%s)", ErrBound, b.Max, b.MaxWhy)
	}
	if b.Reserve > 0 {
		// Measure on the first Take, after freeCheckEvery bytes, and
		// before refusing on an old measure (spools may have been removed
		// since).
		since := b.used + n - b.checkedAt
		if !b.measured || since > freeCheckEvery || b.free-since < b.Reserve {
			free, err := freeBytes(b.Dir)
			if err != nil {
				return fmt.Errorf("spool: free space of %s: %w", b.Dir, err)
			}
			b.free, b.checkedAt, b.measured, since = free, b.used, true, n
		}
		if b.free-since < b.Reserve {
			return fmt.Errorf("%w: spooling %d more bytes would leave less than %d bytes free on the disk of %s", ErrBound, n, b.Reserve, b.Dir)
		}
	}
	b.used += n
	return nil
}

// Used is the bytes taken so far.
func (b *Budget) Used() int64 {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// Writer takes every write to w from b before it is written, for a spool
// whose size is not declared up front.
func (b *Budget) Writer(w io.Writer) io.Writer { return &budgetWriter{b: b, w: w} }

type budgetWriter struct {
	b *Budget
	w io.Writer
}

func (bw *budgetWriter) Write(p []byte) (int, error) {
	if err := bw.b.Take(int64(len(p))); err != nil {
		return 0, err
	}
	return bw.w.Write(p)
}
