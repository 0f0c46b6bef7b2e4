package drill

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/a0backup/a0/internal/embedded"
	"github.com/a0backup/a0/internal/manifest"
	"github.com/a0backup/a0/internal/restore"
)

// DirPattern names a drill's temporary directory in Options.Parent
// (os.MkdirTemp's pattern); CleanStale looks for it.
const DirPattern = "a0-drill-*"

// lockName is the file a running drill holds a flock on, in its directory.
const lockName = "drill.lock"

// errHeld is lockFile's answer when another descriptor holds the lock.
var errHeld = errors.New("held")

// Statuses of a Collection.
const (
	// StatusOK: the documents as restored have the dumped count and
	// digest, and the indexes are all there.
	StatusOK = "ok"
	// StatusDiffers: the count, the digest or the indexes differ from
	// what the dump wrote, or the server refused documents (Reason).
	StatusDiffers = "differs"
	// StatusNotHeld: the embedded server cannot hold the collection (a
	// feature it lacks, Reason): not restored, named and counted.
	StatusNotHeld = "not-held"
	// StatusNoDigest: count and indexes match; the backup has no digest
	// for the collection (made before a0 wrote them), so its content was
	// not compared.
	StatusNoDigest = "no-digest"
	// StatusNotRestored: a collection the backup holds that a restore
	// leaves out (users and roles without --users-and-roles, a server's
	// own collections), as restore would.
	StatusNotRestored = "not-restored"
)

// Options are a drill's inputs.
type Options struct {
	// Open returns the backup's plaintext archive (the tar.gz an a0 file
	// holds) from its start, e.g. backupfile.(*File).Reopen once the file
	// is authenticated. Run calls it once per pass over the archive (a
	// plan, then the restore; again when a collection is found the
	// server cannot hold). Run reads each stream to its end or drops it;
	// it closes none.
	Open func() (io.Reader, error)
	// Parent holds the drill's temporary directory (the embedded server's
	// files and the restore's spools): os.TempDir() when empty. It needs
	// RoomFactor times the restored BSON free (CheckRoom): FerretDB's SQLite
	// files are a few times the BSON.
	Parent string
	// InputSize and SpoolReserve bound the restore's spools as in
	// restore.Options (the size of the file read; the free space to leave).
	InputSize    int64
	SpoolReserve int64
	// Logger receives the drill's progress lines (nil: none).
	Logger *slog.Logger
	// Progress, when set, is the restore's progress (restore.Progress).
	Progress *restore.Progress
}

// Collection is one collection's result.
type Collection struct {
	Namespace         string `json:"namespace"`
	Status            string `json:"status"`
	DocumentsExpected int64  `json:"documents_expected"`
	DocumentsFound    int64  `json:"documents_found"`
	DigestExpected    string `json:"digest_expected,omitempty"`
	DigestFound       string `json:"digest_found,omitempty"`
	IndexesExpected   int    `json:"indexes_expected"`
	IndexesFound      int    `json:"indexes_found"`
	// Reason says why a collection is not StatusOK.
	Reason string `json:"reason,omitempty"`
	// DocumentsNotHeld counts, for StatusNotHeld, the documents the
	// embedded server cannot hold (embedded.Holds): a field name with '.'
	// or a leading '$', a Decimal128... (0 when a collection option is
	// what it lacks).
	DocumentsNotHeld int64 `json:"documents_not_held,omitempty"`
	// DocumentsArchived and DigestArchived are, for a collection the
	// embedded server cannot hold, the count and content digest of its
	// documents as the archive holds them (summed in the plan's pass with
	// the dump's function, manifest.Digest); BytesVerified says they match
	// the manifest's: not restored, but its bytes are what the dump wrote.
	// A mismatch makes the collection StatusDiffers.
	DocumentsArchived int64  `json:"documents_archived,omitempty"`
	DigestArchived    string `json:"digest_archived,omitempty"`
	BytesVerified     bool   `json:"bytes_verified,omitempty"`
}

// Report is a drill's result. OK is true only when no collection differs;
// collections not held or not restored are listed and counted, and do not
// by themselves make the drill fail.
type Report struct {
	// Name is the backup's name from its manifest ("" when it has none).
	Name    string    `json:"name,omitempty"`
	Started time.Time `json:"started"`
	// RestoreTime is how long the restore took (plan, data, oplog
	// replay, indexes), without the comparison's reads (CompareTime) and
	// the server's start.
	RestoreTime time.Duration `json:"-"`
	CompareTime time.Duration `json:"-"`
	// RestoreSeconds and CompareSeconds are the same for JSON.
	RestoreSeconds float64 `json:"restore_seconds"`
	CompareSeconds float64 `json:"compare_seconds"`
	Documents      int64   `json:"documents"`
	Bytes          int64   `json:"bytes"`

	Collections []Collection `json:"collections"`
	// Counts by status.
	Same        int `json:"same"`
	Differs     int `json:"differs"`
	NotHeld     int `json:"not_held"`
	NoDigest    int `json:"no_digest"`
	NotRestored int `json:"not_restored"`
	// DocumentsNotHeld sums the not-held collections' DocumentsNotHeld.
	DocumentsNotHeld int64 `json:"documents_not_held"`
	// NotHeldVerified counts the not-held collections whose archived
	// documents match the manifest's count and digest (BytesVerified).
	NotHeldVerified int `json:"not_held_verified"`
	// Digests says whether the backup carries content digests.
	Digests bool `json:"digests"`

	OplogEntries int64            `json:"oplog_entries"`
	OplogApplied int64            `json:"oplog_applied"`
	OplogSkipped map[string]int64 `json:"oplog_skipped,omitempty"`
	OK           bool             `json:"ok"`
}

// RestoreError is a backup that did not restore into the drill's server:
// the drill failed (as a difference does), Step says where.
type RestoreError struct {
	// Step is "plan", "data", "oplog", "indexes" or "report" (the
	// restore's steps, restore.Step*).
	Step string
	Err  error
}

func (e *RestoreError) Error() string {
	return fmt.Sprintf("the backup did not restore (step %s): %v", e.Step, e.Err)
}

func (e *RestoreError) Unwrap() error { return e.Err }

// Run restores the backup Options.Open reads into a throwaway embedded
// server and compares it with its manifest. A difference is in the Report
// (OK false), not an error; a backup that does not restore is a
// *RestoreError; ctx's cancellation stops it with ctx's error. The
// temporary directory is removed before Run returns.
func Run(ctx context.Context, o Options) (rep *Report, err error) {
	if o.Open == nil {
		return nil, errors.New("drill: no backup to open")
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	parent := o.Parent
	if parent == "" {
		parent = os.TempDir()
	}
	dir, err := os.MkdirTemp(parent, DirPattern)
	if err != nil {
		return nil, fmt.Errorf("drill: temporary directory: %w", err)
	}
	var lock *os.File
	defer func() {
		// The server is closed (its files released) before this runs.
		if rmErr := os.RemoveAll(dir); rmErr != nil && err == nil {
			err = fmt.Errorf("drill: remove %s: %w", dir, rmErr)
		}
		if lock != nil {
			lock.Close()
		}
	}()
	if lock, err = os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		return nil, fmt.Errorf("drill: lock: %w", err)
	}
	if err := lockFile(lock); err != nil && !errors.Is(err, errHeld) {
		return nil, fmt.Errorf("drill: lock: %w", err)
	}
	srv, err := embedded.Start(ctx, embedded.Config{Dir: filepath.Join(dir, "db"), SocketDir: filepath.Join(dir, "run")})
	if err != nil {
		return nil, fmt.Errorf("drill: start the embedded server: %w", err)
	}
	defer srv.Close()
	client, err := srv.Connect(ctx)
	if err != nil {
		return nil, fmt.Errorf("drill: connect to the embedded server: %w", err)
	}
	defer client.Disconnect(context.WithoutCancel(ctx))
	log.Info("drill: restoring into a throwaway embedded server", "dir", dir)
	return run(ctx, o, srv, client, filepath.Join(dir, "spool"))
}

func run(ctx context.Context, o Options, srv *embedded.Server, client *mongo.Client, spoolDir string) (*Report, error) {
	if err := os.MkdirAll(spoolDir, 0o700); err != nil {
		return nil, fmt.Errorf("drill: %w", err)
	}
	rep := &Report{Started: time.Now().UTC()}
	if o.Progress == nil {
		// RestoreError's step comes from it.
		o.Progress = &restore.Progress{}
	}
	ropts := restore.Options{
		SpoolDir:     spoolDir,
		InputSize:    o.InputSize,
		SpoolReserve: o.SpoolReserve,
		Count:        srv.Catalog().Count,
		IndexIDLookups: func(ctx context.Context, db string, colls []string) error {
			_, err := srv.IndexIDLookups(ctx, db, colls)
			return err
		},
	}
	start := time.Now()
	plan, notHeld, err := planHeld(ctx, o, client, ropts)
	if err != nil {
		return nil, err
	}
	man := plan.Manifest
	if man == nil {
		return nil, &RestoreError{Step: "plan", Err: errors.New("the archive has no manifest.json: nothing to compare with")}
	}
	rep.Name, rep.Documents, rep.Bytes, rep.OplogEntries = man.Name, man.TotalDocuments(), man.TotalBytes(), man.OplogEntries
	if len(notHeld) > 0 {
		ropts.NS = heldNamespaces(plan)
	}
	found := map[string]*Collection{}
	var compare time.Duration
	ropts.AfterData = func(ctx context.Context) error {
		t := time.Now()
		defer func() { compare = time.Since(t) }()
		for _, c := range plan.Collections {
			got, err := readBack(ctx, client, c)
			if err != nil {
				return err
			}
			found[c.Namespace()] = got
		}
		return nil
	}
	var rrep *restore.Report
	if len(plan.Collections) > 0 || plan.OplogEntries > 0 {
		stream, err := o.Open()
		if err != nil {
			return nil, fmt.Errorf("drill: open the backup: %w", err)
		}
		rrep, err = restore.Run(ctx, client, stream, plan, ropts, o.Progress)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, &RestoreError{Step: o.Progress.Snapshot().Step, Err: err}
		}
	}
	rep.RestoreTime = time.Since(start) - compare
	rep.CompareTime = compare
	rep.RestoreSeconds, rep.CompareSeconds = rep.RestoreTime.Seconds(), compare.Seconds()
	if rrep != nil {
		rep.OplogApplied, rep.OplogSkipped = rrep.OplogApplied, rrep.OplogSkipped
	}
	compareAll(rep, man, plan, notHeld, found, rrep)
	return rep, nil
}

// planHeld plans the restore and asks the server, before any write,
// whether it can hold each collection (restore.Preflight): one it cannot
// is left out (restore's NS selection) and the plan made again, so that
// the rest is still tested. It returns the plan and the collections left
// out, with the server's reason.
func planHeld(ctx context.Context, o Options, client *mongo.Client, ropts restore.Options) (*restore.PlanResult, map[string]notHeldWhy, error) {
	notHeld := map[string]notHeldWhy{}
	// Every document is asked about in the plan's pass, before anything
	// is sent: the server answers some (Decimal128) by closing the
	// connection, which would end the whole drill.
	ropts.Holds = holds
	// And every oplog command the replay applies or builds indexes from
	// (a create with a validator, an index with a collation...), which
	// would fail the replay or the index builds of a backup that is fine.
	ropts.HoldsCommand = embedded.HoldsCommand
	for {
		stream, err := o.Open()
		if err != nil {
			return nil, nil, fmt.Errorf("drill: open the backup: %w", err)
		}
		plan, err := restore.Plan(ctx, stream, ropts)
		if err != nil {
			if ctx.Err() != nil {
				return nil, nil, ctx.Err()
			}
			return nil, nil, &RestoreError{Step: "plan", Err: err}
		}
		found := documentsNotHeld(plan)
		// What the oplog writes through applyOps alone (a view, a
		// time-series collection created during the dump), which
		// FerretDB lacks: named from this plan, as a narrower selection
		// would leave it out silently.
		for ns, f := range plan.OplogFeatures {
			if _, ok := found[ns]; !ok {
				found[ns] = notHeldWhy{reason: fmt.Sprintf("the oplog writes it as a %s, which the embedded server (FerretDB, without applyOps) cannot hold: not restored", f)}
			}
		}
		for ns, why := range indexesNotHeld(plan) {
			if f, ok := found[ns]; ok {
				why.reason = f.reason + "; " + why.reason
				why.documents = f.documents
			}
			found[ns] = why
		}
		if len(found) == 0 {
			err = restore.Preflight(ctx, client, plan, ropts)
			var ue *restore.UnsupportedError
			if err == nil {
				return plan, notHeld, nil
			}
			if ctx.Err() != nil {
				return nil, nil, ctx.Err()
			}
			if !errors.As(err, &ue) || !planned(plan, ue.Namespace) {
				return nil, nil, &RestoreError{Step: "plan", Err: err}
			}
			found[ue.Namespace] = notHeldWhy{reason: fmt.Sprintf("the embedded server cannot hold its %s: %v", ue.Feature, ue.Err)}
		}
		for ns, why := range found {
			if _, again := notHeld[ns]; again {
				// Left out, yet still in the plan: never loop.
				return nil, nil, &RestoreError{Step: "plan", Err: fmt.Errorf("%s: %s", ns, why.reason)}
			}
			// This plan still read its documents: what the archive holds
			// of it is compared with the manifest instead (compareAll).
			for _, c := range plan.Collections {
				if c.Namespace() == ns && c.Type != "view" {
					why.archived, why.archivedDocs, why.archivedDigest = true, c.Documents, c.Digest
				}
			}
			notHeld[ns] = why
		}
		ropts.NS = nil
		for _, ns := range heldNamespaces(plan) {
			if _, out := notHeld[ns]; !out {
				ropts.NS = append(ropts.NS, ns)
			}
		}
		if len(ropts.NS) == 0 {
			// Nothing left to restore: an empty plan (restore's empty
			// NS would mean everything), which Run does not restore.
			return &restore.PlanResult{Manifest: plan.Manifest}, notHeld, nil
		}
	}
}

// notHeldWhy is why the drill left a collection out: the reason, and the
// documents (and oplog entries) the embedded server cannot hold.
type notHeldWhy struct {
	reason    string
	documents int64
	// archived: the plan read the collection's documents from the
	// archive, archivedDocs of them, summing archivedDigest
	// (restore.PlannedCollection.Digest).
	archived       bool
	archivedDocs   int64
	archivedDigest string
}

// holds is restore.Options.Holds for the embedded server.
func holds(doc []byte, update bool) error {
	if update {
		return embedded.HoldsValues(doc)
	}
	return embedded.Holds(doc)
}

// documentsNotHeld lists the planned collections holding documents, or
// named by oplog entries writing documents, that the embedded server
// cannot hold (restore.Options.Holds' answers).
func documentsNotHeld(plan *restore.PlanResult) map[string]notHeldWhy {
	out := map[string]notHeldWhy{}
	for _, c := range plan.Collections {
		if n := c.NotHeld; n.Count > 0 {
			out[c.Namespace()] = notHeldWhy{documents: n.Count, reason: fmt.Sprintf(
				"the embedded server (FerretDB) cannot hold %d of its %d documents (the first: %s): not restored",
				n.Count, c.Documents, n.Why)}
		}
	}
	for ns, n := range plan.OplogNotHeld {
		if !planned(plan, ns) {
			continue
		}
		why := out[ns]
		if why.reason != "" {
			why.reason += "; "
		}
		why.reason += fmt.Sprintf("the embedded server (FerretDB) cannot hold what %d oplog entries write or build (the first: %s): not restored", n.Count, n.Why)
		out[ns] = why
	}
	return out
}

// indexesNotHeld lists the planned collections with a dumped index the
// embedded server cannot build (embedded.HoldsIndex: a TTL, partial,
// text or collated index...): restored, its index build would fail
// although the backup is fine.
func indexesNotHeld(plan *restore.PlanResult) map[string]notHeldWhy {
	out := map[string]notHeldWhy{}
	for _, c := range plan.Collections {
		var n int
		var first string
		for _, spec := range c.Indexes {
			raw, err := bson.Marshal(spec)
			if err == nil {
				err = embedded.HoldsIndex(raw)
			}
			if err != nil {
				if n == 0 {
					first = fmt.Sprintf("%v: %v", indexName(spec), err)
				}
				n++
			}
		}
		if n > 0 {
			out[c.Namespace()] = notHeldWhy{reason: fmt.Sprintf(
				"the embedded server (FerretDB) cannot build %d of its %d indexes (the first: %s): not restored", n, len(c.Indexes), first)}
		}
	}
	return out
}

// indexName is an index spec's name (nil without one).
func indexName(spec bson.D) any {
	for _, f := range spec {
		if f.Key == "name" {
			return f.Value
		}
	}
	return nil
}

// planned says whether ns is a collection plan restores (or one only its
// oplog creates).
func planned(plan *restore.PlanResult, ns string) bool {
	for _, c := range plan.Collections {
		if c.Namespace() == ns {
			return true
		}
	}
	for _, o := range plan.OplogOnly {
		if o == ns {
			return true
		}
	}
	return false
}

// heldNamespaces are the namespaces plan restores, as restore's NS
// selection names them.
func heldNamespaces(plan *restore.PlanResult) []string {
	var out []string
	for _, c := range plan.Collections {
		out = append(out, c.Namespace())
	}
	return append(out, plan.OplogOnly...)
}

// readBack reads every document of one restored collection (a
// time-series collection's buckets, which is what its dump read) and sums
// its count and digest.
func readBack(ctx context.Context, client *mongo.Client, c restore.PlannedCollection) (*Collection, error) {
	got := &Collection{Namespace: c.Namespace()}
	if c.Type == "view" {
		return got, nil
	}
	name := c.Name
	if c.Type == "timeseries" {
		name = "system.buckets." + c.Name
	}
	cur, err := client.Database(c.DB).Collection(name).Find(ctx, bson.D{}, options.Find().SetBatchSize(batchSize(c)))
	if err != nil {
		return nil, fmt.Errorf("drill: read back %s: %w", c.Namespace(), err)
	}
	defer cur.Close(context.WithoutCancel(ctx))
	var sum manifest.Digest
	for cur.Next(ctx) {
		sum.Add(cur.Current)
		got.DocumentsFound++
	}
	if err := cur.Err(); err != nil {
		return nil, fmt.Errorf("drill: read back %s: %w", c.Namespace(), err)
	}
	got.DigestFound = sum.String()
	return got, nil
}

// batchSize asks for batches of about 4 MiB of the collection's mean
// document: FerretDB returns as many documents as asked for, and a reply
// over the driver's 48 MB limit fails the read (see dump's batcher); a
// quarter of the limit leaves room for documents above the mean.
func batchSize(c restore.PlannedCollection) int32 {
	if c.Documents <= 0 || c.Bytes <= 0 {
		return 100
	}
	mean := c.Bytes / c.Documents
	return int32(min(max((4<<20)/max(mean, 1), 2), 10000))
}

// compareAll fills rep.Collections: every collection of the manifest, in
// its order, with its status.
func compareAll(rep *Report, man *manifest.Manifest, plan *restore.PlanResult, notHeld map[string]notHeldWhy, found map[string]*Collection, rrep *restore.Report) {
	restored := map[string]restore.CollectionReport{}
	if rrep != nil {
		for _, c := range rrep.Collections {
			restored[c.Namespace] = c
		}
	}
	inPlan := map[string]bool{}
	for _, c := range plan.Collections {
		inPlan[c.Namespace()] = true
	}
	for _, mc := range man.Collections {
		ns := mc.Namespace()
		c := Collection{Namespace: ns, DocumentsExpected: mc.Documents, DigestExpected: mc.Digest, IndexesExpected: mc.Indexes}
		if mc.Digest != "" {
			rep.Digests = true
		}
		switch {
		case notHeld[ns].reason != "":
			c.Status, c.Reason, c.DocumentsNotHeld = StatusNotHeld, notHeld[ns].reason, notHeld[ns].documents
			archivedBytes(&c, mc, notHeld[ns])
			if c.Status == StatusNotHeld {
				rep.DocumentsNotHeld += c.DocumentsNotHeld
			}
			if c.BytesVerified {
				rep.NotHeldVerified++
			}
		case !inPlan[ns]:
			c.Status, c.Reason = StatusNotRestored, notRestoredReason(ns)
		default:
			c.Status = StatusOK
			var why []string
			got := found[ns]
			if got == nil {
				got = &Collection{}
				why = append(why, "not read back")
			}
			c.DocumentsFound, c.DigestFound = got.DocumentsFound, got.DigestFound
			if mc.Type == "view" {
				c.DigestFound = ""
			} else if c.DocumentsFound != c.DocumentsExpected {
				why = append(why, fmt.Sprintf("%d documents restored, %d dumped", c.DocumentsFound, c.DocumentsExpected))
			}
			if mc.Digest != "" && mc.Type != "view" && c.DigestFound != mc.Digest {
				why = append(why, "content digest differs")
			}
			r, ok := restored[ns]
			if ok {
				// The restore's expectation: the dump's indexes and those
				// the oplog's entries built.
				c.IndexesExpected, c.IndexesFound = r.IndexesExpected, r.IndexesFound
				if r.IndexesFound != r.IndexesExpected {
					why = append(why, fmt.Sprintf("%d indexes built, %d dumped", r.IndexesFound, r.IndexesExpected))
				}
				why = append(why, r.IndexErrors...)
				if r.DocumentsFailed > 0 {
					why = append(why, fmt.Sprintf("%d documents refused by the server: %s", r.DocumentsFailed, strings.Join(r.InsertErrors, "; ")))
				}
				if !r.OK && len(why) == 0 {
					why = append(why, fmt.Sprintf("after the oplog replay %d documents, %d expected", r.DocumentsFound, r.DocumentsExpected))
				}
			}
			switch {
			case len(why) > 0:
				c.Status, c.Reason = StatusDiffers, strings.Join(why, "; ")
			case mc.Digest == "" && mc.Type != "view":
				c.Status, c.Reason = StatusNoDigest, "the backup has no content digest (made before a0 wrote them): count and indexes compared"
			}
		}
		switch c.Status {
		case StatusOK:
			rep.Same++
		case StatusDiffers:
			rep.Differs++
		case StatusNotHeld:
			rep.NotHeld++
		case StatusNoDigest:
			rep.NoDigest++
		case StatusNotRestored:
			rep.NotRestored++
		}
		rep.Collections = append(rep.Collections, c)
	}
	// A collection only the oplog creates (after the dump listed the
	// collections) is not in the manifest: named and counted all the same.
	listed := map[string]bool{}
	for _, mc := range man.Collections {
		listed[mc.Namespace()] = true
	}
	var extra []string
	for ns, why := range notHeld {
		if !listed[ns] && why.reason != "" {
			extra = append(extra, ns)
		}
	}
	sort.Strings(extra)
	for _, ns := range extra {
		why := notHeld[ns]
		rep.Collections = append(rep.Collections, Collection{Namespace: ns, Status: StatusNotHeld, DocumentsNotHeld: why.documents,
			Reason: why.reason + " (created by the oplog after the dump listed the collections)"})
		rep.NotHeld++
		rep.DocumentsNotHeld += why.documents
	}
	rep.OK = rep.Differs == 0
}

// archivedBytes compares, for a collection the embedded server cannot
// hold, what the archive holds of it (read in the plan's pass) with what
// the dump wrote: the same count and digest a restored collection is
// compared by. A difference makes it StatusDiffers: a change to its bytes
// must fail the drill though it is not restored.
func archivedBytes(c *Collection, mc manifest.Collection, why notHeldWhy) {
	if !why.archived || mc.Type == "view" {
		return
	}
	c.DocumentsArchived, c.DigestArchived = why.archivedDocs, why.archivedDigest
	var diff []string
	if why.archivedDocs != mc.Documents {
		diff = append(diff, fmt.Sprintf("%d documents in the archive, %d dumped", why.archivedDocs, mc.Documents))
	}
	if mc.Digest != "" && why.archivedDigest != mc.Digest {
		diff = append(diff, "content digest of its archived documents differs")
	}
	switch {
	case len(diff) > 0:
		c.Status = StatusDiffers
		c.Reason = "its archived documents differ from what the dump wrote: " + strings.Join(diff, "; ") + " (not restored: " + c.Reason + ")"
	case mc.Digest == "":
		c.Reason += "; the backup has no content digest: its archived documents were counted only"
	default:
		c.BytesVerified = true
		c.Reason += fmt.Sprintf("; bytes verified: its %d archived documents have the dumped count and content digest", why.archivedDocs)
	}
}

func notRestoredReason(ns string) string {
	switch ns {
	case "admin.system.users", "admin.system.roles":
		return "users and roles are restored only with --users-and-roles"
	}
	return "restore leaves it out (a server's own collection)"
}

// CleanStale removes the drill directories in parent that no running
// drill holds: what a killed process (SIGKILL, a power cut) left. It
// returns the paths removed. A directory whose lock file is missing is
// left for a minute (a drill that just made it takes its lock next).
func CleanStale(parent string) ([]string, error) {
	if parent == "" {
		parent = os.TempDir()
	}
	dirs, err := filepath.Glob(filepath.Join(parent, DirPattern))
	if err != nil {
		return nil, fmt.Errorf("drill: %w", err)
	}
	sort.Strings(dirs)
	var removed []string
	var errs []error
	for _, d := range dirs {
		if st, err := os.Lstat(d); err != nil || !st.IsDir() {
			continue
		}
		if !stale(d) {
			continue
		}
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, fmt.Errorf("drill: remove stale %s: %w", d, err))
			continue
		}
		removed = append(removed, d)
	}
	return removed, errors.Join(errs...)
}

// stale says whether no live drill holds dir.
func stale(dir string) bool {
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR, 0)
	if err != nil {
		st, serr := os.Stat(dir)
		return errors.Is(err, os.ErrNotExist) && serr == nil && time.Since(st.ModTime()) > time.Minute
	}
	defer f.Close() // drops the lock taken below
	return lockFile(f) == nil
}
