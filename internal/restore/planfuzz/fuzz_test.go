package planfuzz

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/archive"
	"github.com/a0backup/a0/internal/manifest"
	"github.com/a0backup/a0/internal/restore"
)

func tgz(t testing.TB, files ...[2][]byte) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: string(f[0]), Typeflag: tar.TypeReg, Mode: 0o600, Size: int64(len(f[1]))}); err != nil {
			t.Fatal(err)
		}
		tw.Write(f[1])
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

func file(name string, data []byte) [2][]byte { return [2][]byte{[]byte(name), data} }

// docLen is the declared length of the document at the start of b, or -1.
func docLen(b []byte) int {
	if len(b) < 4 {
		return -1
	}
	n := int(int32(binary.LittleEndian.Uint32(b)))
	if n < 5 || n > len(b) {
		return -1
	}
	return n
}

// archiveOf is an a0 archive with one collection whose data file is data
// and whose metadata.json is meta, and a manifest that agrees with data
// when data is well formed.
func archiveOf(t testing.TB, data, meta []byte) []byte {
	var docs int64
	for b := data; docLen(b) > 0; docs++ {
		b = b[docLen(b):]
	}
	m := &manifest.Manifest{FormatVersion: manifest.FormatVersion, Kind: manifest.KindBackup, ToolVersion: "fuzz",
		Collections: []manifest.Collection{{DB: "app", Name: "c", Type: "collection", Documents: docs, Bytes: int64(len(data)), Indexes: 1}}}
	mb, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return tgz(t, file("app/c.metadata.json", meta), file("app/c.bson", data), file("manifest.json", mb))
}

func raw(t testing.TB, d any) []byte {
	b, err := bson.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzPlan: whatever the documents and the metadata, Plan returns a plan or
// an error matching ErrInvalidArchive or archive.ErrUnsafe, never panics,
// and every document of a plan it accepts decodes completely.
func FuzzPlan(f *testing.F) {
	meta := []byte(`{"options":{},"indexes":[{"v":2,"key":{"_id":1},"name":"_id_"}],"collectionName":"c","type":"collection"}`)
	deep := bson.D{{Key: "_id", Value: 1}}
	for range 20 {
		deep = bson.D{{Key: "x", Value: deep}, {Key: "a", Value: bson.A{"s", int32(3)}}}
	}
	f.Add(raw(f, bson.D{{Key: "_id", Value: 1}, {Key: "sub", Value: bson.D{{Key: "k", Value: "v"}}}}), meta)
	f.Add(append(raw(f, deep), raw(f, bson.D{{Key: "_id", Value: 2}})...), meta)
	f.Add(raw(f, bson.D{{Key: "_id", Value: bson.A{1}}}), meta)
	f.Add([]byte{}, []byte(`{"options":{"validator":{"$jsonSchema":{"bsonType":"object"}}},"indexes":[{"v":2,"key":{"a":1.0},"name":"a_1","unique":true}]}`))
	f.Add([]byte{5, 0, 0, 0, 0}, []byte(`{"options":{},"indexes":[{"name":"x"}]}`))
	f.Add([]byte{}, []byte(`{"type":"view","options":{"viewOn":"c","pipeline":[{"$match":{"a":{"$gt":1}}}]}}`))
	f.Fuzz(func(t *testing.T, data, meta []byte) {
		for _, plain := range []bool{false, true} {
			p, err := restore.Plan(context.Background(), bytes.NewReader(archiveOf(t, data, meta)), restore.Options{Plain: plain})
			if err != nil {
				if !errors.Is(err, restore.ErrInvalidArchive) && !errors.Is(err, archive.ErrUnsafe) {
					t.Fatalf("plain=%v: uncoded error %v", plain, err)
				}
				continue
			}
			if len(p.Collections) != 1 {
				continue
			}
			for b := data; len(b) > 0; {
				n := docLen(b)
				if n < 0 {
					t.Fatalf("plain=%v: Plan accepted a data file with a bad document length", plain)
				}
				var d bson.D
				if err := bson.Unmarshal(b[:n], &d); err != nil {
					t.Fatalf("plain=%v: Plan accepted a document the driver cannot decode: %v", plain, err)
				}
				b = b[n:]
			}
		}
	})
}
