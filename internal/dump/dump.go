package dump

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"

	"github.com/a0backup/a0/internal/archive"
	"github.com/a0backup/a0/internal/bytesize"
	"github.com/a0backup/a0/internal/dumpname"
	"github.com/a0backup/a0/internal/manifest"
	"github.com/a0backup/a0/internal/spool"
)

// OplogMode says whether Run captures the oplog.
type OplogMode string

const (
	// OplogAuto (the default) captures the oplog when local.oplog.rs exists
	// and holds an entry, which makes the backup point-in-time.
	OplogAuto OplogMode = "auto"
	// OplogOff never reads the oplog; the backup's consistency is "none".
	OplogOff OplogMode = "off"
)

// DefaultParallel is how many collections are read at once by default.
const DefaultParallel = 4

// Entry names written besides the collections.
const (
	PreludeName = "prelude.json"
	OplogName   = "oplog.bson"
)

// fileMode of every archive entry: backups hold credentials.
const fileMode = 0o600

// ErrNoSpoolDir is returned when Options.SpoolDir is empty.
var ErrNoSpoolDir = errors.New("dump: no spool directory")

// Options configure Run.
type Options struct {
	// Parallel is how many collections are read at once (DefaultParallel
	// when 0).
	Parallel int
	// SpoolDir (required) receives the raw .bson spool files; it must be on
	// the backup device. Run removes each spool as soon as it is packed and
	// every spool it made when it fails.
	SpoolDir string
	// ToolVersion and Node go into prelude.json and the manifest.
	ToolVersion, Node string
	// Name is the backup's name, recorded in the manifest (manifest.Name).
	Name string
	// Started is the backup's start, the manifest's "started" (zero: when
	// the dump starts): the agent passes the instant its backup's name and
	// "created" are taken from, so that every command shows one time for
	// one backup (issue 28 point 9).
	Started time.Time
	// ReadPreference for the collection reads. Nil means secondaryPreferred
	// on a replica set (the primary keeps serving) and primary otherwise.
	ReadPreference *readpref.ReadPref
	// Oplog is OplogAuto when empty.
	Oplog OplogMode
	// Pin, when set, makes a client connected to that member alone
	// (a direct connection): on a replica set Run picks one member with
	// ReadPreference and reads the collections and the oplog from it, so
	// data and oplog come from one server (see docs/consistency.md).
	Pin func(ctx context.Context, member string) (*mongo.Client, error)
	// OplogTail, when set, is how the one-pass capture (FerretDB, see
	// docs/consistency.md) reads the oplog: it copies the entries
	// inserted at or after since into a new collection of the local
	// database and returns its name and a function that drops it; the
	// capture reads that collection, with the same filter, instead of
	// local.oplog.rs, so the server decodes the oplog's tail only and
	// not all of it. The agent's embedded server gives
	// embedded.Server.CopyOplogSince.
	OplogTail func(ctx context.Context, since time.Time) (string, func(context.Context) error, error)
	// Catalog, when set, answers the listing's slow questions on FerretDB
	// (embedded.Server): see Catalog.
	Catalog Catalog
	// AfterOplogStart, when set, runs once the oplog start is taken and
	// before the collections are listed (the agent's test hold point
	// "backup-oplog": a test changes the oplog there, mid-job).
	AfterOplogStart func(ctx context.Context)
	// AfterList, when set, runs between the listing of the collections and
	// the first read; BeforeRead between a collection's index listing and
	// its data read (not for views); BeforeOplogEnd after the last
	// collection was read and before the oplog end is taken. They are hold
	// points, like AfterOplogStart: tests drop, rename and write there, or
	// trim the oplog, as a concurrent client would. BeforeRead is called
	// from the readers' goroutines, Parallel at a time.
	AfterList      func(ctx context.Context)
	BeforeRead     func(ctx context.Context, db, coll string)
	BeforeOplogEnd func(ctx context.Context)

	// tailFerretDB makes the package's tests capture FerretDB's oplog with
	// MongoDB's tailable cursor instead of the one-pass capture, to run
	// both on one server.
	tailFerretDB bool
}

// Catalog answers what FerretDB v1.24.2 answers slowly: listDatabases
// computes every database's SQLite size (its dbstat walks every page, the
// oplog's too: seconds on a live server), and collStats does the same per
// collection; a dump asks for both at its start and its end. The embedded
// server lists its database files and counts a table's rows in SQL. Only
// used when the server is FerretDB.
type Catalog interface {
	// Databases names every database.
	Databases(ctx context.Context) ([]string, error)
	// Count is the number of documents of db.coll, for the progress
	// estimate.
	Count(ctx context.Context, db, coll string) (int64, error)
}

// Progress is updated by Run and may be read at any time from any goroutine.
type Progress struct {
	CollectionsTotal atomic.Int64
	CollectionsDone  atomic.Int64
	Documents        atomic.Int64
	Bytes            atomic.Int64
	// EstimatedBytes is the estimated BSON bytes of every collection, known
	// before the first document is read (collStats size; on FerretDB
	// count x sampled mean document size); each collection's estimate is
	// replaced by its exact bytes once it is read, so it equals Bytes at
	// the end. Bytes/EstimatedBytes gives the progress and an ETA.
	EstimatedBytes atomic.Int64
}

// ProgressSnapshot is a copy of Progress at one moment.
type ProgressSnapshot struct {
	CollectionsTotal int64 `json:"collections_total"`
	CollectionsDone  int64 `json:"collections_done"`
	Documents        int64 `json:"documents"`
	Bytes            int64 `json:"bytes"`
	EstimatedBytes   int64 `json:"estimated_bytes"`
}

// Snapshot reads every counter.
func (p *Progress) Snapshot() ProgressSnapshot {
	return ProgressSnapshot{
		CollectionsTotal: p.CollectionsTotal.Load(),
		CollectionsDone:  p.CollectionsDone.Load(),
		Documents:        p.Documents.Load(),
		Bytes:            p.Bytes.Load(),
		EstimatedBytes:   p.EstimatedBytes.Load(),
	}
}

// OplogRolledError says the oplog no longer holds the entry the backup
// started from: writes made during the dump may be missing, so the backup
// cannot be point-in-time.
type OplogRolledError struct {
	// Start is the dump's first oplog position, Oldest the oldest entry
	// left when the loss was seen (zero when the oplog was empty).
	Start, Oldest bson.Timestamp
	// SpanSeconds is how many seconds of oplog the dump needed (start to
	// the newest entry); WindowSeconds how many the oplog held at the end,
	// in OplogBytes (collStats size). Zero when unknown.
	SpanSeconds, WindowSeconds, OplogBytes int64
	// NeededBytes is the oplog size a retry at the same write rate needs:
	// OplogBytes * SpanSeconds / WindowSeconds, and at least the bytes the
	// dump captured.
	NeededBytes int64
}

func (e *OplogRolledError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "dump: the oplog rolled over during the dump (the backup started at oplog position %d.%d; ", e.Start.T, e.Start.I)
	if e.Oldest.IsZero() {
		b.WriteString("the oplog no longer holds any entry): ")
	} else {
		fmt.Fprintf(&b, "the oldest entry left is %d.%d): ", e.Oldest.T, e.Oldest.I)
	}
	b.WriteString("writes made during the dump may be missing, so it cannot be point-in-time")
	if e.SpanSeconds > 0 {
		fmt.Fprintf(&b, "; the dump spanned %ds of oplog", e.SpanSeconds)
		if e.WindowSeconds > 0 {
			fmt.Fprintf(&b, " and the oplog holds %ds in %d bytes", e.WindowSeconds, e.OplogBytes)
		}
	}
	fmt.Fprintf(&b, "; the oplog needs at least %d bytes (%s) for a dump at this write rate: enlarge it with some margin (replSetResizeOplog), or back up when fewer writes happen",
		e.NeededBytes, bytesize.IEC(e.NeededBytes))
	return b.String()
}

// intent is one collection or view to dump.
type intent struct {
	db, name, typ string
	options       bson.Raw
	uuid          string
	estimate      int64
	count         int64  // collStats count, for refineEstimates
	base          string // escaped entry name without extension
	// dataColl and dataBase are where the documents are read from and
	// written to when not name and base: a time-series collection's
	// buckets, as mongodump dumps them (system.buckets.<name>).
	dataColl, dataBase string
}

// result is a dumped collection waiting for the packer.
type result struct {
	in       intent
	meta     []byte
	indexes  int
	spool    string // "" for views
	docs     int64
	size     int64
	digest   string // manifest.Digest of the documents spooled
	finished time.Time
	// change is set when the collection was dropped, renamed or
	// recreated while the dump ran; gone then means nothing of it is
	// packed (its spool is already removed).
	change *manifest.Change
	gone   bool
	// successor is the intent to dump instead: the renamed or recreated
	// collection, found by the listed UUID or name.
	successor *intent
}

// Run dumps every database but local and config into aw and returns the
// manifest it wrote last. It does not close aw. prog may be nil. On error
// (including ctx cancellation, returned promptly as ctx's error) the
// archive is incomplete and every spool file Run made is removed.
func Run(ctx context.Context, client *mongo.Client, aw *archive.Writer, opts Options, prog *Progress) (*manifest.Manifest, error) {
	if opts.SpoolDir == "" {
		return nil, ErrNoSpoolDir
	}
	if opts.Parallel <= 0 {
		opts.Parallel = DefaultParallel
	}
	if opts.Oplog == "" {
		opts.Oplog = OplogAuto
	}
	if opts.Oplog != OplogAuto && opts.Oplog != OplogOff {
		return nil, fmt.Errorf("dump: unknown oplog mode %q", opts.Oplog)
	}
	if prog == nil {
		prog = &Progress{}
	}
	if err := os.MkdirAll(opts.SpoolDir, 0o700); err != nil {
		return nil, fmt.Errorf("dump: spool directory: %w", err)
	}
	sp := &spools{dir: opts.SpoolDir, files: map[string]*spool.File{}}
	m, err := run(ctx, client, aw, opts, prog, sp)
	sp.removeAll()
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	return m, nil
}

func run(ctx context.Context, client *mongo.Client, aw *archive.Writer, opts Options, prog *Progress, sp *spools) (*manifest.Manifest, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if opts.Started.IsZero() {
		opts.Started = time.Now()
	}

	m := &manifest.Manifest{
		FormatVersion: manifest.FormatVersion,
		Kind:          manifest.KindBackup,
		Name:          opts.Name,
		ToolVersion:   opts.ToolVersion,
		Started:       opts.Started.UTC(),
		Consistency:   manifest.ConsistencyNone,
	}
	src, ferret, err := source(ctx, client, opts.Node)
	if err != nil {
		return nil, err
	}
	m.Source = src
	rp := readPreference(opts.ReadPreference, src.ReplicaSet)
	if opts.Pin != nil && src.ReplicaSet != "" {
		pinned, me, err := pinMember(ctx, client, rp, opts.Pin)
		if err != nil {
			return nil, err
		}
		defer pinned.Disconnect(context.WithoutCancel(ctx))
		client, m.Source.ReadFrom = pinned, me
	}

	// The oplog start is taken before the collections are listed: a
	// collection created after the listing then has its writes in the
	// captured oplog, and replay creates it. (Taken after the listing, a
	// collection created in between would be in neither.)
	var tl *tailer
	if opts.Oplog == OplogAuto {
		if tl, err = startTailer(ctx, client, rp, sp, ferret && !opts.tailFerretDB); err != nil {
			return nil, err
		}
		if tl.onePass {
			tl.copyTail = opts.OplogTail
		}
		defer tl.closeSpool()
	}
	if opts.AfterOplogStart != nil {
		opts.AfterOplogStart(ctx)
	}

	var cat Catalog
	if ferret {
		cat = opts.Catalog
	}
	intents, err := listIntents(ctx, client, rp, cat, true)
	if err != nil {
		return nil, err
	}
	if ferret {
		refineEstimates(ctx, client, rp, intents)
	}
	if opts.AfterList != nil {
		opts.AfterList(ctx)
	}
	listed := map[string]bool{}
	var est int64
	for _, in := range intents {
		est += in.estimate
		listed[in.db+"."+in.name] = true
	}
	prog.CollectionsTotal.Store(int64(len(intents)))
	prog.EstimatedBytes.Store(est)

	prelude, err := preludeJSON(src.ServerVersion, opts.ToolVersion)
	if err != nil {
		return nil, err
	}
	if err := aw.AddBytes(PreludeName, fileMode, m.Started, prelude); err != nil {
		return nil, fmt.Errorf("dump: %w", err)
	}

	tailDone := make(chan error, 1)
	if tl != nil {
		go func() { tailDone <- tl.run(ctx) }()
	}

	// Longest first, as mongodump does: the big collection starts at once
	// instead of being the last one running alone.
	sort.SliceStable(intents, func(i, j int) bool { return intents[i].estimate > intents[j].estimate })
	jobs := make(chan intent)
	results := make(chan result)
	var (
		errOnce  sync.Once
		firstErr error
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel() })
	}
	var workers sync.WaitGroup
	for i := 0; i < opts.Parallel; i++ {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for in := range jobs {
				// A collection renamed during the dump is dumped again
				// under its new name (once: a chain of renames ends in
				// a dropped entry, never a loop).
				for depth := 0; ; depth++ {
					r, err := dumpOne(ctx, client, rp, in, sp, prog, listed, opts.BeforeRead)
					if err != nil {
						fail(err)
						return
					}
					select {
					case results <- r:
					case <-ctx.Done():
						sp.remove(r.spool)
						return
					}
					if r.successor == nil || depth > 0 {
						break
					}
					in = *r.successor
					prog.CollectionsTotal.Add(1)
					prog.EstimatedBytes.Add(in.estimate)
				}
			}
		}()
	}
	go func() {
		defer close(jobs)
		for _, in := range intents {
			select {
			case jobs <- in:
			case <-ctx.Done():
				return
			}
		}
	}()
	readsDone := make(chan struct{})
	go func() {
		workers.Wait()
		close(readsDone)
		close(results)
	}()

	// The oplog end is taken once every collection has been read, while the
	// packer may still be busy: the tailer needs the end, not the archive.
	oplogEnd := make(chan error, 1)
	go func() {
		<-readsDone
		if tl == nil || ctx.Err() != nil {
			oplogEnd <- nil
			return
		}
		if ferret && tl.active {
			// FerretDB writes a document and its oplog entry in two
			// steps: a write the last read saw may not be logged yet.
			// Its entry must be at or before the end, else replay
			// stops before it and the restore holds a write made after
			// consistent_to.
			sleep(ctx, ferretOplogSettle)
		}
		if opts.BeforeOplogEnd != nil {
			opts.BeforeOplogEnd(ctx)
		}
		oplogEnd <- tl.finish(ctx)
	}()

	for r := range results {
		if r.change != nil {
			if tl != nil && tl.active && ferret {
				// Point-in-time on FerretDB: its oplog holds no drop
				// or rename, so the replay could not bring the
				// collection to consistent_to: the backup fails
				// clearly instead. On MongoDB the oplog holds the
				// change, which the replay applies (renames by the
				// collection's UUID, which the successor's metadata
				// keeps): the change is recorded and the dump goes on.
				fail(changeError(r.change))
				continue
			}
			m.ChangedDuringDump = append(m.ChangedDuringDump, *r.change)
		}
		if r.gone {
			prog.CollectionsDone.Add(1)
			continue
		}
		c, err := pack(ctx, aw, r, sp)
		if err != nil {
			fail(err)
			continue // drain: workers exit on the cancelled ctx
		}
		m.Collections = append(m.Collections, c)
		prog.CollectionsDone.Add(1)
	}
	if err := <-oplogEnd; err != nil {
		fail(err)
	}
	if firstErr != nil {
		if tl != nil {
			<-tailDone
		}
		return nil, firstErr
	}
	if ctx.Err() != nil {
		if tl != nil {
			// The capture's goroutine stops on ctx; wait for it, so
			// that the deferred clean-up of its spools comes after.
			<-tailDone
		}
		return nil, ctx.Err()
	}

	if tl != nil {
		if err := <-tailDone; err != nil {
			return nil, err
		}
		if err := tl.checkRolled(ctx); err != nil {
			return nil, err
		}
		if tl.active {
			if err := checkCatalog(ctx, client, rp, cat, intents, m.Collections, ferret); err != nil {
				return nil, err
			}
			if err := checkMember(ctx, client, m.Source); err != nil {
				return nil, err
			}
		}
		if tl.active {
			if err := tl.pack(ctx, aw, sp); err != nil {
				return nil, err
			}
			m.Consistency = manifest.ConsistencyPointInTime
			m.OplogStart = &manifest.OplogPos{T: tl.start.T, I: tl.start.I, Wall: tl.startWall}
			m.ConsistentTo = &manifest.OplogPos{T: tl.last.T, I: tl.last.I, Wall: tl.lastWall}
			m.OplogEntries = tl.entries
		}
	}

	sort.Slice(m.ChangedDuringDump, func(i, j int) bool {
		a, b := m.ChangedDuringDump[i], m.ChangedDuringDump[j]
		return a.DB < b.DB || a.DB == b.DB && a.Name < b.Name
	})
	sort.Slice(m.Collections, func(i, j int) bool {
		if m.Collections[i].DB != m.Collections[j].DB {
			return m.Collections[i].DB < m.Collections[j].DB
		}
		return m.Collections[i].Name < m.Collections[j].Name
	})
	m.Finished = time.Now().UTC()
	b, err := m.Encode()
	if err != nil {
		return nil, err
	}
	if err := aw.AddBytes(manifest.Name, fileMode, m.Finished, b); err != nil {
		return nil, fmt.Errorf("dump: %w", err)
	}
	return m, nil
}

// ferretOplogSettle is how long Run waits, on FerretDB, between the last
// collection read and taking the oplog end; see run.
var ferretOplogSettle = time.Second

// readPreference is the read preference of the collection reads: the one
// asked for, else secondaryPreferred on a replica-set member (the primary
// keeps serving) and primary otherwise (a standalone server, or FerretDB,
// whose hello has no setName).
func readPreference(asked *readpref.ReadPref, replicaSet string) *readpref.ReadPref {
	switch {
	case asked != nil:
		return asked
	case replicaSet != "":
		return readpref.SecondaryPreferred()
	default:
		return readpref.Primary()
	}
}

// source asks the server who it is, and whether it is FerretDB.
func source(ctx context.Context, client *mongo.Client, node string) (manifest.Source, bool, error) {
	admin := client.Database("admin")
	var bi struct {
		Version         string `bson:"version"`
		FerretDBVersion string `bson:"ferretdbVersion"`
	}
	if err := admin.RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&bi); err != nil {
		return manifest.Source{}, false, fmt.Errorf("dump: buildInfo: %w", err)
	}
	var hello struct {
		SetName string `bson:"setName"`
		Me      string `bson:"me"`
	}
	if err := admin.RunCommand(ctx, bson.D{{Key: "hello", Value: 1}}).Decode(&hello); err != nil {
		return manifest.Source{}, false, fmt.Errorf("dump: hello: %w", err)
	}
	return manifest.Source{Node: node, ServerVersion: bi.Version, ReplicaSet: hello.SetName, ReadFrom: hello.Me},
		bi.FerretDBVersion != "", nil
}

// databases lists the databases Run dumps, sorted.
func databases(ctx context.Context, client *mongo.Client) ([]string, error) {
	names, err := client.ListDatabaseNames(ctx, bson.D{})
	if err != nil {
		return nil, fmt.Errorf("dump: list databases: %w", err)
	}
	out := names[:0]
	for _, n := range names {
		if !skipDatabase(n) {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, nil
}

// DataSize is the sum of dbStats dataSize over the databases Run dumps: the
// spool needs about this much room on the backup device, the archive less.
// On FerretDB it is the sum of the collections' collStats size (the same
// figure: FerretDB's dbStats dataSize sums its collections' sizes), and the
// listing it measured is kept for the Totals asked right after (see
// sharedListing).
func DataSize(ctx context.Context, client *mongo.Client) (int64, error) {
	if _, ferret, err := source(ctx, client, ""); err == nil && ferret {
		intents, err := listIntents(ctx, client, nil, nil, true)
		if err != nil {
			return 0, err
		}
		var total int64
		for _, in := range intents {
			total += in.estimate
		}
		shared.put(client, intents)
		return total, nil
	}
	dbs, err := databases(ctx, client)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, db := range dbs {
		var st bson.Raw
		if err := client.Database(db).RunCommand(ctx, bson.D{{Key: "dbStats", Value: 1}}).Decode(&st); err != nil {
			return 0, fmt.Errorf("dump: dbStats %s: %w", db, err)
		}
		total += number(st.Lookup("dataSize"))
	}
	return total, nil
}

// sharedListing hands the listing DataSize measured on FerretDB to the
// Totals of the same backup request (the agent sizes the data for its
// free-space rule, then counts the totals the first status shows): FerretDB
// v1.24.2 answers every listDatabases, nameOnly or not, by walking the
// SQLite pages of every database file, the oplog's too, so each listing
// saved is the largest part of the time before the backup is accepted. A
// listing is taken at most once and only while young: sizes are estimates
// either way, and the dump lists again for what it reads.
type sharedListing struct {
	mu      sync.Mutex
	client  *mongo.Client
	at      time.Time
	intents []intent
}

// sharedListingAge bounds how old a listing Totals takes may be.
const sharedListingAge = 10 * time.Second

var shared sharedListing

func (s *sharedListing) put(client *mongo.Client, intents []intent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.client, s.at, s.intents = client, time.Now(), intents
}

// take returns the listing measured on client, if young, and forgets it.
func (s *sharedListing) take(client *mongo.Client) []intent {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.intents
	ok := s.client == client && time.Since(s.at) < sharedListingAge
	s.client, s.intents = nil, nil
	if !ok {
		return nil
	}
	return in
}

// number reads a BSON number of any width (servers differ).
func number(v bson.RawValue) int64 {
	switch v.Type {
	case bson.TypeInt32:
		return int64(v.Int32())
	case bson.TypeInt64:
		return v.Int64()
	case bson.TypeDouble:
		return int64(v.Double())
	}
	return 0
}

// listIntents lists the collections to dump; with sizes, each with its
// size estimate (collStats, or the Catalog's count when cat is set).
func listIntents(ctx context.Context, client *mongo.Client, rp *readpref.ReadPref, cat Catalog, sizes bool) ([]intent, error) {
	var dbs []string
	var err error
	if cat != nil {
		var all []string
		if all, err = cat.Databases(ctx); err != nil {
			return nil, fmt.Errorf("dump: list databases: %w", err)
		}
		for _, n := range all {
			if !skipDatabase(n) {
				dbs = append(dbs, n)
			}
		}
		sort.Strings(dbs)
	} else if dbs, err = databases(ctx, client); err != nil {
		return nil, err
	}
	var out []intent
	for _, dbName := range dbs {
		db := client.Database(dbName, options.Database().SetReadPreference(rp))
		specs, err := db.ListCollectionSpecifications(ctx, bson.D{})
		if err != nil {
			return nil, fmt.Errorf("dump: list collections of %s: %w", dbName, err)
		}
		for _, s := range specs {
			if skipNamespace(dbName, s.Name) {
				continue
			}
			out = append(out, newIntent(ctx, db, s, cat, sizes))
		}
	}
	return out, nil
}

func newIntent(ctx context.Context, db *mongo.Database, s mongo.CollectionSpecification, cat Catalog, sizes bool) intent {
	in := intent{db: db.Name(), name: s.Name, typ: s.Type, options: s.Options,
		base: db.Name() + "/" + dumpname.Escape(s.Name)}
	if in.typ == "" {
		in.typ = "collection"
	}
	if s.UUID != nil {
		in.uuid = hex.EncodeToString(s.UUID.Data)
	}
	if in.typ == "timeseries" {
		in.dataColl, in.dataBase = bucketsOf(db.Name(), s.Name)
	}
	if !sizes {
		return in
	}
	if cat != nil && in.typ == "collection" {
		// The estimate comes from refineEstimates (count x sample).
		if n, err := cat.Count(ctx, db.Name(), s.Name); err == nil {
			in.count = n
		}
		return in
	}
	if in.typ == "collection" || in.typ == "timeseries" {
		var st bson.Raw
		// Only an estimate for the ETA: a server without collStats
		// still gets a backup.
		if db.RunCommand(ctx, bson.D{{Key: "collStats", Value: s.Name}}).Decode(&st) == nil {
			in.estimate = number(st.Lookup("size"))
			in.count = number(st.Lookup("count"))
		}
	}
	return in
}

// preludeJSON is the prelude.json mongodump 100.x writes in directory
// mode: stock mongorestore refuses a dump directory whose prelude lacks
// ServerVersion. (a0 before this wrote the archive header's fields;
// restore still reads those.)
func preludeJSON(serverVersion, toolVersion string) ([]byte, error) {
	b, err := bson.MarshalExtJSON(bson.D{
		{Key: "ServerVersion", Value: serverVersion},
		{Key: "ToolVersion", Value: toolVersion},
	}, false, false)
	if err != nil {
		return nil, fmt.Errorf("dump: prelude: %w", err)
	}
	return b, nil
}

// metadata is mongodump's <coll>.metadata.json, fields in its order.
type metadata struct {
	Options        bson.Raw   `bson:"options"`
	Indexes        []bson.Raw `bson:"indexes"`
	UUID           string     `bson:"uuid,omitempty"`
	CollectionName string     `bson:"collectionName"`
	Type           string     `bson:"type,omitempty"`
}

var emptyDoc = bson.Raw{5, 0, 0, 0, 0}

// bucketsOf is where mongodump reads and writes a time-series collection's
// documents: its buckets collection, and that collection's file name.
func bucketsOf(db, name string) (coll, base string) {
	coll = "system.buckets." + name
	return coll, db + "/" + dumpname.Escape(coll)
}

func readOne(ctx context.Context, client *mongo.Client, rp *readpref.ReadPref, in intent, sp *spools, prog *Progress, beforeRead func(ctx context.Context, db, coll string)) (result, error) {
	coll := client.Database(in.db, options.Database().SetReadPreference(rp)).Collection(in.name)
	md := metadata{Options: in.options, Indexes: []bson.Raw{}, UUID: in.uuid, CollectionName: in.name, Type: in.typ}
	if len(md.Options) == 0 {
		md.Options = emptyDoc
	}
	// Indexes are read before the data, as mongodump does: an index built
	// during the dump is then rebuilt by restore from the data.
	if in.typ != "view" {
		cur, err := coll.Indexes().List(ctx)
		if err != nil {
			return result{}, fmt.Errorf("dump: list indexes of %s.%s: %w", in.db, in.name, err)
		}
		for cur.Next(ctx) {
			md.Indexes = append(md.Indexes, append(bson.Raw(nil), cur.Current...))
		}
		err = cur.Err()
		cur.Close(context.WithoutCancel(ctx))
		if err != nil {
			return result{}, fmt.Errorf("dump: list indexes of %s.%s: %w", in.db, in.name, err)
		}
	}
	meta, err := bson.MarshalExtJSON(md, true, false)
	if err != nil {
		return result{}, fmt.Errorf("dump: metadata of %s.%s: %w", in.db, in.name, err)
	}
	r := result{in: in, meta: meta, indexes: len(md.Indexes)}
	if in.typ == "view" {
		r.finished = time.Now()
		return r, nil
	}
	if beforeRead != nil {
		beforeRead(ctx, in.db, in.name)
	}

	if in.dataColl != "" {
		// The indexes were the time-series collection's; the data are
		// its buckets.
		coll = coll.Database().Collection(in.dataColl)
	}
	b := newBatcher(meanSize(in))
	for {
		r.spool, r.docs, r.size, r.digest, err = spoolDocs(ctx, coll, in, sp, prog, b)
		if err == nil {
			break
		}
		// A reply too large for the driver (FerretDB and large
		// documents), or the connection pool cleared under the read:
		// read the collection again from its start, in smaller batches
		// for the first. A point-in-time backup's oplog capture started
		// before the first read and covers the second as it covers the
		// first; without one, the read is simply a later one.
		if !b.retry(err) {
			return result{}, err
		}
	}
	// The collection's estimate becomes what it held: the total is exact
	// once every collection is read, so a progress bar ends at 100%.
	prog.EstimatedBytes.Add(r.size - in.estimate)
	r.finished = time.Now()
	return r, nil
}

// spoolDocs copies the documents of coll into a new spool, with batches
// sized by b. On failure the spool is removed and the progress it counted
// taken back, so that the read can start again. The content digest
// (manifest.Digest) is summed from the same bytes as they are spooled: no
// second read.
func spoolDocs(ctx context.Context, coll *mongo.Collection, in intent, sp *spools, prog *Progress, b *batcher) (name string, docs, size int64, digest string, err error) {
	f, err := sp.create()
	if err != nil {
		return "", 0, 0, "", err
	}
	fail := func(err error) (string, int64, int64, string, error) {
		f.Close()
		sp.remove(f.Name())
		prog.Documents.Add(-docs)
		prog.Bytes.Add(-size)
		return "", 0, 0, "", err
	}
	cur, err := coll.Find(ctx, bson.D{}, options.Find().SetBatchSize(b.next()))
	if err != nil {
		return fail(fmt.Errorf("dump: read %s.%s: %w", in.db, in.name, err))
	}
	defer cur.Close(context.WithoutCancel(ctx))
	bw := bufio.NewWriterSize(f, 1<<20)
	var sum manifest.Digest
	for cur.Next(ctx) {
		sum.Add(cur.Current)
		n, err := bw.Write(cur.Current)
		if err != nil {
			return fail(fmt.Errorf("dump: spool %s.%s: %w", in.db, in.name, err))
		}
		if b.see(n) {
			cur.SetBatchSize(b.next())
		}
		docs++
		size += int64(n)
		prog.Documents.Add(1)
		prog.Bytes.Add(int64(n))
	}
	if err := cur.Err(); err != nil {
		return fail(fmt.Errorf("dump: read %s.%s: %w", in.db, in.name, err))
	}
	if err := bw.Flush(); err != nil {
		return fail(fmt.Errorf("dump: spool %s.%s: %w", in.db, in.name, err))
	}
	if err := f.Close(); err != nil {
		sp.remove(f.Name())
		prog.Documents.Add(-docs)
		prog.Bytes.Add(-size)
		return "", 0, 0, "", fmt.Errorf("dump: spool %s.%s: %w", in.db, in.name, err)
	}
	return f.Name(), docs, size, sum.String(), nil
}

// meanSize is the mean BSON size of in's documents as estimated before
// the read (0 when unknown).
func meanSize(in intent) int64 {
	if in.count <= 0 || in.estimate <= 0 {
		return 0
	}
	return in.estimate / in.count
}

// sampleDocs is how many documents refineEstimates reads per collection.
const sampleDocs = 100

// refineEstimates replaces each collection's collStats size by its document
// count times the mean BSON size of its first documents. On FerretDB the
// size is the SQLite storage size (about 4x the BSON the dump reads), which
// made the progress total and ETA several times too large; on MongoDB size
// is already the BSON size and this is not called.
func refineEstimates(ctx context.Context, client *mongo.Client, rp *readpref.ReadPref, intents []intent) {
	for i := range intents {
		in := &intents[i]
		if in.typ != "collection" {
			continue
		}
		// collStats' count, already read: estimatedDocumentCount is a
		// count scan on FerretDB (seconds for a large collection).
		n := in.count
		if n == 0 {
			continue
		}
		coll := client.Database(in.db, options.Database().SetReadPreference(rp)).Collection(in.name)
		// Two documents first, then as many as fit in batchBytes: a
		// hundred large ones in one reply would be too much for the
		// driver (see batcher).
		b := newBatcher(0)
		cur, err := coll.Find(ctx, bson.D{}, options.Find().SetLimit(sampleDocs).SetBatchSize(b.next()))
		if err != nil {
			continue
		}
		var docs, bytes int64
		for cur.Next(ctx) {
			docs++
			bytes += int64(len(cur.Current))
			if b.see(len(cur.Current)) {
				cur.SetBatchSize(b.next())
			}
		}
		cur.Close(context.WithoutCancel(ctx))
		if docs > 0 {
			in.estimate = n * bytes / docs
		}
	}
}

// Totals is what a dump of the server would count before it starts: the
// collections (and views) and the estimated BSON bytes of their documents,
// as Run's Progress reports them. The agent shows them from the first
// status of a backup, before Run has listed anything itself.
// cat is Options.Catalog (nil for none).
func Totals(ctx context.Context, client *mongo.Client, rpref *readpref.ReadPref, cat Catalog) (collections, bytes int64, err error) {
	src, ferret, err := source(ctx, client, "")
	if err != nil {
		return 0, 0, err
	}
	if !ferret {
		cat = nil
	}
	rp := readPreference(rpref, src.ReplicaSet)
	var intents []intent
	if ferret {
		intents = shared.take(client)
	}
	if intents == nil {
		if intents, err = listIntents(ctx, client, rp, cat, true); err != nil {
			return 0, 0, err
		}
	}
	if ferret {
		refineEstimates(ctx, client, rp, intents)
	}
	for _, in := range intents {
		bytes += in.estimate
	}
	return int64(len(intents)), bytes, nil
}

// changeError is the error of a point-in-time dump that saw ch.
func changeError(ch *manifest.Change) error {
	ns := ch.DB + "." + ch.Name
	switch ch.Change {
	case manifest.ChangeRenamed:
		return &RenamedError{From: ns, To: ch.DB + "." + ch.NewName}
	case manifest.ChangeRecreated:
		return &DDLError{Namespace: ns, What: "was dropped and created again"}
	default:
		return &DDLError{Namespace: ns, What: "was dropped"}
	}
}

// dumpOne reads one collection (readOne), then checks that it is still the
// collection that was listed: one dropped, renamed or recreated in between
// may have been read partly or not at all (on FerretDB its index list comes
// back empty, which no restore accepts; on MongoDB the reads fail with
// NamespaceNotFound or a killed cursor). Such a collection is left out of
// the archive and recorded as a change in the manifest, as mongodump logs
// and goes on; a renamed or recreated one gets a successor intent, dumped
// under its current name unless the listing holds that name already. A
// read error on a collection that is still there is the dump's error.
func dumpOne(ctx context.Context, client *mongo.Client, rp *readpref.ReadPref, in intent, sp *spools, prog *Progress, listed map[string]bool, beforeRead func(ctx context.Context, db, coll string)) (result, error) {
	r, readErr := readOne(ctx, client, rp, in, sp, prog, beforeRead)
	if in.typ == "view" || ctx.Err() != nil {
		return r, readErr
	}
	db := client.Database(in.db, options.Database().SetReadPreference(rp))
	now, err := lookup(ctx, db, in)
	if err != nil {
		sp.remove(r.spool)
		if readErr != nil {
			return result{}, readErr
		}
		return result{}, err
	}
	if now != nil && (in.uuid == "" || now.uuid == in.uuid) && now.name == in.name {
		return r, readErr
	}
	sp.remove(r.spool)
	ch := &manifest.Change{DB: in.db, Name: in.name, Change: manifest.ChangeDropped}
	out := result{in: in, change: ch, gone: true}
	if now != nil {
		ch.Change = manifest.ChangeRenamed
		if now.name == in.name {
			ch.Change = manifest.ChangeRecreated
		}
		ch.NewName = now.name
		if now.name == in.name || !listed[in.db+"."+now.name] {
			out.successor = now
		}
	}
	return out, nil
}

// lookup finds the collection of in as it is now: by name with the listed
// UUID, else (renamed) by UUID under another name, else (recreated) by name
// with another UUID. It returns nil when none exists.
func lookup(ctx context.Context, db *mongo.Database, in intent) (*intent, error) {
	// The common case (nothing changed) costs one filtered listing.
	specs, err := db.ListCollectionSpecifications(ctx, bson.D{{Key: "name", Value: in.name}})
	if err != nil {
		return nil, fmt.Errorf("dump: list collections of %s: %w", in.db, err)
	}
	if len(specs) == 1 && specs[0].Name == in.name && (in.uuid == "" || specs[0].UUID != nil && hex.EncodeToString(specs[0].UUID.Data) == in.uuid) {
		return &in, nil
	}
	specs, err = db.ListCollectionSpecifications(ctx, bson.D{})
	if err != nil {
		return nil, fmt.Errorf("dump: list collections of %s: %w", in.db, err)
	}
	var sameName *mongo.CollectionSpecification
	for _, s := range specs {
		if skipNamespace(in.db, s.Name) {
			continue
		}
		uuid := ""
		if s.UUID != nil {
			uuid = hex.EncodeToString(s.UUID.Data)
		}
		if in.uuid != "" && uuid == in.uuid {
			now := newIntent(ctx, db, s, nil, true)
			return &now, nil
		}
		if s.Name == in.name {
			sameName = &s
		}
	}
	if sameName == nil {
		return nil, nil
	}
	now := newIntent(ctx, db, *sameName, nil, true)
	return &now, nil
}

// pack appends one collection to the archive, metadata first, and removes
// its spool.
func pack(ctx context.Context, aw *archive.Writer, r result, sp *spools) (manifest.Collection, error) {
	defer sp.remove(r.spool)
	c := manifest.Collection{DB: r.in.db, Name: r.in.name, Type: r.in.typ, Documents: r.docs,
		Bytes: r.size, Indexes: r.indexes, MetadataFile: r.in.base + ".metadata.json"}
	if err := aw.AddBytes(c.MetadataFile, fileMode, r.finished, r.meta); err != nil {
		return c, fmt.Errorf("dump: %w", err)
	}
	if r.spool == "" {
		return c, nil
	}
	c.BSONFile = r.in.base + ".bson"
	c.Digest = r.digest
	if r.in.dataBase != "" {
		c.BSONFile = r.in.dataBase + ".bson"
	}
	if err := addSpool(ctx, aw, sp, c.BSONFile, r.spool, r.size, r.finished); err != nil {
		return c, err
	}
	return c, nil
}

func addSpool(ctx context.Context, aw *archive.Writer, sp *spools, name, spoolName string, size int64, mt time.Time) error {
	f, err := sp.reader(spoolName)
	if err != nil {
		return fmt.Errorf("dump: open spool: %w", err)
	}
	if err := aw.AddFile(name, fileMode, size, mt, ctxReader{ctx, f}); err != nil {
		return fmt.Errorf("dump: %w", err)
	}
	return nil
}

// ctxReader stops a long copy into the archive when the dump is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// SpoolPattern names the spool files, for spool.Clean at the next start
// after a kill.
const SpoolPattern = ".a0-spool-*.bson"

// spools tracks the spool files of one Run so that all of them go on error.
// Each is sealed under its own in-memory key (package spool): the backup
// device, maybe a network share, never holds the raw BSON.
type spools struct {
	dir   string
	mu    sync.Mutex
	files map[string]*spool.File
}

func (s *spools) create() (*spool.File, error) {
	f, err := spool.Create(s.dir, SpoolPattern)
	if err != nil {
		return nil, fmt.Errorf("dump: create spool: %w", err)
	}
	s.mu.Lock()
	s.files[f.Name()] = f
	s.mu.Unlock()
	return f, nil
}

// reader reads a finished spool back from its start.
func (s *spools) reader(name string) (io.Reader, error) {
	s.mu.Lock()
	f := s.files[name]
	s.mu.Unlock()
	if f == nil {
		return nil, fmt.Errorf("no spool %s", name)
	}
	return f.Reader()
}

func (s *spools) remove(name string) {
	if name == "" {
		return
	}
	s.mu.Lock()
	f := s.files[name]
	delete(s.files, name)
	s.mu.Unlock()
	if f != nil {
		f.Remove()
	}
}

func (s *spools) removeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, f := range s.files {
		f.Remove()
		delete(s.files, name)
	}
}
