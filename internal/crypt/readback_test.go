package crypt

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"filippo.io/age"
)

func TestReadBack(t *testing.T) {
	x, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	opts := &WriterOptions{KDF: KDFPBKDF2SHA256, chunkExp: minChunkExp}
	for name, open := range map[string]func(io.Writer) (io.WriteCloser, error){
		"version 1 (password)": func(f io.Writer) (io.WriteCloser, error) {
			return NewWriter(f, []byte("readback-pass"), opts)
		},
		// Backups to recipients are read back as well (issue 15).
		"version 2 (recipients)": func(f io.Writer) (io.WriteCloser, error) {
			return NewSealedWriter(f, Seal{Recipients: []age.Recipient{x.Recipient()}}, opts)
		},
	} {
		t.Run(name, func(t *testing.T) { testReadBack(t, open) })
	}
}

func testReadBack(t *testing.T, open func(io.Writer) (io.WriteCloser, error)) {
	var file bytes.Buffer
	w, err := open(&file)
	if err != nil {
		t.Fatal(err)
	}
	plain := bytes.Repeat([]byte("0123456789abcdef"), 5000)
	if _, err := w.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	t.Run("intact", func(t *testing.T) {
		r, err := ReadBack(w, bytes.NewReader(file.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, plain) {
			t.Fatalf("read back %d bytes, wrote %d", len(got), len(plain))
		}
	})
	t.Run("flipped byte", func(t *testing.T) {
		b := bytes.Clone(file.Bytes())
		b[len(b)/2] ^= 1
		r, err := ReadBack(w, bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadAll(r); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("flipped byte: %v, want ErrCorrupt", err)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		b := file.Bytes()[:file.Len()-10]
		r, err := ReadBack(w, bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadAll(r); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated: %v, want ErrCorrupt", err)
		}
	})
	t.Run("another file", func(t *testing.T) {
		var other bytes.Buffer
		w2, err := open(&other)
		if err != nil {
			t.Fatal(err)
		}
		w2.Close()
		if _, err := ReadBack(w, bytes.NewReader(other.Bytes())); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("another file's header: %v, want ErrCorrupt", err)
		}
	})
	t.Run("not a writer", func(t *testing.T) {
		if _, err := ReadBack(nopWC{}, bytes.NewReader(file.Bytes())); !errors.Is(err, ErrNotWriter) {
			t.Fatalf("foreign writer: %v", err)
		}
	})
}

type nopWC struct{}

func (nopWC) Write(p []byte) (int, error) { return len(p), nil }
func (nopWC) Close() error                { return nil }
