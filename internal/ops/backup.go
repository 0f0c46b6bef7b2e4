package ops

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/archive"
	"github.com/a0backup/a0/internal/crypt"
	"github.com/a0backup/a0/internal/dump"
	"github.com/a0backup/a0/internal/job"
	"github.com/a0backup/a0/internal/manifest"
	"github.com/a0backup/a0/internal/restore"
	"github.com/a0backup/a0/internal/store"
	"github.com/a0backup/a0/internal/version"
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
)

// Hold is called at a job's hold points and may block until the test that
// set it has put its fault in; nil holds nowhere. Tests only.
type Hold func(ctx context.Context, point string)

func (h Hold) at(ctx context.Context, point string) {
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

// Backup dumps the database into a slot, seals the file and reads it back
// before calling it stored. Run returns the stored backup's metadata.
type Backup struct {
	Client *mongo.Client
	Slot   store.Slot
	// Device is the backup device (its work area holds the dump's spools).
	Device string
	Seal   crypt.Seal
	// AllowPrimary lets the dump read from the primary.
	AllowPrimary bool
	// Collections and Bytes are the totals measured before the job
	// started (Totals), shown from its first status.
	Collections, Bytes int64
	// Replace makes the backup replace the stored one once it is verified
	// (a scheduled run with "replace"); Replaced then names it.
	Replace bool
	// Pin, when set, connects to one member alone so that data and oplog
	// come from one member (a real MongoDB).
	Pin func(ctx context.Context, member string) (*mongo.Client, error)
	// Catalog and OplogTail are the embedded server's fast paths (nil
	// for a real MongoDB): see dump.Options.
	Catalog   dump.Catalog
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

	// Replaced is what the backup replaced (set by Run with Replace).
	Replaced *store.Meta
}

// Totals measures what a backup will read (collections, bytes) before it
// starts, so that its first status shows them.
func Totals(ctx context.Context, c *mongo.Client, allowPrimary bool, cat dump.Catalog) (int64, int64, error) {
	var rp *readpref.ReadPref
	if allowPrimary {
		rp = readpref.Primary()
	}
	return dump.Totals(ctx, c, rp, cat)
}

// DataSize is the database's data size, as the free-space check uses it.
func DataSize(ctx context.Context, c *mongo.Client) (int64, error) { return dump.DataSize(ctx, c) }

// Run is the job.
func (b *Backup) Run(ctx context.Context, j *job.Job) (*store.Meta, error) {
	defer clear(b.Seal.Password)
	start := time.Now()
	name := BackupName(start)
	prog := &dump.Progress{}
	prog.CollectionsTotal.Store(b.Collections)
	prog.EstimatedBytes.Store(b.Bytes)
	var verifying atomic.Bool
	j.SetProgress(func() any { return backupProgress(prog.Snapshot(), verifying.Load()) })
	b.Log.Info("backup running", "name", name)

	var s *store.Sealed
	var err error
	if b.Replace {
		s, err = b.Slot.CreateSealedReplacing(name, b.Seal, archive.Options{})
	} else {
		s, err = b.Slot.CreateSealedTo(name, b.Seal, archive.Options{})
	}
	if err != nil {
		return nil, fmt.Errorf("start backup file: %w", err)
	}
	s.BeforeReadBack = b.BeforeReadBack
	format := FormatName
	if len(b.Seal.Recipients) > 0 {
		format = FormatNameV2
	}
	host, _ := os.Hostname()
	// The manifest's start is the backup's: its name, "created" in
	// backup-status, verify's and the restore plan's "created" are one time.
	opts := dump.Options{SpoolDir: WorkDir(b.Device), ToolVersion: "a0 " + version.Version, Node: host, Started: start}
	if b.AllowPrimary {
		opts.ReadPreference = readpref.Primary()
	}
	opts.AfterOplogStart = func(ctx context.Context) { b.Hold.at(ctx, HoldBackupOplog) }
	opts.Pin = b.Pin
	opts.Catalog = b.Catalog
	opts.OplogTail = b.OplogTail
	if err := os.MkdirAll(opts.SpoolDir, 0o700); err != nil {
		s.Abort()
		return nil, err
	}
	defer os.RemoveAll(opts.SpoolDir)
	b.Hold.at(ctx, HoldBackup)
	man, err := dump.Run(ctx, b.Client, s.Archive(), opts, prog)
	if err == nil && b.BeforeSeal != nil {
		err = b.BeforeSeal(ctx)
	}
	if err != nil {
		s.Abort()
		b.Log.Error("backup failed", "name", name, "err", err)
		return nil, err
	}
	for _, c := range man.ChangedDuringDump {
		b.Log.Warn("collection changed during the backup", "db", c.DB, "collection", c.Name, "change", c.Change, "new_name", c.NewName)
	}
	dumped := time.Since(start)
	verifying.Store(true)
	meta, err := s.FinishVerified(store.Meta{
		Created: start.UTC(), Duration: dumped.Round(time.Millisecond).String(),
		Documents: man.TotalDocuments(), Collections: len(man.Collections),
		Format: format, Consistency: man.Consistency,
	}, func(plain io.Reader) error { return verifyBackup(ctx, plain, man) })
	if err != nil {
		b.Log.Error("backup failed", "name", name, "err", err)
		return nil, err
	}
	if b.Replace {
		if b.Replaced = s.Replaced(); b.Replaced != nil {
			b.Log.Info("backup replaced", "old", b.Replaced.Name, "new", meta.Name)
		}
	}
	b.Log.Info("backup stored", "name", meta.Name, "bytes", meta.Size, "documents", meta.Documents, "took", meta.Duration,
		"verified_in", (time.Since(start) - dumped).Round(time.Millisecond).String())
	return meta, nil
}

// backupProgress is a running backup's progress: the dump's counters, then
// the read-back ("verifying") once the file is written.
func backupProgress(s dump.ProgressSnapshot, verifying bool) api.BackupProgress {
	return api.BackupProgress{CollectionsTotal: s.CollectionsTotal, CollectionsDone: s.CollectionsDone, Documents: s.Documents,
		Bytes: s.Bytes, EstimatedBytes: s.EstimatedBytes, Verifying: verifying}
}

// verifyBackup runs over the finished file's plaintext the same validation a
// restore runs before its first write (restore.Plan: every tar entry, name,
// metadata.json, BSON document and the manifest's position and counts; the
// MACs are checked by the reader underneath), and checks that the manifest
// read back is the one the dump wrote.
func verifyBackup(ctx context.Context, plain io.Reader, man *manifest.Manifest) error {
	p, err := restore.Plan(ctx, plain, restore.Options{})
	if err != nil {
		return err
	}
	if p.Manifest == nil || p.Manifest.TotalDocuments() != man.TotalDocuments() || len(p.Manifest.Collections) != len(man.Collections) {
		return fmt.Errorf("%w: the manifest read back differs from the one written", restore.ErrInvalidArchive)
	}
	return nil
}
