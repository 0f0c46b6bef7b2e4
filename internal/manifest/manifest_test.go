package manifest

import (
	"bytes"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/a0backup/a0/internal/jsonlimit"
)

func TestRoundTrip(t *testing.T) {
	m := &Manifest{
		FormatVersion: FormatVersion, Kind: KindBackup, ToolVersion: "test",
		Started: time.Unix(100, 0).UTC(), Finished: time.Unix(200, 0).UTC(),
		Consistency:  ConsistencyPointInTime,
		ConsistentTo: &OplogPos{T: 5, I: 2},
		Collections: []Collection{
			{DB: "a", Name: "x", Documents: 3, Bytes: 30, Indexes: 2},
			{DB: "b", Name: "y", Documents: 4, Bytes: 40, Indexes: 1},
		},
	}
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if got.TotalDocuments() != 7 || got.TotalBytes() != 70 || got.ConsistentTo.T != 5 {
		t.Fatalf("decoded %+v", got)
	}
}

func TestDecodeRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		is       error
	}{
		{"future version", `{"format_version":99,"kind":"backup"}`, ErrUnsupported},
		{"unknown kind", `{"format_version":1,"kind":"x"}`, nil},
		{"not json", `{`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(strings.NewReader(tc.in))
			if err == nil {
				t.Fatal("accepted")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("err = %v, want %v", err, tc.is)
			}
		})
	}
}

// TestDecodeBoundsWhatItBuilds: a manifest under the byte bound that would
// decode into millions of collections is refused before it is decoded,
// allocating little more than its bytes (runtime.ReadMemStats).
func TestDecodeBoundsWhatItBuilds(t *testing.T) {
	for name, list := range map[string]string{
		"wide":   `[` + strings.Repeat(`{},`, 8<<20) + `{}]`,
		"nested": strings.Repeat(`[`, 1<<20) + strings.Repeat(`]`, 1<<20),
	} {
		t.Run(name, func(t *testing.T) {
			in := []byte(`{"format_version":1,"kind":"backup","collections":` + list + `}`)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, err := Decode(bytes.NewReader(in))
			runtime.ReadMemStats(&after)
			if !errors.Is(err, jsonlimit.ErrTooComplex) {
				t.Fatalf("err = %v, want ErrTooComplex", err)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4*uint64(len(in)) {
				t.Fatalf("Decode allocated %d MiB for %d MiB of input", alloc>>20, len(in)>>20)
			}
		})
	}
}
