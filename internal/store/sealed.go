package store

import (
	"bufio"
	"errors"
	"fmt"

	"github.com/a0backup/a0/internal/archive"
	"github.com/a0backup/a0/internal/crypt"
)

// Sealed is a backup being written through the whole tail of the pipeline:
// archive (tar, gzip) -> crypt (AES-256-CTR, HMAC-SHA256 records) -> a
// buffered, hashing part file. The agent and the benchmarks use the same
// code.
type Sealed struct {
	part *Part
	buf  *bufio.Writer
	enc  interface {
		Write([]byte) (int, error)
		Close() error
	}
	arch *archive.Writer
}

// CreateSealed starts a new encrypted backup called name in the slot.
func (s Slot) CreateSealed(name string, password []byte, opts archive.Options) (*Sealed, error) {
	return s.CreateSealedTo(name, crypt.Seal{Password: password}, opts)
}

// CreateSealedTo starts a new backup encrypted to seal's password and
// recipients (format v2 when there are recipients, else v1).
func (s Slot) CreateSealedTo(name string, seal crypt.Seal, opts archive.Options) (*Sealed, error) {
	part, err := s.Create(name)
	if err != nil {
		return nil, err
	}
	w := &Sealed{part: part, buf: bufio.NewWriterSize(part, 1<<20)}
	if w.enc, err = crypt.NewSealedWriter(w.buf, seal, nil); err != nil {
		part.Abort()
		return nil, fmt.Errorf("start encryption: %w", err)
	}
	if w.arch, err = archive.NewWriter(w.enc, opts); err != nil {
		part.Abort()
		return nil, err
	}
	return w, nil
}

// Archive is where the backup's entries go.
func (w *Sealed) Archive() *archive.Writer { return w.arch }

// Written is the number of encrypted bytes written so far.
func (w *Sealed) Written() int64 { return w.part.Size() + int64(w.buf.Buffered()) }

// Finish closes the stages in order and commits the file (fsync, rename,
// metadata). On any error the part file is removed: no file that looks
// valid is left behind.
func (w *Sealed) Finish(meta Meta) (*Meta, error) {
	if err := errors.Join(w.arch.Close(), w.enc.Close(), w.buf.Flush()); err != nil {
		w.part.Abort()
		return nil, err
	}
	return w.part.Commit(meta)
}

// Abort removes the partial backup.
func (w *Sealed) Abort() { w.part.Abort() }
