package pitr

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// benchEntries are oplog entries of a typical size (a few hundred bytes).
func benchEntries(b *testing.B, n int) ([]bson.Raw, int64) {
	var out []bson.Raw
	var size int64
	for i := 0; i < n; i++ {
		ts := bson.Timestamp{T: 1_700_000_000 + uint32(i/1000), I: uint32(i%1000 + 1)}
		raw := entry(b, ts, "u", "shop.orders", bson.D{{Key: "$v", Value: 2},
			{Key: "diff", Value: bson.D{{Key: "u", Value: bson.D{{Key: "status", Value: fmt.Sprintf("state-%d", i)},
				{Key: "note", Value: strings.Repeat("n", 150+i%100)}}}}}})
		out = append(out, raw)
		size += int64(len(raw))
	}
	return out, size
}

// BenchmarkSliceWrite is the archiver's cost per slice of 10,000 entries
// (10 s at 1,000 writes/s): compress, encrypt, fsync, rename.
func BenchmarkSliceWrite(b *testing.B) {
	entries, size := benchEntries(b, 10_000)
	id := testKey(b)
	dir := b.TempDir()
	b.SetBytes(size)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		first, _ := entryTS(entries[0])
		sw, err := createSlice(dir, []age.Recipient{id.Recipient()}, header{Version: FormatVersion, First: first, Created: time.Now()})
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range entries {
			ts, _ := entryTS(e)
			if err := sw.add(e, ts); err != nil {
				b.Fatal(err)
			}
		}
		s, err := sw.finish()
		if err != nil {
			b.Fatal(err)
		}
		if i == 0 {
			b.ReportMetric(float64(s.Size)/float64(size), "ratio")
		}
		b.StopTimer()
		removeSlice(b, s.Path)
		b.StartTimer()
	}
}

// BenchmarkVerify is Verify over an archive of 20 such slices.
func BenchmarkVerify(b *testing.B) {
	id := testKey(b)
	dir := b.TempDir()
	slices, all := writeChain(b, dir, id, 20, 2_000)
	var size int64
	for _, e := range all {
		size += int64(len(e))
	}
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		p, err := Verify(context.Background(), dir, unlockWith(id))
		if err != nil || p.Slices != len(slices) {
			b.Fatal(p, err)
		}
	}
}

func removeSlice(b *testing.B, path string) {
	if err := os.Remove(path); err != nil {
		b.Fatal(err)
	}
}
