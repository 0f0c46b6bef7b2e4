package restore

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/oplog"
)

// The set-based replay of updates (flushScanUpdates) computes in Go the
// document FerretDB v1.24.2's update would store, for the forms whose
// result is certain, and writes it back with the batch's other documents.
// The rules below follow FerretDB's handler (internal/handler/common
// update.go: processReplacementDoc, processUpdateOperator with its
// getSortedKVOps, processSetFieldExpression, Document.SetByPath and
// RemoveByPath, ValidateData). Whatever they do not cover with certainty
// answers ok=false, and the entry goes to the server as its own update
// statement, as before: never a guess.

// replaceDoc is what FerretDB makes of doc replaced by repl: the _id stays
// where it is (first), every other field is the replacement's, in its
// order. FerretDB leaves the document untouched when it compares equal to
// the replacement (types.Compare: numbers of different types, arrays
// against scalars...): when that may be so without the bytes being equal,
// ok is false.
func replaceDoc(doc, repl bson.D) (bson.D, bool) {
	if len(doc) == 0 || doc[0].Key != "_id" {
		return nil, false
	}
	out := bson.D{doc[0]}
	for _, f := range repl {
		if f.Key == "_id" {
			// The server compares the _ids as values and, equal, keeps
			// the replacement's: certain only when they are identical.
			if !sameBytes(f.Value, doc[0].Value) {
				return nil, false
			}
			continue
		}
		out = append(out, f)
	}
	if sameBytes(out, doc) {
		return doc, true
	}
	if mayEqual(doc, repl, true) {
		return nil, false
	}
	return out, true
}

// applySetUnset applies a legacy operator update ($set and $unset, as
// oplog version 1 writes them) the way FerretDB does: the paths of both
// operators sorted by their text; $set replaces an existing field where
// it is and appends a new one to its parent, and leaves a field alone
// whose value is identical (types.Identical); $unset removes a field.
// Only paths through embedded documents are taken: a path through an
// array, a missing parent, a numeric or empty component, the _id, or
// paths that overlap (which the server refuses) give ok false.
func applySetUnset(doc bson.D, u bson.D) (bson.D, bool) {
	type op struct {
		set   bool
		path  []string
		key   string
		value any
	}
	var ops []op
	for _, f := range u {
		fields, ok := f.Value.(bson.D)
		if !ok || len(fields) == 0 || (f.Key != "$set" && f.Key != "$unset") {
			return nil, false
		}
		for _, g := range fields {
			path := strings.Split(g.Key, ".")
			for _, c := range path {
				if !plainComponent(c) {
					return nil, false
				}
			}
			if path[0] == "_id" {
				return nil, false
			}
			ops = append(ops, op{set: f.Key == "$set", path: path, key: g.Key, value: g.Value})
		}
	}
	if len(ops) == 0 {
		return nil, false
	}
	sort.SliceStable(ops, func(i, j int) bool { return ops[i].key < ops[j].key })
	for i := 1; i < len(ops); i++ {
		// Every pair: sorted, "a" and "a.b" need not be neighbours
		// ("a-b" sorts between them).
		for j := 0; j < i; j++ {
			if overlaps(ops[j].key, ops[i].key) {
				return nil, false
			}
		}
	}
	out := doc
	for _, o := range ops {
		var ok bool
		if out, ok = applyPath(out, o.path, o.set, o.value); !ok {
			return nil, false
		}
	}
	return out, true
}

// applyPath sets (or, set false, removes) the field at path in a copy of
// d. A missing parent is nothing to remove; for $set FerretDB would make
// it (insertByPath): not taken, nor a parent of any other type.
func applyPath(d bson.D, path []string, set bool, value any) (bson.D, bool) {
	i := index(d, path[0])
	if len(path) > 1 {
		if i < 0 {
			return d, !set
		}
		sub, ok := d[i].Value.(bson.D)
		if !ok {
			return nil, false
		}
		sub, ok = applyPath(sub, path[1:], set, value)
		if !ok {
			return nil, false
		}
		out := append(bson.D{}, d...)
		out[i].Value = sub
		return out, true
	}
	switch {
	case !set && i < 0:
		return d, true
	case !set:
		return append(append(bson.D{}, d[:i]...), d[i+1:]...), true // {} stays {}, not null
	case i < 0:
		return append(append(bson.D{}, d...), bson.E{Key: path[0], Value: value}), true
	case sameBytes(d[i].Value, value):
		return d, true
	case mayEqual(d[i].Value, value, false):
		return nil, false // FerretDB may take them as identical and keep the old
	}
	out := append(bson.D{}, d...)
	out[i].Value = value
	return out, true
}

// plainComponent is a path component FerretDB and this applier read
// alike: not empty, no leading '$', not a number (an array index to a
// server).
func plainComponent(c string) bool {
	if c == "" || strings.HasPrefix(c, "$") {
		return false
	}
	return strings.Trim(c, "0123456789") != ""
}

// overlaps says whether one path is the other or a prefix of it.
func overlaps(a, b string) bool {
	return a == b || strings.HasPrefix(b, a+".") || strings.HasPrefix(a, b+".")
}

func index(d bson.D, key string) int {
	for i, f := range d {
		if f.Key == key {
			return i
		}
	}
	return -1
}

// sameBytes says whether two values have the same BSON type and bytes.
func sameBytes(a, b any) bool {
	ta, da, err := bson.MarshalValue(a)
	if err != nil {
		return false
	}
	tb, db, err := bson.MarshalValue(b)
	if err != nil {
		return false
	}
	return ta == tb && bytes.Equal(da, db)
}

// mayEqual says whether FerretDB may take a and b as equal although they
// differ: types.Compare within documents (compareDocuments: type order,
// key, value, field by field; arrays element by element, of one length)
// when keys is true, types.Identical (the same, keys left out) when false.
// A superset of either: numbers compare by value across types (a NaN as
// equal to any number).
func mayEqual(a, b any, keys bool) bool {
	if na, ok := number(a); ok {
		nb, ok := number(b)
		return ok && (na == nb || math.IsNaN(na) || math.IsNaN(nb))
	}
	switch x := a.(type) {
	case bson.A:
		y, ok := b.(bson.A)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !mayEqual(x[i], y[i], keys) {
				return false
			}
		}
		return true
	case bson.D:
		y, ok := b.(bson.D)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if (keys && x[i].Key != y[i].Key) || !mayEqual(x[i].Value, y[i].Value, keys) {
				return false
			}
		}
		return true
	}
	return sameBytes(a, b)
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int32:
		return float64(n), true
	case int64:
		return float64(n), true
	case float64:
		return n, true
	case bson.Decimal128:
		return math.NaN(), true // compared as maybe equal to any number
	}
	return 0, false
}

// storable says whether FerretDB's insert and update take d as it is
// (types.Document.ValidateData): keys valid UTF-8, no '$' prefix, no '.',
// no duplicates, at any depth, and the _id not an array. A document that
// is not goes to the server's own statement, which refuses it as before.
func storable(d bson.D) bool {
	if len(d) > 0 && d[0].Key == "_id" {
		if _, ok := d[0].Value.(bson.A); ok {
			return false
		}
	}
	return storableDoc(d)
}

func storableDoc(d bson.D) bool {
	seen := make(map[string]bool, len(d))
	for _, f := range d {
		if !utf8.ValidString(f.Key) || strings.HasPrefix(f.Key, "$") || strings.Contains(f.Key, ".") || seen[f.Key] {
			return false
		}
		seen[f.Key] = true
		if !storableValue(f.Value) {
			return false
		}
	}
	return true
}

func storableValue(v any) bool {
	switch x := v.(type) {
	case bson.D:
		return storableDoc(x)
	case bson.A:
		for _, el := range x {
			if !storableValue(el) {
				return false
			}
		}
	}
	return true
}

// scanUpdate is an update of a batch whose _id lookup is a scan.
type scanUpdate struct {
	ns  string
	ts  oplog.Timestamp
	id  bson.RawValue
	key string // idKey(id)
	// diff is a $v:2 diff; else u is the update as updateFromOplog
	// makes it (a replacement, or $set/$unset operators).
	diff bson.D
	u    bson.D
}

// statement is the update's own statement (no upsert: see write).
func (su scanUpdate) statement() bson.D {
	return bson.D{{Key: "q", Value: bson.D{{Key: "_id", Value: su.id}}}, {Key: "u", Value: su.u}}
}

// rewriteSet are the documents a batch's updates changed, to be deleted
// and inserted again.
type rewriteSet struct {
	ids     bson.A
	docs    []bson.Raw
	skipped []int64 // diff parts left out, per diff (skipDiffPart)
}

// chunks splits the documents into insert commands of at most
// replayBatchBytes each (at least one document each).
func (r rewriteSet) chunks() []bson.A {
	var out []bson.A
	var cur bson.A
	size := 0
	for _, d := range r.docs {
		if len(cur) > 0 && size+len(d) > replayBatchBytes {
			out = append(out, cur)
			cur, size = nil, 0
		}
		cur = append(cur, d)
		size += len(d)
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// flushScanUpdates reads the documents of the batch's scanUpdates with one
// find and applies each update in Go. What it cannot apply with certainty
// (see replaceDoc, applySetUnset, storable) goes to b.updates as the
// statement the replay sends without it. A document the find does not
// return stays missing, as the statement (no upsert) leaves it; one the
// update leaves as it was is not written.
//
// The documents read are held until the batch is written: past
// replayFoundBytes the read stops, and the updates whose documents it did
// not reach are returned, to go one statement each.
func (rp *replayer) flushScanUpdates(ctx context.Context, db, coll string, b *writeBatch) (rewriteSet, []scanUpdate, error) {
	var r rewriteSet
	ids := make(bson.A, len(b.scanUpdates))
	for i, su := range b.scanUpdates {
		ids[i] = su.id
	}
	found, complete, err := rp.findByIDs(ctx, db, coll, ids)
	if err != nil {
		return r, nil, fmt.Errorf("replay updates into %s: read the updated documents: %w", b.ns, err)
	}
	var rest []scanUpdate
	for _, su := range b.scanUpdates {
		doc, ok := found[su.key]
		if !ok {
			if !complete {
				rest = append(rest, su)
			}
			continue
		}
		u := su.u
		if su.diff != nil {
			applied, skipped, err := oplog.ApplyDiff(doc, su.diff)
			if err != nil {
				return r, nil, fmt.Errorf("%w: update of %s at %s: %w", ErrOplogEntry, su.ns, su.ts, err)
			}
			if err := oplog.CheckFieldNames(applied); err != nil {
				return r, nil, fmt.Errorf("%w: update of %s at %s: %w", ErrOplogEntry, su.ns, su.ts, err)
			}
			r.skipped = append(r.skipped, int64(skipped))
			// What the per-statement replay sends: a replacement.
			u = applied
		}
		var out bson.D
		certain := false
		if isOperatorUpdate(u) {
			out, certain = applySetUnset(doc, u)
		} else {
			out, certain = replaceDoc(doc, u)
		}
		if !certain || !storable(out) {
			b.updates = append(b.updates, bson.D{{Key: "q", Value: bson.D{{Key: "_id", Value: su.id}}}, {Key: "u", Value: u}})
			continue
		}
		raw, err := bson.Marshal(out)
		if err != nil {
			return r, nil, fmt.Errorf("%w: update of %s at %s: %w", ErrOplogEntry, su.ns, su.ts, err)
		}
		if sameBytes(out, doc) {
			continue // unchanged: the server writes nothing either
		}
		r.ids = append(r.ids, su.id)
		r.docs = append(r.docs, raw)
	}
	return r, rest, nil
}

// replayFoundBytes bounds the documents a batch's set-based updates hold.
const replayFoundBytes = 64 << 20

// replayFullReadFrom is the number of ObjectId _ids from which
// findByIDs reads the whole collection and picks the documents itself:
// FerretDB v1.24.2 matches a filter in Go against every document of the
// collection, a $in by comparing with each element in turn, so a $in of
// 1,000 _ids reads 100,000 documents about twice as slowly as no filter
// (docs/BENCHMARKS.md). An ObjectId equals another only byte for byte, as
// idKey keys it; other _ids (numbers equal across types) keep the $in.
const replayFullReadFrom = 64

func allObjectIDs(ids bson.A) bool {
	for _, v := range ids {
		if rv, ok := v.(bson.RawValue); !ok || rv.Type != bson.TypeObjectID {
			return false
		}
	}
	return true
}

// findByIDs reads the documents with these _ids (one read of the
// collection, however many batches the cursor takes), keyed by idKey,
// until they pass replayFoundBytes: complete says whether all were read.
func (rp *replayer) findByIDs(ctx context.Context, db, coll string, ids bson.A) (map[string]bson.D, bool, error) {
	out := make(map[string]bson.D, len(ids))
	find := bson.D{{Key: "find", Value: coll}, {Key: "filter", Value: bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}},
		{Key: "batchSize", Value: len(ids) + 1}} // all in the first batch: the cursor closes
	var want map[string]bool
	if len(ids) >= replayFullReadFrom && allObjectIDs(ids) {
		want = make(map[string]bool, len(ids))
		for _, id := range ids {
			want[idKey(id.(bson.RawValue))] = true
		}
		find = bson.D{{Key: "find", Value: coll}, {Key: "filter", Value: bson.D{}}}
	}
	raw, err := rp.read(ctx, db, coll, find)
	size := 0
	for first := true; ; first = false {
		if err != nil {
			return nil, false, err
		}
		var res struct {
			Cursor struct {
				ID         int64      `bson:"id"`
				FirstBatch []bson.Raw `bson:"firstBatch"`
				NextBatch  []bson.Raw `bson:"nextBatch"`
			} `bson:"cursor"`
		}
		if err := bson.Unmarshal(raw, &res); err != nil {
			return nil, false, err
		}
		docs := res.Cursor.NextBatch
		if first {
			docs = res.Cursor.FirstBatch
		}
		for _, d := range docs {
			key := idKey(d.Lookup("_id"))
			if want != nil && !want[key] {
				continue
			}
			var doc bson.D
			if err := bson.Unmarshal(d, &doc); err != nil {
				return nil, false, err
			}
			out[key] = doc
			size += len(d)
		}
		if res.Cursor.ID == 0 {
			return out, true, nil
		}
		if size >= replayFoundBytes {
			_, err := rp.run(ctx, db, bson.D{{Key: "killCursors", Value: coll}, {Key: "cursors", Value: bson.A{res.Cursor.ID}}})
			return out, false, err
		}
		raw, err = rp.run(ctx, db, bson.D{{Key: "getMore", Value: res.Cursor.ID}, {Key: "collection", Value: coll}})
	}
}

// isCappedTarget says whether the target collection is capped (a capped
// collection keeps its documents in insertion order, which a delete and
// an insert would change).
func (rp *replayer) isCappedTarget(ctx context.Context, db, coll string) (bool, error) {
	ns := db + "." + coll
	if c, ok := rp.capped[ns]; ok {
		return c, nil
	}
	raw, err := rp.run(ctx, db, bson.D{{Key: "listCollections", Value: 1}, {Key: "filter", Value: bson.D{{Key: "name", Value: coll}}}})
	if err != nil {
		return false, fmt.Errorf("list collection %s: %w", ns, err)
	}
	var res struct {
		Cursor struct {
			FirstBatch []struct {
				Options bson.D `bson:"options"`
			} `bson:"firstBatch"`
		} `bson:"cursor"`
	}
	if err := bson.Unmarshal(raw, &res); err != nil {
		return false, fmt.Errorf("list collection %s: %w", ns, err)
	}
	c := len(res.Cursor.FirstBatch) > 0 && isCapped(res.Cursor.FirstBatch[0].Options)
	if rp.capped == nil {
		rp.capped = map[string]bool{}
	}
	rp.capped[ns] = c
	return c, nil
}
