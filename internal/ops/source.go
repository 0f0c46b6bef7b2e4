package ops

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"os"
	"strings"

	"github.com/a0backup/a0/internal/backupfile"
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
	// CheckHash compares.
	WantSHA256 string
	hash       hash.Hash
	// Fetch, when set, first downloads a remote copy to Path
	// (Copier.Fetch); the file is removed when the job ends.
	Fetch func(ctx context.Context) error
}

// CheckHash refuses a source whose first pass read other bytes than the
// client uploaded: another key holder may have planted or extended an
// upload under the same id, which authentication cannot tell for --plain.
func (s Source) CheckHash() error {
	if s.WantSHA256 == "" || s.hash == nil {
		return nil
	}
	if got := hex.EncodeToString(s.hash.Sum(nil)); got != strings.ToLower(s.WantSHA256) {
		return &Error{Kind: Integrity, Msg: "the upload on the node is not the file this client uploaded (sha256 " + got + "): upload it again"}
	}
	return nil
}

// Done removes an upload that has served its purpose.
func (s Source) Done() {
	if s.Upload {
		os.Remove(s.Path)
	}
}

// Open opens the source once and unlocks it for its first pass; the caller
// closes the *os.File. Both passes of a restore read the same open file
// (backupfile.File.Reopen), so the file that was authenticated is the file
// that is restored, even if its path is replaced or deleted in between, and
// the KDF runs once. The first pass feeds CheckHash.
func (s *Source) Open() (*os.File, *backupfile.File, error) {
	f, err := os.Open(s.Path)
	if err != nil {
		return nil, nil, err
	}
	if s.WantSHA256 != "" {
		s.hash = sha256.New()
	}
	var tee io.Writer
	if s.hash != nil {
		tee = s.hash
	}
	bf, err := backupfile.Open(f, backupfile.Options{Unlock: crypt.Unlock{Password: s.Password, FileKey: s.FileKey}, Plain: s.Plain, Tee: tee})
	if err != nil {
		f.Close()
		return nil, nil, OpenError(err)
	}
	return f, bf, nil
}
