package backupfile

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"filippo.io/age"

	"github.com/a0backup/a0/internal/crypt"
)

var password = []byte("backupfile test password")

// plaintext spans three records of crypt's 1 MiB chunks.
var plaintext = func() []byte {
	b := make([]byte, 2<<20+12345)
	rand.NewChaCha8([32]byte{23}).Read(b)
	return b
}()

func sealed(t *testing.T, s crypt.Seal) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := crypt.NewSealedWriter(&buf, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(plaintext); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func identity(t *testing.T) *age.X25519Identity {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func writeFile(t *testing.T, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "backup.tar.gz.enc")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func flip(b []byte, off int) []byte {
	b = bytes.Clone(b)
	b[off] ^= 0x40
	return b
}

// before is what the agent, verify and the benchmarks did before this
// package: crypt.Open (crypt.NewReader for a password) over a buffered
// file, then the plaintext read to its end.
func before(path string, o Options) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = bufio.NewReaderSize(f, 1<<20)
	if !o.Plain {
		if r, err = crypt.Open(r, o.Unlock); err != nil {
			return nil, err
		}
	}
	return io.ReadAll(r)
}

// after is the same through this package: Open, the first pass (check
// keeps what it reads, then Authenticate reads the rest), then Reopen's
// second pass.
func after(t *testing.T, path string, o Options) (first, second []byte, err error) {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	bf, err := Open(f, o)
	if err != nil {
		return nil, nil, err
	}
	var got bytes.Buffer
	n, err := bf.Authenticate(context.Background(), func(plain io.Reader) error {
		_, err := io.CopyN(&got, plain, 1<<20+7) // a check that stops early
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	if n != int64(len(plaintext)) {
		t.Errorf("Authenticate counted %d plaintext bytes, want %d", n, len(plaintext))
	}
	r, err := bf.Reopen()
	if err != nil {
		return nil, nil, err
	}
	second, err = io.ReadAll(r)
	return got.Bytes(), second, err
}

func TestOpen(t *testing.T) {
	x, other := identity(t), identity(t)
	v1 := sealed(t, crypt.Seal{Password: password})
	v2 := sealed(t, crypt.Seal{Recipients: []age.Recipient{x.Recipient()}})
	v2pw := sealed(t, crypt.Seal{Password: password, Recipients: []age.Recipient{x.Recipient()}})
	fileKey, err := crypt.UnwrapFileKey(bytes.NewReader(v2), crypt.Unlock{Identities: []age.Identity{x}})
	if err != nil {
		t.Fatal(err)
	}
	hdr2, err := crypt.ReadHeader(bytes.NewReader(v2))
	if err != nil {
		t.Fatal(err)
	}
	withPW := Options{Unlock: crypt.Unlock{Password: password}}
	withID := Options{Unlock: crypt.Unlock{Identities: []age.Identity{x}}}
	for _, tc := range []struct {
		name string
		file []byte
		o    Options
		want error // nil: opens, both passes read the plaintext
	}{
		{"v1 password", v1, withPW, nil},
		{"v2 identity", v2, withID, nil},
		{"v2 file key", v2, Options{Unlock: crypt.Unlock{FileKey: fileKey}}, nil},
		{"v2 password stanza", v2pw, withPW, nil},
		{"plain", plaintext, Options{Plain: true}, nil},
		{"v1 wrong password", v1, Options{Unlock: crypt.Unlock{Password: []byte("not it")}}, crypt.ErrWrongPassword},
		{"v1 with an identity only", v1, withID, crypt.ErrWrongPassword},
		{"v2 password, no password stanza", v2, withPW, crypt.ErrNoPassword},
		{"v2 other identity", v2, Options{Unlock: crypt.Unlock{Identities: []age.Identity{other}}}, crypt.ErrWrongKey},
		{"v2 wrong file key", v2, Options{Unlock: crypt.Unlock{FileKey: make([]byte, 16)}}, crypt.ErrWrongKey},
		{"v1 flipped byte in a record", flip(v1, 128+1<<20+100), withPW, crypt.ErrCorrupt},
		{"v2 flipped byte in a record", flip(v2, len(hdr2)+100), withID, crypt.ErrCorrupt},
		{"v2 flipped byte in a stanza", flip(v2, 70), withID, crypt.ErrCorrupt},
		{"v1 truncated", v1[:len(v1)-100], withPW, crypt.ErrCorrupt},
		{"v1 final record missing", v1[:128+2*(1<<20+32)], withPW, crypt.ErrCorrupt},
		{"v2 truncated header", v2[:len(hdr2)-10], withID, crypt.ErrCorrupt},
		{"not an a0 file", plaintext, withPW, crypt.ErrNotA0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, tc.file)
			old, oldErr := before(path, tc.o)
			first, second, err := after(t, path, tc.o)
			if tc.want == nil {
				if err != nil || oldErr != nil {
					t.Fatalf("error %v (before: %v)", err, oldErr)
				}
				if !bytes.Equal(old, plaintext) || !bytes.Equal(first, plaintext[:len(first)]) || len(first) != 1<<20+7 || !bytes.Equal(second, plaintext) {
					t.Fatalf("plaintext differs: before %d bytes, first pass %d, second pass %d", len(old), len(first), len(second))
				}
				return
			}
			if !errors.Is(err, tc.want) || !errors.Is(oldErr, tc.want) {
				t.Fatalf("error %v (before: %v), want %v", err, oldErr, tc.want)
			}
			// The same error, not just the same kind: exit codes, API codes
			// and messages are built from it.
			if err.Error() != oldErr.Error() {
				t.Fatalf("error %q, before %q", err, oldErr)
			}
			var ce *crypt.CorruptError
			if errors.Is(tc.want, crypt.ErrCorrupt) && !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *crypt.CorruptError", err)
			}
		})
	}
}

// The second pass needs no password: it runs on the keys the first pass
// derived (the KDF ran once), even once the caller has cleared the
// password.
func TestReopenNeedsNoSecondDerivation(t *testing.T) {
	f, err := os.Open(writeFile(t, sealed(t, crypt.Seal{Password: password})))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pw := bytes.Clone(password)
	bf, err := Open(f, Options{Unlock: crypt.Unlock{Password: pw}})
	if err != nil {
		t.Fatal(err)
	}
	clear(pw)
	if _, err := bf.Authenticate(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		r, err := bf.Reopen()
		if err != nil {
			t.Fatal(err)
		}
		if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, plaintext) {
			t.Fatalf("second pass: %d bytes, %v", len(got), err)
		}
	}
	if h := bf.Header(); h.Version != 1 || h.KDF != crypt.KDFArgon2id {
		t.Fatalf("header %+v", h)
	}
}

func TestReopenBeforeTheEnd(t *testing.T) {
	for _, plain := range []bool{false, true} {
		file := plaintext
		if !plain {
			file = sealed(t, crypt.Seal{Password: password})
		}
		f, err := os.Open(writeFile(t, file))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		bf, err := Open(f, Options{Unlock: crypt.Unlock{Password: password}, Plain: plain})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bf.Reopen(); !errors.Is(err, ErrFirstPassUnfinished) {
			t.Fatalf("plain %v: Reopen before the first pass: %v", plain, err)
		}
		if _, err := io.CopyN(io.Discard, bf.First(), 1<<20+1); err != nil {
			t.Fatal(err)
		}
		if _, err := bf.Reopen(); !errors.Is(err, ErrFirstPassUnfinished) {
			t.Fatalf("plain %v: Reopen part way through the first pass: %v", plain, err)
		}
		if _, err := io.Copy(io.Discard, bf.First()); err != nil {
			t.Fatal(err)
		}
		if _, err := bf.Reopen(); err != nil {
			t.Fatalf("plain %v: Reopen after the first pass: %v", plain, err)
		}
	}
}

// A file replaced under the open descriptor between the passes (another
// backup under the same password) is never read with the first one's keys.
func TestReopenRefusesAnotherFile(t *testing.T) {
	path := writeFile(t, sealed(t, crypt.Seal{Password: password}))
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	bf, err := Open(f, Options{Unlock: crypt.Unlock{Password: password}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bf.Authenticate(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, sealed(t, crypt.Seal{Password: password}), 0o600); err != nil { // same inode
		t.Fatal(err)
	}
	r, err := bf.Reopen()
	if err == nil {
		_, err = io.ReadAll(r)
	}
	var ce *crypt.CorruptError
	if !errors.As(err, &ce) || ce.Reason != "header differs from the first pass" {
		t.Fatalf("second pass over another file: %v", err)
	}
}

// Tee sees exactly the file's bytes, once, whatever check reads.
func TestTee(t *testing.T) {
	file := sealed(t, crypt.Seal{Password: password})
	f, err := os.Open(writeFile(t, file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	bf, err := Open(f, Options{Unlock: crypt.Unlock{Password: password}, Tee: h})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bf.Authenticate(context.Background(), func(plain io.Reader) error {
		_, err := io.CopyN(io.Discard, plain, 10)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if r, err := bf.Reopen(); err != nil {
		t.Fatal(err)
	} else if _, err := io.Copy(io.Discard, r); err != nil {
		t.Fatal(err)
	}
	if want := sha256.Sum256(file); !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatal("the tee's hash is not the file's")
	}
}

// Authenticate returns check's error as is, and stops on a cancelled
// context.
func TestAuthenticateErrors(t *testing.T) {
	f, err := os.Open(writeFile(t, sealed(t, crypt.Seal{Password: password})))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	bad := errors.New("not a tar.gz")
	for _, tc := range []struct {
		name  string
		ctx   func() context.Context
		check func(io.Reader) error
		want  error
	}{
		{"check refuses", context.Background, func(io.Reader) error { return bad }, bad},
		{"cancelled", func() context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx
		}, nil, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bf, err := Open(f, Options{Unlock: crypt.Unlock{Password: password}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := bf.Authenticate(tc.ctx(), tc.check); err != tc.want {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if _, err := bf.Reopen(); !errors.Is(err, ErrFirstPassUnfinished) {
				t.Fatalf("Reopen after a failed first pass: %v", err)
			}
		})
	}
}

// OpenWritten reads a finished file with its writer's keys, and
// authenticates it as Open does.
func TestOpenWritten(t *testing.T) {
	x := identity(t)
	for _, s := range []struct {
		name string
		seal crypt.Seal
	}{
		{"v1", crypt.Seal{Password: password}},
		{"v2", crypt.Seal{Recipients: []age.Recipient{x.Recipient()}}},
	} {
		write := func(t *testing.T) (*os.File, io.WriteCloser) {
			f, err := os.Create(filepath.Join(t.TempDir(), "part"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.Close() })
			w, err := crypt.NewSealedWriter(f, s.seal, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(plaintext); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			return f, w
		}
		t.Run(s.name+"/intact", func(t *testing.T) {
			f, w := write(t)
			bf, err := OpenWritten(f, w)
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			if _, err := bf.Authenticate(context.Background(), func(plain io.Reader) error {
				_, err := io.Copy(&got, plain)
				return err
			}); err != nil || !bytes.Equal(got.Bytes(), plaintext) {
				t.Fatalf("read back %d bytes, %v", got.Len(), err)
			}
		})
		t.Run(s.name+"/flipped", func(t *testing.T) {
			f, w := write(t)
			st, _ := f.Stat()
			if _, err := f.WriteAt([]byte{0}, st.Size()-40); err != nil {
				t.Fatal(err)
			}
			bf, err := OpenWritten(f, w)
			if err == nil {
				_, err = bf.Authenticate(context.Background(), nil)
			}
			if !errors.Is(err, crypt.ErrCorrupt) {
				t.Fatalf("read back of a damaged file: %v", err)
			}
		})
	}
	if _, err := OpenWritten(bytes.NewReader(nil), nopWriteCloser{}); !errors.Is(err, crypt.ErrNotWriter) {
		t.Fatalf("OpenWritten with a foreign writer: %v", err)
	}
}

type nopWriteCloser struct{}

func (nopWriteCloser) Write(p []byte) (int, error) { return len(p), nil }
func (nopWriteCloser) Close() error                { return nil }

// A parser that reads a damaged file sees only authentic plaintext, then
// the file's error, which it may well report as "truncated": Authenticate
// and Err report the file's damage (crypt's *CorruptError, with its chunk
// and offset) instead, for damage inside a record and for a cut file, in
// both format versions (issue 28).
func TestDamageWinsOverTheParser(t *testing.T) {
	x := identity(t)
	files := map[string][]byte{
		"v1": sealed(t, crypt.Seal{Password: password}),
		"v2": sealed(t, crypt.Seal{Recipients: []age.Recipient{x.Recipient()}}),
	}
	unlock := crypt.Unlock{Password: password, Identities: []age.Identity{x}}
	// parser reads whole "documents" of 4 KiB and calls any short read a
	// truncated document, as verify's BSON counter did.
	parser := func(plain io.Reader) error {
		buf := make([]byte, 4096)
		for {
			if _, err := io.ReadFull(plain, buf); err == io.EOF {
				return nil
			} else if err != nil {
				return errors.New("truncated document")
			}
		}
	}
	for version, file := range files {
		for _, tc := range []struct {
			name   string
			damage func([]byte) []byte
			chunk  int64
		}{
			{"byte flipped in record 1", func(b []byte) []byte { return flip(b, len(b)-(1<<20)+20000) }, 1},
			{"cut inside record 1", func(b []byte) []byte { return b[:len(b)-(1<<20)] }, 1},
		} {
			t.Run(version+" "+tc.name, func(t *testing.T) {
				for _, how := range []string{"parser", "discard"} {
					f, err := os.Open(writeFile(t, tc.damage(file)))
					if err != nil {
						t.Fatal(err)
					}
					defer f.Close()
					bf, err := Open(f, Options{Unlock: unlock})
					if err != nil {
						t.Fatal(err)
					}
					check := parser
					if how == "discard" {
						check = nil
					}
					_, err = bf.Authenticate(context.Background(), check)
					var ce *crypt.CorruptError
					if !errors.As(err, &ce) || ce.Chunk != tc.chunk {
						t.Fatalf("%s: Authenticate: %v, want crypt's corruption of chunk %d", how, err, tc.chunk)
					}
					if bf.Err() != err {
						t.Fatalf("%s: Err() = %v, want %v", how, bf.Err(), err)
					}
				}
			})
		}
	}
	// The writer's own failure is not the file's.
	f, err := os.Open(writeFile(t, files["v1"]))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	bf, err := Open(f, Options{Unlock: unlock})
	if err != nil {
		t.Fatal(err)
	}
	full := errors.New("device full")
	if _, err := io.Copy(failingWriter{full}, bf.First()); err != full {
		t.Fatalf("copy: %v", err)
	}
	if bf.Err() != nil {
		t.Fatalf("a writer's error is reported as the file's: %v", bf.Err())
	}
}

type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }
