package ops

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"os"
	"strings"

	"github.com/a0backup/a0/internal/crypt"
)

// Source is a file to restore from and how to read it.
type Source struct {
	Path     string
	Password []byte
	// FileKey opens a file encrypted to public keys (format v2); the CLI
	// unwrapped it, the node never sees an identity.
	FileKey []byte
	Plain   bool
	// Upload is set when Path is an upload, removed once restored: a
	// restored backup should not stay on the node's state disk.
	Upload bool
	// WantSHA256 is the hash the client gave of the file it uploaded
	// (empty: not checked). The first pass hashes every byte it reads and
	// checkHash compares.
	WantSHA256 string
	hash       hash.Hash
	// Fetch, when set, first downloads a remote copy to Path
	// (Copier.Fetch); the file is removed when the job ends.
	Fetch func(ctx context.Context) error
}

// checkHash refuses a source whose first pass read other bytes than the
// client uploaded: another key holder may have planted or extended an
// upload under the same id, which authentication cannot tell for --plain.
func (s Source) checkHash() error {
	if s.WantSHA256 == "" || s.hash == nil {
		return nil
	}
	if got := hex.EncodeToString(s.hash.Sum(nil)); got != strings.ToLower(s.WantSHA256) {
		return &Error{Kind: Integrity, Msg: "the upload on the node is not the file this client uploaded (sha256 " + got + "): upload it again"}
	}
	return nil
}

// done removes an upload that has served its purpose.
func (s Source) done() {
	if s.Upload {
		os.Remove(s.Path)
	}
}

// open opens the source file once: both passes of a restore read the same
// open file, so the file that was authenticated is the file that is
// restored, even if its path is replaced or deleted in between.
func (s Source) open() (*os.File, error) {
	return os.Open(s.Path)
}

// openStream opens the source and returns the file (to close, and to read
// again with stream) and its plain tar.gz stream.
func (s *Source) openStream() (*os.File, io.Reader, error) {
	f, err := s.open()
	if err != nil {
		return nil, nil, err
	}
	if s.WantSHA256 != "" {
		s.hash = sha256.New()
	}
	r, err := s.stream(f, nil)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, r, nil
}

// stream returns the plain tar.gz stream of f from its start. For an
// encrypted file every byte it yields has been authenticated. prev is the
// stream of an earlier pass over f, or nil: its keys serve again, so a
// second pass costs no second key derivation.
func (s Source) stream(f *os.File, prev io.Reader) (io.Reader, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	var in io.Reader = f
	if prev == nil && s.hash != nil {
		in = io.TeeReader(f, s.hash)
	}
	br := bufio.NewReaderSize(in, 1<<20)
	if s.Plain {
		return br, nil
	}
	var (
		cr  *crypt.Reader
		err error
	)
	if first, ok := prev.(*crypt.Reader); ok {
		cr, err = first.Reopen(br)
	} else {
		cr, err = crypt.Open(br, crypt.Unlock{Password: s.Password, FileKey: s.FileKey})
	}
	if err != nil {
		return nil, openError(err)
	}
	return cr, nil
}
