package archive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/aes"
	"crypto/cipher"
	"crypto/md5"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	kgzip "github.com/klauspost/compress/gzip"
	"go.mongodb.org/mongo-driver/v2/bson"
)

type entry struct {
	name string
	data []byte
}

func writeArchive(t *testing.T, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mt := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	for i, e := range entries {
		if i%2 == 0 {
			err = w.AddBytes(e.name, 0o600, mt, e.data)
		} else {
			err = w.AddFile(e.name, 0o600, int64(len(e.data)), mt, bytes.NewReader(e.data))
		}
		if err != nil {
			t.Fatalf("add %s: %v", e.name, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func readArchive(t *testing.T, tgz []byte) []entry {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(tgz))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var out []entry
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeReg {
			t.Fatalf("%s: type %c, want regular file", h.Name, h.Typeflag)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, entry{h.Name, b})
	}
	return out
}

func sampleEntries() []entry {
	long := strings.Repeat("l", 150) + "/" + strings.Repeat("c%2Fé", 40) + ".bson"
	return []entry{
		{"prelude.json", []byte(`{"x":1}`)},
		{"db/coll.metadata.json", []byte(`{"indexes":[]}`)},
		{"db/coll.bson", bytes.Repeat([]byte{5, 0, 0, 0, 0}, 100000)},
		{"db/empty.bson", nil},
		{long, []byte("long name")},
		{"manifest.json", []byte(`{}`)},
	}
}

func TestWriterRoundTrip(t *testing.T) {
	want := sampleEntries()
	got := readArchive(t, writeArchive(t, want))
	if len(got) != len(want) {
		t.Fatalf("got %d entries, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].name != want[i].name || !bytes.Equal(got[i].data, want[i].data) {
			t.Errorf("entry %d: got %q (%d bytes), want %q (%d bytes)",
				i, got[i].name, len(got[i].data), want[i].name, len(want[i].data))
		}
	}
}

func TestWriterGNUTarReads(t *testing.T) {
	if _, err := exec.LookPath("tar"); err != nil {
		skipOutsideCI(t, "no tar binary")
	}
	want := sampleEntries()
	dir := t.TempDir()
	tgz := filepath.Join(dir, "a.tar.gz")
	if err := os.WriteFile(tgz, writeArchive(t, want), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o700); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("tar", "-xzf", tgz, "-C", out).CombinedOutput(); err != nil {
		t.Fatalf("tar -xzf: %v: %s", err, b)
	}
	for _, e := range want {
		b, err := os.ReadFile(filepath.Join(out, e.name))
		if err != nil {
			t.Fatalf("GNU tar did not extract %q: %v", e.name, err)
		}
		if !bytes.Equal(b, e.data) {
			t.Errorf("%s: content differs", e.name)
		}
	}
}

func TestWriterSizeMismatch(t *testing.T) {
	tests := []struct {
		name string
		size int64
		data string
	}{
		{"short", 10, "12345"},
		{"long", 3, "12345"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, err := NewWriter(io.Discard, Options{})
			if err != nil {
				t.Fatal(err)
			}
			err = w.AddFile("f", 0o600, tc.size, time.Now(), strings.NewReader(tc.data))
			if !errors.Is(err, ErrSizeMismatch) {
				t.Fatalf("AddFile = %v, want ErrSizeMismatch", err)
			}
			// The stream is broken: later calls and Close report it.
			if err := w.AddBytes("g", 0o600, time.Now(), nil); !errors.Is(err, ErrSizeMismatch) {
				t.Errorf("AddBytes after failure = %v, want the first error", err)
			}
			if err := w.Close(); err == nil {
				t.Error("Close after failure succeeded")
			}
		})
	}
}

func TestWriterLevels(t *testing.T) {
	tests := []struct {
		level   int
		wantErr bool
	}{{0, false}, {1, false}, {9, false}, {42, true}}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.level), func(t *testing.T) {
			var buf bytes.Buffer
			w, err := NewWriter(&buf, Options{Level: tc.level, Concurrency: 1})
			if (err != nil) != tc.wantErr {
				t.Fatalf("NewWriter level %d: err %v", tc.level, err)
			}
			if err != nil {
				return
			}
			if err := w.AddBytes("a", 0o600, time.Now(), []byte("hello")); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if got := readArchive(t, buf.Bytes()); len(got) != 1 || string(got[0].data) != "hello" {
				t.Fatalf("read back %v", got)
			}
		})
	}
}

// --- benchmarks -----------------------------------------------------------

var (
	benchOnce sync.Once
	benchData []byte
)

// auth0Users returns about n bytes of concatenated BSON user documents shaped
// like an Auth0 users collection: ids, emails, bcrypt hashes (incompressible),
// identities, metadata and dates.
func auth0Users(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	const b64 = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	first := []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy"}
	last := []string{"smith", "jones", "garcia", "miller", "davis", "lopez", "wilson", "moore"}
	domains := []string{"example.com", "corp.example.org", "mail.test", "gmail.com"}
	conns := []string{"Username-Password-Authentication", "google-oauth2", "samlp-corp"}
	var out bytes.Buffer
	base := time.Date(2016, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; out.Len() < n; i++ {
		fn, ln := first[r.IntN(len(first))], last[r.IntN(len(last))]
		email := fmt.Sprintf("%s.%s%d@%s", fn, ln, i, domains[r.IntN(len(domains))])
		hashb := make([]byte, 53)
		for j := range hashb {
			hashb[j] = b64[r.IntN(len(b64))]
		}
		id := fmt.Sprintf("%024x", r.Uint64())
		created := base.Add(time.Duration(r.Int64N(int64(8 * 365 * 24 * time.Hour))))
		conn := conns[r.IntN(len(conns))]
		doc := bson.D{
			{Key: "_id", Value: bson.NewObjectIDFromTimestamp(created)},
			{Key: "tenant", Value: "appliance"},
			{Key: "user_id", Value: "auth0|" + id},
			{Key: "email", Value: email},
			{Key: "email_verified", Value: r.IntN(4) != 0},
			{Key: "name", Value: fn + " " + ln},
			{Key: "nickname", Value: fn},
			{Key: "given_name", Value: fn},
			{Key: "family_name", Value: ln},
			{Key: "picture", Value: "https://s.gravatar.com/avatar/" + id + "?s=480&r=pg&d=https%3A%2F%2Fcdn.auth0.com%2Favatars%2F" + fn[:2] + ".png"},
			{Key: "password", Value: "$2b$10$" + string(hashb)},
			{Key: "created_at", Value: created},
			{Key: "updated_at", Value: created.Add(time.Duration(r.IntN(1e6)) * time.Second)},
			{Key: "last_login", Value: created.Add(time.Duration(r.IntN(1e7)) * time.Second)},
			{Key: "last_ip", Value: fmt.Sprintf("10.%d.%d.%d", r.IntN(256), r.IntN(256), r.IntN(256))},
			{Key: "logins_count", Value: int32(r.IntN(500))},
			{Key: "identities", Value: bson.A{bson.D{
				{Key: "connection", Value: conn},
				{Key: "provider", Value: strings.SplitN(conn, "-", 2)[0]},
				{Key: "user_id", Value: id},
				{Key: "isSocial", Value: conn == "google-oauth2"},
			}}},
			{Key: "app_metadata", Value: bson.D{
				{Key: "roles", Value: bson.A{"user", []string{"admin", "editor", "viewer"}[r.IntN(3)]}},
				{Key: "plan", Value: []string{"free", "pro", "enterprise"}[r.IntN(3)]},
			}},
			{Key: "user_metadata", Value: bson.D{
				{Key: "lang", Value: []string{"en", "fr", "de", "es"}[r.IntN(4)]},
				{Key: "newsletter", Value: r.IntN(2) == 0},
			}},
		}
		b, err := bson.Marshal(doc)
		if err != nil {
			panic(err)
		}
		out.Write(b)
	}
	return out.Bytes()
}

func benchInput(b *testing.B) []byte {
	benchOnce.Do(func() { benchData = auth0Users(64 << 20) })
	return benchData
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// writeAll packs data as 8 collection files, as a dump would.
func writeAll(b *testing.B, w io.Writer, o Options, data []byte) {
	aw, err := NewWriter(w, o)
	if err != nil {
		b.Fatal(err)
	}
	chunk := len(data) / 8
	for i := 0; i < 8; i++ {
		part := data[i*chunk : (i+1)*chunk]
		if err := aw.AddFile(fmt.Sprintf("db/c%d.bson", i), 0o600, int64(len(part)), time.Time{}, bytes.NewReader(part)); err != nil {
			b.Fatal(err)
		}
	}
	if err := aw.Close(); err != nil {
		b.Fatal(err)
	}
}

func gzip6Ratio(b *testing.B, data []byte) float64 {
	if _, err := exec.LookPath("gzip"); err != nil {
		return 0
	}
	cmd := exec.Command("gzip", "-6", "-c")
	cmd.Stdin = bytes.NewReader(data)
	var cw countWriter
	cmd.Stdout = &cw
	if err := cmd.Run(); err != nil {
		b.Fatal(err)
	}
	return float64(len(data)) / float64(cw.n)
}

// BenchmarkWriter measures the compressor alone at each level.
func BenchmarkWriter(b *testing.B) {
	data := benchInput(b)
	for _, level := range []int{1, 2, 3, 4, 5, 6} {
		b.Run(fmt.Sprintf("pgzip-L%d", level), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			var cw countWriter
			for i := 0; i < b.N; i++ {
				cw = countWriter{}
				writeAll(b, &cw, Options{Level: level}, data)
			}
			b.ReportMetric(float64(len(data))/float64(cw.n), "ratio")
		})
	}
	b.Run("klauspost-gzip-L6-single", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		var cw countWriter
		for i := 0; i < b.N; i++ {
			cw = countWriter{}
			zw, _ := kgzip.NewWriterLevel(&cw, 6)
			zw.Write(data)
			zw.Close()
		}
		b.ReportMetric(float64(len(data))/float64(cw.n), "ratio")
	})
	b.Run("gzip-6-reference", func(b *testing.B) {
		b.ReportMetric(gzip6Ratio(b, data), "ratio")
	})
}

// sink is the rest of the backup pipeline after the archive: AES-256-CTR,
// md5 and sha256 of the ciphertext, a file on disk, fsync at the end.
type sink struct {
	ctr      cipher.Stream
	md5, sha hash.Hash
	f        *os.File
	buf      []byte
}

func (s *sink) Write(p []byte) (int, error) {
	if cap(s.buf) < len(p) {
		s.buf = make([]byte, len(p))
	}
	c := s.buf[:len(p)]
	s.ctr.XORKeyStream(c, p)
	s.md5.Write(c)
	s.sha.Write(c)
	return s.f.Write(c)
}

// BenchmarkPipeline measures the whole backup path after the dump:
// tar -> parallel gzip -> AES-CTR -> md5 + sha256 -> file -> fsync.
func BenchmarkPipeline(b *testing.B) {
	data := benchInput(b)
	for _, level := range []int{3, 4, 5, 6} {
		b.Run(fmt.Sprintf("pgzip-L%d", level), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			dir := b.TempDir()
			var size int64
			for i := 0; i < b.N; i++ {
				f, err := os.Create(filepath.Join(dir, "out"))
				if err != nil {
					b.Fatal(err)
				}
				blk, _ := aes.NewCipher(make([]byte, 32))
				s := &sink{ctr: cipher.NewCTR(blk, make([]byte, 16)), md5: md5.New(), sha: sha256.New(), f: f}
				writeAll(b, s, Options{Level: level}, data)
				if err := f.Sync(); err != nil {
					b.Fatal(err)
				}
				st, _ := f.Stat()
				size = st.Size()
				f.Close()
			}
			b.ReportMetric(float64(len(data))/float64(size), "ratio")
		})
	}
}

// skipOutsideCI skips a test whose requirement (root, a binary) is missing,
// except under CI=true, where .ci/run installs every requirement and a skip
// would hide a check: there it fails.
func skipOutsideCI(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true: "+format, args...)
	}
	t.Skipf(format, args...)
}
