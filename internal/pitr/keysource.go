package pitr

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/atomicfile"
)

// KeyReader reads an oplog by a storage key that orders its entries as
// they were inserted: the embedded server's (embedded.OplogReader, whose
// key is FerretDB's record id: the insert's unix second << 32 | a counter).
type KeyReader interface {
	// Read calls fn with up to limit entries whose key is after `after`,
	// in key order.
	Read(ctx context.Context, after int64, limit int, fn func(key int64, entry bson.Raw) error) error
	// Keys returns the keys in (after, upto], in order.
	Keys(ctx context.Context, after, upto int64) ([]int64, error)
	// ReadKeys calls fn with the entries of keys, in key order.
	ReadKeys(ctx context.Context, keys []int64, fn func(key int64, entry bson.Raw) error) error
}

// KeySource is the Source for the embedded server: it reads the oplog by
// its insertion key (KeyReader) instead of a tailable cursor, so that
// every entry is delivered once, and it implements Resumer, so that a
// restart resumes exactly where the last durable slice ended.
//
// A key is taken just before the entry's transaction, so an entry can
// become visible after one with a greater key (concurrent writers): a late
// entry. The tail remembers the keys it delivered above a watermark and,
// each time it is caught up, lists the keys above the watermark (an index
// read, no entry decoded) and delivers those it has not: a late entry
// comes after later ones, once. The watermark follows the clock Settle
// behind: an entry whose key's second is older than that is taken as
// final. Oldest and Contains are the MongoSource's (only read when a tail
// starts).
type KeySource struct {
	*MongoSource
	Keys KeyReader
	// Settle is how long after its key's second an entry may still become
	// visible; zero means DefaultSettle.
	Settle time.Duration
	// Batch is how many entries one read takes; zero means 1000.
	Batch int
	// Now is the clock the keys are taken with (the embedded server runs
	// in this process); nil means time.Now.
	Now func() time.Time
}

// DefaultSettle is KeySource's default Settle.
const DefaultSettle = 30 * time.Second

// Resumer is a Source that resumes from a position its Tail gave
// (PositionedTail) rather than by ts: the archiver keeps the position of
// every durable slice (PositionFile) and passes it back.
type Resumer interface {
	Source
	// TailAt follows the oplog from pos; after is the newest archived ts
	// (for a source that falls back on it).
	TailAt(ctx context.Context, after bson.Timestamp, pos []byte) (Tail, error)
}

// PositionedTail is a Tail that says where it stands: Position, called
// between calls of Next, is the position after every entry Next returned.
type PositionedTail interface {
	Tail
	Position() []byte
}

// keyPosition is a KeySource tail's position: every entry whose key is at
// most W was delivered (or is taken as never to come), and of those above
// W exactly the keys in Seen.
type keyPosition struct {
	W    int64  `json:"w"`
	Seen []byte `json:"seen,omitempty"` // varint deltas from W, ascending
}

// Tail follows the oplog from the first entry after `after`, by ts: a
// fresh archive (after zero: the oldest entry) or one written before
// positions were kept. Entries inserted in after's second or later are
// read, those not newer than after are skipped.
func (s *KeySource) Tail(ctx context.Context, after bson.Timestamp) (Tail, error) {
	t := s.newTail()
	if !after.IsZero() {
		t.w = int64(after.T)<<32 - 1
		t.after = after
	}
	t.hi = t.w
	return t, nil
}

// TailAt resumes from a position a tail gave.
func (s *KeySource) TailAt(ctx context.Context, after bson.Timestamp, pos []byte) (Tail, error) {
	var p keyPosition
	if err := json.Unmarshal(pos, &p); err != nil {
		return nil, fmt.Errorf("pitr: oplog position: %w", err)
	}
	t := s.newTail()
	t.w, t.hi = p.W, p.W
	k, b := p.W, p.Seen
	for len(b) > 0 {
		d, n := binary.Uvarint(b)
		if n <= 0 || d == 0 {
			return nil, errors.New("pitr: oplog position: bad seen keys")
		}
		k += int64(d)
		b = b[n:]
		t.seen[k] = struct{}{}
		t.hi = k
	}
	return t, nil
}

func (s *KeySource) newTail() *keyTail {
	t := &keyTail{src: s, seen: map[int64]struct{}{}, settle: s.Settle, batch: s.Batch, now: s.Now}
	if t.settle <= 0 {
		t.settle = DefaultSettle
	}
	if t.batch <= 0 {
		t.batch = 1000
	}
	if t.now == nil {
		t.now = time.Now
	}
	return t
}

type keyTail struct {
	src    *KeySource
	settle time.Duration
	batch  int
	now    func() time.Time
	after  bson.Timestamp // a ts resume: entries not newer are skipped

	w    int64              // watermark
	hi   int64              // the greatest key delivered (or w)
	seen map[int64]struct{} // keys above w delivered

	pending []keyed
	buf     []byte
	swept   bool // the last read was caught up and the late keys swept
}

type keyed struct {
	key   int64
	entry bson.Raw
}

func (t *keyTail) Next(ctx context.Context) (bson.Raw, error) {
	for {
		if len(t.pending) > 0 {
			e := t.pending[0]
			t.pending = t.pending[1:]
			t.seen[e.key] = struct{}{}
			if e.key > t.hi {
				t.hi = e.key
			}
			if !t.after.IsZero() {
				if ts, ok := entryTS(e.entry); ok && !tsLess(t.after, ts) {
					continue
				}
			}
			return e.entry, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		t.pending = t.pending[:0]
		t.buf = t.buf[:0]
		collect := func(key int64, entry bson.Raw) error {
			if _, dup := t.seen[key]; dup || key <= t.w {
				return nil
			}
			start := len(t.buf)
			t.buf = append(t.buf, entry...)
			t.pending = append(t.pending, keyed{key: key})
			t.pending[len(t.pending)-1].entry = t.buf[start:len(t.buf):len(t.buf)]
			return nil
		}
		n := 0
		if err := t.src.Keys.Read(ctx, t.hi, t.batch, func(k int64, e bson.Raw) error { n++; return collect(k, e) }); err != nil {
			return nil, err
		}
		fixEntries(t.pending, t.buf)
		if n == t.batch {
			t.swept = false
			continue
		}
		if len(t.pending) > 0 {
			continue
		}
		// Caught up: deliver the late entries, then move the watermark.
		if err := t.sweep(ctx, collect); err != nil {
			return nil, err
		}
		if len(t.pending) > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(t.src.Await):
		}
		return nil, nil
	}
}

// fixEntries points the pending entries into buf once it stopped growing
// (an append may have moved it).
func fixEntries(p []keyed, buf []byte) {
	off := 0
	for i := range p {
		n := len(p[i].entry)
		p[i].entry = buf[off : off+n : off+n]
		off += n
	}
}

// sweep lists the keys in (w, hi] and reads those not delivered: entries
// that became visible after later ones.
func (t *keyTail) sweep(ctx context.Context, collect func(int64, bson.Raw) error) error {
	if t.hi > t.w {
		keys, err := t.src.Keys.Keys(ctx, t.w, t.hi)
		if err != nil {
			return err
		}
		var late []int64
		for _, k := range keys {
			if _, ok := t.seen[k]; !ok {
				late = append(late, k)
			}
		}
		if len(late) > 0 {
			if err := t.src.Keys.ReadKeys(ctx, late, collect); err != nil {
				return err
			}
			fixEntries(t.pending, t.buf)
			return nil
		}
	}
	// Everything visible up to hi is delivered; what is older than Settle
	// will not appear any more.
	final := t.now().Add(-t.settle).Unix()<<32 - 1
	if w := min(final, t.hi); w > t.w {
		t.w = w
		for k := range t.seen {
			if k <= w {
				delete(t.seen, k)
			}
		}
	}
	return nil
}

func (t *keyTail) Close(context.Context) error { return nil }

// Position encodes the watermark and the keys delivered above it.
func (t *keyTail) Position() []byte {
	keys := make([]int64, 0, len(t.seen))
	for k := range t.seen {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	p := keyPosition{W: t.w}
	prev := t.w
	for _, k := range keys {
		p.Seen = binary.AppendUvarint(p.Seen, uint64(k-prev))
		prev = k
	}
	b, _ := json.Marshal(p)
	return b
}

// PositionFile, in the archive's directory, holds the source's position
// after the newest durable slices (JSON, written with atomicfile before
// the slice takes its name): a Resumer resumes there exactly. It keeps the
// last two, so that a kill between the position's write and the slice's
// rename leaves the previous slice's.
const PositionFile = "position.json"

type positionRecord struct {
	Slice string          `json:"slice"`
	Pos   json.RawMessage `json:"pos"`
}

// maxPositionBytes bounds what readPosition accepts.
const maxPositionBytes = 64 << 20

func readPosition(dir, slice string) ([]byte, error) {
	recs, err := readPositions(dir)
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		if r.Slice == slice {
			return r.Pos, nil
		}
	}
	return nil, nil
}

func readPositions(dir string) ([]positionRecord, error) {
	b, err := os.ReadFile(filepath.Join(dir, PositionFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pitr: read position: %w", err)
	}
	if len(b) > maxPositionBytes {
		return nil, fmt.Errorf("pitr: read position: %s is larger than %d bytes", PositionFile, maxPositionBytes)
	}
	var recs []positionRecord
	if err := json.Unmarshal(b, &recs); err != nil {
		return nil, fmt.Errorf("pitr: read position: %s: %w", PositionFile, err)
	}
	return recs, nil
}

func writePosition(dir, slice string, pos []byte) error {
	recs, err := readPositions(dir)
	if err != nil {
		recs = nil // replaced below: the newest slice's position is what counts
	}
	if len(recs) > 1 {
		recs = recs[len(recs)-1:]
	}
	recs = append(recs, positionRecord{Slice: slice, Pos: pos})
	b, err := json.Marshal(recs)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, PositionFile), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("pitr: record position: %w", err)
	}
	return nil
}
