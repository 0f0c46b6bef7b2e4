package crypt

import (
	"bytes"
	"io"
	"testing"
)

// Benchmarks measure the steady state: the KDF (a one-off ~160 ms per file)
// is paid once for the writer and memoized (TestMain) for the readers.

func BenchmarkWriter(b *testing.B) {
	w, err := NewWriter(io.Discard, testPassword, nil)
	if err != nil {
		b.Fatal(err)
	}
	block := randomBytes(chunk, 1)
	b.SetBytes(int64(len(block)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := w.Write(block); err != nil {
			b.Fatal(err)
		}
	}
}

const benchFileSize = 32 << 20

func BenchmarkReader(b *testing.B) {
	enc := encrypt(b, randomBytes(benchFileSize, 2), nil)
	b.SetBytes(benchFileSize)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r, err := NewReader(bytes.NewReader(enc), testPassword)
		if err != nil {
			b.Fatal(err)
		}
		if n, err := io.Copy(io.Discard, r); err != nil || n != benchFileSize {
			b.Fatal(n, err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	enc := encrypt(b, randomBytes(benchFileSize, 3), nil)
	b.SetBytes(benchFileSize)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if n, err := Verify(bytes.NewReader(enc), testPassword); err != nil || n != benchFileSize {
			b.Fatal(n, err)
		}
	}
}

// BenchmarkBaseline is the floor the format cannot beat: one AES-256-CTR pass
// and one HMAC-SHA256 pass over 1 MiB. Compare the benchmarks above with it
// from the same run; absolute numbers vary with the machine's load.
func BenchmarkBaseline(b *testing.B) {
	w, err := NewWriter(io.Discard, testPassword, nil)
	if err != nil {
		b.Fatal(err)
	}
	ww := w.(*writer)
	block := randomBytes(chunk, 4)
	var tag [tagSize]byte
	b.SetBytes(chunk)
	b.ResetTimer()
	for b.Loop() {
		ww.stream.XORKeyStream(block, block)
		ww.mac.Reset()
		ww.mac.Write(block)
		ww.mac.Sum(tag[:0])
	}
}
