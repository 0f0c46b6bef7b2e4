package dumparchive

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"os"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// seg is one block of a test archive: documents of a namespace, or its end.
type seg struct {
	db, coll string
	docs     int // documents, numbered from the namespace's count so far
	eof      bool
	crc      *int64 // overrides the EOF block's CRC
}

type nsDecl struct{ db, coll, meta string }

// build writes an archive as mongodump's multiplexer does.
func build(t testing.TB, decls []nsDecl, segs []seg) []byte {
	t.Helper()
	var b bytes.Buffer
	b.Write(Magic)
	must := func(d any) []byte {
		raw, err := bson.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	term := []byte{0xff, 0xff, 0xff, 0xff}
	b.Write(must(bson.D{{Key: "concurrent_collections", Value: int32(4)}, {Key: "version", Value: "0.1"}, {Key: "server_version", Value: "7.0.16"}, {Key: "tool_version", Value: "100.18.0"}}))
	for _, d := range decls {
		b.Write(must(bson.D{{Key: "db", Value: d.db}, {Key: "collection", Value: d.coll}, {Key: "metadata", Value: d.meta}, {Key: "size", Value: int32(0)}}))
	}
	b.Write(term)
	crcs := map[string]interface {
		Write([]byte) (int, error)
		Sum64() uint64
	}{}
	counts := map[string]int{}
	for _, s := range segs {
		key := s.db + "." + s.coll
		if crcs[key] == nil {
			crcs[key] = crc64.New(crc64.MakeTable(crc64.ECMA))
		}
		if s.eof {
			crc := int64(crcs[key].Sum64())
			if s.crc != nil {
				crc = *s.crc
			}
			b.Write(must(bson.D{{Key: "db", Value: s.db}, {Key: "collection", Value: s.coll}, {Key: "EOF", Value: true}, {Key: "CRC", Value: crc}}))
			b.Write(term)
			continue
		}
		b.Write(must(bson.D{{Key: "db", Value: s.db}, {Key: "collection", Value: s.coll}, {Key: "EOF", Value: false}, {Key: "CRC", Value: int64(0)}}))
		for i := 0; i < s.docs; i++ {
			d := must(bson.D{{Key: "_id", Value: int32(counts[key])}, {Key: "ns", Value: key}})
			counts[key]++
			crcs[key].Write(d)
			b.Write(d)
		}
		b.Write(term)
	}
	return b.Bytes()
}

// readEntries returns every entry's name and content.
func readEntries(t testing.TB, data []byte, dir string) (map[string][]byte, []string, error) {
	r, err := NewReader(bytes.NewReader(data), dir)
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	out := map[string][]byte{}
	var order []string
	for {
		name, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out, order, nil
		}
		if err != nil {
			return out, order, err
		}
		b, err := io.ReadAll(r)
		if err != nil {
			return out, order, err
		}
		if _, dup := out[name]; dup {
			return out, order, fmt.Errorf("entry %s twice", name)
		}
		out[name] = b
		order = append(order, name)
	}
}

func ids(t *testing.T, b []byte, ns string) []int32 {
	t.Helper()
	var out []int32
	for len(b) > 0 {
		n := binary.LittleEndian.Uint32(b)
		var d struct {
			ID int32  `bson:"_id"`
			NS string `bson:"ns"`
		}
		if err := bson.Unmarshal(b[:n], &d); err != nil {
			t.Fatal(err)
		}
		if d.NS != ns {
			t.Fatalf("document of %s in the entry of %s", d.NS, ns)
		}
		out = append(out, d.ID)
		b = b[n:]
	}
	return out
}

func TestReaderInterleaved(t *testing.T) {
	long := strings.Repeat("x", 250)
	decls := []nsDecl{{"shop", "a", `{"options":{}}`}, {"shop", "c++ 100%", `{"options":{}}`}, {"shop", long, `{"collectionName":"` + long + `"}`}, {"shop", "empty", `{}`}, {"", "oplog", ""}}
	segs := []seg{
		{db: "shop", coll: "a", docs: 3},
		{db: "shop", coll: "c++ 100%", docs: 2},
		{db: "shop", coll: long, docs: 1},
		{db: "shop", coll: "a", docs: 4},
		{db: "shop", coll: "empty", eof: true},
		{db: "shop", coll: "c++ 100%", docs: 5},
		{db: "shop", coll: long, eof: true},
		{db: "shop", coll: "a", docs: 1},
		{db: "shop", coll: "c++ 100%", eof: true},
		{db: "", coll: "oplog", docs: 2},
		{db: "shop", coll: "a", eof: true},
		{db: "", coll: "oplog", eof: true},
	}
	dir := t.TempDir()
	got, order, err := readEntries(t, build(t, decls, segs), dir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"shop/a.bson": 8, "shop/c%2B%2B+100%25.bson": 7, "oplog.bson": 2}
	for name, n := range want {
		ns := map[string]string{"shop/a.bson": "shop.a", "shop/c%2B%2B+100%25.bson": "shop.c++ 100%", "oplog.bson": ".oplog"}[name]
		if got := ids(t, got[name], ns); len(got) != n {
			t.Errorf("%s: %d documents, want %d", name, len(got), n)
		} else {
			for i, id := range got {
				if id != int32(i) {
					t.Errorf("%s: documents out of order: %v", name, got)
					break
				}
			}
		}
	}
	var hashed string
	for name := range got {
		if strings.HasSuffix(name, ".bson") && strings.Contains(name, "%24") {
			hashed = name
		}
	}
	if hashed == "" || len(strings.TrimSuffix(strings.TrimPrefix(hashed, "shop/"), ".bson")) != 238 {
		t.Errorf("long name not hashed as mongodump names it: %v", order)
	}
	if len(got) != 4+4 {
		t.Errorf("entries %v", order)
	}
	// Metadata comes first.
	for i, name := range order[:4] {
		if !strings.HasSuffix(name, ".metadata.json") {
			t.Errorf("entry %d is %s", i, name)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("spool files left: %v", ents)
	}
}

// TestReaderSkipsUnread: entries left unread are skipped, spools removed.
func TestReaderSkipsUnread(t *testing.T) {
	decls := []nsDecl{{"d", "a", "{}"}, {"d", "b", "{}"}}
	segs := []seg{{db: "d", coll: "a", docs: 2}, {db: "d", coll: "b", docs: 2}, {db: "d", coll: "a", docs: 2}, {db: "d", coll: "b", eof: true}, {db: "d", coll: "a", eof: true}}
	dir := t.TempDir()
	r, err := NewReader(bytes.NewReader(build(t, decls, segs)), dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for {
		name, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	r.Close()
	if len(names) != 4 {
		t.Fatalf("entries %v", names)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("spool files left: %v", ents)
	}
}

func TestReaderRefuses(t *testing.T) {
	decls := []nsDecl{{"d", "a", "{}"}, {"d", "b", "{}"}}
	ok := build(t, decls, []seg{{db: "d", coll: "a", docs: 2}, {db: "d", coll: "a", eof: true}, {db: "d", coll: "b", eof: true}})
	if _, _, err := readEntries(t, ok, t.TempDir()); err != nil {
		t.Fatalf("control: %v", err)
	}
	bad := int64(42)
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "magic"},
		{"tar.gz", []byte{0x1f, 0x8b, 8, 0}, "magic"},
		{"header only", ok[:4], "header"},
		{"truncated header", ok[:60], "header"},
		{"truncated prelude", build(t, decls, nil)[:len(build(t, decls, nil))-6], "prelude"},
		{"bad version", bytes.Replace(ok, []byte("0.1"), []byte("9.9"), 1), "format version"},
		{"crc mismatch", build(t, decls, []seg{{db: "d", coll: "a", docs: 2}, {db: "d", coll: "a", eof: true, crc: &bad}, {db: "d", coll: "b", eof: true}}), "CRC mismatch"},
		{"undeclared namespace", build(t, decls, []seg{{db: "d", coll: "zz", docs: 1}}), "does not declare"},
		{"data after end", build(t, decls, []seg{{db: "d", coll: "a", eof: true}, {db: "d", coll: "a", docs: 1}, {db: "d", coll: "b", eof: true}}), "after its end"},
		{"collection never ends", build(t, decls, []seg{{db: "d", coll: "a", docs: 2}, {db: "d", coll: "b", eof: true}}), "ends before"},
		{"collection never seen", build(t, decls, []seg{{db: "d", coll: "a", eof: true}}), "ends before"},
		{"truncated segment", ok[:len(ok)-60], "truncated"},
		{"trailing bytes", append(append([]byte{}, ok...), 1, 2), "truncated"},
		{"bad length", append(append([]byte{}, ok...), 0xf0, 0xff, 0xff, 0x7f), "neither a BSON length"},
		{"declared twice", build(t, append(decls, nsDecl{"d", "a", "{}"}), nil), "declared twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := readEntries(t, tc.data, t.TempDir())
			if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrFormat with %q", err, tc.want)
			}
		})
	}
}

// TestReaderInterleaveLimit: a crafted archive cannot open spools without
// bound.
func TestReaderInterleaveLimit(t *testing.T) {
	var decls []nsDecl
	var segs []seg
	for i := 0; i <= MaxInterleaved+1; i++ {
		decls = append(decls, nsDecl{"d", fmt.Sprint("c", i), "{}"})
		segs = append(segs, seg{db: "d", coll: fmt.Sprint("c", i), docs: 1})
	}
	_, _, err := readEntries(t, build(t, decls, segs), t.TempDir())
	if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "interleaved") {
		t.Fatalf("err = %v", err)
	}
}

func FuzzReader(f *testing.F) {
	decls := []nsDecl{{"d", "a", "{}"}, {"d", "b", "{}"}, {"", "oplog", ""}}
	f.Add(build(f, decls, []seg{{db: "d", coll: "a", docs: 2}, {db: "d", coll: "b", docs: 1}, {db: "d", coll: "a", docs: 1}, {db: "d", coll: "a", eof: true}, {db: "d", coll: "b", eof: true}, {db: "", coll: "oplog", eof: true}}))
	f.Add(build(f, decls[:1], []seg{{db: "d", coll: "a", eof: true}}))
	f.Add(Magic)
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		got, _, err := readEntries(t, data, dir)
		if err != nil && !errors.Is(err, ErrFormat) {
			t.Fatalf("error not matching ErrFormat: %v", err)
		}
		for name := range got {
			if strings.Contains(name, "..") && !strings.Contains(name, "/") {
				t.Fatalf("odd entry name %q", name)
			}
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Fatalf("spool files left: %d", len(ents))
		}
	})
}
