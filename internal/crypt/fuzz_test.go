package crypt

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"
)

// FuzzReader feeds arbitrary bytes to the reader with a fixed password. It
// must never panic or hang, must fail only with the package's error kinds, and
// Verify must reach the same verdict on the same bytes. Seeds are valid files
// with 1 KiB chunks so multi-record inputs stay small.
func FuzzReader(f *testing.F) {
	for _, size := range []int{0, 1, 1024, 2500} {
		var buf bytes.Buffer
		w, err := NewWriter(&buf, testPassword, &WriterOptions{chunkExp: minChunkExp})
		if err != nil {
			f.Fatal(err)
		}
		w.Write(randomBytes(size, uint64(size)))
		if err := w.Close(); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	f.Add([]byte("Salted__0123456789abcdef"))
	f.Add(magic[:])

	f.Fuzz(func(t *testing.T, data []byte) {
		// A hang would stall the fuzzer silently; fail loudly instead.
		start := time.Now()
		defer func() {
			if d := time.Since(start); d > 10*time.Second {
				t.Fatalf("slow input: %v, len %d", d, len(data))
			}
		}()
		var out bytes.Buffer
		r, err := NewReader(bytes.NewReader(data), testPassword)
		if err == nil {
			_, err = io.Copy(&out, r)
		}
		if err != nil && !errors.Is(err, ErrNotA0) && !errors.Is(err, ErrUnsupported) &&
			!errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrWrongPassword) {
			t.Fatalf("unexpected error kind: %v", err)
		}
		n, verr := Verify(bytes.NewReader(data), testPassword)
		if (err == nil) != (verr == nil) {
			t.Fatalf("reader says %v, Verify says %v", err, verr)
		}
		if err == nil && n != int64(out.Len()) {
			t.Fatalf("Verify size %d, reader produced %d", n, out.Len())
		}
	})
}
