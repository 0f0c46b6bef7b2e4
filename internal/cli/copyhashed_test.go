package cli

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"
)

// failAfter fails every write once limit bytes were written.
type failAfter struct {
	buf   bytes.Buffer
	limit int
}

func (f *failAfter) Write(p []byte) (int, error) {
	if f.buf.Len()+len(p) > f.limit {
		return 0, errors.New("disk full")
	}
	return f.buf.Write(p)
}

func TestCopyHashed(t *testing.T) {
	data := make([]byte, 3<<20+12345)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	wantMD5 := md5.Sum(data)
	cut := errors.New("connection reset")
	for _, c := range []struct {
		name    string
		r       io.Reader
		w       *failAfter
		wantN   int // bytes that must reach w, in order
		wantErr error
	}{
		{"whole", bytes.NewReader(data), &failAfter{limit: len(data)}, len(data), nil},
		{"one byte reads", iotest.OneByteReader(bytes.NewReader(data[:70000])), &failAfter{limit: len(data)}, 70000, nil},
		{"empty", bytes.NewReader(nil), &failAfter{limit: 1}, 0, nil},
		// Every byte read before the connection broke is on disk: the
		// partial file is a prefix that resumes.
		{"read fails", io.MultiReader(bytes.NewReader(data[:2<<20+7]), iotest.ErrReader(cut)), &failAfter{limit: len(data)}, 2<<20 + 7, cut},
		// The HTTP client's error for a body shorter than its
		// Content-Length is an error, not the end of the file.
		{"body cut short", io.MultiReader(bytes.NewReader(data[:1<<20+5]), iotest.ErrReader(io.ErrUnexpectedEOF)), &failAfter{limit: len(data)}, 1<<20 + 5, io.ErrUnexpectedEOF},
		{"write fails", bytes.NewReader(data), &failAfter{limit: 1 << 20}, 1 << 20, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			side := md5.New()
			n, err := copyHashed(c.w, side, c.r)
			if c.name == "write fails" {
				if err == nil || err.Error() != "disk full" {
					t.Fatalf("err %v, want the write's error", err)
				}
				if n != 1<<20 {
					t.Fatalf("n %d, want the %d bytes written", n, 1<<20)
				}
			} else if !errors.Is(err, c.wantErr) {
				t.Fatalf("err %v, want %v", err, c.wantErr)
			}
			if got := c.w.buf.Bytes(); !bytes.Equal(got, data[:c.wantN]) {
				t.Fatalf("wrote %d bytes, want the first %d of the input", len(got), c.wantN)
			}
			if c.wantErr == nil && c.name != "write fails" {
				if n != int64(c.wantN) {
					t.Fatalf("n %d, want %d", n, c.wantN)
				}
				if got := side.Sum(nil); c.wantN == len(data) && !bytes.Equal(got, wantMD5[:]) {
					t.Fatal("md5 of the side differs")
				}
				if got, want := sha256.Sum256(c.w.buf.Bytes()), sha256.Sum256(data[:c.wantN]); got != want {
					t.Fatal("sha256 differs")
				}
			}
		})
	}
}
