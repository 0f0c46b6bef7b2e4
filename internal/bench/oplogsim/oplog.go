package oplogsim

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Oplog is a capped oplog in memory: entries in ts order, the oldest
// dropped once it holds its capacity (as a mongod trims its oplog), found
// by ts with a binary search (as mongod finds a ts bound: the oplog's
// record ids are its ts).
type Oplog struct {
	mu    sync.Mutex
	buf   []entry
	first uint64 // sequence number of the oldest entry held
	next  uint64 // sequence number the next entry gets
	// grew is closed, and replaced, whenever entries are appended: what
	// an awaitData getMore waits on.
	grew chan struct{}
}

type entry struct {
	ts  bson.Timestamp
	raw bson.Raw
}

// NewOplog holds up to capacity entries.
func NewOplog(capacity int) *Oplog {
	return &Oplog{buf: make([]entry, max(capacity, 1)), grew: make(chan struct{})}
}

// Append adds entries, whose ts must be increasing and newer than every
// entry held (the Generator's are).
func (o *Oplog) Append(raws ...bson.Raw) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, raw := range raws {
		ts, ok := tsOf(raw)
		if !ok {
			return fmt.Errorf("oplogsim: entry without ts")
		}
		if o.next > o.first && !o.at(o.next-1).ts.Before(ts) {
			return fmt.Errorf("oplogsim: entry %d.%d not newer than the newest", ts.T, ts.I)
		}
		o.buf[o.next%uint64(len(o.buf))] = entry{ts: ts, raw: raw}
		o.next++
		if o.next-o.first > uint64(len(o.buf)) {
			o.first++
		}
	}
	if len(raws) > 0 {
		close(o.grew)
		o.grew = make(chan struct{})
	}
	return nil
}

// at is the entry with sequence number seq (first <= seq < next); o.mu held.
func (o *Oplog) at(seq uint64) entry { return o.buf[seq%uint64(len(o.buf))] }

// Len is the number of entries held.
func (o *Oplog) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return int(o.next - o.first)
}

// Newest is the newest entry's ts (zero when empty).
func (o *Oplog) Newest() bson.Timestamp {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.next == o.first {
		return bson.Timestamp{}
	}
	return o.at(o.next - 1).ts
}

// Entries returns the entries held, oldest first (for tests).
func (o *Oplog) Entries() []bson.Raw {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]bson.Raw, 0, o.next-o.first)
	for s := o.first; s < o.next; s++ {
		out = append(out, o.at(s).raw)
	}
	return out
}

// search is the first sequence number whose entry's ts is >= ts (> ts
// when strict), or next; o.mu held.
func (o *Oplog) search(ts bson.Timestamp, strict bool) uint64 {
	lo, hi := o.first, o.next
	for lo < hi {
		mid := lo + (hi-lo)/2
		e := o.at(mid).ts
		if e.Before(ts) || (strict && e.Equal(ts)) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

func tsOf(raw bson.Raw) (bson.Timestamp, bool) {
	t, i, ok := raw.Lookup("ts").TimestampOK()
	return bson.Timestamp{T: t, I: i}, ok
}

// Generator writes oplog entries into an Oplog at a steady rate, as a
// primary under a steady writer would log them: half inserts, three in ten
// updates, two in ten deletes, across three collections of db "pitrbench"
// (the mix a0bench's FerretDB writer makes), from eight sessions (the
// retryable writes of eight client threads).
type Generator struct {
	o     *Oplog
	rate  int
	rng   *rand.Rand
	colls [3]genColl
	sess  [8]session
	last  bson.Timestamp
	next  int64
	// Written counts the entries appended.
	written int64
	mu      sync.Mutex
}

type genColl struct {
	ns   string
	ui   bson.Binary
	docs []genDoc
}

type genDoc struct {
	id int64
	n  int32
}

type session struct {
	lsid bson.D
	txn  int64
}

// NewGenerator writes rate entries per second into o; seed makes the
// sequence of operations repeatable (not their ts).
func NewGenerator(o *Oplog, rate int, seed uint64) *Generator {
	g := &Generator{o: o, rate: max(rate, 1), rng: rand.New(rand.NewPCG(seed, 26))}
	for i, name := range []string{"orders", "users", "events"} {
		g.colls[i] = genColl{ns: "pitrbench." + name, ui: g.uuid()}
	}
	// The uid of a session without an authenticated user: the SHA-256 of
	// the empty string, as in the fixtures' entries.
	uid := sha256.Sum256(nil)
	for i := range g.sess {
		g.sess[i].lsid = bson.D{{Key: "id", Value: g.uuid()}, {Key: "uid", Value: bson.Binary{Subtype: 0, Data: uid[:]}}}
	}
	return g
}

func (g *Generator) uuid() bson.Binary {
	b := make([]byte, 16)
	for i := range b {
		b[i] = byte(g.rng.UintN(256))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return bson.Binary{Subtype: bson.TypeBinaryUUID, Data: b}
}

// Written is the number of entries appended so far.
func (g *Generator) Written() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.written
}

// Run appends entries until ctx is done, paced by the clock: every 10 ms,
// as many as make the count since the start rate per second.
func (g *Generator) Run(ctx context.Context) error {
	start := time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var emitted int64
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		due := int64(time.Since(start).Seconds()*float64(g.rate)) - emitted
		if due <= 0 {
			continue
		}
		batch := make([]bson.Raw, 0, due)
		for range due {
			raw, err := g.entry(time.Now())
			if err != nil {
				return err
			}
			batch = append(batch, raw)
		}
		if err := g.o.Append(batch...); err != nil {
			return err
		}
		emitted += due
		g.mu.Lock()
		g.written += due
		g.mu.Unlock()
	}
}

// tsAt is the next ts at wall time now: (unix second, counter), the
// counter restarting at 1 each second, never going back (as mongod's
// LogicalClock: a clock that steps back keeps the last second).
func (g *Generator) tsAt(now time.Time) bson.Timestamp {
	sec := uint32(now.Unix())
	if sec > g.last.T {
		g.last = bson.Timestamp{T: sec, I: 1}
	} else {
		g.last.I++
	}
	return g.last
}

// entry builds one oplog entry in a MongoDB 7.0 primary's form for a
// retryable single-document write (the field order is the server's).
func (g *Generator) entry(now time.Time) (bson.Raw, error) {
	k := g.rng.IntN(3)
	c := &g.colls[k]
	s := &g.sess[g.rng.IntN(len(g.sess))]
	s.txn++
	var op string
	var o, o2 bson.D
	switch r := g.rng.IntN(10); {
	case r < 5 || len(c.docs) < 10:
		g.next++
		id := g.next
		op = "i"
		o = bson.D{{Key: "_id", Value: id}, {Key: "v", Value: int32(g.rng.IntN(1000))},
			{Key: "s", Value: fmt.Sprintf("order-%d-%s", id, strings.Repeat("x", 60))}, {Key: "at", Value: bson.NewDateTimeFromTime(now)}}
		o2 = bson.D{{Key: "_id", Value: id}}
		c.docs = append(c.docs, genDoc{id: id})
	case r < 8:
		// $set v and $inc n, logged as mongod logs them: a $v:2 diff
		// with the fields' new values (u: updated, i: inserted).
		d := &c.docs[g.rng.IntN(len(c.docs))]
		v := int32(g.rng.IntN(1000))
		op = "u"
		var diff bson.D
		if d.n == 0 {
			diff = bson.D{{Key: "u", Value: bson.D{{Key: "v", Value: v}}}, {Key: "i", Value: bson.D{{Key: "n", Value: int32(1)}}}}
		} else {
			diff = bson.D{{Key: "u", Value: bson.D{{Key: "v", Value: v}, {Key: "n", Value: d.n + 1}}}}
		}
		d.n++
		o = bson.D{{Key: "$v", Value: int32(2)}, {Key: "diff", Value: diff}}
		o2 = bson.D{{Key: "_id", Value: d.id}}
	default:
		i := g.rng.IntN(len(c.docs))
		op = "d"
		o = bson.D{{Key: "_id", Value: c.docs[i].id}}
		c.docs[i] = c.docs[len(c.docs)-1]
		c.docs = c.docs[:len(c.docs)-1]
	}
	e := bson.D{{Key: "lsid", Value: s.lsid}, {Key: "txnNumber", Value: s.txn},
		{Key: "op", Value: op}, {Key: "ns", Value: c.ns}, {Key: "ui", Value: c.ui}, {Key: "o", Value: o}}
	if o2 != nil {
		e = append(e, bson.E{Key: "o2", Value: o2})
	}
	e = append(e,
		bson.E{Key: "ts", Value: g.tsAt(now)},
		bson.E{Key: "t", Value: int64(1)},
		bson.E{Key: "v", Value: int64(2)},
		bson.E{Key: "wall", Value: bson.NewDateTimeFromTime(now)},
		bson.E{Key: "stmtId", Value: int32(0)},
		bson.E{Key: "prevOpTime", Value: bson.D{{Key: "ts", Value: bson.Timestamp{}}, {Key: "t", Value: int64(-1)}}})
	return bson.Marshal(e)
}
