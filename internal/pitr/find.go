package pitr

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Operations Find looks for (the names --op takes).
const (
	OpDrop         = "drop"
	OpDropDatabase = "dropDatabase"
	OpRename       = "rename"
	OpDelete       = "delete"
)

// burstGap ends a delete burst: deletes on one namespace less than this
// apart (by their ts) are one burst.
const burstGap = 2 * time.Second

// maxApplyOpsDepth bounds the nesting of applyOps Find follows.
const maxApplyOpsDepth = 4

// Filter selects what Find reports. Zero fields select everything.
type Filter struct {
	Since, Until time.Time
	// NS is a glob (path.Match) over "db.collection"; a dropDatabase
	// matches when the pattern matches its database or starts with it.
	NS string
	// Ops are the operations to report (OpDrop...); empty means all.
	Ops []string
}

// Finding is one destructive operation, or one burst of deletes.
type Finding struct {
	Op string `json:"op"`
	// NS is "db.collection" ("db" for dropDatabase); To is a rename's
	// target.
	NS   string         `json:"ns"`
	To   string         `json:"to,omitempty"`
	Time time.Time      `json:"time"`
	TS   bson.Timestamp `json:"ts"`
	// LastTS and Count describe a delete burst (Count 1 for one entry).
	LastTS bson.Timestamp `json:"last_ts"`
	Count  int64          `json:"count"`
	// ToTS is the --to-ts that restores to just before the operation:
	// the entry's ts minus one increment (restore --to-ts is inclusive).
	ToTS bson.Timestamp `json:"to_ts"`
}

// Before returns the position just before ts: one increment less.
func Before(ts bson.Timestamp) bson.Timestamp {
	if ts.I > 0 {
		return bson.Timestamp{T: ts.T, I: ts.I - 1}
	}
	if ts.T == 0 {
		return ts
	}
	return bson.Timestamp{T: ts.T - 1, I: ^uint32(0)}
}

// Find reads src once and returns the destructive operations that match
// f, ordered by ts. Memory holds the findings and one open delete burst
// per namespace, never the entries.
func Find(ctx context.Context, src EntrySource, f Filter) ([]Finding, error) {
	want := map[string]bool{}
	for _, op := range f.Ops {
		switch op {
		case OpDrop, OpDropDatabase, OpRename, OpDelete:
			want[op] = true
		default:
			return nil, fmt.Errorf("pitr: unknown operation %q (want %s, %s, %s or %s)", op, OpDrop, OpDropDatabase, OpRename, OpDelete)
		}
	}
	if f.NS != "" {
		if _, err := path.Match(f.NS, ""); err != nil {
			return nil, fmt.Errorf("pitr: namespace pattern %q: %w", f.NS, err)
		}
	}
	fd := &finder{f: f, want: want, bursts: map[string]*Finding{}}
	err := src(ctx, func(raw bson.Raw) error {
		fd.entry(raw, 0)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, b := range fd.bursts {
		fd.out = append(fd.out, *b)
	}
	sort.SliceStable(fd.out, func(i, j int) bool { return tsLess(fd.out[i].TS, fd.out[j].TS) })
	return fd.out, nil
}

type finder struct {
	f      Filter
	want   map[string]bool
	bursts map[string]*Finding
	out    []Finding
}

func (fd *finder) entry(raw bson.Raw, depth int) {
	ts, _ := entryTS(raw)
	when := time.Unix(int64(ts.T), 0).UTC()
	if w, ok := raw.Lookup("wall").TimeOK(); ok {
		when = w.UTC()
	}
	op, _ := raw.Lookup("op").StringValueOK()
	ns, _ := raw.Lookup("ns").StringValueOK()
	o, _ := raw.Lookup("o").DocumentOK()
	if op == "c" && depth < maxApplyOpsDepth {
		// A transaction's or applyOps' operations inside one entry.
		if arr, ok := o.Lookup("applyOps").ArrayOK(); ok {
			vals, _ := arr.Values()
			for _, v := range vals {
				if d, ok := v.DocumentOK(); ok {
					inner := bson.Raw(d)
					if _, _, ok := inner.Lookup("ts").TimestampOK(); !ok {
						inner = withTS(d, ts, raw.Lookup("wall"))
					}
					fd.entry(inner, depth+1)
				}
			}
			return
		}
	}
	if !fd.inTime(when) {
		return
	}
	db, _, _ := strings.Cut(ns, ".")
	switch op {
	case "d":
		if fd.sel(OpDelete, ns) {
			if b := fd.bursts[ns]; b != nil && ts.T-b.LastTS.T <= uint32(burstGap/time.Second) && !tsLess(ts, b.LastTS) {
				b.LastTS = ts
				b.Count++
				return
			} else if b != nil {
				fd.out = append(fd.out, *b)
			}
			fd.bursts[ns] = &Finding{Op: OpDelete, NS: ns, Time: when, TS: ts, LastTS: ts, Count: 1, ToTS: Before(ts)}
		}
	case "c":
		switch {
		case o.Lookup("drop").Type == bson.TypeString:
			target := db + "." + o.Lookup("drop").StringValue()
			if fd.sel(OpDrop, target) {
				fd.add(Finding{Op: OpDrop, NS: target, Time: when, TS: ts})
			}
		case o.Lookup("dropDatabase").Type != 0:
			if fd.selDB(db) {
				fd.add(Finding{Op: OpDropDatabase, NS: db, Time: when, TS: ts})
			}
		case o.Lookup("renameCollection").Type == bson.TypeString:
			from := o.Lookup("renameCollection").StringValue()
			to, _ := o.Lookup("to").StringValueOK()
			if fd.want[OpRename] || len(fd.want) == 0 {
				if fd.nsMatch(from) || fd.nsMatch(to) {
					fd.add(Finding{Op: OpRename, NS: from, To: to, Time: when, TS: ts})
				}
			}
		}
	}
}

func (fd *finder) add(f Finding) {
	f.LastTS, f.Count, f.ToTS = f.TS, 1, Before(f.TS)
	fd.out = append(fd.out, f)
}

func (fd *finder) inTime(t time.Time) bool {
	if !fd.f.Since.IsZero() && t.Before(fd.f.Since) {
		return false
	}
	if !fd.f.Until.IsZero() && t.After(fd.f.Until) {
		return false
	}
	return true
}

func (fd *finder) sel(op, ns string) bool {
	return (len(fd.want) == 0 || fd.want[op]) && fd.nsMatch(ns)
}

func (fd *finder) selDB(db string) bool {
	if len(fd.want) != 0 && !fd.want[OpDropDatabase] {
		return false
	}
	return fd.nsMatch(db) || fd.f.NS == "" || strings.HasPrefix(fd.f.NS, db+".")
}

func (fd *finder) nsMatch(ns string) bool {
	if fd.f.NS == "" {
		return true
	}
	ok, _ := path.Match(fd.f.NS, ns)
	return ok
}

// withTS gives an applyOps operation its transaction entry's ts and wall.
func withTS(d bson.Raw, ts bson.Timestamp, wall bson.RawValue) bson.Raw {
	doc := bson.D{}
	if err := bson.Unmarshal(d, &doc); err != nil {
		return d
	}
	doc = append(doc, bson.E{Key: "ts", Value: ts})
	if wall.Type != 0 {
		doc = append(doc, bson.E{Key: "wall", Value: wall})
	}
	out, err := bson.Marshal(doc)
	if err != nil {
		return d
	}
	return out
}
