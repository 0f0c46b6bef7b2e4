package store

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/a0backup/a0/internal/atomicfile"
	"hash"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ErrNoBackup is returned when a slot holds no backup.
var ErrNoBackup = errors.New("no backup found")

// ErrExists is returned when a slot already holds a backup.
var ErrExists = errors.New("a backup is already stored")

// FolderName is the folder set-as-backup creates on the device.
const FolderName = "backup"

// DamagedMetaError reports slot metadata that cannot be trusted: it names a
// file that is not this slot's backup (outside the folder, another slot's,
// a link). Nothing is read, served or removed through it; the operator
// removes the metadata file by hand.
type DamagedMetaError struct {
	Path   string
	Reason string
}

func (e *DamagedMetaError) Error() string {
	return fmt.Sprintf("backup metadata %s refused: %s (remove it by hand to free the slot)", e.Path, e.Reason)
}

// Meta describes a stored backup; it is what backup-status reports.
type Meta struct {
	Name        string    `json:"name"`
	File        string    `json:"file"`
	MD5         string    `json:"md5"`
	SHA256      string    `json:"sha256"`
	Size        int64     `json:"size"`
	Created     time.Time `json:"created"`
	Duration    string    `json:"duration,omitempty"`
	Documents   int64     `json:"documents,omitempty"`
	Collections int       `json:"collections,omitempty"`
	Files       int       `json:"files,omitempty"`
	Format      string    `json:"format"`
	Consistency string    `json:"consistency,omitempty"`
	// Verified is true once the finished file was read back and passed
	// the checks a restore makes before its first write, at VerifiedAt.
	Verified   bool       `json:"verified,omitempty"`
	VerifiedAt *time.Time `json:"verified_at,omitempty"`
	// ConsistentTo is the manifest's consistent_to (the oplog position
	// the backup restores to), kept here because a node cannot read the
	// manifest of a backup encrypted to keys: it chooses the base of a
	// point-in-time restore by it. Not authenticated: the restore checks
	// it against the manifest before the first write.
	ConsistentTo *Position `json:"consistent_to,omitempty"`
}

// Position is an oplog position: its ts (T seconds, I increment) and the
// entry's wall clock.
type Position struct {
	T    uint32    `json:"t"`
	I    uint32    `json:"i"`
	Wall time.Time `json:"wall,omitempty"`
}

// Slot is one backup slot in a device's backup folder.
type Slot struct {
	// Dir is <device>/backup.
	Dir string
	// Kind is "backup" or "sensitive"; it prefixes the slot's files.
	Kind string
}

func (s Slot) metaPath() string { return filepath.Join(s.Dir, s.Kind+".json") }

// fileName is the name of the encrypted file of a backup called name.
func (s Slot) fileName(name string) string {
	if s.Kind == "backup" {
		return name + ".enc"
	}
	return s.Kind + "-" + name + ".enc"
}

// Stored returns the slot's backup, or ErrNoBackup.
func (s Slot) Stored() (*Meta, error) {
	b, err := os.ReadFile(s.metaPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoBackup
	}
	if err != nil {
		return nil, fmt.Errorf("read backup metadata: %w", err)
	}
	var m Meta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("read backup metadata: %w", err)
	}
	// Whoever can write the device can write this file: the name it gives
	// is trusted only if it is the name this slot gives its backup, so
	// backup-delete cannot remove, nor retrieve serve, any other file.
	if m.Name == "" || m.File != s.fileName(m.Name) || m.File != filepath.Base(m.File) ||
		strings.ContainsAny(m.Name, `/\`) || strings.HasPrefix(m.File, ".") || !s.owns(m.File) {
		return nil, &DamagedMetaError{Path: s.metaPath(), Reason: fmt.Sprintf("it names %q, which is not a backup file of this slot", m.File)}
	}
	if st, err := os.Lstat(filepath.Join(s.Dir, m.File)); err == nil && !st.Mode().IsRegular() {
		return nil, &DamagedMetaError{Path: s.metaPath(), Reason: fmt.Sprintf("%s is not a regular file", m.File)}
	}
	if _, err := os.Stat(filepath.Join(s.Dir, m.File)); errors.Is(err, fs.ErrNotExist) {
		// Metadata whose file is gone (removed by hand) describes no
		// backup: say so rather than block the slot for good; Clean
		// removes the stale metadata.
		return nil, ErrNoBackup
	} else if err != nil {
		return nil, fmt.Errorf("backup metadata names %s: %w", m.File, err)
	}
	return &m, nil
}

// Path is the absolute path of the stored file named in m.
func (s Slot) Path(m *Meta) string { return filepath.Join(s.Dir, m.File) }

// Open opens the stored backup for reading.
func (s Slot) Open() (*os.File, *Meta, error) {
	m, err := s.Stored()
	if err != nil {
		return nil, nil, err
	}
	f, err := os.Open(s.Path(m))
	if err != nil {
		return nil, nil, fmt.Errorf("open backup: %w", err)
	}
	return f, m, nil
}

// Delete removes the stored backup and returns what it removed.
func (s Slot) Delete() (*Meta, error) {
	m, err := s.Stored()
	if err != nil {
		return nil, err
	}
	// Metadata first: a crash in between leaves an orphan file that Clean
	// removes, never metadata that points at nothing.
	if err := os.Remove(s.metaPath()); err != nil {
		return nil, fmt.Errorf("delete backup: %w", err)
	}
	if err := os.Remove(s.Path(m)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("delete backup: %w", err)
	}
	return m, atomicfile.SyncDir(s.Dir)
}

// Clean removes partial files and files no metadata names: what an
// interrupted backup leaves. It returns the names removed.
func (s Slot) Clean() ([]string, error) {
	entries, err := os.ReadDir(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	keep := ""
	if m, err := s.Stored(); err == nil {
		keep = m.File
	} else if errors.Is(err, ErrNoBackup) {
		if err := os.Remove(s.metaPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	var removed []string
	for _, e := range entries {
		n := e.Name()
		if !s.owns(n) || n == keep || !isOwnFile(s.Dir, n) {
			// Its name alone does not make a file a0's (issue 25
			// point 9): one a0 did not write stays.
			continue
		}
		if err := os.Remove(filepath.Join(s.Dir, n)); err != nil {
			return removed, err
		}
		removed = append(removed, n)
	}
	return removed, nil
}

// owns reports whether a file name in the folder belongs to this slot's
// backups (finished or partial).
func (s Slot) owns(n string) bool {
	n = strings.TrimPrefix(n, ".")
	if !strings.HasSuffix(n, ".enc") && !strings.HasSuffix(n, ".enc.part") {
		return false
	}
	if s.Kind == "backup" {
		return !strings.Contains(n, "-") || looksTimestamped(n)
	}
	return strings.HasPrefix(n, s.Kind+"-")
}

func looksTimestamped(n string) bool {
	// DD-MM-YYYY-HH-mm-ss.tar.gz.enc
	return len(n) > 19 && n[2] == '-' && n[5] == '-' && n[10] == '-'
}

// Part is a backup being written. Write hashes as it goes; Commit makes it
// the slot's backup; Abort removes it. Exactly one of them must be called.
type Part struct {
	slot   Slot
	name   string
	f      *os.File
	md5    hash.Hash
	sha256 hash.Hash
	size   int64
	sealed bool
	// replacing: Commit replaces the stored backup (CreateSealedReplacing);
	// replaced is what it replaced.
	replacing bool
	replaced  *Meta
}

// Create starts a new backup called name (for example
// "04-06-2016-15-04-30.tar.gz"). It fails with ErrExists when the slot
// already holds one.
func (s Slot) Create(name string) (*Part, error) {
	if _, err := s.Stored(); err == nil {
		return nil, ErrExists
	} else if !errors.Is(err, ErrNoBackup) {
		return nil, err
	}
	return s.create(name)
}

func (s Slot) create(name string) (*Part, error) {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(s.Dir, "."+s.fileName(name)+".part"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create backup file: %w", err)
	}
	return &Part{slot: s, name: name, f: f, md5: md5.New(), sha256: sha256.New()}, nil
}

func (p *Part) Write(b []byte) (int, error) {
	n, err := p.f.Write(b)
	p.md5.Write(b[:n])
	p.sha256.Write(b[:n])
	p.size += int64(n)
	return n, err
}

// Size is the number of bytes written so far.
func (p *Part) Size() int64 { return p.size }

// Commit fsyncs the file, renames it to its final name and writes the
// metadata beside it. Fields of meta that the part knows (name, file,
// hashes, size) are filled in.
func (p *Part) Commit(meta Meta) (*Meta, error) {
	if err := p.seal(); err != nil {
		return nil, err
	}
	meta.Name = p.name
	meta.File = p.slot.fileName(p.name)
	meta.MD5 = hex.EncodeToString(p.md5.Sum(nil))
	meta.SHA256 = hex.EncodeToString(p.sha256.Sum(nil))
	meta.Size = p.size
	var old *Meta
	if p.replacing {
		old, _ = p.slot.Stored()
	}
	final := filepath.Join(p.slot.Dir, meta.File)
	if err := os.Rename(p.f.Name(), final); err != nil {
		p.Abort()
		return nil, fmt.Errorf("rename backup: %w", err)
	}
	b, err := json.MarshalIndent(meta, "", "  ")
	if err == nil {
		err = atomicfile.Write(p.slot.metaPath(), append(b, '\n'), 0o600)
	}
	if err != nil {
		os.Remove(final)
		return nil, fmt.Errorf("write backup metadata: %w", err)
	}
	p.replaceOld(old, meta.File)
	return &meta, nil
}

// seal fsyncs and closes the part file, still under its partial name, so
// that it can be read back from the disk before it is committed.
func (p *Part) seal() error {
	if p.sealed {
		return nil
	}
	if err := p.f.Sync(); err != nil {
		p.Abort()
		return fmt.Errorf("fsync backup: %w", err)
	}
	if err := p.f.Close(); err != nil {
		p.Abort()
		return fmt.Errorf("close backup: %w", err)
	}
	p.sealed = true
	return nil
}

// Abort closes and removes the partial file.
func (p *Part) Abort() {
	p.f.Close()
	os.Remove(p.f.Name())
}
