package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/dumparchive"
	"github.com/a0backup/a0/internal/jsonlimit"
)

// plainArchiveWithMetadata is a mongodump --archive declaring one
// collection whose metadata is meta, and no documents.
func plainArchiveWithMetadata(t *testing.T, meta string) []byte {
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
	put(bson.D{{Key: "db", Value: "app"}, {Key: "collection", Value: "c"}, {Key: "metadata", Value: meta}, {Key: "size", Value: int32(0)}})
	b.Write(term)
	put(bson.D{{Key: "db", Value: "app"}, {Key: "collection", Value: "c"}, {Key: "EOF", Value: true}, {Key: "CRC", Value: int64(0)}})
	b.Write(term)
	return b.Bytes()
}

// TestPlanBoundsParsedMetadata: a small archive cannot make Plan (which
// restore, verify and restore --plain run) build gigabytes: a 16 MiB
// metadata.json of nested empty arrays (it overflowed a 1 GB stack) or of
// a wide array of them (2 GB allocated), or many metadata files each under
// the bound, are refused as an invalid archive (exit 6) and planning them
// allocates far less than the node's 150 MB in all. The input archive is
// built before the measure; what Plan allocates is measured with
// runtime.ReadMemStats (TotalAlloc bounds the peak heap from above).
func TestPlanBoundsParsedMetadata(t *testing.T) {
	const size = 16<<20 - 64
	wrap := func(v string) string { return `{"options":{"x":` + v + `},"indexes":[]}` }
	nested := wrap(strings.Repeat("[", size/2-32) + strings.Repeat("]", size/2-32))
	wide := wrap("[" + strings.Repeat("[],", size/3-32) + "[]]")
	// 99,990 values each (under the per-file bound), eleven files: over
	// the bound of what Plan keeps.
	many := wrap("[" + strings.Repeat("[],", 99_980) + "[]]")

	tarWith := func(metas ...string) []byte {
		d := dump{replace: map[string][]byte{}}
		for i, m := range metas {
			d.colls = append(d.colls, coll{db: "app", name: fmt.Sprintf("c%d", i), docs: users(1)})
			d.replace[fmt.Sprintf("app/c%d.metadata.json", i)] = []byte(m)
		}
		return d.archive(t)
	}
	for _, tc := range []struct {
		name    string
		archive []byte
		plain   bool
		want    string
		// limit bounds what Plan allocates; 0 for a case whose files are
		// each under the bound, parsed one after the other (TotalAlloc
		// then sums what the GC frees between them).
		limit uint64
	}{
		{"nested arrays", tarWith(nested), false, "nested deeper than 200 levels", 96 << 20},
		{"wide array", tarWith(wide), false, "more than 100000 values", 96 << 20},
		{"many files each under the bound", tarWith(many, many, many, many, many, many, many, many, many, many, many), false, "more than 1000000 values together", 0},
		{"nested arrays in a mongodump archive (--plain)", plainArchiveWithMetadata(t, nested), true, "nested deeper than 200 levels", 96 << 20},
		{"wide array in a mongodump archive (--plain)", plainArchiveWithMetadata(t, wide), true, "more than 100000 values", 96 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, err := Plan(context.Background(), bytes.NewReader(tc.archive), Options{Plain: tc.plain, SpoolDir: t.TempDir()})
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrInvalidArchive) || !errors.Is(err, jsonlimit.ErrTooComplex) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want an invalid archive saying %q", err, tc.want)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; tc.limit > 0 && alloc > tc.limit {
				t.Fatalf("Plan allocated %d MiB, want at most %d MiB", alloc>>20, tc.limit>>20)
			}
		})
	}
}

// TestParseMetadataAtTheBound: the costliest metadata.json Plan accepts
// (100,000 values, each an empty array, the most a value builds) parses
// with far less than the node's 150 MB, and what is kept of it is small.
func TestParseMetadataAtTheBound(t *testing.T) {
	in := []byte(`{"options":{"x":[` + strings.Repeat("[],", 99_990) + `[]]}}`)
	var before, after, kept runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	values := 0
	m, err := parseMetadata(bytes.NewReader(in), &values)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&kept)
	runtime.KeepAlive(m)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 48<<20 {
		t.Fatalf("parsing allocated %d MiB, want at most 48 MiB", alloc>>20)
	}
	if k := int64(kept.HeapAlloc) - int64(before.HeapAlloc); k > 8<<20 {
		t.Fatalf("%d MiB kept, want at most 8 MiB", k>>20)
	}
}

// TestPreludeBounded: prelude.json is a few lines; a deep or wide one is
// refused before it is decoded.
func TestPreludeBounded(t *testing.T) {
	for name, in := range map[string]string{
		"deep": strings.Repeat("[", 1<<19) + strings.Repeat("]", 1<<19),
		"wide": "[" + strings.Repeat("[],", 20_000) + "[]]",
	} {
		t.Run(name, func(t *testing.T) {
			if err := checkJSON(strings.NewReader(in)); !errors.Is(err, jsonlimit.ErrTooComplex) {
				t.Fatalf("err = %v, want ErrTooComplex", err)
			}
		})
	}
	if err := checkJSON(strings.NewReader(`{"ServerVersion":"7.0.16","ToolVersion":"100.18.0"}`)); err != nil {
		t.Fatal(err)
	}
}
