package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/a0backup/a0/internal/oplog"
)

// Bounds of one batch of the idempotent replay: far below the 16 MiB
// command limit and the 100,000 statements a server takes at once.
const (
	replayBatchOps   = 1000
	replayBatchBytes = 8 << 20
	// FerretDB 1.24 keeps every statement's cursor of an update command
	// open until the command ends, each on one of its 100 SQLite
	// connections: an update command of more statements waits forever
	// for a connection. Updates go in commands of at most this many.
	replayUpdateChunk = 32
	// replayParallel commands of one batch run at once: the statements
	// of a batch are on different documents. More than 2 contend for
	// SQLite's one writer (docs/BENCHMARKS.md).
	replayParallel = 2
)

// Concurrent update commands hold replayParallel*replayUpdateChunk of
// FerretDB's 100 SQLite connections per database: keep headroom for the
// appliance's own clients (this fails to compile past 64).
const _ = uint(64 - replayParallel*replayUpdateChunk)

// writeBatch is a run of consecutive CRUD entries on one collection, each
// on a different document: their order does not matter among them, so
// they go to the server as one delete, one insert and update commands (of
// replayUpdateChunk statements), replayParallel at once.
// An entry on a document already in the batch, on another collection, or
// any other entry flushes it first, which keeps the oplog's order for every
// document.
type writeBatch struct {
	ns      string
	ids     map[string]bool
	deletes bson.A
	// scanDeletes are the _ids of deletes whose lookup the server cannot
	// search an index for (see indexedLookup): sent as one statement.
	scanDeletes bson.A
	// scanUpdates are the updates whose _id lookup is a scan: read,
	// applied in Go and written back together (flushScanUpdates).
	scanUpdates []scanUpdate
	inserts     bson.A
	updates     bson.A
	bytes       int
	n           int
}

// idKey identifies a document's _id for the batch. The server takes equal
// values of different BSON types as one _id (1, 1.0 and NumberLong(1),
// also inside an embedded document or an array), so numbers are keyed by
// their value, recursively. Two keys may only be equal when the _ids may
// be: an over-merge (2^53 and 2^53+1 as one float) costs one more flush,
// never an order.
func idKey(v bson.RawValue) string {
	var b strings.Builder
	writeIDKey(&b, v)
	return b.String()
}

func writeIDKey(b *strings.Builder, v bson.RawValue) {
	switch v.Type {
	case bson.TypeInt32:
		writeNumberKey(b, float64(v.Int32()))
	case bson.TypeInt64:
		writeNumberKey(b, float64(v.Int64()))
	case bson.TypeDouble:
		writeNumberKey(b, v.Double())
	case bson.TypeDecimal128:
		if f, err := strconv.ParseFloat(v.Decimal128().String(), 64); err == nil && !math.IsNaN(f) {
			writeNumberKey(b, f)
			return
		}
		fmt.Fprintf(b, "%c%x;", v.Type, v.Value)
	case bson.TypeEmbeddedDocument, bson.TypeArray:
		b.WriteByte(byte(v.Type))
		b.WriteByte('{')
		elems, err := bson.Raw(v.Value).Elements()
		if err != nil {
			fmt.Fprintf(b, "%x", v.Value)
		}
		for _, e := range elems {
			if v.Type == bson.TypeEmbeddedDocument {
				fmt.Fprintf(b, "%q:", e.Key())
			}
			writeIDKey(b, e.Value())
		}
		b.WriteByte('}')
	default:
		fmt.Fprintf(b, "%c%x;", v.Type, v.Value)
	}
}

// writeNumberKey keys a number by its value, whatever its BSON type (-0
// is 0).
func writeNumberKey(b *strings.Builder, f float64) {
	if f == 0 {
		f = 0
	}
	fmt.Fprintf(b, "n%s;", strconv.FormatFloat(f, 'g', -1, 64))
}

// write queues a CRUD entry for the idempotent replay.
func (rp *replayer) write(ctx context.Context, e oplog.Entry) error {
	// The batch outlives the scan's buffer: it keeps its own copy.
	e, err := e.Copy()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrOplogEntry, err)
	}
	id, ok := e.ID()
	if !ok {
		return fmt.Errorf("%w: %s %s at %s without _id", ErrOplogEntry, e.Op, e.NS, e.TS)
	}
	key := idKey(id)
	b := &rp.batch
	if b.n > 0 && (b.ns != e.NS || b.ids[key] || b.n >= replayBatchOps || b.bytes+len(e.Raw) > replayBatchBytes) {
		if err := rp.flush(ctx); err != nil {
			return err
		}
	}
	filter := bson.D{{Key: "_id", Value: id}}
	switch e.Op {
	case "i":
		var doc bson.D
		if err := bson.Unmarshal(e.O, &doc); err != nil {
			return fmt.Errorf("%w: %w", ErrOplogEntry, err)
		}
		if err := oplog.CheckFieldNames(doc); err != nil {
			return fmt.Errorf("%w: insert into %s at %s: %w", ErrOplogEntry, e.NS, e.TS, err)
		}
		b.inserts = append(b.inserts, e.O)
	case "d":
		if rp.indexedLookup(id) {
			b.deletes = append(b.deletes, bson.D{{Key: "q", Value: filter}, {Key: "limit", Value: 1}})
		} else {
			b.scanDeletes = append(b.scanDeletes, id)
		}
	case "u":
		var o bson.D
		if err := bson.Unmarshal(e.O, &o); err != nil {
			return fmt.Errorf("%w: %w", ErrOplogEntry, err)
		}
		diff, isDiff := oplog.IsDiff(o)
		if isDiff && rp.indexedLookup(id) {
			// Read, apply, replace: exact for every diff (array
			// resizes, sub-diffs onto fields changed later).
			if err := rp.flush(ctx); err != nil {
				return err
			}
			if err := rp.applyDiff(ctx, e.NS, e.TS, id, diff); err != nil {
				return err
			}
			rp.count(e.NS, 0)
			return nil
		}
		var u bson.D
		if !isDiff {
			if u, err = updateFromOplog(o); err != nil {
				return fmt.Errorf("%w: update of %s at %s: %w", ErrOplogEntry, e.NS, e.TS, err)
			}
			if err := oplog.CheckFieldNames(u); err != nil && !isOperatorUpdate(u) {
				return fmt.Errorf("%w: update of %s at %s: %w", ErrOplogEntry, e.NS, e.TS, err)
			}
		}
		if !rp.indexedLookup(id) {
			b.scanUpdates = append(b.scanUpdates, scanUpdate{ns: e.NS, ts: e.TS, id: id, key: key, diff: diff, u: u})
			break
		}
		// No upsert: an update of a document the data does not hold is
		// followed, later in the same oplog, by the delete that removed
		// it before the collection was read.
		b.updates = append(b.updates, bson.D{{Key: "q", Value: filter}, {Key: "u", Value: u}})
	}
	if b.n == 0 {
		b.ns, b.ids = e.NS, map[string]bool{}
	}
	b.ids[key] = true
	b.n++
	b.bytes += len(e.Raw)
	return nil
}

// indexedLookup says whether the server finds a document by this _id
// through an index. FerretDB v1.24.2 on SQLite pushes only a string or
// ObjectId _id down to SQL, and searches an index for it only once
// Options.IndexIDLookups made one (the embedded server); any other _id
// (a number, a document...) and any _id on a server a0 cannot index that
// way is found by reading the whole collection: 1.9 s per statement at
// 100,000 documents (docs/BENCHMARKS.md). Such deletes go as one
// statement per batch ($in: one read of the collection for all of them).
// On a server with a real _id index $in is an index search too.
func (rp *replayer) indexedLookup(id bson.RawValue) bool {
	return rp.rs.opts.IndexIDLookups != nil && (id.Type == bson.TypeString || id.Type == bson.TypeObjectID)
}

func isOperatorUpdate(u bson.D) bool { return len(u) > 0 && strings.HasPrefix(u[0].Key, "$") }

// updateFromOplog turns the o of a non-diff "u" entry into an update:
//   - no "$" keys: o is the new document (a replacement);
//   - {$v: 1, $set: doc} where doc carries the _id: FerretDB's shape, which
//     logs the whole new document: a replacement, so fields removed by the
//     update are removed here too;
//   - otherwise $set/$unset/... operators (MongoDB < 5.0), minus $v.
func updateFromOplog(o bson.D) (bson.D, error) {
	ops := bson.D{}
	for _, f := range o {
		switch {
		case f.Key == "$v":
		case strings.HasPrefix(f.Key, "$"):
			ops = append(ops, f)
		default:
			return o, nil
		}
	}
	if len(ops) == 0 {
		return nil, errors.New("empty update")
	}
	if len(ops) == 1 && ops[0].Key == "$set" {
		if doc, ok := ops[0].Value.(bson.D); ok && hasField(doc, "_id") {
			return doc, nil
		}
	}
	return ops, nil
}

func hasField(d bson.D, key string) bool {
	for _, f := range d {
		if f.Key == key {
			return true
		}
	}
	return false
}

// applyDiff replays a $v:2 diff by reading the document, applying the diff
// as mongod does (oplog.ApplyDiff) and replacing it. A missing document is
// left missing (see write). The caller counts the entry.
func (rp *replayer) applyDiff(ctx context.Context, ns string, ts oplog.Timestamp, id bson.RawValue, diff bson.D) error {
	db, coll, _ := strings.Cut(ns, ".")
	res, err := rp.read(ctx, db, coll, bson.D{{Key: "find", Value: coll}, {Key: "filter", Value: bson.D{{Key: "_id", Value: id}}},
		{Key: "limit", Value: 1}, {Key: "singleBatch", Value: true}})
	if err != nil {
		return fmt.Errorf("update of %s at %s: %w", ns, ts, err)
	}
	var found struct {
		Cursor struct {
			FirstBatch []bson.D `bson:"firstBatch"`
		} `bson:"cursor"`
	}
	if err := bson.Unmarshal(res, &found); err != nil {
		return fmt.Errorf("update of %s at %s: %w", ns, ts, err)
	}
	if len(found.Cursor.FirstBatch) == 0 {
		return nil
	}
	doc, skipped, err := oplog.ApplyDiff(found.Cursor.FirstBatch[0], diff)
	if err != nil {
		return fmt.Errorf("%w: update of %s at %s: %w", ErrOplogEntry, ns, ts, err)
	}
	rp.skip(skipDiffPart, ns, int64(skipped))
	if err := oplog.CheckFieldNames(doc); err != nil {
		return fmt.Errorf("%w: update of %s at %s: %w", ErrOplogEntry, ns, ts, err)
	}
	upd := bson.D{{Key: "update", Value: coll}, {Key: "updates", Value: bson.A{bson.D{{Key: "q", Value: bson.D{{Key: "_id", Value: id}}}, {Key: "u", Value: doc}}}}}
	if _, err := rp.writeCmd(ctx, db, upd); err != nil {
		return fmt.Errorf("update of %s at %s: %w", ns, ts, err)
	}
	return nil
}

// flush sends the batch: its delete, insert and update commands at once
// (replayParallel), then, for inserts of documents the data holds already,
// replacements (the insert is older than the copy). flush returns once
// all are acknowledged, so the next batch comes after.
//
// Updates whose _id lookup is a scan (scanUpdates), two or more, go set
// based: one find reads their documents, each update is applied in Go
// (flushScanUpdates), and the changed documents are deleted with the
// batch's deletes (one statement) and inserted again, after the delete and
// before anything else of the batch is written; one such update alone
// goes as its own statement (one read either way).
func (rp *replayer) flush(ctx context.Context) error {
	b := rp.batch
	rp.batch = writeBatch{}
	if b.n == 0 {
		return nil
	}
	db, coll, _ := strings.Cut(b.ns, ".")
	var rewrite rewriteSet
	switch {
	case len(b.scanUpdates) > 1:
		capped, err := rp.isCappedTarget(ctx, db, coll)
		if err != nil {
			return fmt.Errorf("replay updates into %s: %w", b.ns, err)
		}
		if capped {
			// A delete and an insert would move the documents to the
			// end of the collection's order: one statement each.
			break
		}
		if rewrite, b.scanUpdates, err = rp.flushScanUpdates(ctx, db, coll, &b); err != nil {
			return err
		}
	}
	for _, su := range b.scanUpdates {
		if su.diff == nil {
			b.updates = append(b.updates, su.statement())
		} else if err := rp.applyDiff(ctx, su.ns, su.ts, su.id, su.diff); err != nil {
			return err
		}
	}
	// Every statement of the batch is on a different document, so the
	// commands do not depend on each other: they go to the server at once,
	// up to replayParallel, which overlaps FerretDB's per-statement work
	// (decode, apply, encode) on the cores.
	var (
		mu        sync.Mutex
		net       int64
		again     bson.A
		uncertain bool
	)
	scanDeletes := append(b.scanDeletes, rewrite.ids...)
	switch {
	case len(scanDeletes) == 1:
		// One read of the collection either way: the plain statement.
		b.deletes = append(b.deletes, bson.D{{Key: "q", Value: bson.D{{Key: "_id", Value: scanDeletes[0]}}}, {Key: "limit", Value: 1}})
	case len(scanDeletes) > 1:
		// The batch's _ids are distinct (idKey), and an _id is unique:
		// $in deletes exactly the documents the statements one by one
		// would, in one read. Its elements are compared as values (an
		// _id document with $ keys is not taken for an operator).
		b.deletes = append(b.deletes, bson.D{{Key: "q", Value: bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: scanDeletes}}}}}, {Key: "limit", Value: 0}})
	}
	deletes := func(ctx context.Context) error {
		res, err := rp.writeCmd(ctx, db, bson.D{{Key: "delete", Value: coll}, {Key: "deletes", Value: b.deletes}, {Key: "ordered", Value: false}})
		if err != nil {
			return fmt.Errorf("replay deletes into %s: %w", b.ns, err)
		}
		mu.Lock()
		net -= res.n
		uncertain = uncertain || res.resent
		mu.Unlock()
		return nil
	}
	if len(rewrite.ids) > 0 && len(b.deletes) > 0 {
		// The deletes go first: the rewritten documents and the
		// batch's inserts go in after every document the batch removes
		// or changes is out, so a unique index does not refuse them for
		// a value one of those held before.
		if err := deletes(ctx); err != nil {
			return err
		}
		net += int64(len(rewrite.ids)) // inserted again below
		b.deletes = nil
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(rp.parallelism())
	if len(b.deletes) > 0 {
		g.Go(func() error { return deletes(gctx) })
	}
	if len(b.inserts) > 0 {
		g.Go(func() error {
			res, err := rp.writeCmd(gctx, db, bson.D{{Key: "insert", Value: coll}, {Key: "documents", Value: b.inserts}, {Key: "ordered", Value: false}})
			if err != nil {
				return fmt.Errorf("replay inserts into %s: %w", b.ns, err)
			}
			mu.Lock()
			defer mu.Unlock()
			net += res.n
			uncertain = uncertain || res.resent
			for _, i := range res.dupKeys {
				doc := b.inserts[i].(bson.Raw)
				// upsert, as a member applying its oplog turns an
				// insert into one: a duplicate key refused by another
				// unique index (the _id is not there) then fails the
				// replay as a write error instead of a replacement
				// that matches nothing and loses the document.
				again = append(again, bson.D{{Key: "q", Value: bson.D{{Key: "_id", Value: doc.Lookup("_id")}}}, {Key: "u", Value: doc}, {Key: "upsert", Value: true}})
			}
			return nil
		})
	}
	for _, chunk := range rewrite.chunks() {
		g.Go(func() error {
			res, err := rp.writeCmd(gctx, db, bson.D{{Key: "insert", Value: coll}, {Key: "documents", Value: chunk}, {Key: "ordered", Value: false}})
			if err == nil && res.resent && len(res.dupKeys) > 0 {
				// Sent again after a transient error: the failed send
				// may have written some of them; those the server holds
				// exactly as sent are written.
				var held int
				if held, err = rp.heldAsSent(gctx, db, coll, chunk, res.dupKeys); err == nil {
					res.n += int64(held)
					res.dupKeys = res.dupKeys[:len(res.dupKeys)-held] // only their number counts below
				}
			}
			if err == nil && (len(res.dupKeys) > 0 || res.n != int64(len(chunk))) {
				err = fmt.Errorf("%d of %d written", res.n, len(chunk))
			}
			if err != nil {
				// They are deleted: the restore fails (partly
				// restored), as for any write the replay cannot make.
				return fmt.Errorf("replay updates into %s: documents deleted to be written back with their updates applied were not all written back: %w", b.ns, err)
			}
			return nil
		})
	}
	sendUpdates := func(ctx context.Context, g *errgroup.Group, updates bson.A) {
		for len(updates) > 0 {
			chunk := updates[:min(len(updates), replayUpdateChunk)]
			updates = updates[len(chunk):]
			g.Go(func() error {
				if _, err := rp.writeCmd(ctx, db, bson.D{{Key: "update", Value: coll}, {Key: "updates", Value: chunk}, {Key: "ordered", Value: false}}); err != nil {
					return fmt.Errorf("replay updates into %s: %w", b.ns, err)
				}
				return nil
			})
		}
	}
	sendUpdates(gctx, g, b.updates)
	if err := g.Wait(); err != nil {
		return err
	}
	// Inserts of documents the data holds already become replacements
	// (the insert is older than the copy).
	g2, gctx2 := errgroup.WithContext(ctx)
	g2.SetLimit(rp.parallelism())
	sendUpdates(gctx2, g2, again)
	if err := g2.Wait(); err != nil {
		return err
	}
	for i := 0; i < b.n; i++ {
		rp.count(b.ns, 0)
	}
	for _, sk := range rewrite.skipped {
		rp.skip(skipDiffPart, b.ns, sk)
	}
	eff := rp.rs.oplog[b.ns]
	eff.net += net
	eff.uncertain = eff.uncertain || uncertain
	return nil
}

// parallelism is how many commands of a batch flush sends at once:
// replayParallel, or one once the server said it is busy (runState.busy;
// retry.go says why).
func (rp *replayer) parallelism() int {
	if rp.rs.busy.Load() {
		return 1
	}
	return replayParallel
}

// writeResult is what a write command reports.
type writeResult struct {
	n       int64
	dupKeys []int // statements refused as duplicate keys (inserts)
	// resent: a transient error made writeCmd send the command again
	// after the server may have applied part of it: n then misses what
	// that part did (see writeCmd).
	resent bool
}

// writeCmd runs an insert, update or delete command and turns its write
// errors into an error, except duplicate keys of an insert, returned.
//
// A transient server error (isTransient: FerretDB's SQLITE_BUSY) sends the
// whole command again (withRetry). That is safe for every command the
// replay sends, although an unordered command may have been applied in
// part before the server failed it: each statement of a batch is on a
// different document (writeBatch), and each is idempotent on its own:
//   - an insert carries the document the oplog inserted: one the failed
//     send wrote comes back as a duplicate key and becomes the replacement
//     by the same document (flush), which changes nothing;
//   - a delete is by _id (one, or $in of the batch's): deleting a document
//     that is gone already deletes nothing;
//   - an update is by _id, without upsert, and is a whole document (a
//     replacement, FerretDB's $set of the whole document, or applyDiff's
//     result) or the $set/$unset of a pre-5.0 oplog, which mongod logs as
//     the resulting values (never $inc or $push): applied twice, the
//     document is the same as applied once.
//
// What is not exact after such a resend is the count: the server's n of
// the repeated send misses the documents the failed one inserted or
// deleted, so flush marks the collection's expected count unknown
// (oplogEffect.uncertain) rather than report a mismatch that is not one.
func (rp *replayer) writeCmd(ctx context.Context, db string, cmd bson.D) (writeResult, error) {
	var out writeResult
	sends := 0
	what := fmt.Sprintf("%s %s.%v", cmd[0].Key, db, cmd[0].Value)
	err := rp.rs.retry.withRetry(ctx, what, func(ctx context.Context) error {
		sends++
		var err error
		out, err = rp.writeOnce(ctx, db, cmd)
		return err
	})
	out.resent = sends > 1
	return out, err
}

// writeOnce is one send of writeCmd's command.
func (rp *replayer) writeOnce(ctx context.Context, db string, cmd bson.D) (writeResult, error) {
	raw, err := rp.run(ctx, db, cmd)
	var we mongo.WriteException
	if errors.As(err, &we) && we.WriteConcernError == nil && we.Raw != nil {
		// The driver turns write errors into an error; the reply
		// holds them with their statement numbers.
		raw, err = we.Raw, nil
	}
	if err != nil {
		return writeResult{}, err
	}
	var res struct {
		N           int64 `bson:"n"`
		WriteErrors []struct {
			Index  int    `bson:"index"`
			Code   int    `bson:"code"`
			ErrMsg string `bson:"errmsg"`
		} `bson:"writeErrors"`
	}
	if err := bson.Unmarshal(raw, &res); err != nil {
		return writeResult{}, err
	}
	out := writeResult{n: res.N}
	for _, we := range res.WriteErrors {
		if cmd[0].Key == "insert" && we.Code == codeDuplicateKey {
			out.dupKeys = append(out.dupKeys, we.Index)
			continue
		}
		return out, &statementError{Cmd: cmd[0].Key, Index: we.Index, Code: we.Code, Msg: we.ErrMsg}
	}
	return out, nil
}

// heldAsSent counts the documents of docs (at the statement numbers dups,
// refused as duplicate keys by a command sent again) that the server holds
// byte for byte as sent: an earlier send wrote them. One read for all.
func (rp *replayer) heldAsSent(ctx context.Context, db, coll string, docs bson.A, dups []int) (int, error) {
	ids := make(bson.A, 0, len(dups))
	for _, i := range dups {
		ids = append(ids, docs[i].(bson.Raw).Lookup("_id"))
	}
	raw, err := rp.read(ctx, db, coll, bson.D{{Key: "find", Value: coll}, {Key: "filter", Value: bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}},
		{Key: "batchSize", Value: len(ids) + 1}, {Key: "singleBatch", Value: true}})
	if err != nil {
		return 0, err
	}
	var res struct {
		Cursor struct {
			FirstBatch []bson.Raw `bson:"firstBatch"`
		} `bson:"cursor"`
	}
	if err := bson.Unmarshal(raw, &res); err != nil {
		return 0, err
	}
	stored := make(map[string]bson.Raw, len(res.Cursor.FirstBatch))
	for _, d := range res.Cursor.FirstBatch {
		stored[idKey(d.Lookup("_id"))] = d
	}
	held := 0
	for _, i := range dups {
		d := docs[i].(bson.Raw)
		if st, ok := stored[idKey(d.Lookup("_id"))]; ok && bytes.Equal(st, d) {
			held++
		}
	}
	return held, nil
}

// read runs a read command of the replay (a find on db.coll), sent again
// as it is after a transient server error (withRetry): a read changes
// nothing, so a repeat is always safe.
func (rp *replayer) read(ctx context.Context, db, coll string, cmd bson.D) (bson.Raw, error) {
	var raw bson.Raw
	err := rp.rs.retry.withRetry(ctx, "find "+db+"."+coll, func(ctx context.Context) error {
		var err error
		raw, err = rp.run(ctx, db, cmd)
		return err
	})
	return raw, err
}
