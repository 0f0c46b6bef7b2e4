package remotetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"testing"

	"github.com/a0backup/a0/internal/remote"
)

// Suite is the one test suite every remote.Store implementation passes, as
// restic's internal/backend/test is for its backends: an implementation's
// test fills it in and calls Run.
type Suite struct {
	// NewStore returns a new, empty store: each subtest gets its own (a
	// fresh prefix or bucket), so subtests never see each other's objects.
	NewStore func(t *testing.T) remote.Store
	// PartSize is the part size the store was opened with: a Put of at
	// least PartSize bytes is a multipart upload, which a Put cut short
	// resumes part by part. The suite sizes its objects around it, so
	// keep it small (S3's minimum, 5 MiB, is fine).
	PartSize int64
}

// Run runs every case of the suite as a subtest of t: put and get at sizes
// around the part size, get from an offset, replace, list and delete,
// not-found and bad names (matched with errors.Is against remote's
// errors), and the resumption of a cut upload (with the same data, and not
// with other data under the same name).
func (s Suite) Run(t *testing.T) {
	if s.NewStore == nil || s.PartSize <= 0 {
		t.Fatalf("remotetest.Suite: NewStore and a positive PartSize are required (got part size %d)", s.PartSize)
	}
	newStore, partSize := s.NewStore, s.PartSize
	ctx := context.Background()
	data := func(n int64) []byte {
		b := make([]byte, n)
		rand.Read(b)
		return b
	}
	// read returns the object's bytes from off on, failing the test on
	// any error.
	read := func(t *testing.T, st remote.Store, name string, off int64) []byte {
		t.Helper()
		rc, err := st.Get(ctx, name, off)
		if err != nil {
			t.Fatalf("get %s: %v", name, err)
		}
		defer rc.Close()
		got, err := io.ReadAll(rc)
		if err != nil {
			t.Fatalf("read %s: %v", name, err)
		}
		return got
	}
	sizes := []struct {
		name string
		n    int64
	}{
		{"empty", 0},
		{"small", 1000},
		{"one-part-less-one", partSize - 1},
		{"exactly-two-parts", 2 * partSize},
		{"two-and-a-bit-parts", 2*partSize + 12345},
	}
	for _, sz := range sizes {
		t.Run("put-get-"+sz.name, func(t *testing.T) {
			st := newStore(t)
			b := data(sz.n)
			res, err := st.Put(ctx, "x.enc", bytes.NewReader(b), sz.n)
			if err != nil {
				t.Fatal(err)
			}
			if res.Size != sz.n || res.ResumedBytes != 0 {
				t.Fatalf("put: %+v, want size %d and nothing resumed", res, sz.n)
			}
			if wantParts := sz.n >= partSize; (res.Parts > 0) != wantParts {
				t.Fatalf("put of %d bytes: %d parts (part size %d)", sz.n, res.Parts, partSize)
			}
			if got := read(t, st, "x.enc", 0); !bytes.Equal(got, b) {
				t.Fatalf("get: %d bytes; want the %d bytes put", len(got), len(b))
			}
			info, err := st.Stat(ctx, "x.enc")
			if err != nil || info.Size != sz.n || info.ETag != res.ETag {
				t.Fatalf("stat: %+v %v; put said %+v", info, err, res)
			}
		})
	}
	t.Run("get-from-offset", func(t *testing.T) {
		st := newStore(t)
		b := data(5000)
		if _, err := st.Put(ctx, "o.enc", bytes.NewReader(b), int64(len(b))); err != nil {
			t.Fatal(err)
		}
		if got := read(t, st, "o.enc", 1234); !bytes.Equal(got, b[1234:]) {
			t.Fatalf("get from 1234: %d bytes, want %d", len(got), len(b)-1234)
		}
	})
	t.Run("replace", func(t *testing.T) {
		st := newStore(t)
		a, b := data(100), data(200)
		st.Put(ctx, "r.json", bytes.NewReader(a), 100)
		if _, err := st.Put(ctx, "r.json", bytes.NewReader(b), 200); err != nil {
			t.Fatal(err)
		}
		if got := read(t, st, "r.json", 0); !bytes.Equal(got, b) {
			t.Fatal("the second put did not replace the first")
		}
	})
	t.Run("list-delete", func(t *testing.T) {
		st := newStore(t)
		for _, n := range []string{"b.enc", "a.enc", "a.json"} {
			if _, err := st.Put(ctx, n, bytes.NewReader([]byte(n)), int64(len(n))); err != nil {
				t.Fatal(err)
			}
		}
		l, err := st.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(l) != 3 || l[0].Name != "a.enc" || l[1].Name != "a.json" || l[2].Name != "b.enc" || l[0].Size != 5 {
			t.Fatalf("list: %+v", l)
		}
		if err := st.Delete(ctx, "a.enc"); err != nil {
			t.Fatal(err)
		}
		if err := st.Delete(ctx, "a.enc"); err != nil {
			t.Fatalf("deleting a missing object: %v", err)
		}
		if _, err := st.Stat(ctx, "a.enc"); !errors.Is(err, remote.ErrNotFound) {
			t.Fatalf("stat after delete: %v, want ErrNotFound", err)
		}
		if l, _ := st.List(ctx); len(l) != 2 {
			t.Fatalf("list after delete: %+v", l)
		}
	})
	t.Run("not-found", func(t *testing.T) {
		st := newStore(t)
		if _, err := st.Stat(ctx, "nope.enc"); !errors.Is(err, remote.ErrNotFound) {
			t.Fatalf("stat: %v, want ErrNotFound", err)
		}
		rc, err := st.Get(ctx, "nope.enc", 0)
		if err == nil {
			_, err = io.ReadAll(rc)
			rc.Close()
		}
		if !errors.Is(err, remote.ErrNotFound) {
			t.Fatalf("get: %v, want ErrNotFound", err)
		}
	})
	t.Run("bad-names", func(t *testing.T) {
		st := newStore(t)
		for _, n := range []string{"", "..", "../x", "a/b", ".hidden", `a\b`} {
			if _, err := st.Put(ctx, n, bytes.NewReader(nil), 0); !errors.Is(err, remote.ErrBadName) {
				t.Errorf("put %q: %v, want ErrBadName", n, err)
			}
			if _, err := st.Stat(ctx, n); !errors.Is(err, remote.ErrBadName) {
				t.Errorf("stat %q: %v, want ErrBadName", n, err)
			}
		}
	})
	t.Run("resume-unfinished-upload", func(t *testing.T) {
		st := newStore(t)
		b := data(3*partSize + 1)
		// A reader that fails after two parts, as a cut connection or a
		// killed agent leaves an upload: then a whole reader.
		_, err := st.Put(ctx, "big.enc", &failAfter{r: bytes.NewReader(b), limit: 2 * partSize}, int64(len(b)))
		if err == nil {
			t.Fatal("put through a failing reader succeeded")
		}
		res, err := st.Put(ctx, "big.enc", bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		if res.ResumedBytes != 2*partSize {
			t.Fatalf("resumed %d bytes, want the %d of the two parts already stored", res.ResumedBytes, 2*partSize)
		}
		if got := read(t, st, "big.enc", 0); !bytes.Equal(got, b) {
			t.Fatal("the resumed object differs from the data")
		}
	})
	t.Run("resume-with-changed-data", func(t *testing.T) {
		// Parts left by an upload of other bytes under the same name are
		// not reused: their MD5 differs.
		st := newStore(t)
		old := data(2*partSize + 10)
		st.Put(ctx, "c.enc", &failAfter{r: bytes.NewReader(old), limit: partSize}, int64(len(old)))
		b := data(2*partSize + 10)
		res, err := st.Put(ctx, "c.enc", bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		if res.ResumedBytes != 0 {
			t.Fatalf("resumed %d bytes of another file's parts", res.ResumedBytes)
		}
		if got := read(t, st, "c.enc", 0); !bytes.Equal(got, b) {
			t.Fatal("object differs from the data")
		}
	})
}

// failAfter is a ReaderAt that fails any read reaching past limit.
type failAfter struct {
	r     io.ReaderAt
	limit int64
}

var errCut = errors.New("cut")

func (f *failAfter) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > f.limit {
		return 0, errCut
	}
	return f.r.ReadAt(p, off)
}
