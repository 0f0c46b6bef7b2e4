package spool

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{7})
	r.Read(b)
	return b
}

// TestSpoolHoldsNoPlaintextAndRefusesChanges (issue 13 finding 5): what a
// spool writes to disk holds none of its plaintext, reads back exactly,
// and any change on disk (a bit, a truncation, an extension) is refused.
func TestSpoolHoldsNoPlaintextAndRefusesChanges(t *testing.T) {
	dir := t.TempDir()
	plain := bytes.Repeat([]byte("secret oplog entry {user: alice} "), 40000) // 1.3 MB, several records
	plain = append(plain, randomBytes(1000)...)
	write := func() *File {
		s, err := Create(dir, ".a0-spool-*")
		if err != nil {
			t.Fatal(err)
		}
		for p := plain; len(p) > 0; {
			n := min(len(p), 7777)
			if _, err := s.Write(p[:n]); err != nil {
				t.Fatal(err)
			}
			p = p[n:]
		}
		if err := s.Finish(); err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := write()
	if fi, err := os.Stat(s.Name()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("spool mode: %v %v", fi, err)
	}
	disk, _ := os.ReadFile(s.Name())
	if bytes.Contains(disk, []byte("secret oplog entry")) || bytes.Contains(disk, plain[len(plain)-1000:len(plain)-900]) {
		t.Fatal("plaintext on disk")
	}
	for range 2 {
		r, err := s.Reader()
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("read back %d bytes, %v", len(got), err)
		}
	}
	for _, tc := range []struct {
		name   string
		mutate func(b []byte) []byte
	}{
		{"bit flipped", func(b []byte) []byte { b[len(b)/2] ^= 1; return b }},
		{"truncated", func(b []byte) []byte { return b[:len(b)-1] }},
		{"record dropped", func(b []byte) []byte { return b[chunkSize+16:] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := write()
			defer s.Remove()
			b, _ := os.ReadFile(s.Name())
			os.WriteFile(s.Name(), tc.mutate(b), 0o600)
			r, err := s.Reader()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadAll(r); !errors.Is(err, ErrDamaged) {
				t.Fatalf("err = %v, want ErrDamaged", err)
			}
		})
	}
	s.Remove()
	t.Run("Clean removes what a killed process left", func(t *testing.T) {
		left := write() // never removed: the process "dies"
		other := filepath.Join(dir, "keep.txt")
		os.WriteFile(other, nil, 0o600)
		removed, err := Clean(dir, ".a0-spool-*")
		if err != nil || len(removed) != 1 || removed[0] != left.Name() {
			t.Fatalf("Clean: %v %v", removed, err)
		}
		if _, err := os.Stat(other); err != nil {
			t.Fatal("Clean removed another file")
		}
	})
}

func BenchmarkSpool(b *testing.B) {
	data := randomBytes(4 << 20)
	b.SetBytes(int64(len(data)))
	for range b.N {
		s, _ := Create(b.TempDir(), ".a0-spool-*")
		s.Write(data)
		r, _ := s.Reader()
		io.Copy(io.Discard, r)
		s.Remove()
	}
}

// TestBudget: the bound on the total and the free-space reserve each
// refuse the write that would pass them, naming the bound, and a refused
// write is not counted.
func TestBudget(t *testing.T) {
	dir := t.TempDir()
	t.Run("total", func(t *testing.T) {
		b := &Budget{Dir: dir, Max: 10 << 20, MaxWhy: "100 times the upload's size"}
		if err := b.Take(6 << 20); err != nil {
			t.Fatal(err)
		}
		err := b.Take(5 << 20)
		if !errors.Is(err, ErrBound) || !strings.Contains(err.Error(), "100 times the upload's size") {
			t.Fatalf("err = %v, want the bound named", err)
		}
		if err := b.Take(4 << 20); err != nil || b.Used() != 10<<20 {
			t.Fatalf("Take(4 MiB) = %v, used %d", err, b.Used())
		}
	})
	t.Run("free space reserve", func(t *testing.T) {
		free, err := freeBytes(dir)
		if err != nil {
			t.Fatal(err)
		}
		// A reserve of all but 64 MiB of what is free: 1 MiB fits, 1 GiB
		// does not.
		b := &Budget{Dir: dir, Reserve: free - 64<<20}
		if err := b.Take(1 << 20); err != nil {
			t.Fatal(err)
		}
		if err := b.Take(1 << 30); !errors.Is(err, ErrBound) || !strings.Contains(err.Error(), "free on the disk") {
			t.Fatalf("err = %v, want the reserve named", err)
		}
	})
	t.Run("nil bounds nothing", func(t *testing.T) {
		var b *Budget
		if err := b.Take(1 << 40); err != nil {
			t.Fatal(err)
		}
	})
}
