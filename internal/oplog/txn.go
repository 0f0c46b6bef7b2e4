package oplog

import (
	"errors"
	"fmt"
)

// ErrTxnChain is matched when a transaction's entries do not chain: its
// first entries are missing from the capture, or an entry's prevOpTime
// names another entry than the one before it.
var ErrTxnChain = errors.New("transaction entries do not chain")

// ErrTxnTooLarge is matched when the open transactions hold more than the
// buffer's limit.
var ErrTxnTooLarge = errors.New("transactions too large to buffer")

// DefaultTxnLimit bounds the bytes of transaction entries a replay keeps
// until their commit.
const DefaultTxnLimit = 512 << 20

type txnKey struct {
	lsid string
	num  int64
}

type txnState struct {
	ops   []Entry
	bytes int64
	last  Timestamp
}

// Txns buffers the operations of transactions until they commit, as
// mongo-tools' txn.Buffer does, and checks that each transaction's entries
// chain by prevOpTime. The zero value is not usable: use NewTxns.
type Txns struct {
	open  map[txnKey]*txnState
	bytes int64
	limit int64
	// start is the first position of the capture: a chain that points
	// before it lost its beginning.
	start Timestamp
}

// NewTxns returns a buffer for a replay whose capture begins at start;
// limit <= 0 means DefaultTxnLimit.
func NewTxns(start Timestamp, limit int64) *Txns {
	if limit <= 0 {
		limit = DefaultTxnLimit
	}
	return &Txns{open: map[txnKey]*txnState{}, limit: limit, start: start}
}

// Add takes a transaction entry (decided TxnBuffer, TxnCommit or TxnAbort).
// At a commit it returns the transaction's operations to apply, in order;
// at an abort it returns how many buffered operations it dropped. e.Raw is
// copied when kept.
func (t *Txns) Add(e Entry, d Decision) (apply []Entry, dropped int, err error) {
	key := txnKey{string(e.LSID), e.TxnNumber}
	st := t.open[key]
	if !e.PrevOpTime.IsZero() {
		switch {
		case st != nil && e.Cmd != "applyOps":
			// commitTransaction and abortTransaction: mongod points
			// them at an entry of the transaction, not always the last.
		case st != nil && st.last != e.PrevOpTime:
			return nil, 0, fmt.Errorf("%w: entry %s points to %s, the transaction's previous entry is %s",
				ErrTxnChain, e.TS, e.PrevOpTime, st.last)
		case st == nil && e.PrevOpTime.Less(t.start):
			return nil, 0, fmt.Errorf("%w: entry %s continues a transaction that began at or before %s, before the oplog capture (%s)",
				ErrTxnChain, e.TS, e.PrevOpTime, t.start)
		}
		// st == nil otherwise: linked to an entry applied already (8.0
		// vectored inserts split over several entries).
	}
	var ops []Entry
	if e.Cmd == "applyOps" {
		owned := Entry{}
		raw := append([]byte(nil), e.Raw...)
		if owned, err = Parse(raw); err != nil {
			return nil, 0, err
		}
		if ops, err = owned.Inner(); err != nil {
			return nil, 0, err
		}
	}
	switch d.Action {
	case TxnBuffer:
		if st == nil {
			st = &txnState{}
			t.open[key] = st
		}
		st.ops = append(st.ops, ops...)
		st.bytes += int64(len(e.Raw))
		t.bytes += int64(len(e.Raw))
		st.last = e.TS
		if t.bytes > t.limit {
			return nil, 0, fmt.Errorf("%w: more than %d bytes of open transactions", ErrTxnTooLarge, t.limit)
		}
		return nil, 0, nil
	case TxnCommit:
		if st != nil {
			apply = append(st.ops, ops...)
			t.drop(key, st)
		} else {
			if e.Cmd == "commitTransaction" {
				return nil, 0, fmt.Errorf("%w: commitTransaction at %s for a transaction the capture does not hold", ErrTxnChain, e.TS)
			}
			apply = ops
		}
		return apply, 0, nil
	case TxnAbort:
		if st != nil {
			dropped = len(st.ops)
			t.drop(key, st)
		}
		return nil, dropped, nil
	}
	return nil, 0, fmt.Errorf("oplog: %s is not a transaction entry", d.Kind)
}

func (t *Txns) drop(key txnKey, st *txnState) {
	t.bytes -= st.bytes
	delete(t.open, key)
}

// Pending returns how many transactions and operations are still open
// (never committed up to the end of the replay).
func (t *Txns) Pending() (txns, ops int) {
	for _, st := range t.open {
		txns++
		ops += len(st.ops)
	}
	return txns, ops
}

// Buffered returns the operations kept so far for e's transaction (nil
// when none is open), for a replay to name what an abort drops.
func (t *Txns) Buffered(e Entry) []Entry {
	if st := t.open[txnKey{string(e.LSID), e.TxnNumber}]; st != nil {
		return st.ops
	}
	return nil
}

// PendingOps returns the operations of the transactions still open.
func (t *Txns) PendingOps() []Entry {
	var out []Entry
	for _, st := range t.open {
		out = append(out, st.ops...)
	}
	return out
}
