package restore

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"hash/crc64"
	"os"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/dumparchive"
	"github.com/a0backup/a0/internal/manifest"
	"github.com/a0backup/a0/internal/spool"
)

// zeros is a document of about 1 MiB that gzip shrinks a thousand times.
func zeros(id int) bson.D {
	return bson.D{{Key: "_id", Value: int32(id)}, {Key: "z", Value: bson.Binary{Data: make([]byte, 1<<20)}}}
}

// interleavedBomb is a gzipped mongodump archive in which collection "a"
// stays open while "b" sends n documents of zeros: read in prelude order,
// every one of b's documents goes to the spool.
func interleavedBomb(t *testing.T, n int) []byte {
	t.Helper()
	var raw bytes.Buffer
	raw.Write(dumparchive.Magic)
	put := func(d bson.D) []byte {
		b, err := bson.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		raw.Write(b)
		return b
	}
	term := []byte{0xff, 0xff, 0xff, 0xff}
	put(bson.D{{Key: "concurrent_collections", Value: int32(4)}, {Key: "version", Value: "0.1"}, {Key: "server_version", Value: "7.0.16"}, {Key: "tool_version", Value: "100.18.0"}})
	for _, c := range []string{"a", "b"} {
		meta := `{"options":{},"indexes":[{"v":2,"key":{"_id":1},"name":"_id_"}],"collectionName":"` + c + `","type":"collection"}`
		put(bson.D{{Key: "db", Value: "bomb"}, {Key: "collection", Value: c}, {Key: "metadata", Value: meta}, {Key: "size", Value: int32(0)}})
	}
	raw.Write(term)
	crc := map[string]interface {
		Write([]byte) (int, error)
		Sum64() uint64
	}{"a": crc64.New(crc64.MakeTable(crc64.ECMA)), "b": crc64.New(crc64.MakeTable(crc64.ECMA))}
	segment := func(c string, docs ...bson.D) {
		put(bson.D{{Key: "db", Value: "bomb"}, {Key: "collection", Value: c}, {Key: "EOF", Value: false}, {Key: "CRC", Value: int64(0)}})
		for _, d := range docs {
			crc[c].Write(put(d))
		}
		raw.Write(term)
	}
	segment("a", bson.D{{Key: "_id", Value: int32(0)}})
	for i := range n {
		segment("b", zeros(i))
	}
	for _, c := range []string{"b", "a"} {
		put(bson.D{{Key: "db", Value: "bomb"}, {Key: "collection", Value: c}, {Key: "EOF", Value: true}, {Key: "CRC", Value: int64(crc[c].Sum64())}})
		raw.Write(term)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(raw.Bytes())
	zw.Close()
	return gz.Bytes()
}

// TestInterleavedSpoolBounded (issue 25.2): a gzipped mongodump archive
// of a few tens of KB whose interleaved collection would spool 32 MiB is
// refused (an invalid archive: exit 6) before the write that would pass
// the bound, naming it: 100 times the upload's size, or the free space
// the spools must leave. Nothing is left in the spool directory. Within
// the bounds, the same archive plans.
func TestInterleavedSpoolBounded(t *testing.T) {
	bomb := interleavedBomb(t, 32)
	if len(bomb) > 256<<10 {
		t.Fatalf("the bomb is %d bytes, the test wants a small one", len(bomb))
	}
	for _, tc := range []struct {
		name string
		opts func(dir string) Options
		want string
	}{
		{"ratio to the upload", func(dir string) Options {
			return Options{Plain: true, SpoolDir: dir, InputSize: int64(len(bomb))}
		}, "100 times the input's"},
		{"free space reserve", func(dir string) Options {
			// A reserve as large as the disk: the first spooled document
			// passes it.
			return Options{Plain: true, SpoolDir: dir, SpoolReserve: 1 << 62}
		}, "free on the disk"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			_, err := Plan(context.Background(), bytes.NewReader(bomb), tc.opts(dir))
			if !errors.Is(err, ErrInvalidArchive) || !errors.Is(err, spool.ErrBound) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want an invalid archive naming %q", err, tc.want)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Fatalf("the spool directory holds %v", ents)
			}
		})
	}
	t.Run("within the bounds it plans", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := Plan(context.Background(), bytes.NewReader(bomb), Options{Plain: true, SpoolDir: dir, InputSize: 1 << 20}); err != nil {
			t.Fatal(err)
		}
	})
}

// TestOplogSpoolBounded (issue 25.2): an a0 archive whose oplog.bson comes
// first (so Run spools it until the data is in) and declares 24 MiB in a
// tar.gz of a few tens of KB is refused by Run before the spool is
// written, naming the bound; nothing is spooled or restored.
func TestOplogSpoolBounded(t *testing.T) {
	client := start(t)
	spoolDir := t.TempDir()
	d := dump{
		colls:  []coll{{db: "app", name: "c", docs: []bson.D{{{Key: "_id", Value: 1}}}}},
		consTo: &manifest.OplogPos{T: 40, I: 1},
	}
	for i := range 24 {
		d.oplog = append(d.oplog, opEntry(uint32(11+i), "i", "app.c", zeros(100+i), nil))
	}
	var fs, rest []file
	for _, f := range d.files(t) {
		if strings.HasSuffix(f.name, "oplog.bson") || strings.HasSuffix(f.name, "prelude.json") {
			fs = append(fs, f)
		} else {
			rest = append(rest, f)
		}
	}
	data := tgz(t, append(fs, rest...))
	ctx := context.Background()
	opts := Options{SpoolDir: spoolDir, InputSize: int64(len(data))}
	p, err := Plan(ctx, bytes.NewReader(data), opts)
	if err != nil {
		t.Fatal(err)
	}
	if !p.oplogEarly {
		t.Fatal("the test archive does not put the oplog first")
	}
	_, err = Run(ctx, client, bytes.NewReader(data), p, opts, &Progress{})
	if !errors.Is(err, ErrInvalidArchive) || !errors.Is(err, spool.ErrBound) || !strings.Contains(err.Error(), "100 times the input's") {
		t.Fatalf("err = %v, want an invalid archive naming the bound", err)
	}
	if ents, _ := os.ReadDir(spoolDir); len(ents) != 0 {
		t.Fatalf("the spool directory holds %v", ents)
	}
	if n, err := client.Database("app").Collection("c").CountDocuments(ctx, bson.D{}); err != nil || n != 0 {
		t.Fatalf("app.c holds %d documents (%v), want none", n, err)
	}
}
