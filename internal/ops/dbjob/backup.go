package dbjob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/archive"
	"github.com/a0backup/a0/internal/dump"
	"github.com/a0backup/a0/internal/job"
	"github.com/a0backup/a0/internal/manifest"
	"github.com/a0backup/a0/internal/ops"
	"github.com/a0backup/a0/internal/restore"
	"github.com/a0backup/a0/internal/store"
	"github.com/a0backup/a0/internal/version"
)

// Totals measures what a backup will read (collections, bytes) before it
// starts, so that its first status shows them (ops.Runners.Totals).
func Totals(ctx context.Context, c *mongo.Client, allowPrimary bool, cat ops.Catalog) (int64, int64, error) {
	var rp *readpref.ReadPref
	if allowPrimary {
		rp = readpref.Primary()
	}
	// A nil ops.Catalog converts to a nil dump.Catalog (no fast path).
	return dump.Totals(ctx, c, rp, cat)
}

// DataSize is the database's data size, as the free-space check uses it
// (ops.Runners.DataSize).
func DataSize(ctx context.Context, c *mongo.Client) (int64, error) { return dump.DataSize(ctx, c) }

// RunBackup is the backup job of b (ops.Runners.Backup): the dump into the
// slot's sealed file, then its read-back, before the backup is stored.
func RunBackup(ctx context.Context, j *job.Job, b *ops.Backup) (*store.Meta, error) {
	meta, err := runBackup(ctx, j, b)
	return meta, rolledError(err)
}

func runBackup(ctx context.Context, j *job.Job, b *ops.Backup) (*store.Meta, error) {
	defer clear(b.Seal.Password)
	start := time.Now()
	name := ops.BackupName(start)
	prog := &dump.Progress{}
	prog.CollectionsTotal.Store(b.Collections)
	prog.EstimatedBytes.Store(b.Bytes)
	var verifying atomic.Bool
	j.SetProgress(func() any { return backupProgress(prog.Snapshot(), verifying.Load()) })
	b.Log.Info("backup running", "name", name)

	var s *store.Sealed
	var err error
	// The free space before a byte of this backup is written: what the
	// exact space check (measure) holds the data size against.
	free, freeErr := ops.FreeBytes(b.Device)
	if b.Replace {
		s, err = b.Slot.CreateSealedReplacing(name, b.Seal, archive.Options{})
	} else {
		s, err = b.Slot.CreateSealedTo(name, b.Seal, archive.Options{})
	}
	if err != nil {
		return nil, fmt.Errorf("start backup file: %w", err)
	}
	s.BeforeReadBack = b.BeforeReadBack
	format := ops.FormatName
	if len(b.Seal.Recipients) > 0 {
		format = ops.FormatNameV2
	}
	host, _ := os.Hostname()
	// The manifest's start is the backup's: its name, "created" in
	// backup-status, verify's and the restore plan's "created" are one time.
	opts := dump.Options{SpoolDir: ops.WorkDir(b.Device), ToolVersion: "a0 " + version.Version, Node: host, Name: name, Started: start}
	if b.AllowPrimary {
		opts.ReadPreference = readpref.Primary()
	}
	opts.AfterOplogStart = func(ctx context.Context) { b.Hold.At(ctx, ops.HoldBackupOplog) }
	opts.Pin = b.Pin
	opts.Catalog = b.Catalog
	opts.OplogTail = b.OplogTail
	if err := os.MkdirAll(opts.SpoolDir, 0o700); err != nil {
		s.Abort()
		return nil, err
	}
	defer ops.CleanWorkDir(b.Device)
	dumpCtx, stopDump := context.WithCancelCause(ctx)
	defer stopDump(nil)
	measured := measure(dumpCtx, b, free, freeErr, prog, stopDump)
	b.Hold.At(ctx, ops.HoldBackup)
	man, err := dump.Run(dumpCtx, b.Client, s.Archive(), opts, prog)
	if err == nil {
		// The exact space check decides before the file is sealed.
		err = <-measured
	} else if cause := context.Cause(dumpCtx); ctx.Err() == nil && dumpCtx.Err() != nil && cause != nil {
		// Stopped by the space check: its error, not "canceled".
		err = cause
	}
	if err == nil && b.BeforeSeal != nil {
		err = b.BeforeSeal(ctx)
	}
	if err != nil {
		s.Abort()
		b.Log.Error("backup failed", "name", name, "err", err)
		return nil, ops.CancelledError(ctx, err, "the backup's partial file was removed; the stored backup, if any, is unchanged")
	}
	for _, c := range man.ChangedDuringDump {
		b.Log.Warn("collection changed during the backup", "db", c.DB, "collection", c.Name, "change", c.Change, "new_name", c.NewName)
	}
	dumped := time.Since(start)
	verifying.Store(true)
	sm := store.Meta{
		Created: start.UTC(), Duration: dumped.Round(time.Millisecond).String(),
		Documents: man.TotalDocuments(), Collections: len(man.Collections),
		Format: format, Consistency: man.Consistency,
	}
	if c := man.ConsistentTo; c != nil {
		sm.ConsistentTo = &store.Position{T: c.T, I: c.I, Wall: c.Wall}
	}
	meta, err := s.FinishVerified(sm, func(plain io.Reader) error { return verifyBackup(ctx, plain, man) })
	if err != nil {
		b.Log.Error("backup failed", "name", name, "err", err)
		return nil, ops.CancelledError(ctx, err, "the backup's partial file was removed while it was verified; the stored backup, if any, is unchanged")
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

// measure is Backup.Measure: beside the dump, it measures the database's
// data size as the free-space rule does before a 202 that answered on an
// estimate (issue 27b: over the wire FerretDB sizes every database by
// walking its pages, 0.7-1 s for 50 MiB) and holds it against free, the
// space free when the job started; a device the backup would overrun stops
// the dump (stop) with the rule's own error, the NoSpace kind and message
// the POST answers. Then it shows the totals, unless the dump has listed
// first. The channel yields the check's result once (nil without Measure).
func measure(ctx context.Context, b *ops.Backup, free int64, freeErr error, prog *dump.Progress, stop context.CancelCauseFunc) <-chan error {
	out := make(chan error, 1)
	if !b.Measure {
		out <- nil
		return out
	}
	go func() {
		err := freeErr
		if err != nil {
			err = fmt.Errorf("measure free space: %w", err)
		}
		var size int64
		if err == nil {
			if size, err = DataSize(ctx, b.Client); err != nil {
				err = fmt.Errorf("measure database size: %w", err)
			} else {
				if b.Measured != nil {
					b.Measured(size)
				}
				err = ops.SpaceError(b.Device, free, size)
			}
		}
		if err != nil {
			if ctx.Err() == nil {
				// Not the dump ending first (its failure cancels ctx).
				b.Log.Error("backup stopped by the free-space check", "err", err, "data_bytes", size, "free_bytes", free)
				stop(err)
			}
			out <- err
			return
		}
		out <- nil
		// The totals after the size: on FerretDB they take the listing
		// DataSize measured (dump.Totals).
		if colls, bytes, err := Totals(ctx, b.Client, b.AllowPrimary, b.Catalog); err == nil {
			if prog.CollectionsTotal.CompareAndSwap(0, colls) {
				prog.EstimatedBytes.CompareAndSwap(0, bytes)
			}
		} else if ctx.Err() == nil {
			b.Log.Warn("could not measure the backup's totals", "err", err)
		}
	}()
	return out
}

// oplogRolled is a *dump.OplogRolledError that the layer above, which does
// not import dump, tells by ops.ErrOplogRolled; its message and the dump's
// error (errors.As) are unchanged.
type oplogRolled struct{ err error }

func (e *oplogRolled) Error() string   { return e.err.Error() }
func (e *oplogRolled) Unwrap() []error { return []error{e.err, ops.ErrOplogRolled} }

// rolledError marks a failure by the oplog's rollover (see oplogRolled).
func rolledError(err error) error {
	var rolled *dump.OplogRolledError
	if err != nil && errors.As(err, &rolled) && !errors.Is(err, ops.ErrOplogRolled) {
		return &oplogRolled{err: err}
	}
	return err
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
