package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"

	"github.com/a0backup/a0/internal/archive"
	"github.com/a0backup/a0/internal/crypt"
	"github.com/a0backup/a0/internal/dump"
	"github.com/a0backup/a0/internal/job"
	"github.com/a0backup/a0/internal/manifest"
	"github.com/a0backup/a0/internal/restore"
	"github.com/a0backup/a0/internal/statedir"
	"github.com/a0backup/a0/internal/store"
	"github.com/a0backup/a0/internal/version"
)

// FormatName is what backup-status reports as "format".
const FormatName = "a0enc-v1 (tar.gz, AES-256-CTR, HMAC-SHA256, argon2id)"

// FormatNameV2 is the "format" of a backup encrypted to public keys.
const FormatNameV2 = "a0enc-v2 (tar.gz, AES-256-CTR, HMAC-SHA256, file key wrapped for age/ssh recipients)"

// backupName is the original's timestamp name, in UTC.
func backupName(t time.Time) string {
	return t.UTC().Format("02-01-2006-15-04-05") + ".tar.gz"
}

// backupJob dumps the database into the slot. collections and bytes are
// the totals measured before the job started, shown from its first status.
func (a *Agent) backupJob(n statedir.Node, slot store.Slot, seal crypt.Seal, allowPrimary bool, collections, bytes int64) job.Func {
	fn := a.backupJobRun(n, slot, seal, allowPrimary, collections, bytes, nil)
	return func(ctx context.Context, j *job.Job) (any, error) {
		meta, err := fn(ctx, j)
		a.recordBackup(meta, err)
		if err == nil {
			a.afterBackup(meta)
		}
		if meta == nil {
			return nil, err
		}
		return meta, err
	}
}

// replaced, when not nil, makes the backup replace the stored one once it is
// verified (a scheduled run with "replace"), and receives what it replaced.
func (a *Agent) backupJobRun(n statedir.Node, slot store.Slot, seal crypt.Seal, allowPrimary bool, collections, bytes int64, replaced **store.Meta) func(context.Context, *job.Job) (*store.Meta, error) {
	return func(ctx context.Context, j *job.Job) (*store.Meta, error) {
		defer clear(seal.Password)
		start := time.Now()
		name := backupName(start)
		prog := &dump.Progress{}
		prog.CollectionsTotal.Store(collections)
		prog.EstimatedBytes.Store(bytes)
		var verifying atomic.Bool
		j.SetProgress(func() any { return backupProgress{prog.Snapshot(), verifying.Load()} })
		a.log.Info("backup running", "name", name)

		var s *store.Sealed
		var err error
		if replaced != nil {
			s, err = slot.CreateSealedReplacing(name, seal, archive.Options{})
		} else {
			s, err = slot.CreateSealedTo(name, seal, archive.Options{})
		}
		if err != nil {
			return nil, fmt.Errorf("start backup file: %w", err)
		}
		s.BeforeReadBack = a.cfg.BeforeReadBack
		format := FormatName
		if len(seal.Recipients) > 0 {
			format = FormatNameV2
		}
		host, _ := os.Hostname()
		opts := dump.Options{SpoolDir: workDir(n), ToolVersion: "a0 " + version.Version, Node: host}
		if allowPrimary {
			opts.ReadPreference = readpref.Primary()
		}
		opts.AfterOplogStart = func(ctx context.Context) { a.hold(ctx, HoldBackupOplog) }
		if a.cfg.MongoURI != "" {
			// Data and oplog from one member (issue 12): a direct
			// connection to the member the read preference picks.
			opts.Pin = a.pinMember
		}
		if a.embed != nil {
			// The oplog's tail by its insertion key, not a decode of all
			// of it (issue 14): see embedded.Server.CopyOplogSince.
			opts.Catalog = a.embed.Catalog()
			opts.OplogTail = func(ctx context.Context, since time.Time) (string, func(context.Context) error, error) {
				return a.embed.CopyOplogSince(ctx, a.client, since)
			}
		}
		if err := os.MkdirAll(opts.SpoolDir, 0o700); err != nil {
			s.Abort()
			return nil, err
		}
		defer os.RemoveAll(opts.SpoolDir)
		a.hold(ctx, HoldBackup)
		man, err := dump.Run(ctx, a.client, s.Archive(), opts, prog)
		if err == nil && a.cfg.BeforeSeal != nil {
			err = a.cfg.BeforeSeal(ctx)
		}
		if err != nil {
			s.Abort()
			a.log.Error("backup failed", "name", name, "err", err)
			return nil, err
		}
		for _, c := range man.ChangedDuringDump {
			a.log.Warn("collection changed during the backup", "db", c.DB, "collection", c.Name, "change", c.Change, "new_name", c.NewName)
		}
		dumped := time.Since(start)
		verifying.Store(true)
		meta, err := s.FinishVerified(store.Meta{
			Created: start.UTC(), Duration: dumped.Round(time.Millisecond).String(),
			Documents: man.TotalDocuments(), Collections: len(man.Collections),
			Format: format, Consistency: man.Consistency,
		}, func(plain io.Reader) error { return verifyBackup(ctx, plain, man) })
		if err != nil {
			a.log.Error("backup failed", "name", name, "err", err)
			return nil, err
		}
		if replaced != nil {
			if *replaced = s.Replaced(); *replaced != nil {
				a.log.Info("backup replaced", "old", (*replaced).Name, "new", meta.Name)
			}
		}
		a.log.Info("backup stored", "name", meta.Name, "bytes", meta.Size, "documents", meta.Documents, "took", meta.Duration,
			"verified_in", (time.Since(start) - dumped).Round(time.Millisecond).String())
		return meta, nil
	}
}

// backupProgress is a running backup's progress: the dump's counters, then
// the read-back ("verifying") once the file is written.
type backupProgress struct {
	dump.ProgressSnapshot
	Verifying bool `json:"verifying,omitempty"`
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

// sensitiveProgress counts files of a sensitive backup.
type sensitiveProgress struct {
	total, done atomic.Int64
}

func (a *Agent) sensitiveBackupJob(slot store.Slot, password []byte) job.Func {
	return func(ctx context.Context, j *job.Job) (any, error) {
		defer clear(password)
		start := time.Now()
		name := backupName(start)
		var prog sensitiveProgress
		j.SetProgress(func() any {
			return map[string]int64{"files_total": prog.total.Load(), "files_done": prog.done.Load()}
		})
		paths, err := a.state.SensitiveFiles(a.cfg.SensitivePaths)
		if err != nil {
			return nil, err
		}
		prog.total.Store(int64(len(paths)))
		s, err := slot.CreateSealed(name, password, archive.Options{})
		if err != nil {
			return nil, fmt.Errorf("start backup file: %w", err)
		}
		s.BeforeReadBack = a.cfg.BeforeReadBack
		host, _ := os.Hostname()
		node, err := a.state.LoadNode()
		if err != nil {
			s.Abort()
			return nil, err
		}
		man := &manifest.Manifest{FormatVersion: manifest.FormatVersion, Kind: manifest.KindSensitive,
			ToolVersion: "a0 " + version.Version, Source: manifest.Source{Node: host, Roles: node.Roles, Device: node.Device},
			Started: start.UTC()}
		for i, p := range paths {
			if err := ctx.Err(); err != nil {
				s.Abort()
				return nil, err
			}
			f, err := a.addSensitiveFile(s.Archive(), i, p)
			if err != nil {
				s.Abort()
				return nil, err
			}
			man.Files = append(man.Files, f)
			prog.done.Add(1)
		}
		man.Finished = time.Now().UTC()
		b, err := man.Encode()
		if err == nil {
			err = s.Archive().AddBytes(manifest.Name, 0o600, man.Finished, b)
		}
		if err != nil {
			s.Abort()
			return nil, err
		}
		// Read back like an ordinary backup: "Backup found" means every
		// file is there, whole, as the manifest lists it.
		meta, err := s.FinishVerified(store.Meta{Created: start.UTC(), Duration: time.Since(start).Round(time.Millisecond).String(),
			Files: len(man.Files), Format: FormatName}, func(plain io.Reader) error { return verifySensitive(plain, man) })
		if err != nil {
			return nil, err
		}
		a.log.Info("sensitive backup stored", "name", meta.Name, "files", meta.Files)
		return meta, nil
	}
}

// verifySensitive checks a finished sensitive backup's plaintext: exactly
// the manifest's files, each of its size and sha256, and the manifest.
func verifySensitive(plain io.Reader, man *manifest.Manifest) error {
	ar, err := archive.NewReader(plain, archive.Limits{MaxEntrySize: sensitiveMaxEntry, MaxEntries: sensitiveMaxEntries, MaxTotal: sensitiveMaxTotal})
	if err != nil {
		return err
	}
	defer ar.Close()
	want := map[string]manifest.File{}
	for _, f := range man.Files {
		want[f.Path] = f
	}
	sawManifest := false
	for {
		e, err := ar.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		h := sha256.New()
		n, err := io.Copy(h, ar)
		if err != nil {
			return err
		}
		if e.Name == manifest.Name {
			sawManifest = true
			continue
		}
		f, ok := want[e.Name]
		if !ok {
			return fmt.Errorf("%s is in the file but not in its manifest", e.Name)
		}
		if n != f.Size || hex.EncodeToString(h.Sum(nil)) != f.SHA256 {
			return fmt.Errorf("%s differs from what was written (%d bytes)", e.Name, n)
		}
		delete(want, e.Name)
	}
	if !sawManifest {
		return fmt.Errorf("no %s", manifest.Name)
	}
	for name := range want {
		return fmt.Errorf("%s is missing", name)
	}
	return nil
}

// SensitiveEntryName maps a sensitive file to its archive name: files of the
// state directory keep their relative path under "state/", operator-declared
// files go under "extra/<n>-<base>" and are restored to their origin.
func (a *Agent) sensitiveEntryName(i int, path string) string {
	if rel, err := filepath.Rel(a.state.Path, path); err == nil && !strings.HasPrefix(rel, "..") {
		return "state/" + filepath.ToSlash(rel)
	}
	return fmt.Sprintf("extra/%d-%s", i, filepath.Base(path))
}

func (a *Agent) addSensitiveFile(aw *archive.Writer, i int, path string) (manifest.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return manifest.File{}, fmt.Errorf("sensitive file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return manifest.File{}, err
	}
	h := sha256.New()
	entry := a.sensitiveEntryName(i, path)
	if err := aw.AddFile(entry, int64(st.Mode().Perm()), st.Size(), st.ModTime(), io.TeeReader(f, h)); err != nil {
		return manifest.File{}, fmt.Errorf("archive %s: %w", entry, err)
	}
	return manifest.File{Path: entry, Origin: path, Mode: uint32(st.Mode().Perm()), Size: st.Size(),
		SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// pinMember connects to one member of the configured deployment alone (a
// direct connection), for dump.Options.Pin.
func (a *Agent) pinMember(ctx context.Context, member string) (*mongo.Client, error) {
	o := options.Client().ApplyURI(a.cfg.MongoURI).SetAppName("a0agent").SetHosts([]string{member}).SetDirect(true)
	c, err := mongo.Connect(o)
	if err != nil {
		return nil, redactURIError(err)
	}
	return c, nil
}
