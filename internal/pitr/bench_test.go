package pitr

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"syscall"
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
		s, err := sw.finish(nil)
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

// BenchmarkVerifyArchive is Verify (what `a0cli verify --oplog` runs)
// over an archive of realistic size: 300,000 entries in the forms a
// MongoDB 7.0 primary logs retryable single-document writes (those
// a0bench's simulated oplog generates: half inserts, three in ten $v:2
// diff updates, the rest deletes), in slices of 10,000 (10 s at 1,000
// writes/s): 5 minutes of the hour. MB/s is of slice files (what
// "disk speed" is about); entryMB/s of the entries' BSON.
func BenchmarkVerifyArchive(b *testing.B) {
	const entries, per = 300_000, 10_000
	id := testKey(b)
	dir := b.TempDir()
	files, bsonBytes := writeOplogArchive(b, dir, id, entries, per)
	b.SetBytes(files)
	b.ReportAllocs()
	var elapsed, cpu time.Duration
	for b.Loop() {
		start, cpu0 := time.Now(), processCPU(b)
		p, err := Verify(context.Background(), dir, unlockWith(id))
		elapsed += time.Since(start)
		cpu += processCPU(b) - cpu0
		if err != nil || p.Entries != entries || len(p.Windows) != 1 {
			b.Fatal(p, err)
		}
	}
	b.ReportMetric(float64(bsonBytes)*float64(b.N)/1e6/elapsed.Seconds(), "entryMB/s")
	// The CPU it takes, all cores together: on a loaded machine the wall
	// time says as much about the other processes as about Verify.
	b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
}

// processCPU is the process's user and system CPU time so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// writeOplogArchive writes n entries in the simulated primary's forms,
// per to a slice, chained, into dir; it returns the files' and the
// entries' bytes.
func writeOplogArchive(b *testing.B, dir string, id *age.X25519Identity, n, per int) (files, entries int64) {
	b.Helper()
	rng := rand.New(rand.NewPCG(26, 26))
	uuid := func() bson.Binary {
		u := make([]byte, 16)
		for i := range u {
			u[i] = byte(rng.UintN(256))
		}
		return bson.Binary{Subtype: bson.TypeBinaryUUID, Data: u}
	}
	uid := sha256.Sum256(nil)
	var lsids [8]bson.D
	for i := range lsids {
		lsids[i] = bson.D{{Key: "id", Value: uuid()}, {Key: "uid", Value: bson.Binary{Data: uid[:]}}}
	}
	nss := []string{"pitrbench.orders", "pitrbench.users", "pitrbench.events"}
	uis := []bson.Binary{uuid(), uuid(), uuid()}
	var live []int64
	var next int64
	sec := uint32(1_700_000_000)
	var prev [32]byte
	for done := 0; done < n; done += per {
		first := bson.Timestamp{T: sec + uint32(done/1000), I: uint32(done%1000 + 1)}
		h := header{Version: FormatVersion, Node: "n1", ReplSet: "rs0", First: first, Created: time.Unix(int64(first.T), 0)}
		if done > 0 {
			h.Prev = prev[:]
		}
		sw, err := createSlice(dir, []age.Recipient{id.Recipient()}, h)
		if err != nil {
			b.Fatal(err)
		}
		for j := done; j < done+per && j < n; j++ {
			ts := bson.Timestamp{T: sec + uint32(j/1000), I: uint32(j%1000 + 1)}
			now := time.Unix(int64(ts.T), 0)
			k := rng.IntN(3)
			var op string
			var o, o2 bson.D
			switch r := rng.IntN(10); {
			case r < 5 || len(live) < 10:
				next++
				op, o2 = "i", bson.D{{Key: "_id", Value: next}}
				o = bson.D{{Key: "_id", Value: next}, {Key: "v", Value: int32(rng.IntN(1000))},
					{Key: "s", Value: fmt.Sprintf("order-%d-%s", next, strings.Repeat("x", 60))}, {Key: "at", Value: bson.NewDateTimeFromTime(now)}}
				live = append(live, next)
			case r < 8:
				op, o2 = "u", bson.D{{Key: "_id", Value: live[rng.IntN(len(live))]}}
				o = bson.D{{Key: "$v", Value: int32(2)}, {Key: "diff", Value: bson.D{{Key: "u", Value: bson.D{
					{Key: "v", Value: int32(rng.IntN(1000))}, {Key: "n", Value: int32(rng.IntN(50))}}}}}}
			default:
				i := rng.IntN(len(live))
				op, o = "d", bson.D{{Key: "_id", Value: live[i]}}
				live[i] = live[len(live)-1]
				live = live[:len(live)-1]
			}
			e := bson.D{{Key: "lsid", Value: lsids[rng.IntN(len(lsids))]}, {Key: "txnNumber", Value: int64(j + 1)},
				{Key: "op", Value: op}, {Key: "ns", Value: nss[k]}, {Key: "ui", Value: uis[k]}, {Key: "o", Value: o}}
			if o2 != nil {
				e = append(e, bson.E{Key: "o2", Value: o2})
			}
			e = append(e, bson.E{Key: "ts", Value: ts}, bson.E{Key: "t", Value: int64(1)}, bson.E{Key: "v", Value: int64(2)},
				bson.E{Key: "wall", Value: bson.NewDateTimeFromTime(now)}, bson.E{Key: "stmtId", Value: int32(0)},
				bson.E{Key: "prevOpTime", Value: bson.D{{Key: "ts", Value: bson.Timestamp{}}, {Key: "t", Value: int64(-1)}}})
			raw, err := bson.Marshal(e)
			if err != nil {
				b.Fatal(err)
			}
			if err := sw.add(raw, ts); err != nil {
				b.Fatal(err)
			}
			entries += int64(len(raw))
		}
		s, err := sw.finish(nil)
		if err != nil {
			b.Fatal(err)
		}
		prev = s.SHA256
		files += s.Size
	}
	return files, entries
}

func removeSlice(b *testing.B, path string) {
	if err := os.Remove(path); err != nil {
		b.Fatal(err)
	}
}
