package restore

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/a0backup/a0/internal/archive"
)

// Insert batches stay under both bounds; with Parallel workers at most
// Parallel+1 batches are in memory, whatever the collection size.
const (
	batchDocs  = 1000
	batchBytes = 2 << 20
)

// Server error codes this package reacts to.
const (
	codeNamespaceExists = 48
	codeCommandNotFound = 59
)

// NonEmptyError lists the target collections that already hold documents.
type NonEmptyError struct{ Namespaces []string }

func (e *NonEmptyError) Error() string {
	return fmt.Sprintf("target collections are not empty (restore with drop to replace them): %s", strings.Join(e.Namespaces, ", "))
}

// Report compares what the archive promised with what the server holds
// after the restore.
type Report struct {
	Collections []CollectionReport `json:"collections"`
	// OplogApplied counts the oplog entries replayed.
	OplogApplied int64 `json:"oplog_applied"`
	// DryRun reports come from the plan alone: nothing was written or read
	// back, and OK only says the archive is restorable.
	DryRun bool `json:"dry_run,omitempty"`
	OK     bool `json:"ok"`
}

// CollectionReport is one restored collection.
//
// DocumentsExpected is the dumped count plus the net effect of the oplog
// replay on this collection, as the server reported it per write (upserts
// that created a document, deletes that removed one). When the oplog went
// through applyOps the per-write effect is unknown: CountCompared is then
// false and the count does not decide OK.
type CollectionReport struct {
	Namespace         string   `json:"namespace"`
	DocumentsDumped   int64    `json:"documents_dumped"`
	DocumentsExpected int64    `json:"documents_expected"`
	DocumentsFound    int64    `json:"documents_found"`
	CountCompared     bool     `json:"count_compared"`
	IndexesExpected   int      `json:"indexes_expected"`
	IndexesFound      int      `json:"indexes_found"`
	IndexErrors       []string `json:"index_errors,omitempty"`
	OplogEntries      int64    `json:"oplog_entries"`
	OK                bool     `json:"ok"`
}

// CheckTargets returns a *NonEmptyError naming every planned collection that
// already holds a document, unless opts.Drop.
func CheckTargets(ctx context.Context, client *mongo.Client, p *PlanResult, opts Options) error {
	if opts.Drop {
		return nil
	}
	var busy []string
	for _, c := range p.Collections {
		if c.Type == "view" {
			continue
		}
		err := client.Database(c.DB).Collection(c.Name).FindOne(ctx, bson.D{}, options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Err()
		switch {
		case err == nil:
			busy = append(busy, c.Namespace())
		case !errors.Is(err, mongo.ErrNoDocuments):
			return fmt.Errorf("check %s: %w", c.Namespace(), err)
		}
	}
	if len(busy) > 0 {
		return &NonEmptyError{Namespaces: busy}
	}
	return nil
}

// Run restores the planned collections from tgz, which must be the same
// archive Plan read, then replays its oplog. Without opts.Drop it first
// refuses non-empty targets (CheckTargets). A document or byte count that
// differs from the plan (the archive changed between passes) stops it.
func Run(ctx context.Context, client *mongo.Client, tgz io.Reader, p *PlanResult, opts Options, prog *Progress) (*Report, error) {
	if opts.DryRun {
		return dryReport(p), nil
	}
	if err := CheckTargets(ctx, client, p, opts); err != nil {
		return nil, err
	}
	if opts.Parallel <= 0 {
		// One insert stream per core, at least 2: measured on FerretDB
		// (x2 beats x4 on two cores); a MongoDB server on a bigger node
		// gets more.
		opts.Parallel = min(max(runtime.GOMAXPROCS(0), 2), 8)
	}
	prog.addTotal(int64(len(p.Collections)))
	sel, err := newMatcher(opts.NS)
	if err != nil {
		return nil, err
	}
	byFile := map[string]*PlannedCollection{}
	for i := range p.Collections {
		c := &p.Collections[i]
		if c.bsonFile != "" {
			byFile[c.bsonFile] = c
		} else {
			byFile[c.metaFile] = c
		}
	}
	ar, err := openEntries(tgz, opts)
	if err != nil {
		return nil, err
	}
	defer ar.Close()
	rs := &runState{client: client, opts: opts, prog: prog, done: map[string]bool{}, rep: map[string]*CollectionReport{}}
	var spool *os.File
	defer func() {
		if spool != nil {
			spool.Close()
			os.Remove(spool.Name())
		}
	}()
	replay := !opts.NoOplogReplay && p.OplogEntries > 0
	prog.setStep(StepData)
	br := bufio.NewReaderSize(nil, 1<<20)
	for {
		e, err := ar.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if e.Name == p.prefix+oplogName && replay {
			if !p.oplogEarly {
				if err := rs.buildIndexes(ctx); err != nil {
					return nil, err
				}
				br.Reset(ar)
				if err := rs.replayOplog(ctx, br, p, sel); err != nil {
					return nil, err
				}
				replay = false
				continue
			}
			// The oplog must wait for the data: keep it on disk, not in memory.
			if spool, err = os.CreateTemp("", "a0-restore-oplog-*"); err != nil {
				return nil, fmt.Errorf("spool oplog: %w", err)
			}
			if err := archive.CopyContext(ctx, spool, ar); err != nil {
				return nil, fmt.Errorf("spool oplog: %w", err)
			}
			continue
		}
		c := byFile[e.Name]
		if c == nil {
			continue
		}
		// A collection without a data file is created at its metadata
		// entry, so that it exists with its options before the oplog.
		var data io.Reader
		if e.Name == c.bsonFile {
			data = ar
		}
		if err := rs.restoreCollection(ctx, c, data, br); err != nil {
			return nil, err
		}
	}
	for i := range p.Collections {
		c := &p.Collections[i]
		if !rs.done[c.Namespace()] {
			if err := rs.restoreCollection(ctx, c, nil, br); err != nil {
				return nil, err
			}
		}
	}
	if err := rs.buildIndexes(ctx); err != nil {
		return nil, err
	}
	if replay && spool != nil {
		if _, err := spool.Seek(0, io.SeekStart); err != nil {
			return nil, fmt.Errorf("spool oplog: %w", err)
		}
		br.Reset(spool)
		if err := rs.replayOplog(ctx, br, p, sel); err != nil {
			return nil, err
		}
	}
	prog.setStep(StepReport)
	return rs.report(ctx, p)
}

// runState is what one Run accumulates across collections and the oplog.
type runState struct {
	// unindexed are the restored collections whose indexes are not built
	// yet, in archive order.
	unindexed  []*PlannedCollection
	client     *mongo.Client
	opts       Options
	prog       *Progress
	done       map[string]bool
	rep        map[string]*CollectionReport
	oplog      map[string]*oplogEffect
	viaApplyOp bool
	applied    int64
}

// restoreCollection drops (with Drop), creates and fills one collection,
// and queues it for buildIndexes; data is nil for a collection without a
// .bson entry.
func (rs *runState) restoreCollection(ctx context.Context, c *PlannedCollection, data io.Reader, br *bufio.Reader) error {
	ns := c.Namespace()
	db := rs.client.Database(c.DB)
	if rs.opts.Drop {
		if err := db.Collection(c.Name).Drop(ctx); err != nil {
			return fmt.Errorf("drop %s: %w", ns, err)
		}
	}
	create := append(bson.D{{Key: "create", Value: c.Name}}, c.Options...)
	if err := db.RunCommand(ctx, create).Err(); err != nil && !isCode(err, codeNamespaceExists) {
		return fmt.Errorf("create %s: %w", ns, err)
	}
	cr := &CollectionReport{Namespace: ns, DocumentsDumped: c.Documents, IndexesExpected: len(c.Indexes) + idIndex(c)}
	rs.rep[ns] = cr
	if data != nil {
		br.Reset(data)
		docs, n, err := rs.insertAll(ctx, db.Collection(c.Name), br)
		if err != nil {
			return fmt.Errorf("restore %s: %w", ns, err)
		}
		if docs != c.Documents || n != c.Bytes {
			return fmt.Errorf("%w: %s: second pass read %d documents / %d bytes, the plan counted %d / %d",
				ErrInvalidArchive, ns, docs, n, c.Documents, c.Bytes)
		}
	}
	rs.done[ns] = true
	rs.unindexed = append(rs.unindexed, c)
	return nil
}

// buildIndexes builds the indexes of every collection restored so far, once
// all their documents are in: building an index over loaded data is one
// scan and sort, where an index present during the inserts is updated per
// document, and a build beside the inserts takes the cores they need (on
// FerretDB both measured slower). mongorestore orders it the same way.
// Collections build in parallel, up to opts.Parallel, the largest first so
// that the longest build does not start last. (FerretDB serialises index
// builds behind one lock whatever we do; MongoDB runs them side by side.)
func (rs *runState) buildIndexes(ctx context.Context) error {
	todo := rs.unindexed
	rs.unindexed = nil
	rs.prog.setStep(StepIndexes)
	slices.SortStableFunc(todo, func(a, b *PlannedCollection) int { return cmp.Compare(b.Bytes, a.Bytes) })
	slots := make(chan struct{}, rs.opts.Parallel)
	var wg sync.WaitGroup
	for _, c := range todo {
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			rs.buildCollectionIndexes(ctx, c, rs.rep[c.Namespace()])
			rs.prog.collectionDone()
		}()
	}
	wg.Wait()
	return ctx.Err()
}

// buildCollectionIndexes creates c's indexes with one createIndexes, which
// lets the server build them together; if the server refuses the batch
// (FerretDB and a TTL or partial index), each index is tried alone so that
// the refused ones are reported without losing the others.
func (rs *runState) buildCollectionIndexes(ctx context.Context, c *PlannedCollection, cr *CollectionReport) {
	if len(c.Indexes) == 0 {
		return
	}
	db := rs.client.Database(c.DB)
	all := make(bson.A, len(c.Indexes))
	for i, spec := range c.Indexes {
		all[i] = spec
	}
	if db.RunCommand(ctx, bson.D{{Key: "createIndexes", Value: c.Name}, {Key: "indexes", Value: all}}).Err() == nil {
		return
	}
	for _, spec := range c.Indexes {
		cmd := bson.D{{Key: "createIndexes", Value: c.Name}, {Key: "indexes", Value: bson.A{spec}}}
		if err := db.RunCommand(ctx, cmd).Err(); err != nil {
			cr.IndexErrors = append(cr.IndexErrors, fmt.Sprintf("%v: %v", indexSpecName(spec), err))
		}
	}
}

// indexSpecName is the "name" field of an index spec (nil when missing).
func indexSpecName(spec bson.D) any {
	for _, e := range spec {
		if e.Key == "name" {
			return e.Value
		}
	}
	return nil
}

// insertAll streams the raw documents of r into unordered InsertMany
// batches run by opts.Parallel workers. Each batch owns one slab holding
// its documents, so memory is bounded by the number of batches in flight.
func (rs *runState) insertAll(ctx context.Context, coll *mongo.Collection, r *bufio.Reader) (docs, n int64, err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	batches := make(chan []any)
	var wg sync.WaitGroup
	for range rs.opts.Parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				if _, err := coll.InsertMany(ctx, b, options.InsertMany().SetOrdered(false)); err != nil {
					cancel(fmt.Errorf("insert: %w", err))
					return
				}
				var sz int64
				for _, d := range b {
					sz += int64(len(d.(bson.Raw)))
				}
				rs.prog.addDocs(int64(len(b)), sz)
			}
		}()
	}
	var (
		buf   []byte
		slab  []byte
		batch []any
	)
	send := func() error {
		if len(batch) == 0 {
			return nil
		}
		select {
		case batches <- batch:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		batch, slab = nil, nil
		return nil
	}
	docs, n, err = scanBSON(r, &buf, func(doc []byte) error {
		if len(slab)+len(doc) > cap(slab) {
			if err := send(); err != nil {
				return err
			}
			slab = make([]byte, 0, max(batchBytes, len(doc)))
		}
		off := len(slab)
		slab = append(slab, doc...)
		batch = append(batch, bson.Raw(slab[off:len(slab):len(slab)]))
		if len(batch) >= batchDocs {
			return send()
		}
		return nil
	})
	if err == nil {
		err = send()
	}
	close(batches)
	wg.Wait()
	if cause := context.Cause(ctx); err == nil && cause != nil {
		err = cause
	}
	return docs, n, err
}

// countDocuments asks the server for a collection's count from its own
// bookkeeping (collStats), which is exact after a clean restore and costs
// nothing on MongoDB; on FerretDB it is 20x faster than a counting query,
// which parses every document (as long as the inserts themselves). Servers
// without collStats get the counting query.
func countDocuments(ctx context.Context, client *mongo.Client, db, coll string) (int64, error) {
	var st struct {
		Count int64 `bson:"count"`
	}
	err := client.Database(db).RunCommand(ctx, bson.D{{Key: "collStats", Value: coll}}).Decode(&st)
	if err == nil {
		return st.Count, nil
	}
	if ctx.Err() != nil {
		return 0, err
	}
	return client.Database(db).Collection(coll).CountDocuments(ctx, bson.D{})
}

func (rs *runState) report(ctx context.Context, p *PlanResult) (*Report, error) {
	rep := &Report{OK: true, OplogApplied: rs.applied}
	for _, c := range p.Collections {
		ns := c.Namespace()
		cr := rs.rep[ns]
		coll := rs.client.Database(c.DB).Collection(c.Name)
		eff := rs.oplog[ns]
		cr.DocumentsExpected = c.Documents
		cr.CountCompared = c.Type != "view" && (eff == nil || !rs.viaApplyOp)
		if eff != nil {
			cr.OplogEntries = eff.entries
			cr.DocumentsExpected += eff.net
		}
		if c.Type != "view" {
			n, err := countDocuments(ctx, rs.client, c.DB, c.Name)
			if err != nil {
				return nil, fmt.Errorf("count %s: %w", ns, err)
			}
			cr.DocumentsFound = n
			cur, err := coll.Indexes().List(ctx)
			if err != nil {
				return nil, fmt.Errorf("list indexes of %s: %w", ns, err)
			}
			var idx []bson.Raw
			if err := cur.All(ctx, &idx); err != nil {
				return nil, fmt.Errorf("list indexes of %s: %w", ns, err)
			}
			cr.IndexesFound = len(idx)
		}
		cr.OK = len(cr.IndexErrors) == 0 && cr.IndexesFound >= cr.IndexesExpected &&
			(!cr.CountCompared || cr.DocumentsFound == cr.DocumentsExpected)
		rep.OK = rep.OK && cr.OK
		rep.Collections = append(rep.Collections, *cr)
	}
	return rep, nil
}

func dryReport(p *PlanResult) *Report {
	rep := &Report{DryRun: true, OK: true}
	for _, c := range p.Collections {
		rep.Collections = append(rep.Collections, CollectionReport{
			Namespace: c.Namespace(), DocumentsDumped: c.Documents, DocumentsExpected: c.Documents,
			IndexesExpected: len(c.Indexes) + idIndex(&c), OK: true,
		})
	}
	return rep
}

func isCode(err error, code int) bool {
	var ce mongo.CommandError
	if errors.As(err, &ce) {
		return int(ce.Code) == code
	}
	var se mongo.ServerError
	return errors.As(err, &se) && se.HasErrorCode(code)
}
