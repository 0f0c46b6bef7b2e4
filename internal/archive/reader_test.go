package archive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type tarEntry struct {
	name     string
	typ      byte
	body     string
	size     int64 // declared size when > 0 and body is empty
	linkname string
}

func file(name, body string) tarEntry { return tarEntry{name: name, typ: tar.TypeReg, body: body} }

// makeTarGz builds a tar.gz in memory, honouring crafted headers.
func makeTarGz(t testing.TB, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: 0o644, Linkname: e.linkname, ModTime: time.Unix(1700000000, 0), Format: tar.FormatPAX}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func readAll(t testing.TB, data []byte, l Limits) (map[string]string, error) {
	t.Helper()
	r, err := NewReader(bytes.NewReader(data), l)
	if err != nil {
		return nil, err
	}
	got := map[string]string{}
	for {
		e, err := r.Next()
		if errors.Is(err, io.EOF) {
			return got, nil
		}
		if err != nil {
			return got, err
		}
		b, err := io.ReadAll(r)
		if err != nil {
			return got, err
		}
		if int64(len(b)) != e.Size {
			t.Fatalf("%s: read %d bytes, header says %d", e.Name, len(b), e.Size)
		}
		got[e.Name] = string(b)
	}
}

func TestReaderReadsAndCleans(t *testing.T) {
	data := makeTarGz(t,
		tarEntry{name: "./", typ: tar.TypeDir},
		tarEntry{name: "./db/", typ: tar.TypeDir},
		file("./prelude.json", "{}"),
		file("./db/c.bson", "docs"),
		file("db//d.bson", ""),
	)
	got, err := readAll(t, data, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"prelude.json": "{}", "db/c.bson": "docs", "db/d.bson": ""}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("%s = %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
}

func TestReaderMultiMemberGzip(t *testing.T) {
	// A tar split across two gzip members, as parallel compressors write it.
	whole := makeTarGz(t, file("a", strings.Repeat("x", 5000)), file("b", "y"))
	zr, err := gzip.NewReader(bytes.NewReader(whole))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for _, part := range [][]byte{plain[:1000], plain[1000:]} {
		w := gzip.NewWriter(&buf)
		w.Write(part)
		w.Close()
	}
	got, err := readAll(t, buf.Bytes(), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got["a"]) != 5000 || got["b"] != "y" {
		t.Fatalf("got %d entries", len(got))
	}
}

func TestReaderRefuses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries []tarEntry
		limits  Limits
		unsafe  bool // must match ErrUnsafe; otherwise any error
	}{
		{"dotdot", []tarEntry{file("../evil", "x")}, Limits{}, true},
		{"dotdot inside", []tarEntry{file("a/../../evil", "x")}, Limits{}, true},
		{"dotdot dir", []tarEntry{{name: "a/../../", typ: tar.TypeDir}}, Limits{}, true},
		{"absolute", []tarEntry{file("/etc/passwd", "x")}, Limits{}, true},
		{"dot slash absolute", []tarEntry{file(".//etc/passwd", "x")}, Limits{}, true},
		{"backslash", []tarEntry{file(`..\evil`, "x")}, Limits{}, true},
		{"empty name", []tarEntry{file(".", "x")}, Limits{}, true},
		{"symlink", []tarEntry{{name: "l", typ: tar.TypeSymlink, linkname: "/etc"}}, Limits{}, true},
		{"hardlink", []tarEntry{{name: "l", typ: tar.TypeLink, linkname: "a"}}, Limits{}, true},
		{"char device", []tarEntry{{name: "d", typ: tar.TypeChar}}, Limits{}, true},
		{"block device", []tarEntry{{name: "d", typ: tar.TypeBlock}}, Limits{}, true},
		{"fifo", []tarEntry{{name: "f", typ: tar.TypeFifo}}, Limits{}, true},
		{"duplicate", []tarEntry{file("a", "1"), file("./a", "2")}, Limits{}, true},
		{"entry too big", []tarEntry{file("a", "12345")}, Limits{MaxEntrySize: 4}, true},
		{"too many entries", []tarEntry{file("a", ""), {name: "d/", typ: tar.TypeDir}, file("b", "")}, Limits{MaxEntries: 2}, true},
		{"total too big", []tarEntry{file("a", "123"), file("b", "123")}, Limits{MaxTotal: 5}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readAll(t, makeTarGz(t, tc.entries...), tc.limits)
			if err == nil {
				t.Fatal("accepted")
			}
			if tc.unsafe && !errors.Is(err, ErrUnsafe) {
				t.Fatalf("err = %v, want ErrUnsafe", err)
			}
		})
	}
}

func TestReaderCorruptStream(t *testing.T) {
	good := makeTarGz(t, file("a", strings.Repeat("abc", 10000)))
	flipped := bytes.Clone(good)
	flipped[len(flipped)-6] ^= 0xff // inside the CRC/length trailer
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"not gzip", []byte("hello, world")},
		{"truncated", good[:len(good)/2]},
		{"no trailer", good[:len(good)-8]},
		{"bad crc", flipped},
		{"garbage after", append(bytes.Clone(good), "garbage"...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := readAll(t, tc.data, Limits{}); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestExtract(t *testing.T) {
	dir := t.TempDir()
	data := makeTarGz(t, file("db/c.bson", "docs"), file("manifest.json", "{}"))
	r, err := NewReader(bytes.NewReader(data), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if err := Extract(context.Background(), r, dir); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "db", "c.bson"))
	if err != nil || string(b) != "docs" {
		t.Fatalf("read back %q, %v", b, err)
	}
	for name, want := range map[string]os.FileMode{"db/c.bson": 0o600, "db": 0o700 | os.ModeDir} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode()&^0o077 != want&^0o077 || fi.Mode()&0o077 != 0 {
			t.Fatalf("%s mode %v, want %v", name, fi.Mode(), want)
		}
	}

	t.Run("existing file is not overwritten", func(t *testing.T) {
		r, _ := NewReader(bytes.NewReader(makeTarGz(t, file("manifest.json", "new"))), Limits{})
		if err := Extract(context.Background(), r, dir); err == nil {
			t.Fatal("overwrote an existing file")
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "manifest.json")); string(b) != "{}" {
			t.Fatalf("content changed to %q", b)
		}
	})

	t.Run("planted symlink does not lead outside", func(t *testing.T) {
		outside := t.TempDir()
		in := t.TempDir()
		if err := os.Symlink(outside, filepath.Join(in, "link")); err != nil {
			t.Fatal(err)
		}
		r, _ := NewReader(bytes.NewReader(makeTarGz(t, file("link/x", "escaped"))), Limits{})
		if err := Extract(context.Background(), r, in); err == nil {
			t.Fatal("wrote through a symlink")
		}
		if _, err := os.Stat(filepath.Join(outside, "x")); !os.IsNotExist(err) {
			t.Fatalf("file written outside: %v", err)
		}
	})
}

// FuzzReader feeds arbitrary bytes as a tar.gz: the reader must never panic,
// every name it returns must be clean, and Extract must write only inside
// its directory.
func FuzzReader(f *testing.F) {
	f.Add(makeTarGz(f, file("./db/c.bson", "x"), file("manifest.json", "{}")))
	f.Add(makeTarGz(f, file("../x", "x")))
	f.Add(makeTarGz(f, tarEntry{name: "l", typ: tar.TypeSymlink, linkname: "/"}, file("l/x", "x")))
	f.Add([]byte{0x1f, 0x8b})
	f.Fuzz(func(t *testing.T, data []byte) {
		parent := t.TempDir()
		dir := filepath.Join(parent, "in")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		l := Limits{MaxEntrySize: 1 << 20, MaxEntries: 100, MaxTotal: 4 << 20}
		if r, err := NewReader(bytes.NewReader(data), l); err == nil {
			for {
				e, err := r.Next()
				if err != nil {
					break
				}
				if c, err := CleanName(e.Name); err != nil || c != e.Name || strings.HasPrefix(e.Name, "/") {
					t.Fatalf("returned unclean name %q", e.Name)
				}
				io.Copy(io.Discard, r)
			}
		}
		if r, err := NewReader(bytes.NewReader(data), l); err == nil {
			_ = Extract(context.Background(), r, dir)
		}
		ents, err := os.ReadDir(parent)
		if err != nil || len(ents) != 1 {
			t.Fatalf("parent holds %d entries: %v", len(ents), err)
		}
	})
}
