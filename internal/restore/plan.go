package restore

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"

	"github.com/a0backup/a0/internal/jsonlimit"
	"github.com/a0backup/a0/internal/manifest"
	"github.com/a0backup/a0/internal/spool"
)

// ErrInvalidArchive is matched by every refusal of an archive's content:
// names outside the mongodump layout, malformed BSON or metadata, a missing
// or disagreeing manifest. Unsafe tar entries match archive.ErrUnsafe.
var ErrInvalidArchive = errors.New("invalid archive")

// ErrNoMatch is returned by Plan for a --ns pattern that matches nothing.
var ErrNoMatch = errors.New("nothing to restore")

// maxMetadataSize bounds one metadata.json (validators can be large, but not
// this large) so a crafted entry cannot make us buffer gigabytes.
const maxMetadataSize = 16 << 20

// maxMetadataTotal bounds all metadata.json together: Plan keeps each
// parsed one until the whole archive is read, and a crafted archive could
// otherwise hold 100,000 of 16 MiB each.
const maxMetadataTotal = 64 << 20

// The bytes bounds above do not bound what parsing costs: a "[]" becomes a
// slice, an interface and a frame of the parser (a 16 MiB metadata.json of
// nested empty arrays overflowed a 1 GB stack, a wide one allocated 2 GB).
// So each metadata.json's shape is bounded before it is parsed, and so is
// what Plan keeps of all of them: 100,000 values (keys count: each becomes
// a string) cost at most about 35 MiB to parse and 4 MiB kept, and a
// collection's metadata holds about 20 (its _id index) to a few thousand
// (a large validator). The server nests BSON at most 100 levels (180 for a
// validator's expression), hence the depth.
var metadataLimits = jsonlimit.Limits{Depth: 200, Values: 100_000}

// maxMetadataValues bounds the values of all metadata.json together (at
// most about 40 MiB kept until the archive ends): 50,000 collections of an
// archive's 100,000 entries at 20 values each.
const maxMetadataValues = 1_000_000

// preludeLimits bound prelude.json, a few lines that mongodump writes.
var preludeLimits = jsonlimit.Limits{Depth: 16, Values: 10_000}

// Options select what Plan and Run do.
type Options struct {
	// Drop drops each target collection before restoring it; without it,
	// Run refuses targets that hold documents.
	Drop bool
	// NS selects namespaces: "db.coll" patterns with "*" wildcards, or "db"
	// for a whole database. Empty means everything.
	NS []string
	// NSFrom and NSTo rename (mongorestore's --nsFrom/--nsTo, pairs in
	// order, see Renamer): the namespaces NS selects are restored under
	// the new names NSTo gives them, with their indexes, options and the
	// oplog's writes; those no pair renames are not restored, and the old
	// names are never written. Drop and the non-empty check apply to the
	// new names.
	NSFrom, NSTo []string
	// DryRun makes Run return the plan's report without writing.
	DryRun bool
	// Parallel is the number of insert workers (default: one per core, 2 to 8).
	Parallel int
	// NoOplogReplay skips oplog.bson.
	NoOplogReplay bool
	// Plain accepts a plain mongodump directory packed with tar (no
	// manifest required, entries possibly under one wrapper directory), or
	// a mongodump archive (`mongodump --archive`, gzipped or not).
	Plain bool
	// StopOnError stops the restore at the first document the server
	// refuses (mongorestore's --stopOnError). Without it, refused
	// documents (duplicate keys, validation failures) are counted per
	// collection and in the report, the restore goes on, and the report
	// is not OK.
	StopOnError bool
	// Recount makes the count check ask the server for every collection's
	// count, Parallel at a time, as it did before issue 27c: a proof of
	// what the server holds rather than of what it acknowledged (a
	// restore drill's choice). Without it the counts come from the
	// inserts, and the server is asked only where that proves something
	// (see countOne).
	Recount bool
	// UsersAndRoles restores the users and roles of the backup
	// (admin.system.users, admin.system.roles), as mongorestore's
	// --restoreDbUsersAndRoles; without it they are skipped and listed.
	UsersAndRoles bool
	// SpoolDir receives a restore's spool files (os.TempDir() when empty;
	// the agent gives its state directory): the oplog of an archive whose
	// oplog precedes some data (sealed, package spool), and for a
	// mongodump archive the documents of collections that interleave with
	// the one being read. They are removed as soon as read.
	SpoolDir string
	// InputSize is the size of the file read (the upload), when known:
	// the spools of one pass over it then hold at most SpoolRatio times
	// it. SpoolReserve is the free space they must leave on SpoolDir's
	// disk (DefaultSpoolReserve when 0, none when negative). A crafted
	// archive (a gzip of zeros) would otherwise fill the disk; passing a
	// bound refuses the archive (ErrInvalidArchive and spool.ErrBound)
	// before the write that would pass it.
	InputSize    int64
	SpoolReserve int64
	// IndexIDLookups, when set, is called before an idempotent oplog
	// replay (a server without applyOps), once per database, with the
	// restored collections of it that the oplog names: it makes the
	// replay's updates and deletes by _id cheap on the target. For the
	// embedded FerretDB it is embedded.Server.IndexIDLookups (an
	// SQLite index on the expression FerretDB's _id pushdown filters by;
	// without it every such write scans its collection).
	IndexIDLookups func(ctx context.Context, db string, colls []string) error
	// Count, when set, gives the count check each restored collection's
	// document count instead of collStats: the embedded server's
	// embedded Catalog.Count counts the table's rows in SQL, where
	// FerretDB's collStats also walks every page of the database file
	// for its sizes (a second or more per collection on a live-sized one).
	Count func(ctx context.Context, db, coll string) (int64, error)
	// Extra, when set, is a second source of oplog entries replayed after
	// the archive's own oplog (up to its consistent_to) by the same
	// engine: the continuous archive's entries from just after the base's
	// consistent_to to a point in time (issue 26, package pitr). Plan
	// reads it once, after the archive, through the same checks as
	// oplog.bson (every slice authenticated and its chain checked before
	// the first write); Run reads it again to replay it. Entries after
	// ExtraTo are not replayed.
	Extra ExtraSource
	// ExtraAfter is the position Extra starts after: Plan refuses an
	// archive whose manifest's consistent_to is another (the base's
	// position came from unauthenticated metadata).
	ExtraAfter *Position
	// ExtraReplicaSet, when set, is called by Plan before it reads
	// Extra, with the replica set the backup's manifest names (its
	// source.replica_set, authenticated with the archive; "" when it
	// names none): Extra's source then refuses entries of another set
	// (ops.PITR checks each slice's authenticated header against it).
	ExtraReplicaSet func(set string)
	// ExtraTo is the last position replayed from Extra (inclusive).
	ExtraTo *Position
	// AfterData, when set, is called once by Run when every collection's
	// documents are in, before the oplog replay, the users and roles, and
	// the index builds: a restore test (package drill) compares the data
	// as dumped there, which the replay then changes. Its error stops Run.
	AfterData func(ctx context.Context) error
	// Holds, when set, is asked by Plan whether the target can hold each
	// document: every collection's documents (update false), and what
	// every selected oplog insert, update and delete writes (update true
	// for an update's operand, whose field names are operators and
	// paths). Plan counts the documents it refuses per collection
	// (PlannedCollection.NotHeld) and the entries per namespace
	// (PlanResult.OplogNotHeld), and refuses nothing itself: a restore
	// test (package drill, with embedded.Holds) leaves those collections
	// out rather than send a document its throwaway server would refuse
	// or drop the connection on. Run does not ask it.
	Holds func(doc []byte, update bool) error
	// HoldsCommand, when set, is asked by Plan about every selected oplog
	// command entry the replay applies or builds indexes from (create,
	// createIndexes, commitIndexBuild, collMod, convertToCapped...): its o,
	// the command as the server logged it. Its refusals are counted with
	// Holds' (PlanResult.OplogNotHeld): a restore test leaves the
	// collection out rather than fail its replay or its index builds on a
	// command its throwaway server lacks. Run does not ask it.
	HoldsCommand func(o []byte) error
	// Logger receives what Run retries (a transient server error, see
	// withRetry); nil logs nothing.
	Logger *slog.Logger

	// testCommandHook wraps every command of the oplog replay (tests
	// record them); testMode forces the replay mode.
	testCommandHook func(commander) commander
	// testEarlyIndexes builds indexes beside the loads on FerretDB too,
	// the only server the tests have (production does so on MongoDB
	// alone: see earlyBuilds).
	testEarlyIndexes bool
	testMode         replayMode
	// testRetryWait, when set, is every wait between retries (tests).
	testRetryWait time.Duration
	// testInsertHook, when set, is called for each send of an insert of
	// the data phase instead of send itself (tests).
	testInsertHook func(ctx context.Context, coll *mongo.Collection, docs []any, send func(ctx context.Context) error) error
}

// SpoolRatio bounds a pass's spools to this many times the input's size
// (Options.InputSize): BSON compresses a few times, ten or twenty for
// repetitive data; a gzip of zeros a thousand.
const SpoolRatio = 100

// DefaultSpoolReserve is the free space spools leave on their disk, as an
// upload does on the node's state disk.
const DefaultSpoolReserve = 256 << 20

// spoolBudget is the bound of the spools of one pass over the archive.
func (o Options) spoolBudget() *spool.Budget {
	dir := o.SpoolDir
	if dir == "" {
		dir = os.TempDir()
	}
	b := &spool.Budget{Dir: dir, Reserve: o.SpoolReserve}
	if b.Reserve == 0 {
		b.Reserve = DefaultSpoolReserve
	}
	if b.Reserve < 0 {
		b.Reserve = 0
	}
	if o.InputSize > 0 {
		b.Max, b.MaxWhy = SpoolRatio*o.InputSize, fmt.Sprintf("%d times the input's %d bytes", SpoolRatio, o.InputSize)
	}
	return b
}

// OplogSpoolPattern names Run's oplog spool files, for spool.Clean.
const OplogSpoolPattern = ".a0-restore-oplog-*"

// PlannedCollection is one collection Run will restore.
type PlannedCollection struct {
	DB      string
	Name    string
	Type    string // "collection", "view" or "timeseries"
	Options bson.D
	// Indexes are the specs from metadata.json, already rewritten for the
	// server (no "ns", no "v"); the _id index is left out.
	Indexes   []bson.D
	Documents int64
	Bytes     int64
	// NotHeld counts the documents Options.Holds refused (none without
	// it), with the first one's reason.
	NotHeld NotHeld
	// Digest is the content digest (manifest.Digest, the sum the dump
	// computes) of the documents as the archive holds them, summed in
	// Plan's pass when Options.Holds is set ("" without it): a restore
	// test compares it with the manifest's for a collection it cannot
	// restore, so that its bytes are still checked.
	Digest string

	bsonFile string // raw entry names in the archive
	metaFile string
	realName string
	// idSpec is the _id index spec of metadata.json (cleaned), hasID
	// whether it lists one; a custom one (collation...) is passed to
	// create as idIndex, as mongorestore does.
	idSpec bson.D
	hasID  bool
	// uuid is the collection's UUID when it was read (metadata.json,
	// hex): the replay finds by it where a renamed collection's entries
	// belong.
	uuid string
}

// NotHeld is what Options.Holds refused in one namespace: how many
// documents (or oplog entries), and why the first one was.
type NotHeld struct {
	Count int64
	Why   string
}

func (n *NotHeld) add(err error) {
	if n.Count == 0 {
		n.Why = err.Error()
	}
	n.Count++
}

// Namespace is "db.name".
func (c PlannedCollection) Namespace() string { return c.DB + "." + c.Name }

// PlanResult is what the validation pass found, restricted to Options.NS.
// (The function keeps the name Plan, as in docs/architecture.md.)
type PlanResult struct {
	Manifest     *manifest.Manifest // nil for a plain dump without one
	Collections  []PlannedCollection
	OplogEntries int64
	// OplogKinds counts the operations of oplog.bson by entry kind
	// (internal/oplog; applyOps and transactions by their operations).
	OplogKinds map[string]int64
	// ExtraEntries counts the entries of Options.Extra (the continuous
	// archive's, replayed after oplog.bson).
	ExtraEntries int64
	// OplogOnly lists the selected namespaces that only the oplog names
	// (created during the dump): the replay restores them from empty,
	// and CheckTargets checks them like the planned collections.
	OplogOnly []string
	// Skipped lists namespaces present in the archive but not restored:
	// unselected by NS, or system collections.
	Skipped []string
	// Users and Roles count the documents of admin.system.users and
	// admin.system.roles: restored only with Options.UsersAndRoles.
	Users, Roles int64
	// Renamed maps each namespace restored under a new name (Options.NSFrom)
	// to it; Collections and OplogOnly hold the new names.
	Renamed map[string]string
	// OplogNotHeld counts, by namespace, the oplog entries whose
	// documents Options.Holds refused, or whose command
	// Options.HoldsCommand refused (nil without them).
	OplogNotHeld map[string]NotHeld
	// OplogFeatures maps the selected namespaces whose oplog entries need
	// a server feature beyond plain collections (applyOps: a view, a
	// time-series collection, users) to that feature, as Preflight
	// names it when the server lacks applyOps (at most 1000 per feature).
	OplogFeatures map[string]string

	authz       []PlannedCollection // admin.system.users and .roles
	preflighted bool
	prefix      string // wrapper directory of a plain dump, with its "/"
	oplogEarly  bool   // oplog.bson precedes some collection data
	oplog       *oplogScan
}

// fileStat is what the pass learned about one archive entry.
type fileStat struct {
	raw   string
	order int
	docs  int64
	bytes int64
	meta  *metadata
	scan  *oplogScan
	// notHeld: the documents Options.Holds refused.
	notHeld NotHeld
	// digest: the documents' manifest.Digest (with Options.Holds).
	digest string
}

// Plan reads the whole archive tgz and writes nothing. It returns an error
// wrapping ErrInvalidArchive or archive.ErrUnsafe when any entry is not
// what a mongodump layout holds, and for an a0 archive (not opts.Plain) when
// manifest.json is missing, not last, or disagrees with what was counted.
func Plan(ctx context.Context, tgz io.Reader, opts Options) (*PlanResult, error) {
	sel, err := newMatcher(opts.NS)
	if err != nil {
		return nil, err
	}
	ren, err := opts.renaming(sel, nil)
	if err != nil {
		return nil, err
	}
	ar, err := openEntries(tgz, opts, opts.spoolBudget())
	if err != nil {
		return nil, err
	}
	defer ar.Close()
	var (
		files      []*fileStat
		metaSize   int64
		metaValues int
		man        *manifest.Manifest
		oplog      *fileStat
		buf        = make([]byte, 0, 64<<10)
		br         = bufio.NewReaderSize(nil, 1<<20)
		afterMan   string
	)
	for i := 0; ; i++ {
		e, err := ar.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if man != nil && afterMan == "" {
			afterMan = e.Name
		}
		fs := &fileStat{raw: e.Name, order: i}
		base := e.Name[strings.LastIndexByte(e.Name, '/')+1:]
		if !opts.Plain {
			if _, err := classify(e.Name); err != nil {
				return nil, err
			}
		} else if strings.Count(e.Name, "/") > maxNameParts {
			return nil, layoutError(e.Name, "not part of the mongodump layout")
		}
		switch {
		case base == "manifest.json":
			if man != nil {
				return nil, fmt.Errorf("%w: second manifest %q", ErrInvalidArchive, e.Name)
			}
			if man, err = manifest.Decode(ar); err != nil {
				return nil, fmt.Errorf("%w: %s: %w", ErrInvalidArchive, e.Name, err)
			}
			if man.Kind != manifest.KindBackup {
				return nil, fmt.Errorf("%w: manifest kind %q is not a database backup", ErrInvalidArchive, man.Kind)
			}
			continue
		case base == preludeName:
			if err := checkJSON(ar); err != nil {
				return nil, fmt.Errorf("%w: %s: %w", ErrInvalidArchive, e.Name, err)
			}
			continue
		case strings.HasSuffix(base, metaSuffix):
			if metaSize += e.Size; metaSize > maxMetadataTotal {
				return nil, fmt.Errorf("%w: %s: the metadata files exceed %d bytes together", ErrInvalidArchive, e.Name, maxMetadataTotal)
			}
			if fs.meta, err = parseMetadata(ar, &metaValues); err != nil {
				return nil, fmt.Errorf("%w: %s: %w", ErrInvalidArchive, e.Name, err)
			}
		case strings.HasSuffix(base, bsonSuffix):
			br.Reset(ar)
			// Every document is validated to the last nested byte here,
			// in the pass before the first write (ValidateDocument).
			check := func(doc []byte) error { return ValidateDocument(doc, maxUserDocSize, maxDepth) }
			if base == oplogName {
				fs.scan = newOplogScan(opts.UsersAndRoles)
				fs.scan.ren = ren
				fs.scan.holds = opts.Holds
				fs.scan.holdsCmd = opts.HoldsCommand
				check = func(doc []byte) error {
					if err := ValidateDocument(doc, maxDocSize, maxOplogDepth); err != nil {
						return err
					}
					return fs.scan.check(doc, nil, sel)
				}
			}
			var sum *manifest.Digest
			if opts.Holds != nil && base != oplogName {
				// The same sum the dump made of these bytes: a collection
				// the target cannot hold is still checked from the
				// archive (PlannedCollection.Digest).
				sum = &manifest.Digest{}
				check = func(doc []byte) error {
					if err := ValidateDocument(doc, maxUserDocSize, maxDepth); err != nil {
						return err
					}
					sum.Add(doc)
					if err := opts.Holds(doc, false); err != nil {
						fs.notHeld.add(err)
					}
					return nil
				}
			}
			fs.docs, fs.bytes, err = scanBSON(br, &buf, check)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: %w", ErrInvalidArchive, e.Name, err)
			}
			if sum != nil {
				fs.digest = sum.String()
			}
			if e.Name == oplogName {
				oplog = fs
				continue
			}
		default:
			return nil, layoutError(e.Name, "not part of the mongodump layout")
		}
		files = append(files, fs)
	}
	if !opts.Plain {
		if man == nil {
			return nil, fmt.Errorf("%w: no manifest.json", ErrInvalidArchive)
		}
		if afterMan != "" {
			return nil, fmt.Errorf("%w: %q after manifest.json", ErrInvalidArchive, afterMan)
		}
	}
	var extra *oplogScan
	if opts.Extra != nil {
		if extra, err = planExtra(ctx, man, sel, ren, opts); err != nil {
			return nil, err
		}
	}
	p, err := assemble(files, oplog, extra, man, sel, opts)
	if err != nil || ren == nil {
		return p, err
	}
	return p, renamePlan(p, ren)
}

// renaming is the restore's renaming, nil when it renames nothing; known
// are the renames a plan made.
func (o Options) renaming(sel matcher, known map[string]string) (*nsRename, error) {
	r, err := NewRenamer(o.NSFrom, o.NSTo)
	if err != nil || r == nil {
		return nil, err
	}
	if o.UsersAndRoles {
		return nil, fmt.Errorf("%w: users and roles live in admin, which a renaming cannot write: restore them without --ns-from", ErrBadRename)
	}
	return newNSRename(r, sel, known), nil
}

// renamePlan gives the planned collections their new names: those no
// pair renames join Skipped. The oplog's namespaces have theirs already
// (the scan renamed every entry). It refuses collisions and a new name
// that is renamed too, and a --ns-from that matches nothing.
func renamePlan(p *PlanResult, ren *nsRename) error {
	kept := p.Collections[:0:0]
	var renamedFrom []string
	for _, c := range p.Collections {
		ns := c.Namespace()
		t, ok, err := ren.mapNS(ns)
		if err != nil {
			return err
		}
		if !ok {
			p.Skipped = append(p.Skipped, ns)
			continue
		}
		renamedFrom = append(renamedFrom, ns)
		tdb, tname, _ := strings.Cut(t, ".")
		if c.Type == "view" {
			c.Options = ren.renameViewOn(c.Options, c.DB, tdb)
		}
		c.DB, c.Name = tdb, tname
		kept = append(kept, c)
	}
	p.Collections = kept
	sort.Strings(p.Skipped)
	planned := map[string]bool{}
	for _, c := range kept {
		planned[c.Namespace()] = true
	}
	only := p.OplogOnly[:0:0]
	for _, ns := range p.OplogOnly {
		if !planned[ns] {
			only = append(only, ns)
		}
	}
	p.OplogOnly = only
	if err := ren.check(); err != nil {
		return err
	}
	for s := range ren.src {
		renamedFrom = append(renamedFrom, s)
	}
	for _, rule := range ren.r.rules {
		hit := false
		for _, ns := range renamedFrom {
			hit = hit || rule.re.MatchString(ns)
		}
		if !hit {
			return fmt.Errorf("%w: --ns-from %s matches no collection of the backup that --ns selects", ErrNoMatch, rule.from)
		}
	}
	p.Renamed = make(map[string]string, len(ren.src))
	for s, d := range ren.src {
		p.Renamed[s] = d
	}
	return nil
}

// assemble maps the entries onto collections once all names are known (a
// plain dump's wrapper directory can only be told from the whole list) and
// checks them against the manifest.
func assemble(files []*fileStat, oplog *fileStat, extra *oplogScan, man *manifest.Manifest, sel matcher, opts Options) (*PlanResult, error) {
	p := &PlanResult{Manifest: man}
	if opts.Plain {
		p.prefix = wrapper(files, oplog)
		if oplog == nil && p.prefix != "" {
			// "dump/oplog.bson" was taken for a collection; it is the oplog.
			for i, f := range files {
				if f.raw == p.prefix+oplogName {
					oplog = f
					files = append(files[:i:i], files[i+1:]...)
					break
				}
			}
		}
	}
	// Data and metadata files pair by file name; the collection name is
	// resolved from both afterwards (resolveNames).
	byFile := map[string]*PlannedCollection{}
	var order []string
	lastData := -1
	for _, f := range files {
		rel, ok := strings.CutPrefix(f.raw, p.prefix)
		if !ok {
			return nil, fmt.Errorf("%w: %q outside the dump directory %q", ErrInvalidArchive, f.raw, p.prefix)
		}
		en, err := classify(rel)
		if err != nil {
			return nil, err
		}
		if en.kind != kindBSON && en.kind != kindMetadata {
			return nil, fmt.Errorf("%w: %q: misplaced", ErrInvalidArchive, f.raw)
		}
		key := en.db + "/" + en.file
		c := byFile[key]
		if c == nil {
			c = &PlannedCollection{DB: en.db, Name: en.file, Type: "collection"}
			byFile[key] = c
			order = append(order, key)
		}
		if en.kind == kindBSON {
			if c.bsonFile != "" {
				return nil, fmt.Errorf("%w: two data files for %s", ErrInvalidArchive, key)
			}
			c.bsonFile, c.Documents, c.Bytes, c.NotHeld, c.Digest = f.raw, f.docs, f.bytes, f.notHeld, f.digest
			lastData = max(lastData, f.order)
		} else {
			if c.metaFile != "" {
				return nil, fmt.Errorf("%w: two metadata files for %s", ErrInvalidArchive, key)
			}
			c.metaFile = f.raw
			m := f.meta
			if m.Type != "" {
				c.Type = m.Type
			}
			c.Options, c.Indexes = m.Options, m.Indexes
			c.idSpec, c.hasID = m.idSpec, m.hasID
			c.uuid = m.uuid
			c.realName = m.CollectionName
		}
	}
	byNS, order, err := resolveNames(byFile, order)
	if err != nil {
		return nil, err
	}
	if oplog != nil {
		p.OplogEntries = oplog.docs
		p.oplogEarly = oplog.order < lastData
		p.oplog = oplog.scan
		if p.oplog != nil {
			p.OplogKinds = p.oplog.kinds
			p.OplogNotHeld = p.oplog.notHeld
			for f, nss := range p.oplog.needs {
				for ns := range nss {
					if p.OplogFeatures == nil {
						p.OplogFeatures = map[string]string{}
					}
					p.OplogFeatures[ns] = f
				}
			}
		}
	}
	if extra != nil {
		p.ExtraEntries = extra.entries
		p.oplog = mergeScan(p.oplog, extra)
		p.OplogKinds = p.oplog.kinds
	}
	joinBuckets(byNS)
	if man != nil {
		if err := checkManifest(man, byNS, p.OplogEntries, oplog != nil); err != nil {
			return nil, err
		}
	}
	sort.Strings(order)
	for _, ns := range order {
		c := byNS[ns]
		if c == nil {
			continue // buckets joined to their time-series collection
		}
		if c.metaFile == "" && c.Type == "view" {
			return nil, fmt.Errorf("%w: view %s without metadata", ErrInvalidArchive, ns)
		}
		if c.DB == "admin" && (c.Name == "system.users" || c.Name == "system.roles") {
			if c.Name == "system.users" {
				p.Users = c.Documents
			} else {
				p.Roles = c.Documents
			}
			if opts.UsersAndRoles {
				p.authz = append(p.authz, *c)
				continue
			}
		}
		// system.js (stored JavaScript) is a plain collection to the
		// server: mongodump dumps it and mongorestore restores it.
		// The config collections mongorestore keeps are restored as it
		// restores them (a0 does not dump config; a mongodump of a whole
		// cluster holds them).
		if (strings.HasPrefix(c.Name, "system.") && c.Name != "system.js") || c.DB == "local" ||
			c.DB == "config" && nsClassOf(ns) != nsConfig || !sel.match(ns) {
			p.Skipped = append(p.Skipped, ns)
			continue
		}
		p.Collections = append(p.Collections, *c)
	}
	if p.oplog != nil {
		planned := map[string]bool{}
		for _, c := range p.Collections {
			planned[c.Namespace()] = true
		}
		for ns := range p.oplog.namespaces {
			// Renamed, the oplog's namespaces are new names: one the
			// archive holds too is not restored (no pair renames it).
			if !planned[ns] && (byNS[ns] == nil || len(opts.NSFrom) > 0) {
				p.OplogOnly = append(p.OplogOnly, ns)
			}
		}
		sort.Strings(p.OplogOnly)
	}
	// A --ns pattern that names nothing in the backup is a typo more often
	// than a wish to restore nothing: refuse it, naming the pattern.
	for _, pat := range sel {
		hit := false
		for _, ns := range order {
			hit = hit || glob(pat, ns)
		}
		for _, ns := range p.OplogOnly {
			hit = hit || glob(pat, ns)
		}
		if !hit {
			return nil, fmt.Errorf("%w: --ns %s matches no collection of the backup", ErrNoMatch, pat)
		}
	}
	return p, nil
}

// resolveNames gives every collection its real name (resolveName) and keys
// them by namespace, which the manifest, the system.* rule and --ns then
// see. Two files that resolve to one namespace are refused.
func resolveNames(byFile map[string]*PlannedCollection, files []string) (map[string]*PlannedCollection, []string, error) {
	byNS := make(map[string]*PlannedCollection, len(byFile))
	order := make([]string, 0, len(files))
	for _, key := range files {
		c := byFile[key]
		name, err := resolveName(c.DB, c.Name, c.realName)
		if err != nil {
			return nil, nil, err
		}
		c.Name, c.realName = name, ""
		ns := c.Namespace()
		if byNS[ns] != nil {
			return nil, nil, fmt.Errorf("%w: two sets of files for %s", ErrInvalidArchive, ns)
		}
		byNS[ns] = c
		order = append(order, ns)
	}
	return byNS, order, nil
}

// joinBuckets gives each time-series collection the data of its buckets
// collection: mongodump writes a time-series collection as
// <name>.metadata.json (type "timeseries") and system.buckets.<name>.bson.
func joinBuckets(byNS map[string]*PlannedCollection) {
	for _, c := range byNS {
		if c.Type != "timeseries" {
			continue
		}
		bns := c.DB + ".system.buckets." + c.Name
		b := byNS[bns]
		if b == nil || b.metaFile != "" || c.bsonFile != "" {
			continue
		}
		c.bsonFile, c.Documents, c.Bytes, c.NotHeld, c.Digest = b.bsonFile, b.Documents, b.Bytes, b.NotHeld, b.Digest
		delete(byNS, bns)
	}
}

// wrapper returns the single top directory of a plain dump ("dump/"), or ""
// when the layout starts at the root. A wrapper exists when some entry is
// three levels deep, or the prelude sits one level down.
func wrapper(files []*fileStat, oplog *fileStat) string {
	all := files
	if oplog != nil {
		all = append(all[:len(all):len(all)], oplog)
	}
	for _, f := range all {
		parts := strings.Split(f.raw, "/")
		if len(parts) == 3 {
			return parts[0] + "/"
		}
	}
	return ""
}

func checkManifest(man *manifest.Manifest, byNS map[string]*PlannedCollection, oplogDocs int64, hasOplog bool) error {
	seen := map[string]bool{}
	for _, mc := range man.Collections {
		ns := mc.Namespace()
		c := byNS[ns]
		if c == nil {
			return fmt.Errorf("%w: manifest lists %s, the archive does not hold it", ErrInvalidArchive, ns)
		}
		seen[ns] = true
		if c.Documents != mc.Documents || c.Bytes != mc.Bytes {
			return fmt.Errorf("%w: %s: archive holds %d documents / %d bytes, manifest says %d / %d",
				ErrInvalidArchive, ns, c.Documents, c.Bytes, mc.Documents, mc.Bytes)
		}
		if got := len(c.Indexes) + idIndex(c); got != mc.Indexes {
			return fmt.Errorf("%w: %s: metadata holds %d indexes, manifest says %d", ErrInvalidArchive, ns, got, mc.Indexes)
		}
	}
	for ns := range byNS {
		if !seen[ns] {
			return fmt.Errorf("%w: %s is in the archive but not in the manifest", ErrInvalidArchive, ns)
		}
	}
	if man.OplogEntries != oplogDocs {
		return fmt.Errorf("%w: oplog.bson holds %d entries, manifest says %d", ErrInvalidArchive, oplogDocs, man.OplogEntries)
	}
	if man.ConsistentTo != nil && !hasOplog && man.OplogEntries > 0 {
		return fmt.Errorf("%w: manifest promises an oplog, the archive has none", ErrInvalidArchive)
	}
	return nil
}

// idIndex is 1 for a collection that has the _id index (left out of
// PlannedCollection.Indexes); 0 for a view, and for a time-series
// collection whose metadata lists none.
func idIndex(c *PlannedCollection) int {
	switch {
	case c.hasID:
		return 1
	case c.Type == "view" || c.Type == "timeseries":
		return 0
	}
	// A collection has its _id index (a clustered one its clustered
	// index) whether or not old dumps list it.
	return 1
}

// hasOption reports whether collection options hold key.
func hasOption(opts bson.D, key string) bool {
	for _, e := range opts {
		if e.Key == key {
			return true
		}
	}
	return false
}

// scanBSON reads length-prefixed BSON documents until EOF, validating each
// at its top level (length, terminator, every element) and calling fn with
// it; Plan's fn validates deeply (ValidateDocument). The slice
// passed to fn is reused afterwards. A document cut by the end of the entry
// is an error.
func scanBSON(r *bufio.Reader, buf *[]byte, fn func(doc []byte) error) (docs, n int64, err error) {
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return docs, n, nil
			}
			return docs, n, fmt.Errorf("document %d: truncated length: %w", docs, err)
		}
		size := int64(int32(binary.LittleEndian.Uint32(hdr[:])))
		if size < 5 || size > maxDocSize {
			return docs, n, fmt.Errorf("document %d: bad length %d", docs, size)
		}
		if int64(cap(*buf)) < size {
			*buf = make([]byte, 0, size)
		}
		b := (*buf)[:size]
		copy(b, hdr[:])
		if _, err := io.ReadFull(r, b[4:]); err != nil {
			return docs, n, fmt.Errorf("document %d: truncated: %w", docs, err)
		}
		if err := bsoncore.Document(b).Validate(); err != nil {
			return docs, n, fmt.Errorf("document %d: %w", docs, err)
		}
		if err := fn(b); err != nil {
			return docs, n, fmt.Errorf("document %d: %w", docs, err)
		}
		docs++
		n += size
	}
}

// metadata is a <coll>.metadata.json as mongodump writes it (extended JSON).
type metadata struct {
	Options        bson.D
	Indexes        []bson.D
	Type           string
	CollectionName string
	idSpec         bson.D
	hasID          bool
	uuid           string // the collection's UUID when dumped (hex), "" if unknown
}

// parseMetadata parses one metadata.json. values counts the values of
// every metadata.json of the archive so far: Plan keeps them all.
func parseMetadata(r io.Reader, values *int) (*metadata, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxMetadataSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxMetadataSize {
		return nil, fmt.Errorf("metadata larger than %d bytes", maxMetadataSize)
	}
	shape, err := jsonlimit.Check(b, metadataLimits)
	if err != nil {
		return nil, err
	}
	if *values += shape.Values; *values > maxMetadataValues {
		return nil, fmt.Errorf("%w: the metadata files hold more than %d values together", jsonlimit.ErrTooComplex, maxMetadataValues)
	}
	var raw struct {
		Options        bson.D   `bson:"options"`
		Indexes        []bson.D `bson:"indexes"`
		Type           string   `bson:"type"`
		CollectionName string   `bson:"collectionName"`
		UUID           string   `bson:"uuid"`
	}
	if err := bson.UnmarshalExtJSON(b, false, &raw); err != nil {
		return nil, fmt.Errorf("parse metadata: %w", err)
	}
	switch raw.Type {
	case "", "collection", "view", "timeseries":
	default:
		return nil, fmt.Errorf("unsupported collection type %q", raw.Type)
	}
	m := &metadata{Options: raw.Options, Type: raw.Type, CollectionName: raw.CollectionName}
	if u, err := hex.DecodeString(raw.UUID); err == nil && len(u) == 16 {
		m.uuid = hex.EncodeToString(u) // lower case, as oplog.Entry.UI
	}
	for i, spec := range raw.Indexes {
		clean, err := cleanIndexSpec(spec)
		if err != nil {
			return nil, fmt.Errorf("index %d: %w", i, err)
		}
		if clean != nil {
			m.Indexes = append(m.Indexes, clean)
		} else {
			m.hasID, m.idSpec = true, idIndexSpec(spec)
		}
	}
	return m, nil
}

// cleanIndexSpec rewrites one index spec for createIndexes. It drops "ns"
// (FerretDB rejects it; MongoDB >= 4.4 ignores it), "v" (as mongorestore
// does: the server picks its own version) and "background" (a no-op since
// 4.2), turns integral float key values into int32 (old dumps carry 1.0),
// and returns nil for the _id index, which the server creates itself.
func cleanIndexSpec(spec bson.D) (bson.D, error) {
	var out bson.D
	var name string
	var key bson.D
	for _, e := range spec {
		switch e.Key {
		case "ns", "v", "background":
			continue
		case "name":
			name, _ = e.Value.(string)
		case "key":
			k, ok := e.Value.(bson.D)
			if !ok || len(k) == 0 {
				return nil, errors.New("index key is not a non-empty document")
			}
			key = make(bson.D, len(k))
			for i, f := range k {
				if v, ok := f.Value.(float64); ok && v == float64(int32(v)) {
					f.Value = int32(v)
				}
				f.Value = legacyKeyValue(f.Value)
				key[i] = f
			}
			e.Value = key
		}
		out = append(out, e)
	}
	if name == "" || key == nil {
		return nil, errors.New("index without name or key")
	}
	if name == "_id_" {
		return nil, nil
	}
	return out, nil
}

// legacyKeyValue converts a key pattern value servers before 3.4 accepted
// and 4.4+ refuse, as mongo-tools' ConvertLegacyIndexKeys: 0 and "" become
// 1, and so does any value that is neither a number nor a string (true, a
// document...). Index types ("2dsphere", "hashed"...) and directions stay.
func legacyKeyValue(v any) any {
	switch x := v.(type) {
	case int32:
		if x == 0 {
			return int32(1)
		}
	case int64:
		if x == 0 {
			return int32(1)
		}
	case float64:
		if x == 0 || x != x {
			return int32(1)
		}
	case bson.Decimal128:
		if f, err := strconv.ParseFloat(x.String(), 64); err != nil || f == 0 {
			return int32(1)
		}
	case string:
		if x == "" {
			return int32(1)
		}
	default:
		return int32(1)
	}
	return v
}

// idIndexSpec is the _id index spec for create's idIndex option, or nil
// when it holds nothing but the defaults (key, name, v, ns): the server's
// own _id index is then the same, and a server that does not know idIndex
// (FerretDB) is not asked.
func idIndexSpec(spec bson.D) bson.D {
	var out bson.D
	custom := false
	for _, e := range spec {
		switch e.Key {
		case "ns", "background":
			continue
		case "key", "name", "v", "unique": // an _id index is always unique
		default:
			custom = true
		}
		out = append(out, e)
	}
	if !custom {
		return nil
	}
	return out
}

// checkJSON makes sure prelude.json is a bounded, well-formed JSON value.
func checkJSON(r io.Reader) error {
	b, err := io.ReadAll(io.LimitReader(r, 1<<20))
	if err != nil {
		return err
	}
	if _, err := jsonlimit.Check(b, preludeLimits); err != nil {
		return err
	}
	var v any
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&v); err != nil {
		return fmt.Errorf("parse: %w", err)
	}
	return nil
}
