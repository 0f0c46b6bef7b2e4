package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo/readpref"

	"github.com/a0backup/a0/internal/archive"
	"github.com/a0backup/a0/internal/dump"
	"github.com/a0backup/a0/internal/job"
	"github.com/a0backup/a0/internal/manifest"
	"github.com/a0backup/a0/internal/statedir"
	"github.com/a0backup/a0/internal/store"
	"github.com/a0backup/a0/internal/version"
)

// FormatName is what backup-status reports as "format".
const FormatName = "a0enc-v1 (tar.gz, AES-256-CTR, HMAC-SHA256, argon2id)"

// backupName is the original's timestamp name, in UTC.
func backupName(t time.Time) string {
	return t.UTC().Format("02-01-2006-15-04-05") + ".tar.gz"
}

func (a *Agent) backupJob(n statedir.Node, slot store.Slot, password []byte, allowPrimary bool) job.Func {
	return func(ctx context.Context, j *job.Job) (any, error) {
		defer clear(password)
		start := time.Now()
		name := backupName(start)
		prog := &dump.Progress{}
		j.SetProgress(func() any { return prog.Snapshot() })
		a.log.Info("backup running", "name", name)

		s, err := slot.CreateSealed(name, password, archive.Options{})
		if err != nil {
			return nil, fmt.Errorf("start backup file: %w", err)
		}
		host, _ := os.Hostname()
		opts := dump.Options{SpoolDir: workDir(n), ToolVersion: "a0 " + version.Version, Node: host}
		if allowPrimary {
			opts.ReadPreference = readpref.Primary()
		}
		if err := os.MkdirAll(opts.SpoolDir, 0o700); err != nil {
			s.Abort()
			return nil, err
		}
		defer os.RemoveAll(opts.SpoolDir)
		a.hold(ctx, HoldBackup)
		man, err := dump.Run(ctx, a.client, s.Archive(), opts, prog)
		if err != nil {
			s.Abort()
			a.log.Error("backup failed", "name", name, "err", err)
			return nil, err
		}
		meta, err := s.Finish(store.Meta{
			Created: start.UTC(), Duration: time.Since(start).Round(time.Millisecond).String(),
			Documents: man.TotalDocuments(), Collections: len(man.Collections),
			Format: FormatName, Consistency: man.Consistency,
		})
		if err != nil {
			a.log.Error("backup failed", "name", name, "err", err)
			return nil, err
		}
		a.log.Info("backup stored", "name", meta.Name, "bytes", meta.Size, "documents", meta.Documents, "took", meta.Duration)
		return meta, nil
	}
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
		host, _ := os.Hostname()
		man := &manifest.Manifest{FormatVersion: manifest.FormatVersion, Kind: manifest.KindSensitive,
			ToolVersion: "a0 " + version.Version, Source: manifest.Source{Node: host}, Started: start.UTC()}
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
		meta, err := s.Finish(store.Meta{Created: start.UTC(), Duration: time.Since(start).Round(time.Millisecond).String(),
			Files: len(man.Files), Format: FormatName})
		if err != nil {
			return nil, err
		}
		a.log.Info("sensitive backup stored", "name", meta.Name, "files", meta.Files)
		return meta, nil
	}
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
