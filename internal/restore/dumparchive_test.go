package restore

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"hash/crc64"
	"path/filepath"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/dumparchive"
)

// mongodumpArchive writes a mongodump --archive stream whose collections'
// documents interleave, as mongodump's parallel readers make them.
func mongodumpArchive(t *testing.T, colls map[string]int, order []string, chunk int) []byte {
	t.Helper()
	var b bytes.Buffer
	b.Write(dumparchive.Magic)
	put := func(d bson.D) {
		raw, err := bson.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(raw)
	}
	term := []byte{0xff, 0xff, 0xff, 0xff}
	put(bson.D{{Key: "concurrent_collections", Value: int32(4)}, {Key: "version", Value: "0.1"}, {Key: "server_version", Value: "7.0.16"}, {Key: "tool_version", Value: "100.18.0"}})
	for _, name := range order {
		meta := `{"options":{},"indexes":[{"v":2,"key":{"_id":1},"name":"_id_"},{"v":2,"key":{"n":1},"name":"n_1"}],"collectionName":"` + name + `","type":"collection"}`
		put(bson.D{{Key: "db", Value: "arch"}, {Key: "collection", Value: name}, {Key: "metadata", Value: meta}, {Key: "size", Value: int32(0)}})
	}
	b.Write(term)
	done := map[string]int{}
	crcs := map[string]uint64{}
	hashes := map[string]interface {
		Write([]byte) (int, error)
		Sum64() uint64
	}{}
	for left := true; left; {
		left = false
		for _, name := range order {
			if done[name] >= colls[name] {
				continue
			}
			left = true
			if hashes[name] == nil {
				hashes[name] = crc64.New(crc64.MakeTable(crc64.ECMA))
			}
			put(bson.D{{Key: "db", Value: "arch"}, {Key: "collection", Value: name}, {Key: "EOF", Value: false}, {Key: "CRC", Value: int64(0)}})
			for i := 0; i < chunk && done[name] < colls[name]; i++ {
				raw, _ := bson.Marshal(bson.D{{Key: "_id", Value: int32(done[name])}, {Key: "n", Value: int64(done[name] * 3)}, {Key: "c", Value: name}})
				hashes[name].Write(raw)
				b.Write(raw)
				done[name]++
			}
			b.Write(term)
		}
	}
	for _, name := range order {
		if hashes[name] != nil {
			crcs[name] = hashes[name].Sum64()
		}
		put(bson.D{{Key: "db", Value: "arch"}, {Key: "collection", Value: name}, {Key: "EOF", Value: true}, {Key: "CRC", Value: int64(crcs[name])}})
		b.Write(term)
	}
	return b.Bytes()
}

// TestPlainMongodumpArchive: an interleaved mongodump archive, plain and
// gzipped, plans and restores every collection with its indexes, through
// the spool; a damaged one is refused before anything is written.
func TestPlainMongodumpArchive(t *testing.T) {
	client := start(t)
	ctx := context.Background()
	colls := map[string]int{"a": 700, "c++ 100% a/b": 450, "empty": 0, "small": 3}
	order := []string{"a", "c++ 100% a/b", "empty", "small"}
	raw := mongodumpArchive(t, colls, order, 100)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(raw)
	zw.Close()
	for _, tc := range []struct {
		name string
		data []byte
	}{{"archive", raw}, {"gzipped archive", gz.Bytes()}} {
		t.Run(tc.name, func(t *testing.T) {
			spool := t.TempDir()
			opts := Options{Plain: true, Drop: true, SpoolDir: spool}
			p, err := Plan(ctx, bytes.NewReader(tc.data), opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Collections) != len(colls) {
				t.Fatalf("planned %+v", p.Collections)
			}
			rep, err := Run(ctx, client, bytes.NewReader(tc.data), p, opts, &Progress{})
			if err != nil || !rep.OK {
				t.Fatalf("%+v %v", rep, err)
			}
			for name, n := range colls {
				docs := readAll(t, client.Database("arch").Collection(name))
				if len(docs) != n {
					t.Fatalf("%q holds %d documents, want %d", name, len(docs), n)
				}
				for i, d := range docs {
					if len(d) < 3 || d[0].Value != int32(i) || d[2].Value != name {
						t.Fatalf("%q document %d: %v", name, i, d)
					}
				}
				if _, ok := indexNames(t, client.Database("arch").Collection(name))["n_1"]; !ok {
					t.Fatalf("%q lost its index", name)
				}
			}
			if left, _ := filepathGlob(spool); len(left) != 0 {
				t.Fatalf("spool files left: %v", left)
			}
		})
	}
	bad := bytes.Clone(raw)
	bad[len(bad)-20] ^= 0xff // the last EOF block's CRC
	if _, err := Plan(ctx, bytes.NewReader(bad), Options{Plain: true}); !errors.Is(err, ErrInvalidArchive) || !errors.Is(err, dumparchive.ErrFormat) {
		t.Fatalf("damaged archive: %v", err)
	}
	if _, err := Plan(ctx, bytes.NewReader(raw), Options{}); err == nil {
		t.Fatal("a mongodump archive was taken for an a0 backup")
	}
}

func filepathGlob(dir string) ([]string, error) { return filepath.Glob(filepath.Join(dir, "*")) }
