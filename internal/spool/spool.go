package spool

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// chunkSize is the plaintext of one sealed record: large enough that GCM
// runs at its full speed, small enough to buffer.
const chunkSize = 256 << 10

// ErrDamaged means a spool file changed on disk after it was written.
var ErrDamaged = errors.New("spool: file changed on disk")

// File is a spool written once, then read back from its start (any number
// of times), then removed.
type File struct {
	f      *os.File
	aead   cipher.AEAD
	buf    []byte // plaintext of the record being written
	out    []byte
	lens   []int // ciphertext length of every record written
	size   int64
	closed bool
}

// Create makes a spool file in dir (0600) with a fresh random key.
func Create(dir, pattern string) (*File, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	clear(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	return &File{f: f, aead: aead, buf: make([]byte, 0, chunkSize)}, nil
}

// Name is the file's path.
func (s *File) Name() string { return s.f.Name() }

// Size is the plaintext bytes written.
func (s *File) Size() int64 { return s.size }

func (s *File) nonce(i int) []byte {
	n := make([]byte, s.aead.NonceSize())
	binary.BigEndian.PutUint64(n[len(n)-8:], uint64(i))
	return n
}

// Write appends plaintext.
func (s *File) Write(p []byte) (int, error) {
	if s.closed {
		return 0, errors.New("spool: write after Finish")
	}
	n := len(p)
	for len(p) > 0 {
		k := copy(s.buf[len(s.buf):cap(s.buf)], p)
		s.buf = s.buf[:len(s.buf)+k]
		p = p[k:]
		if len(s.buf) == cap(s.buf) {
			if err := s.seal(); err != nil {
				return n - len(p), err
			}
		}
	}
	s.size += int64(n)
	return n, nil
}

func (s *File) seal() error {
	s.out = s.aead.Seal(s.out[:0], s.nonce(len(s.lens)), s.buf, nil)
	if _, err := s.f.Write(s.out); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	s.lens = append(s.lens, len(s.out))
	s.buf = s.buf[:0]
	return nil
}

// Close is Finish: the descriptor stays open for Reader until Remove.
func (s *File) Close() error { return s.Finish() }

// Finish seals what is buffered; after it only Reader and Remove.
func (s *File) Finish() error {
	if s.closed {
		return nil
	}
	s.closed = true
	if len(s.buf) > 0 {
		return s.seal()
	}
	return nil
}

// Reader returns the plaintext from the start, each record authenticated
// before it is released. The record count and lengths are this process's,
// so a truncated, extended or reordered file is refused.
func (s *File) Reader() (io.Reader, error) {
	if err := s.Finish(); err != nil {
		return nil, err
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	return &reader{s: s}, nil
}

type reader struct {
	s     *File
	i     int
	ct    []byte
	plain []byte
}

func (r *reader) Read(p []byte) (int, error) {
	for len(r.plain) == 0 {
		if r.i == len(r.s.lens) {
			return 0, io.EOF
		}
		n := r.s.lens[r.i]
		if cap(r.ct) < n {
			r.ct = make([]byte, n)
		}
		r.ct = r.ct[:n]
		if _, err := io.ReadFull(r.s.f, r.ct); err != nil {
			return 0, fmt.Errorf("%w: record %d: %v", ErrDamaged, r.i, err)
		}
		plain, err := r.s.aead.Open(r.ct[:0], r.s.nonce(r.i), r.ct, nil)
		if err != nil {
			return 0, fmt.Errorf("%w: record %d fails authentication", ErrDamaged, r.i)
		}
		r.plain = plain
		r.i++
	}
	n := copy(p, r.plain)
	r.plain = r.plain[n:]
	return n, nil
}

// Remove closes and deletes the file.
func (s *File) Remove() error {
	s.f.Close()
	return os.Remove(s.f.Name())
}

// Clean removes what a killed process left in dir: files matching pattern
// (as given to Create), unreadable without the key that died with it.
func Clean(dir, pattern string) ([]string, error) {
	names, err := filepath.Glob(filepath.Join(dir, pattern))
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, n := range names {
		if err := os.Remove(n); err == nil {
			removed = append(removed, n)
		}
	}
	return removed, nil
}
