package oplog

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// ErrMalformed is matched by an entry that is not an oplog entry a0 can read.
var ErrMalformed = errors.New("malformed oplog entry")

// Timestamp is an oplog position (seconds, counter).
type Timestamp struct{ T, I uint32 }

// Less orders positions.
func (a Timestamp) Less(b Timestamp) bool { return a.T < b.T || (a.T == b.T && a.I < b.I) }

// IsZero is true for the null position {0, 0}.
func (a Timestamp) IsZero() bool { return a.T == 0 && a.I == 0 }

func (a Timestamp) String() string { return fmt.Sprintf("%d.%d", a.T, a.I) }

// Entry is a parsed view of one oplog entry. Its fields alias Raw.
type Entry struct {
	Raw bson.Raw
	TS  Timestamp
	// Term is the replica-set term ("t"); HasTerm is false on servers that
	// write none (FerretDB) and for inner operations of applyOps.
	Term    int64
	HasTerm bool
	Op      string
	NS      string
	O       bson.Raw
	O2      bson.Raw // nil when absent
	// Cmd is the command name of an "c" entry: the first key of O.
	Cmd string
	// Transaction fields: LSID and TxnNumber are set for entries written by
	// a session (transactions, retryable writes, vectored inserts).
	LSID       bson.Raw
	TxnNumber  int64
	HasTxnNum  bool
	PrevOpTime Timestamp // zero when absent or null
	// UI is the collection's UUID ("ui", hex), "" when absent (FerretDB,
	// and servers older than 3.6).
	UI string
	// MultiOpType is the server's multiOpType (8.0+: 1 is an applyOps
	// whose operations apply separately, a retryable vectored insert, not
	// a transaction), 0 when absent.
	MultiOpType int64
	// inner is true for an operation taken out of an applyOps array.
	inner bool
}

// Parse reads the fields of raw a replay needs. raw is not copied.
func Parse(raw []byte) (Entry, error) {
	return parse(bson.Raw(raw), false)
}

func parse(raw bson.Raw, inner bool) (Entry, error) {
	e := Entry{Raw: raw, inner: inner}
	elems, err := raw.Elements()
	if err != nil {
		return e, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	for _, el := range elems {
		v := el.Value()
		switch el.Key() {
		case "ts":
			t, i, ok := v.TimestampOK()
			if !ok {
				return e, fmt.Errorf("%w: ts is not a timestamp", ErrMalformed)
			}
			e.TS = Timestamp{t, i}
		case "t":
			if n, ok := intValue(v); ok {
				e.Term, e.HasTerm = n, true
			}
		case "op":
			s, ok := v.StringValueOK()
			if !ok {
				return e, fmt.Errorf("%w: op is not a string", ErrMalformed)
			}
			e.Op = s
		case "ns":
			s, ok := v.StringValueOK()
			if !ok {
				return e, fmt.Errorf("%w: ns is not a string", ErrMalformed)
			}
			e.NS = s
		case "o":
			d, ok := v.DocumentOK()
			if !ok {
				return e, fmt.Errorf("%w: o is not a document", ErrMalformed)
			}
			e.O = d
		case "o2":
			d, ok := v.DocumentOK()
			if !ok {
				return e, fmt.Errorf("%w: o2 is not a document", ErrMalformed)
			}
			e.O2 = d
		case "lsid":
			if d, ok := v.DocumentOK(); ok {
				e.LSID = d
			}
		case "txnNumber":
			if n, ok := intValue(v); ok {
				e.TxnNumber, e.HasTxnNum = n, true
			}
		case "multiOpType":
			if n, ok := intValue(v); ok {
				e.MultiOpType = n
			}
		case "ui":
			if sub, data, ok := v.BinaryOK(); ok && sub == bson.TypeBinaryUUID {
				e.UI = hex.EncodeToString(data)
			}
		case "prevOpTime":
			if d, ok := v.DocumentOK(); ok {
				if t, i, ok := d.Lookup("ts").TimestampOK(); ok {
					e.PrevOpTime = Timestamp{t, i}
				}
			}
		}
	}
	if e.Op == "" {
		return e, fmt.Errorf("%w: no op", ErrMalformed)
	}
	if e.O == nil && e.Op != "n" {
		return e, fmt.Errorf("%w: %s entry without o", ErrMalformed, e.Op)
	}
	if e.Op == "c" {
		first, err := e.O.IndexErr(0)
		if err != nil {
			return e, fmt.Errorf("%w: empty command", ErrMalformed)
		}
		e.Cmd = first.Key()
		if e.NS == "" && e.Cmd == "applyOps" {
			// 4.x sharded vectored entries carry no ns.
			e.NS = "admin.$cmd"
		}
	}
	if e.NS == "" && e.Op != "n" {
		return e, fmt.Errorf("%w: no ns", ErrMalformed)
	}
	return e, nil
}

func intValue(v bson.RawValue) (int64, bool) {
	switch v.Type {
	case bson.TypeInt32:
		return int64(v.Int32()), true
	case bson.TypeInt64:
		return v.Int64(), true
	case bson.TypeDouble:
		f := v.Double()
		return int64(f), f == float64(int64(f))
	}
	return 0, false
}

// DB is the database part of the entry's ns.
func (e Entry) DB() string { db, _, _ := strings.Cut(e.NS, "."); return db }

// CmdString returns the string value of the command's field key in O.
func (e Entry) CmdString(key string) (string, bool) {
	v, err := e.O.LookupErr(key)
	if err != nil {
		return "", false
	}
	return v.StringValueOK()
}

// Inner returns the operations of an applyOps entry, in order.
func (e Entry) Inner() ([]Entry, error) {
	v, err := e.O.LookupErr("applyOps")
	if err != nil {
		return nil, fmt.Errorf("%w: applyOps without its array", ErrMalformed)
	}
	arr, ok := v.ArrayOK()
	if !ok {
		return nil, fmt.Errorf("%w: applyOps is not an array", ErrMalformed)
	}
	vals, err := arr.Values()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	out := make([]Entry, 0, len(vals))
	for i, v := range vals {
		d, ok := v.DocumentOK()
		if !ok {
			return nil, fmt.Errorf("%w: applyOps operation %d is not a document", ErrMalformed, i)
		}
		in, err := parse(d, true)
		if err != nil {
			return nil, fmt.Errorf("applyOps operation %d: %w", i, err)
		}
		in.TS = e.TS
		out = append(out, in)
	}
	return out, nil
}

// IsInner is true for an operation taken out of an applyOps array.
func (e Entry) IsInner() bool { return e.inner }

// ID returns the _id of the document a CRUD entry writes: o._id for
// inserts and deletes, o2._id for updates.
func (e Entry) ID() (bson.RawValue, bool) {
	var src bson.Raw
	switch e.Op {
	case "i", "d":
		src = e.O
	case "u":
		src = e.O2
	default:
		return bson.RawValue{}, false
	}
	if src == nil {
		return bson.RawValue{}, false
	}
	v, err := src.LookupErr("_id")
	return v, err == nil
}

func rawLookup(d []byte, key string) (bson.RawValue, error) { return bson.Raw(d).LookupErr(key) }

// Copy returns e over its own copy of Raw (an Entry aliases the buffer it
// was parsed from).
func (e Entry) Copy() (Entry, error) {
	c, err := parse(append(bson.Raw(nil), e.Raw...), e.inner)
	if err != nil {
		return c, err
	}
	if e.inner {
		c.TS = e.TS
	}
	c.NS = e.NS // the replay may have moved it to where its collection is
	return c, nil
}

// WithRaw returns the entry parsed from raw, a rewrite of e's document
// (a restore under other namespace names): an operation of an applyOps
// keeps its place (inner) and the position of the entry it came from.
func (e Entry) WithRaw(raw bson.Raw) (Entry, error) {
	c, err := parse(raw, e.inner)
	if err != nil {
		return c, err
	}
	if e.inner {
		c.TS = e.TS
	}
	return c, nil
}
