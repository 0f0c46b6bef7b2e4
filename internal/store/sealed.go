package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/a0backup/a0/internal/archive"
	"github.com/a0backup/a0/internal/backupfile"
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

	// BeforeReadBack, when set, runs in FinishVerified on the finished,
	// fsynced part file before it is read back: a test hold point, where
	// tests damage the file as a failing disk would. Each Sealed has its
	// own, so one backup's hook never reaches another's.
	BeforeReadBack func(path string)
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
	return s.sealPart(part, seal, opts)
}

func (s Slot) sealPart(part *Part, seal crypt.Seal, opts archive.Options) (*Sealed, error) {
	var err error
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

// VerifyError says the finished file failed its read-back: it was removed
// and never became the slot's backup.
type VerifyError struct{ Err error }

func (e *VerifyError) Error() string {
	return "the finished backup failed verification and was removed: " + e.Err.Error()
}

func (e *VerifyError) Unwrap() error { return e.Err }

// FinishVerified is Finish with a read-back between the fsync and the
// rename: the file is read again from the disk, decrypted and
// authenticated with the keys the writer derived (no second key
// derivation), and its plaintext archive is given to verify. Only when
// verify accepts it and every record up to the final one is authentic is
// the file renamed to its final name, with meta.Verified set; otherwise it
// is removed and the error is a *VerifyError. The read-back is one
// streaming pass: memory does not grow with the backup.
func (w *Sealed) FinishVerified(meta Meta, verify func(plain io.Reader) error) (*Meta, error) {
	if err := errors.Join(w.arch.Close(), w.enc.Close(), w.buf.Flush()); err != nil {
		w.part.Abort()
		return nil, err
	}
	if err := w.part.seal(); err != nil {
		return nil, err
	}
	if err := w.readBack(verify); err != nil {
		w.part.Abort()
		return nil, &VerifyError{Err: err}
	}
	now := time.Now().UTC()
	meta.Verified, meta.VerifiedAt = true, &now
	return w.part.Commit(meta)
}

func (w *Sealed) readBack(verify func(plain io.Reader) error) error {
	if w.BeforeReadBack != nil {
		w.BeforeReadBack(w.part.f.Name())
	}
	f, err := os.Open(w.part.f.Name())
	if err != nil {
		return fmt.Errorf("read back: %w", err)
	}
	defer f.Close()
	bf, err := backupfile.OpenWritten(f, w.enc)
	if err != nil {
		return fmt.Errorf("read back: %w", err)
	}
	if err := verify(bf.First()); err != nil {
		return err
	}
	// The archive ends before the file does (gzip and tar trailers, the
	// final record): authenticate to the last byte.
	if _, err := bf.Authenticate(context.Background(), nil); err != nil {
		return fmt.Errorf("read back: %w", err)
	}
	return nil
}

// Abort removes the partial backup.
func (w *Sealed) Abort() { w.part.Abort() }
