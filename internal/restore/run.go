package restore

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/xoptions"

	"github.com/a0backup/a0/internal/archive"
	"github.com/a0backup/a0/internal/spool"
)

// Insert batches stay under both bounds; with Parallel workers at most
// Parallel+1 batches are in memory, whatever the collection size.
const (
	batchDocs  = 1000
	batchBytes = 2 << 20
)

// Server error codes this package reacts to.
const (
	codeNamespaceExists    = 48
	codeInvalidNamespace   = 73
	codeCommandNotFound    = 59
	codeValidationFailure  = 121
	codeDuplicateKeyLegacy = 11001
)

// maxInsertErrors is how many refused documents' messages a collection's
// report keeps (all of them are counted).
const maxInsertErrors = 5

// InsertError is the first document the server refused when
// Options.StopOnError is set.
type InsertError struct {
	Namespace string
	// Document is the index of the document in the collection's data.
	Document int64
	Code     int
	Message  string
}

func (e *InsertError) Error() string {
	return fmt.Sprintf("the server refused document %d of %s (code %d: %s); stopped at the first refused document (--stop-on-error)",
		e.Document, e.Namespace, e.Code, e.Message)
}

// refusals counts one collection's refused documents.
type refusals struct {
	mu sync.Mutex
	cr *CollectionReport
}

func (f *refusals) add(code int, msg string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cr.DocumentsFailed++
	switch code {
	case codeDuplicateKey, codeDuplicateKeyLegacy:
		f.cr.DuplicateKeys++
	case codeValidationFailure:
		f.cr.ValidationFailures++
	}
	if len(f.cr.InsertErrors) < maxInsertErrors {
		f.cr.InsertErrors = append(f.cr.InsertErrors, fmt.Sprintf("code %d: %s", code, msg))
	}
}

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
	// DocumentsFailed sums the collections' refused documents.
	DocumentsFailed int64 `json:"documents_failed,omitempty"`
	// OplogSkipped counts the oplog entries not replayed, by reason: an
	// entry kind the decision table skips (docs/consistency.md), or
	// namespace-not-restored, after-consistent-to, transaction-aborted,
	// transaction-uncommitted, update-diff-part-superseded.
	OplogSkipped map[string]int64 `json:"oplog_skipped,omitempty"`
	// OplogSkippedNamespaces counts the same entries by reason, then by
	// the namespace each names (a time-series collection by its name, a
	// view write by the view, "-" for an entry naming none): nothing is
	// skipped without its namespace.
	OplogSkippedNamespaces map[string]map[string]int64 `json:"oplog_skipped_namespaces,omitempty"`
	// OplogReplay says how entries reached the server: "applyOps"
	// (MongoDB) or "writes" (idempotent batched writes, FerretDB).
	OplogReplay string `json:"oplog_replay,omitempty"`
	// IndexesFromOplog counts the index builds the oplog added
	// (createIndexes, commitIndexBuild), built after the replay.
	IndexesFromOplog int `json:"indexes_from_oplog,omitempty"`
	// ServerRetries counts the commands sent again after a transient
	// server error (FerretDB's SQLITE_BUSY, see withRetry). A collection
	// whose replayed insert or delete was sent again has no exact
	// expected count (its CountCompared is false): the failed send may
	// have written part of it.
	ServerRetries int64 `json:"server_retries,omitempty"`
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
	// DocumentsFailed counts the documents the server refused, of which
	// DuplicateKeys had a duplicate key and ValidationFailures failed the
	// collection's validator; InsertErrors holds the first few messages.
	DocumentsFailed    int64    `json:"documents_failed,omitempty"`
	DuplicateKeys      int64    `json:"duplicate_keys,omitempty"`
	ValidationFailures int64    `json:"validation_failures,omitempty"`
	InsertErrors       []string `json:"insert_errors,omitempty"`
	OK                 bool     `json:"ok"`
}

// CheckTargets returns a *NonEmptyError naming every planned collection that
// already holds a document, unless opts.Drop.
func CheckTargets(ctx context.Context, client *mongo.Client, p *PlanResult, opts Options) error {
	if opts.Drop {
		return nil
	}
	var busy []string
	targets := make([]PlannedCollection, 0, len(p.Collections)+len(p.OplogOnly))
	targets = append(targets, p.Collections...)
	for _, ns := range p.OplogOnly {
		// Collections only the oplog creates are restored from empty:
		// the same guard holds for them.
		db, name, _ := strings.Cut(ns, ".")
		targets = append(targets, PlannedCollection{DB: db, Name: name, Type: "collection"})
	}
	for _, c := range targets {
		if c.Type == "view" {
			continue
		}
		err := client.Database(c.DB).Collection(c.Name).FindOne(ctx, bson.D{}, options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Err()
		switch {
		case err == nil:
			busy = append(busy, c.Namespace())
		case isCode(err, codeInvalidNamespace):
			return nameError(c, err)
		case !errors.Is(err, mongo.ErrNoDocuments):
			return fmt.Errorf("check %s: %w", c.Namespace(), err)
		}
	}
	if len(busy) > 0 {
		return &NonEmptyError{Namespaces: busy}
	}
	return nil
}

// nameError is the refusal of a namespace the server cannot hold (FerretDB
// holds collection names of at most 235 bytes, MongoDB namespaces of 255).
// A short collection name is not the cause (FerretDB also refuses database
// names outside [a-zA-Z0-9_-], which --ns-to can ask for): the error then
// names the namespace, not the collection name's length.
func nameError(c PlannedCollection, err error) error {
	what := "name of"
	if len(c.Name) >= longName {
		what = fmt.Sprintf("collection name (%d bytes) of", len(c.Name))
	}
	return &UnsupportedError{Namespace: c.Namespace(), Feature: what, Err: err}
}

// longName is the collection name length from which a server may refuse a
// name for its length alone: probeNames asks about such names before
// anything is written.
const longName = 200

// probeNames asks the server about each long name, and about one name in
// each target database, before anything is written: a name it cannot hold
// is refused then, not after a drop. A database name is a server's too:
// FerretDB refuses one outside [a-zA-Z0-9_-], which a backup of a real
// MongoDB or a --ns-to may hold; found at the first drop under --drop, it
// left a restore marker and "partly restored" where nothing was written.
func probeNames(ctx context.Context, client *mongo.Client, p *PlanResult) error {
	targets := append([]PlannedCollection(nil), p.Collections...)
	for _, ns := range p.OplogOnly {
		db, name, _ := strings.Cut(ns, ".")
		targets = append(targets, PlannedCollection{DB: db, Name: name, Type: "collection"})
	}
	dbs := map[string]bool{}
	for _, c := range targets {
		if len(c.Name) < longName && dbs[c.DB] {
			continue // every server holds it, in a database already asked about
		}
		dbs[c.DB] = true
		err := client.Database(c.DB).Collection(c.Name).FindOne(ctx, bson.D{}, options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Err()
		if isCode(err, codeInvalidNamespace) {
			return nameError(c, err)
		}
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
	if err := Preflight(ctx, client, p, opts); err != nil {
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
	ren, err := opts.renaming(sel, p.Renamed)
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
	authz := map[string]*PlannedCollection{}
	for i := range p.authz {
		if c := &p.authz[i]; c.bsonFile != "" {
			authz[c.bsonFile] = c
		}
	}
	budget := opts.spoolBudget()
	ar, err := openEntries(tgz, opts, budget)
	if err != nil {
		return nil, err
	}
	defer ar.Close()
	rs := &runState{client: client, opts: opts, prog: prog, done: map[string]bool{}, rep: map[string]*CollectionReport{},
		catalog: newIndexCatalog(), runHook: opts.testCommandHook, ren: ren, retry: newRetries(opts)}
	rs.retry.onTransient = func() {
		if !rs.busy.Swap(true) {
			rs.retry.log.Warn("restore: the server said it is busy: the oplog replay sends one command at a time from now on")
		}
	}
	if replay := !opts.NoOplogReplay && (p.OplogEntries > 0 || opts.Extra != nil); replay && opts.Drop {
		for _, ns := range p.OplogOnly {
			db, name, _ := strings.Cut(ns, ".")
			if err := client.Database(db).Collection(name).Drop(ctx); err != nil {
				return nil, fmt.Errorf("drop %s: %w", ns, err)
			}
		}
	}
	var oplogSpool *spool.File
	defer func() {
		if oplogSpool != nil {
			oplogSpool.Remove()
		}
	}()
	replay := !opts.NoOplogReplay && p.OplogEntries > 0
	if !replay && (opts.Extra == nil || opts.NoOplogReplay) && (opts.testEarlyIndexes || !isFerretDB(ctx, client)) {
		// No replay follows the data: each collection's indexes are
		// built once its data is in (earlyBuilds).
		rs.early = newEarlyBuilds(ctx, rs)
		defer rs.early.stop()
	}
	dataIn := false
	afterData := func() error {
		if dataIn || opts.AfterData == nil {
			return nil
		}
		dataIn = true
		return opts.AfterData(ctx)
	}
	prog.setStep(StepData)
	br := bufio.NewReaderSize(nil, 1<<20)
	// Collections of different databases load at once (see loader);
	// everything after the data waits for lo.wait.
	lo := newLoader(ctx, rs, p)
	defer lo.stop()
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
				if err := lo.wait(); err != nil {
					return nil, err
				}
				// Every collection is in (no data entry follows the
				// oplog): replay now, build the indexes after.
				if err := afterData(); err != nil {
					return nil, err
				}
				br.Reset(ar)
				// Users and roles before the replay, which may change
				// them (mongorestore orders it so).
				if err := rs.mergeAuthz(ctx); err != nil {
					return nil, err
				}
				if err := rs.replayOplog(ctx, br, p, sel); err != nil {
					return nil, err
				}
				replay = false
				continue
			}
			// The oplog must wait for the data: keep it on disk, not in
			// memory, sealed under a key only this process holds.
			// Bounded before a byte is written: by the size the tar header
			// declares, or, for a mongodump archive's oplog (no declared
			// size), write by write.
			if err := budget.Take(e.Size); err != nil {
				return nil, fmt.Errorf("%w: spool oplog: %w", ErrInvalidArchive, err)
			}
			if oplogSpool, err = spool.Create(opts.SpoolDir, OplogSpoolPattern); err != nil {
				return nil, fmt.Errorf("spool oplog: %w", err)
			}
			var w io.Writer = oplogSpool
			if e.Size == 0 {
				w = budget.Writer(oplogSpool)
			}
			if err := archive.CopyContext(ctx, w, ar); err != nil {
				if errors.Is(err, spool.ErrBound) {
					err = fmt.Errorf("%w: %w", ErrInvalidArchive, err)
				}
				return nil, fmt.Errorf("spool oplog: %w", err)
			}
			continue
		}
		if a := authz[e.Name]; a != nil {
			if err := rs.loadAuthz(ctx, a, ar, br); err != nil {
				return nil, err
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
		if data != nil && lo != nil {
			if err := lo.load(c, data); err != nil {
				return nil, err
			}
			continue
		}
		if err := rs.restoreCollection(ctx, c, data, br); err != nil {
			return nil, err
		}
	}
	if err := lo.wait(); err != nil {
		return nil, err
	}
	for i := range p.Collections {
		c := &p.Collections[i]
		if !rs.done[c.Namespace()] {
			if err := rs.restoreCollection(ctx, c, nil, br); err != nil {
				return nil, err
			}
		}
	}
	if err := afterData(); err != nil {
		return nil, err
	}
	if replay && oplogSpool != nil {
		sr, err := oplogSpool.Reader()
		if err != nil {
			return nil, fmt.Errorf("spool oplog: %w", err)
		}
		br.Reset(sr)
		if err := rs.mergeAuthz(ctx); err != nil {
			return nil, err
		}
		if err := rs.replayOplog(ctx, br, p, sel); err != nil {
			return nil, err
		}
	}
	if opts.Extra != nil && !opts.NoOplogReplay {
		// The continuous archive's entries after consistent_to, up to
		// the point in time, right after the backup's own.
		if err := rs.mergeAuthz(ctx); err != nil {
			return nil, err
		}
		if err := rs.replayExtra(ctx, p, sel); err != nil {
			return nil, err
		}
	}
	rs.endReplay()
	// Data, then the oplog up to consistent_to (and the archive's to the
	// point in time), then the indexes (the dumped ones and the oplog's),
	// as mongorestore orders it.
	if err := rs.buildIndexes(ctx); err != nil {
		return nil, err
	}
	// Users and roles after the data and before the oplog replay, which
	// may change them, as mongorestore orders it (here when no replay ran).
	if err := rs.mergeAuthz(ctx); err != nil {
		return nil, err
	}
	prog.setStep(StepReport)
	return rs.report(ctx, p)
}

// runState is what one Run accumulates across collections and the oplog.
type runState struct {
	// catalog holds the indexes to build once the oplog is replayed.
	catalog *indexCatalog
	client  *mongo.Client
	opts    Options
	prog    *Progress
	done    map[string]bool
	rep     map[string]*CollectionReport
	oplog   map[string]*oplogEffect
	// rp is the replay's one replayer (rs.replayer), lookupsDone whether
	// Options.IndexIDLookups ran.
	rp          *replayer
	lookupsDone bool
	replayEnded bool
	viaApplyOp  bool
	applied     int64
	// authzLoaded says users or roles wait in admin.temp* for mergeAuthz.
	authzLoaded bool
	skipped     map[string]int64
	skippedNS   map[string]map[string]int64
	// runHook wraps the replay's commander (tests record commands).
	runHook func(commander) commander
	// early builds indexes while other collections load (nil when a
	// replay follows); written counts each collection's documents the
	// server acknowledged (the count check's figure, see countOne).
	early   *earlyBuilds
	written map[string]int64
	// retry sends again what a transient server error refused (retry.go);
	// busy is set once one came: the replay then sends one command at a
	// time (replayer.parallelism).
	retry *retries
	busy  atomic.Bool
	// ren is the restore's renaming, nil when it renames nothing.
	ren *nsRename
	// mu guards rep, done and catalog while collections load at once
	// (loader).
	mu sync.Mutex
}

// command runs one command of the replay and returns the server's reply.
func (rs *runState) command(ctx context.Context, db string, cmd bson.D) (bson.Raw, error) {
	return rs.client.Database(db).RunCommand(ctx, cmd).Raw()
}

// restoreCollection drops (with Drop), creates and fills one collection,
// and queues it for buildIndexes; data is nil for a collection without a
// .bson entry.
func (rs *runState) restoreCollection(ctx context.Context, c *PlannedCollection, data io.Reader, br *bufio.Reader) error {
	ns := c.Namespace()
	db := rs.client.Database(c.DB)
	if err := createCollection(ctx, rs.client, c, rs.opts); err != nil {
		return err
	}
	cr := &CollectionReport{Namespace: ns, DocumentsDumped: c.Documents, IndexesExpected: len(c.Indexes) + idIndex(c)}
	rs.mu.Lock()
	rs.rep[ns] = cr
	rs.mu.Unlock()
	var written atomic.Int64
	if data != nil {
		br.Reset(data)
		docs, n, err := rs.insertAll(ctx, db.Collection(dataCollection(c)), br, insertMode{
			ns: ns, ordered: isCapped(c.Options), refused: &refusals{cr: cr}, written: &written})
		if err != nil {
			return fmt.Errorf("restore %s: %w", ns, err)
		}
		if docs != c.Documents || n != c.Bytes {
			return fmt.Errorf("%w: %s: second pass read %d documents / %d bytes, the plan counted %d / %d",
				ErrInvalidArchive, ns, docs, n, c.Documents, c.Bytes)
		}
	}
	rs.mu.Lock()
	rs.done[ns] = true
	rs.catalog.add(c)
	if data != nil {
		if rs.written == nil {
			rs.written = map[string]int64{}
		}
		rs.written[ns] = written.Load()
	}
	ce := rs.catalog.colls[ns]
	rs.mu.Unlock()
	if rs.early != nil {
		rs.early.start(ce, cr)
	}
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
	// The step says indexes while the last early builds end too.
	rs.prog.setStep(StepIndexes)
	rs.early.wait()
	var todo []*catalogEntry
	for _, c := range rs.catalog.sorted() {
		if !rs.early.isStarted(c.db + "." + c.name) {
			todo = append(todo, c)
		}
	}
	for _, c := range todo {
		// A collection the oplog alone created has no report yet: give
		// it one now, so that the indexes it refuses are named in it.
		if ns := c.db + "." + c.name; rs.rep[ns] == nil {
			rs.rep[ns] = &CollectionReport{Namespace: ns}
		}
	}
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
			rs.buildCollectionIndexes(ctx, c, rs.rep[c.db+"."+c.name])
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
func (rs *runState) buildCollectionIndexes(ctx context.Context, c *catalogEntry, cr *CollectionReport) {
	if cr != nil {
		cr.IndexesExpected = len(c.specs) + 1
		if c.dropped {
			cr.IndexesExpected = 0
		}
	}
	if len(c.specs) == 0 {
		return
	}
	db := rs.client.Database(c.db)
	all := make(bson.A, len(c.specs))
	for i, spec := range c.specs {
		all[i] = spec
	}
	// ignoreUnknownIndexOptions: an option an older server wrote and a
	// newer one does not know is left out, not the index refused
	// (mongorestore sends it to 4.1.9+; FerretDB accepts and ignores it).
	ignore := bson.E{Key: "ignoreUnknownIndexOptions", Value: true}
	if db.RunCommand(ctx, bson.D{{Key: "createIndexes", Value: c.name}, {Key: "indexes", Value: all}, ignore}).Err() == nil {
		return
	}
	for _, spec := range c.specs {
		cmd := bson.D{{Key: "createIndexes", Value: c.name}, {Key: "indexes", Value: bson.A{spec}}, ignore}
		if err := db.RunCommand(ctx, cmd).Err(); err != nil && cr != nil {
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

// hasZeroTimestamp reports whether a valid BSON document has a top-level
// Timestamp(0,0), without allocating.
func hasZeroTimestamp(doc []byte) bool {
	if len(doc) < 5 {
		return false
	}
	rest := doc[4 : len(doc)-1]
	for len(rest) > 0 {
		elem, r, ok := bsoncore.ReadElement(rest)
		if !ok {
			return false
		}
		if elem[0] == byte(bson.TypeTimestamp) {
			if v := elem.Value().Data; len(v) == 8 && binary.LittleEndian.Uint64(v) == 0 {
				return true
			}
		}
		rest = r
	}
	return false
}

// dataCollection is where a collection's documents go: a time-series
// collection's are its buckets, as mongodump dumped them.
func dataCollection(c *PlannedCollection) string {
	if c.Type == "timeseries" {
		return "system.buckets." + c.Name
	}
	return c.Name
}

// insertMode is how insertAll writes one collection.
type insertMode struct {
	ns string
	// ordered keeps the archive's document order: one stream of batches,
	// one after the other, for capped collections, whose order is their
	// content (mongorestore restores them with one insertion worker too).
	ordered bool
	refused *refusals
	// written counts the documents the server acknowledged.
	written *atomic.Int64
}

// isCapped reports whether collection options make a capped collection.
func isCapped(opts bson.D) bool {
	for _, e := range opts {
		if e.Key == "capped" {
			b, ok := e.Value.(bool)
			return ok && b
		}
	}
	return false
}

// insertAll streams the raw documents of r into InsertMany batches run by
// opts.Parallel workers, or by one worker, batch after batch, for an
// ordered mode. Each batch owns one slab holding its documents, so memory
// is bounded by the number of batches in flight. Document validation is
// bypassed, as mongorestore does: the documents were valid when they were
// dumped. Documents the server refuses are counted in mode.refused and the
// rest goes on, unless opts.StopOnError, which stops at the first with an
// *InsertError.
func (rs *runState) insertAll(ctx context.Context, coll *mongo.Collection, r *bufio.Reader, mode insertMode) (docs, n int64, err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	type batch struct {
		first int64 // index of its first document in the collection
		docs  []any
		// zeroTS: a document has a top-level Timestamp(0,0), which a
		// MongoDB server replaces with the current time on insert.
		zeroTS bool
	}
	batches := make(chan batch)
	workers := rs.opts.Parallel
	if mode.ordered {
		workers = 1
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				if err := rs.insertBatch(ctx, coll, b.first, b.docs, b.zeroTS, mode); err != nil {
					cancel(err)
					return
				}
				var sz int64
				for _, d := range b.docs {
					sz += int64(len(d.(bson.Raw)))
				}
				rs.prog.addDocs(int64(len(b.docs)), sz)
			}
		}()
	}
	var (
		buf    []byte
		slab   []byte
		cur    []any
		first  int64
		zeroTS bool
	)
	send := func() error {
		if len(cur) == 0 {
			return nil
		}
		select {
		case batches <- batch{first, cur, zeroTS}:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		first += int64(len(cur))
		cur, slab, zeroTS = nil, nil, false
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
		cur = append(cur, bson.Raw(slab[off:len(slab):len(slab)]))
		zeroTS = zeroTS || hasZeroTimestamp(doc)
		if len(cur) >= batchDocs {
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

// insertBatch inserts one batch, unordered: the server goes on after a
// refused document (an ordered insert would stop there, and FerretDB's
// ordered insert skips a part of the batch after it and still goes on).
// Refusals are counted (or, with StopOnError, returned as an
// *InsertError); any other failure is returned. In one stream the server
// applies a batch's documents in their order, which keeps a capped
// collection's insertion order.
func (rs *runState) insertBatch(ctx context.Context, coll *mongo.Collection, first int64, docs []any, zeroTS bool, mode insertMode) error {
	opts := options.InsertMany().SetOrdered(false).SetBypassDocumentValidation(true)
	if zeroTS {
		// What mongorestore does: a MongoDB server (5.0 and later)
		// then keeps Timestamp(0,0) as it is; FerretDB never replaces
		// it and ignores the field. Only batches that need it carry it,
		// so that an older server is not sent a field it refuses.
		if err := xoptions.SetInternalInsertManyOptions(opts, "addCommandFields", bson.D{{Key: "bypassEmptyTsReplacement", Value: true}}); err != nil {
			return fmt.Errorf("insert: %w", err)
		}
	}
	// A transient server error sends the batch again (withRetry): the
	// failed send may have written part of it, whose documents the
	// repeated send gets back as duplicate keys (see sentBefore).
	var res *mongo.InsertManyResult
	sends := 0
	err := rs.retry.withRetry(ctx, "insert into "+mode.ns, func(ctx context.Context) error {
		sends++
		send := func(ctx context.Context) error {
			var err error
			res, err = coll.InsertMany(ctx, docs, opts)
			return err
		}
		if rs.opts.testInsertHook != nil {
			return rs.opts.testInsertHook(ctx, coll, docs, send)
		}
		return send(ctx)
	})
	if err == nil {
		if mode.written != nil {
			mode.written.Add(int64(len(res.InsertedIDs)))
		}
		return nil
	}
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) == 0 {
		return fmt.Errorf("insert: %w", err)
	}
	refusals := bwe.WriteErrors
	if sends > 1 {
		if refusals, err = sentBefore(ctx, coll, docs, refusals); err != nil {
			return fmt.Errorf("insert: %w", err)
		}
	}
	if len(refusals) > 0 && rs.opts.StopOnError {
		we := refusals[0]
		return &InsertError{Namespace: mode.ns, Document: first + int64(we.Index), Code: we.Code, Message: we.Message}
	}
	for _, we := range refusals {
		mode.refused.add(we.Code, fmt.Sprintf("document %d: %s", first+int64(we.Index), we.Message))
	}
	// An unordered batch writes every document it does not refuse.
	if mode.written != nil {
		mode.written.Add(int64(len(docs) - len(refusals)))
	}
	return nil
}

// sentBefore returns the refusals of a batch sent again after a transient
// error, less the duplicate keys of documents an earlier send wrote: the
// server holds, under that _id, exactly the document sent (byte for
// byte), which is the document restored, not a refusal. A duplicate whose
// stored document differs stays refused.
func sentBefore(ctx context.Context, coll *mongo.Collection, docs []any, wes []mongo.BulkWriteError) ([]mongo.BulkWriteError, error) {
	var out []mongo.BulkWriteError
	for _, we := range wes {
		doc, ok := docs[we.Index].(bson.Raw)
		if !ok || (we.Code != codeDuplicateKey && we.Code != codeDuplicateKeyLegacy) {
			out = append(out, we)
			continue
		}
		stored, err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: doc.Lookup("_id")}}).Raw()
		if errors.Is(err, mongo.ErrNoDocuments) {
			out = append(out, we)
			continue
		}
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(stored, doc) {
			out = append(out, we)
		}
	}
	return out, nil
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
	rep := &Report{OK: true, OplogApplied: rs.applied, OplogSkipped: rs.skipped, OplogSkippedNamespaces: rs.skippedNS,
		ServerRetries: rs.retry.count()}
	if rs.oplog != nil {
		rep.OplogReplay = "writes"
		if rs.viaApplyOp {
			rep.OplogReplay = "applyOps"
		}
	}
	for _, ce := range rs.catalog.colls {
		rep.IndexesFromOplog += ce.fromOplog
	}
	colls := p.Collections
	planned := make(map[string]bool, len(colls))
	for _, c := range colls {
		planned[c.Namespace()] = true
	}
	for _, ns := range p.OplogOnly {
		// Created by the oplog alone: reported like the others.
		db, name, _ := strings.Cut(ns, ".")
		if _, ok := rs.oplog[ns]; ok && !planned[ns] {
			planned[ns] = true
			colls = append(colls[:len(colls):len(colls)], PlannedCollection{DB: db, Name: name, Type: "collection"})
			if rs.rep[ns] == nil {
				rs.rep[ns] = &CollectionReport{Namespace: ns, IndexesExpected: 1}
				if ce := rs.catalog.colls[ns]; ce != nil {
					rs.rep[ns].IndexesExpected += len(ce.specs)
				}
			}
		}
	}
	found, err := rs.countAll(ctx, colls)
	if err != nil {
		return nil, err
	}
	for i, c := range colls {
		ns := c.Namespace()
		cr := rs.rep[ns]
		eff := rs.oplog[ns]
		cr.DocumentsExpected = c.Documents
		cr.CountCompared = c.Type != "view" && (eff == nil || !rs.viaApplyOp && !eff.uncertain)
		if eff != nil {
			cr.OplogEntries = eff.entries
			if eff.reset {
				cr.DocumentsExpected = 0
			}
			cr.DocumentsExpected += eff.net
		}
		if c.Type != "view" {
			cr.DocumentsFound, cr.IndexesFound = found[i].docs, found[i].indexes
		}
		cr.OK = len(cr.IndexErrors) == 0 && cr.DocumentsFailed == 0 && cr.IndexesFound >= cr.IndexesExpected &&
			(!cr.CountCompared || cr.DocumentsFound == cr.DocumentsExpected)
		rep.OK = rep.OK && cr.OK
		rep.DocumentsFailed += cr.DocumentsFailed
		rep.Collections = append(rep.Collections, *cr)
	}
	return rep, nil
}

// collCount is what the server holds of one collection.
type collCount struct {
	docs    int64
	indexes int
}

// countAll asks the server for each collection's count and index list,
// opts.Parallel collections at a time (each is a walk of its pages on
// FerretDB, which the other core can do beside); views are skipped.
func (rs *runState) countAll(ctx context.Context, colls []PlannedCollection) ([]collCount, error) {
	out := make([]collCount, len(colls))
	errs := make([]error, len(colls))
	slots := make(chan struct{}, max(rs.opts.Parallel, 1))
	var wg sync.WaitGroup
	for i := range colls {
		c := &colls[i]
		if c.Type == "view" {
			continue
		}
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			out[i], errs[i] = rs.countOne(ctx, c)
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// countOne is c's document count and index count. The documents are
// counted from what the inserts wrote (the server's acknowledgements, issue
// 27c: on FerretDB each count is a walk of the collection's pages) unless a
// rescan is what proves something: after an oplog replay wrote to c (the
// count checks that the replay did what its entries say), for a capped
// collection (the server may have trimmed what it acknowledged), when
// Options.Count is given (the caller's own count, e.g. the embedded
// server's rows), and for a collection not loaded by this run. The indexes
// are always listed: that is what shows they were built.
func (rs *runState) countOne(ctx context.Context, c *PlannedCollection) (collCount, error) {
	ns := c.Namespace()
	var n int64
	var err error
	written, loaded := rs.written[ns]
	if _, replayed := rs.oplog[ns]; loaded && !replayed && !isCapped(c.Options) && rs.opts.Count == nil && !rs.opts.Recount {
		n = written
	} else if rs.opts.Count != nil {
		n, err = rs.opts.Count(ctx, c.DB, dataCollection(c))
	} else {
		n, err = countDocuments(ctx, rs.client, c.DB, dataCollection(c))
	}
	if err != nil {
		return collCount{}, fmt.Errorf("count %s: %w", ns, err)
	}
	cur, err := rs.client.Database(c.DB).Collection(c.Name).Indexes().List(ctx)
	if err != nil {
		return collCount{}, fmt.Errorf("list indexes of %s: %w", ns, err)
	}
	var idx []bson.Raw
	if err := cur.All(ctx, &idx); err != nil {
		return collCount{}, fmt.Errorf("list indexes of %s: %w", ns, err)
	}
	return collCount{n, len(idx)}, nil
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
