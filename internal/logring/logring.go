package logring

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// The default bounds of a ring.
const (
	MaxRecords = 10_000
	MaxBytes   = 8 << 20
)

// Attr is one key/value of a record, its value as text.
type Attr struct {
	Key, Value string
}

// Record is one log record as the ring keeps it.
type Record struct {
	// Seq numbers the records from 1, in the order they were logged.
	Seq   uint64
	Time  time.Time
	Level slog.Level
	Msg   string
	// Job is the job that ran when the record was logged ("KIND@STARTED"),
	// or "".
	Job   string
	Attrs []Attr
}

func (r *Record) size() int {
	n := 64 + len(r.Msg) + len(r.Job)
	for _, a := range r.Attrs {
		n += len(a.Key) + len(a.Value) + 16
	}
	return n
}

// Ring is the bounded in-memory log.
type Ring struct {
	maxRecords, maxBytes int

	mu    sync.Mutex
	recs  []Record // oldest first
	bytes int
	seq   uint64
}

// New returns a ring of at most maxRecords records and maxBytes bytes
// (zero: the defaults).
func New(maxRecords, maxBytes int) *Ring {
	if maxRecords <= 0 {
		maxRecords = MaxRecords
	}
	if maxBytes <= 0 {
		maxBytes = MaxBytes
	}
	return &Ring{maxRecords: maxRecords, maxBytes: maxBytes}
}

func (g *Ring) add(r Record) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.seq++
	r.Seq = g.seq
	g.recs = append(g.recs, r)
	g.bytes += r.size()
	drop := 0
	for len(g.recs)-drop > g.maxRecords || (g.bytes > g.maxBytes && len(g.recs)-drop > 1) {
		g.bytes -= g.recs[drop].size()
		drop++
	}
	if drop > 0 {
		// Copy down now and then rather than at every record.
		g.recs = g.recs[drop:]
		if cap(g.recs) > 2*g.maxRecords {
			g.recs = append([]Record(nil), g.recs...)
		}
	}
}

// Filter selects records.
type Filter struct {
	// After: only records with a greater Seq (following).
	After uint64
	// Since: only records logged at or after it.
	Since time.Time
	// Level: only records at or above it.
	Level slog.Level
	// Job: only records of that job: "KIND@STARTED" exactly, or a kind
	// ("backup"): its jobs' records.
	Job string
	// Tail: at most the last Tail matching records (0: all).
	Tail int
}

func (f Filter) match(r *Record) bool {
	if r.Seq <= f.After || r.Level < f.Level || (!f.Since.IsZero() && r.Time.Before(f.Since)) {
		return false
	}
	if f.Job != "" && r.Job != f.Job && !strings.HasPrefix(r.Job, f.Job+"@") {
		return false
	}
	return true
}

// Read returns the matching records, oldest first, how many matching
// records Tail left off, and the Seq to follow from.
func (g *Ring) Read(f Filter) (recs []Record, leftOff int, next uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := range g.recs {
		if f.match(&g.recs[i]) {
			recs = append(recs, g.recs[i])
		}
	}
	if f.Tail > 0 && len(recs) > f.Tail {
		leftOff = len(recs) - f.Tail
		recs = recs[leftOff:]
	}
	return recs, leftOff, g.seq
}

// Options of a ring's handler.
type Options struct {
	// Job names the job running now ("KIND@STARTED"), or "": every record
	// logged meanwhile is the job's.
	Job func() string
	// JobKey is an attribute that names a job for a record logged outside
	// it (its end): its value becomes the record's Job (and it is not kept
	// as an attribute).
	JobKey string
	// Skip leaves a record out of the ring (it is still passed on).
	Skip func(slog.Record) bool
}

// Handler returns a handler that keeps the records at Info and above (and
// any next enables) in the ring and passes every record on to next.
func (g *Ring) Handler(next slog.Handler, o Options) slog.Handler {
	return &handler{ring: g, next: next, o: o}
}

type handler struct {
	ring   *Ring
	next   slog.Handler
	o      Options
	attrs  []Attr // from WithAttrs, already prefixed by their groups
	prefix string // the open groups, "a.b."
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelInfo || h.next.Enabled(ctx, l)
}

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	if h.o.Skip == nil || !h.o.Skip(r) {
		rec := Record{Time: r.Time, Level: r.Level, Msg: r.Message, Attrs: append([]Attr(nil), h.attrs...)}
		if h.o.Job != nil {
			rec.Job = h.o.Job()
		}
		r.Attrs(func(a slog.Attr) bool {
			rec.Attrs = appendAttr(rec.Attrs, h.prefix, a)
			return true
		})
		if h.o.JobKey != "" {
			kept := rec.Attrs[:0]
			for _, a := range rec.Attrs {
				if a.Key == h.o.JobKey {
					rec.Job = a.Value
					continue
				}
				kept = append(kept, a)
			}
			rec.Attrs = kept
		}
		if rec.Time.IsZero() {
			rec.Time = time.Now()
		}
		h.ring.add(rec)
	}
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

func appendAttr(out []Attr, prefix string, a slog.Attr) []Attr {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, g := range v.Group() {
			out = appendAttr(out, p, g)
		}
		return out
	}
	if a.Key == "" {
		return out
	}
	var s string
	switch v.Kind() {
	case slog.KindTime:
		s = v.Time().Format(time.RFC3339Nano)
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			s = err.Error()
		} else {
			s = fmt.Sprint(v.Any())
		}
	default:
		s = v.String()
	}
	return append(out, Attr{Key: prefix + a.Key, Value: s})
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append([]Attr(nil), h.attrs...)
	for _, a := range as {
		c.attrs = appendAttr(c.attrs, h.prefix, a)
	}
	c.next = h.next.WithAttrs(as)
	return &c
}

func (h *handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.prefix = h.prefix + name + "."
	c.next = h.next.WithGroup(name)
	return &c
}
