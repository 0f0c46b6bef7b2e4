package ops

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/archive"
	"github.com/a0backup/a0/internal/job"
	"github.com/a0backup/a0/internal/manifest"
	"github.com/a0backup/a0/internal/statedir"
	"github.com/a0backup/a0/internal/store"
	"github.com/a0backup/a0/internal/version"
)

// SensitiveBackup archives the node's sensitive configuration (its keys
// and the operator's sensitive_paths) into the sensitive slot, sealed with
// a password, and reads it back before calling it stored. Run returns the
// stored backup's metadata.
type SensitiveBackup struct {
	State *statedir.Dir
	// Extra are the sensitive_paths of the agent's config.
	Extra    []string
	Slot     store.Slot
	Password []byte
	// BeforeReadBack, when set, is the file's store.Sealed.BeforeReadBack.
	// Tests only.
	BeforeReadBack func(path string)
	Log            *slog.Logger
}

// Run is the job.
func (b *SensitiveBackup) Run(ctx context.Context, j *job.Job) (*store.Meta, error) {
	defer clear(b.Password)
	start := time.Now()
	name := BackupName(start)
	var total, done atomic.Int64
	j.SetProgress(func() any {
		return api.SensitiveProgress{FilesDone: done.Load(), FilesTotal: total.Load()}
	})
	paths, err := b.State.SensitiveFiles(b.Extra)
	if err != nil {
		return nil, err
	}
	total.Store(int64(len(paths)))
	s, err := b.Slot.CreateSealed(name, b.Password, archive.Options{})
	if err != nil {
		return nil, fmt.Errorf("start backup file: %w", err)
	}
	s.BeforeReadBack = b.BeforeReadBack
	host, _ := os.Hostname()
	node, err := b.State.LoadNode()
	if err != nil {
		s.Abort()
		return nil, err
	}
	man := &manifest.Manifest{FormatVersion: manifest.FormatVersion, Kind: manifest.KindSensitive, Name: name,
		ToolVersion: "a0 " + version.Version, Source: manifest.Source{Node: host, Roles: node.Roles, Device: node.Device},
		Started: start.UTC()}
	for i, p := range paths {
		if err := ctx.Err(); err != nil {
			s.Abort()
			return nil, err
		}
		f, err := addSensitiveFile(s.Archive(), b.State.Path, i, p)
		if err != nil {
			s.Abort()
			return nil, err
		}
		man.Files = append(man.Files, f)
		done.Add(1)
	}
	man.Finished = time.Now().UTC()
	enc, err := man.Encode()
	if err == nil {
		err = s.Archive().AddBytes(manifest.Name, 0o600, man.Finished, enc)
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
	b.Log.Info("sensitive backup stored", "name", meta.Name, "files", meta.Files)
	return meta, nil
}

// Limits of a sensitive backup's extraction: it holds the node's keys and
// the operator's few sensitive_paths, kilobytes in all; these bound what a
// crafted one can make the node write into its work area.
const (
	sensitiveMaxEntry   = 16 << 20
	sensitiveMaxEntries = 1000
	sensitiveMaxTotal   = 64 << 20
)

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

// sensitiveEntryName maps a sensitive file to its archive name: files of the
// state directory keep their relative path under "state/", operator-declared
// files go under "extra/<n>-<base>" and are restored to their origin.
func sensitiveEntryName(stateDir string, i int, path string) string {
	if rel, err := filepath.Rel(stateDir, path); err == nil && !strings.HasPrefix(rel, "..") {
		return "state/" + filepath.ToSlash(rel)
	}
	return fmt.Sprintf("extra/%d-%s", i, filepath.Base(path))
}

func addSensitiveFile(aw *archive.Writer, stateDir string, i int, path string) (manifest.File, error) {
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
	entry := sensitiveEntryName(stateDir, i, path)
	if err := aw.AddFile(entry, int64(st.Mode().Perm()), st.Size(), st.ModTime(), io.TeeReader(f, h)); err != nil {
		return manifest.File{}, fmt.Errorf("archive %s: %w", entry, err)
	}
	return manifest.File{Path: entry, Origin: path, Mode: uint32(st.Mode().Perm()), Size: st.Size(),
		SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}
