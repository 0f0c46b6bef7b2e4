package crypt

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int
	}{
		{"empty", 0},
		{"one byte", 1},
		{"chunk-1", chunk - 1},
		{"chunk", chunk},
		{"chunk+1", chunk + 1},
		{"3.5 chunks", 3*chunk + chunk/2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plain := randomBytes(tc.size, uint64(tc.size))
			enc := encrypt(t, plain, nil)

			records := max(1, (tc.size+chunk-1)/chunk)
			if want := headerSize + tc.size + records*tagSize; len(enc) != want {
				t.Errorf("encrypted size %d, want %d", len(enc), want)
			}
			if !IsA0(enc) {
				t.Error("IsA0(encrypted) = false")
			}

			r, err := NewReader(bytes.NewReader(enc), testPassword)
			if err != nil {
				t.Fatalf("NewReader: %v", err)
			}
			want := HeaderInfo{Version: 1, KDF: KDFArgon2id, Argon2Time: 3, Argon2MemoryKiB: 65536, Argon2Threads: 4, ChunkSize: chunk, Codec: CodecTarGzip}
			if got := r.Header(); got != want {
				t.Errorf("Header() = %+v, want %+v", got, want)
			}
			// Through Read with an odd buffer (WriteTo hidden), not only WriteTo.
			var out bytes.Buffer
			if _, err := io.CopyBuffer(&out, struct{ io.Reader }{r}, make([]byte, 4097)); err != nil {
				t.Fatalf("read: %v", err)
			}
			if !bytes.Equal(out.Bytes(), plain) {
				t.Fatalf("Read: plaintext differs (got %d bytes, want %d)", out.Len(), len(plain))
			}
			if got, err := decrypt(enc, testPassword); err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("WriteTo: err %v, equal %v", err, bytes.Equal(got, plain))
			}
			if n, err := Verify(bytes.NewReader(enc), testPassword); err != nil || n != int64(tc.size) {
				t.Fatalf("Verify = %d, %v; want %d, nil", n, err, tc.size)
			}
			if err := iotest.TestReader(mustReader(t, enc), plain); err != nil {
				t.Fatalf("iotest.TestReader: %v", err)
			}
		})
	}
}

func mustReader(t *testing.T, enc []byte) *Reader {
	t.Helper()
	r, err := NewReader(bytes.NewReader(enc), testPassword)
	if err != nil {
		t.Fatalf("NewReader: %v", err)
	}
	return r
}

func TestPBKDF2(t *testing.T) {
	for _, tc := range []struct {
		name      string
		iter      uint32
		wantIter  uint32
		wantError error
	}{
		{"default", 0, MinPBKDF2Iterations, nil},
		{"stronger", 700_000, 700_000, nil},
		{"too weak", MinPBKDF2Iterations - 1, 0, ErrWeakKDF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := &WriterOptions{KDF: KDFPBKDF2SHA256, PBKDF2Iterations: tc.iter}
			if tc.wantError != nil {
				if _, err := NewWriter(io.Discard, testPassword, opts); !errors.Is(err, tc.wantError) {
					t.Fatalf("NewWriter error %v, want %v", err, tc.wantError)
				}
				return
			}
			plain := randomBytes(chunk+123, 7)
			enc := encrypt(t, plain, opts)
			r := mustReader(t, enc)
			if h := r.Header(); h.KDF != KDFPBKDF2SHA256 || h.PBKDF2Iterations != tc.wantIter || h.Argon2Time != 0 {
				t.Errorf("Header() = %+v", h)
			}
			if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("round trip: err %v, equal %v", err, bytes.Equal(got, plain))
			}
			if _, err := decrypt(enc, []byte("wrong")); !errors.Is(err, ErrWrongPassword) {
				t.Fatalf("wrong password: %v", err)
			}
		})
	}
}

func TestWrongPassword(t *testing.T) {
	enc := encrypt(t, randomBytes(2*chunk, 1), nil)
	for _, pw := range [][]byte{[]byte("Correct horse battery staple"), {}, testPassword[:len(testPassword)-1]} {
		r, err := NewReader(bytes.NewReader(enc), pw)
		if !errors.Is(err, ErrWrongPassword) || r != nil {
			t.Errorf("NewReader(%q) = %v, %v; want nil, ErrWrongPassword", pw, r, err)
		}
		if errors.Is(err, ErrCorrupt) {
			t.Errorf("wrong password also matches ErrCorrupt")
		}
		if n, err := Verify(bytes.NewReader(enc), pw); !errors.Is(err, ErrWrongPassword) || n != 0 {
			t.Errorf("Verify(%q) = %d, %v", pw, n, err)
		}
	}
}

func TestWriterRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		pw   []byte
		opts *WriterOptions
		want error
	}{
		{"empty password", nil, nil, ErrEmptyPassword},
		{"unknown kdf", testPassword, &WriterOptions{KDF: 9}, ErrUnsupported},
		{"weak pbkdf2", testPassword, &WriterOptions{KDF: KDFPBKDF2SHA256, PBKDF2Iterations: 1000}, ErrWeakKDF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if _, err := NewWriter(&buf, tc.pw, tc.opts); !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if buf.Len() != 0 {
				t.Fatalf("wrote %d bytes before refusing", buf.Len())
			}
		})
	}
}

func TestCiphertextHidesPlaintext(t *testing.T) {
	marker := []byte("CONFIDENTIAL-USER-RECORD-0123456789;")
	plain := bytes.Repeat(marker, (2*chunk)/len(marker))
	a := encrypt(t, plain, nil)
	b := encrypt(t, plain, nil)
	for _, enc := range [][]byte{a, b} {
		if bytes.Contains(enc, marker[:16]) {
			t.Fatal("ciphertext contains plaintext")
		}
	}
	if bytes.Equal(a[offSalt:offIV], b[offSalt:offIV]) || bytes.Equal(a[offIV:offCheck], b[offIV:offCheck]) {
		t.Fatal("salt or IV repeated across files")
	}
	// Same password and data, so only salt and IV keep the key streams apart:
	// no 16-byte block of the bodies may coincide.
	same := 0
	for i := headerSize; i+16 <= len(a); i += 16 {
		if bytes.Equal(a[i:i+16], b[i:i+16]) {
			same++
		}
	}
	if same > 0 {
		t.Fatalf("%d identical ciphertext blocks across two files", same)
	}
}

func TestIsA0(t *testing.T) {
	enc := encrypt(t, []byte("x"), nil)
	for _, tc := range []struct {
		name   string
		prefix []byte
		want   bool
	}{
		{"whole file", enc, true},
		{"magic only", enc[:8], true},
		{"short", enc[:7], false},
		{"empty", nil, false},
		{"openssl salted", []byte("Salted__12345678"), false},
		{"gzip", []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsA0(tc.prefix); got != tc.want {
				t.Fatalf("IsA0 = %v, want %v", got, tc.want)
			}
		})
	}
}

var errBoom = errors.New("disk on fire")

func TestIOErrorsAreNotCorruption(t *testing.T) {
	enc := encrypt(t, randomBytes(2*chunk, 3), nil)
	for _, cut := range []int{50, headerSize + 1000, headerSize + chunk + tagSize} {
		r := io.MultiReader(bytes.NewReader(enc[:cut]), iotest.ErrReader(errBoom))
		_, err := Verify(r, testPassword)
		if !errors.Is(err, errBoom) || errors.Is(err, ErrCorrupt) {
			t.Errorf("cut %d: err %v, want the I/O error and not ErrCorrupt", cut, err)
		}
	}

	var fw failingWriter
	w, err := NewWriter(&fw, testPassword, nil)
	if err != nil {
		t.Fatal(err)
	}
	fw.fail = true
	w.Write(make([]byte, chunk))
	if _, err := w.Write([]byte{1}); !errors.Is(err, errBoom) {
		t.Fatalf("Write after a failed flush: %v", err)
	}
	if err := w.Close(); !errors.Is(err, errBoom) {
		t.Fatalf("Close: %v", err)
	}
}

type failingWriter struct{ fail bool }

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.fail {
		return 0, errBoom
	}
	return len(p), nil
}

func TestWriteAfterClose(t *testing.T) {
	w, err := NewWriter(io.Discard, testPassword, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("late")); err == nil {
		t.Fatal("Write after Close succeeded")
	}
}

func TestNoAllocs(t *testing.T) {
	w, err := NewWriter(io.Discard, testPassword, nil)
	if err != nil {
		t.Fatal(err)
	}
	block := randomBytes(256<<10, 5)
	if n := testing.AllocsPerRun(20, func() { w.Write(block) }); n != 0 {
		t.Errorf("writer: %v allocations per 256 KiB Write", n)
	}

	enc := encrypt(t, randomBytes(16*chunk, 6), nil)
	r := mustReader(t, enc)
	if n := testing.AllocsPerRun(50, func() { r.Read(block) }); n != 0 {
		t.Errorf("reader: %v allocations per Read", n)
	}
}
