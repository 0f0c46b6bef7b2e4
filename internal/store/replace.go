package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/a0backup/a0/internal/archive"
	"github.com/a0backup/a0/internal/crypt"
)

// CreateSealedReplacing is CreateSealedTo for a slot that may hold a
// backup: the stored one stays the slot's backup, untouched, while the new
// one is written and verified; only the commit of the new one (its rename
// and metadata) replaces it, and the old file is removed after that. A
// crash at any point leaves either backup whole and described (Clean
// removes the other file at the next start).
func (s Slot) CreateSealedReplacing(name string, seal crypt.Seal, opts archive.Options) (*Sealed, error) {
	old, err := s.Stored()
	if err != nil && !errors.Is(err, ErrNoBackup) {
		return nil, err
	}
	if old != nil && old.Name == name {
		// One name per second: the new file would overwrite the old one
		// before its metadata does.
		return nil, fmt.Errorf("the stored backup has the new one's name %s: %w", name, ErrExists)
	}
	part, err := s.create(name)
	if err != nil {
		return nil, err
	}
	part.replacing = true
	return s.sealPart(part, seal, opts)
}

// Replaced is the stored backup a committed replacing part replaced, or nil.
func (w *Sealed) Replaced() *Meta { return w.part.replaced }

// replaceOld runs after the new backup's metadata is written: the old file
// is no one's backup any more.
func (p *Part) replaceOld(old *Meta, newFile string) {
	if old == nil || old.File == newFile {
		return
	}
	if err := os.Remove(filepath.Join(p.slot.Dir, old.File)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return // Clean removes it at the next start
	}
	p.replaced = old
}
