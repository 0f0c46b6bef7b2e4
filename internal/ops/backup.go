package ops

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/a0backup/a0/internal/crypt"
	"github.com/a0backup/a0/internal/store"
)

// FormatName is what backup-status reports as "format".
const FormatName = "a0enc-v1 (tar.gz, AES-256-CTR, HMAC-SHA256, argon2id)"

// FormatNameV2 is the "format" of a backup encrypted to public keys.
const FormatNameV2 = "a0enc-v2 (tar.gz, AES-256-CTR, HMAC-SHA256, file key wrapped for age/ssh recipients)"

// Hold points of the jobs (see Hold).
const (
	// HoldBackup: the backup's hidden .part file exists, before the dump
	// reads the first collection.
	HoldBackup = "backup"
	// HoldBackupOplog: the dump has taken its oplog start and not yet
	// listed the collections.
	HoldBackupOplog = "backup-oplog"
	// HoldRestore: every byte is authenticated and the restore marker is
	// written, before the first collection is written.
	HoldRestore = "restore"
	// HoldDrill: a restore drill's temporary directory and throwaway
	// server exist and the file is authenticated, before the drill's
	// first pass reads it.
	HoldDrill = "drill"
)

// Hold is called at a job's hold points and may block until the test that
// set it has put its fault in; nil holds nowhere. Tests only.
type Hold func(ctx context.Context, point string)

// At holds at point (nothing when h is nil).
func (h Hold) At(ctx context.Context, point string) {
	if h != nil {
		h(ctx, point)
	}
}

// BackupName is the original's timestamp name, in UTC.
func BackupName(t time.Time) string {
	return t.UTC().Format("02-01-2006-15-04-05") + ".tar.gz"
}

// WorkDir is where a backup on device n spools what it cannot stream.
func WorkDir(device string) string {
	return filepath.Join(device, store.FolderName, ".work")
}

// WorkSpoolPattern names the dump's spools in WorkDir: dump.SpoolPattern,
// which ops does not import (dbjob's TestWorkSpoolPattern keeps the two
// equal).
const WorkSpoolPattern = ".a0-spool-*.bson"

// CleanWorkDir removes the dump spools a backup left in device's work
// directory, then the directory if that left it empty, and returns what
// it removed. Nothing else: a backup folder taken with set-as-backup force
// may hold a .work a0 did not make (issue 25 point 9).
func CleanWorkDir(device string) []string {
	dir := WorkDir(device)
	names, _ := filepath.Glob(filepath.Join(dir, WorkSpoolPattern))
	var removed []string
	for _, n := range names {
		if st, err := os.Lstat(n); err == nil && st.Mode().IsRegular() && os.Remove(n) == nil {
			removed = append(removed, n)
		}
	}
	os.Remove(dir) // fails, and keeps it, unless empty
	return removed
}

// Catalog answers what FerretDB answers slowly (the databases, a
// collection's count) from the embedded server's files: it is
// dump.Catalog's method set, declared here so that the agent hands the
// embedded server's catalog to a backup without importing dump.
type Catalog interface {
	// Databases names every database.
	Databases(ctx context.Context) ([]string, error)
	// Count is the number of documents of db.coll.
	Count(ctx context.Context, db, coll string) (int64, error)
}

// Backup is a backup job's inputs: it dumps the database into a slot, seals
// the file and reads it back before calling it stored. Runners.Backup runs
// it and returns the stored backup's metadata (and sets Replaced).
type Backup struct {
	Client *mongo.Client
	Slot   store.Slot
	// Device is the backup device (its work area holds the dump's spools).
	Device string
	Seal   crypt.Seal
	// AllowPrimary lets the dump read from the primary.
	AllowPrimary bool
	// Collections and Bytes are the totals measured before the job
	// started (Runners.Totals), shown from its first status.
	Collections, Bytes int64
	// Measure, when set, makes the job measure what the request did not
	// before its 202 (issue 27: the 202 answers on an estimate): the
	// database's data size (Runners.DataSize) beside the dump, against the
	// free-space rule with the space free when the job started, stopping
	// the dump with the rule's NoSpace error if the device lacks it; and
	// the totals (Runners.Totals) for the status, unless the dump has
	// listed first.
	Measure bool
	// Measured, when set, hears the data size Measure read (the agent
	// keeps it as its last read, the next POST's estimate).
	Measured func(size int64)
	// Replace makes the backup replace the stored one once it is verified
	// (a scheduled run with "replace"); Replaced then names it.
	Replace bool
	// Pin, when set, connects to one member alone so that data and oplog
	// come from one member (a real MongoDB).
	Pin func(ctx context.Context, member string) (*mongo.Client, error)
	// Catalog and OplogTail are the embedded server's fast paths (nil
	// for a real MongoDB): see dump.Options.
	Catalog   Catalog
	OplogTail func(ctx context.Context, since time.Time) (string, func(context.Context) error, error)
	Hold      Hold
	// BeforeSeal, when set, runs after the dump and before the file is
	// sealed: a backup held there is running, its progress complete.
	// Tests only.
	BeforeSeal func(ctx context.Context) error
	// BeforeReadBack, when set, is the backup file's
	// store.Sealed.BeforeReadBack. Tests only.
	BeforeReadBack func(path string)
	Log            *slog.Logger

	// Replaced is what the backup replaced (set by Runners.Backup with
	// Replace).
	Replaced *store.Meta
}
