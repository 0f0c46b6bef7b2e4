package cli

// A cheap CI guard for two promises a regression would break silently:
// memory stays flat as data grows (streaming), and the pipeline's
// throughput does not collapse. The figures of record are the benchmarks
// (docs/BENCHMARKS.md); this only catches a collapse, with bounds far from
// what a loaded machine measures.

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/a0backup/a0/internal/embedded"
)

const (
	// guardSmallMiB and guardLargeMiB are the two sizes of incompressible
	// data (128 KiB documents): the large one adds 24 MiB. The small one
	// already holds two of the dump's largest cursor batches (16 MiB), the
	// memory that legitimately grows with a small collection.
	guardSmallMiB, guardLargeMiB = 32, 56
	// guardLiveGrowthMiB bounds how much more the agent's largest live
	// heap (what a collection found reachable) may be for the large size
	// than for the small one: a pipeline that held the backup, or any
	// share of it above a half, in memory would exceed it (a dump that
	// kept every document it read measured +26); buffers do not. The
	// agent runs with GOGC=25 here so that collections come often and
	// the largest one sampled is the true peak within a few MB: at the
	// default, three or four collections per job sampled it anywhere
	// between the 16 MiB batches (+0 to +17 for the same code).
	guardLiveGrowthMiB = 12
	// guardRSSGrowthMiB bounds the growth of the agent's peak RSS, what
	// the operator sees. It is looser: RSS also holds garbage not yet
	// collected and freed pages not yet returned to the system, which
	// depend on how much CPU the GC and the scavenger get (+11 MiB here,
	// idle, for a flat live heap).
	guardRSSGrowthMiB = 32
	// Throughput floors, MB/s of BSON: 10-100x below what the built agent
	// does here on a loaded 2-core machine (FerretDB bounds it), so only a
	// collapse fails them.
	guardBackupFloor, guardRestoreFloor, guardVerifyFloor = 0.2, 0.1, 2.0
)

// TestGuardMemoryFlatAndThroughput backs up and restores, with the built
// agent on an outside FerretDB server, 32 MiB and then 56 MiB of data; the
// agent's largest live heap (gctrace, a fresh process per job) grows by
// less than guardLiveGrowthMiB and its peak RSS (VmHWM) by less than
// guardRSSGrowthMiB, and the backup, restore and offline verify rates stay
// above floors far below the benchmarks. The backups are encrypted to the
// CLI's public key, not to a password: the password's KDF holds 64 MiB for
// a moment whatever the size, a peak that hid the pipeline's own memory
// below it (a dump that read a whole collection in one reply passed).
func TestGuardMemoryFlatAndThroughput(t *testing.T) {
	t.Parallel()
	bin := buildBinaries(t)
	ctx := context.Background()
	server := func() (string, *mongo.Client) {
		srv, err := embedded.Start(ctx, embedded.Config{Dir: t.TempDir(), Oplog: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close() })
		c, err := srv.Connect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Disconnect(context.Background()) })
		return srv.URI(), c
	}
	srcURI, src := server()
	dstURI, _ := server()
	work := t.TempDir()
	home := filepath.Join(work, "cli")
	run := func(name string, args ...string) (string, time.Duration) {
		t.Helper()
		start := time.Now()
		code, out, errs := sh(t, bin, work, home, nil, name, args...)
		if code != 0 {
			t.Fatalf("%s %v: exit %d\n%s%s", name, args, code, out, errs)
		}
		return out, time.Since(start)
	}
	pub, _ := run("a0cli", "create-key")
	// agentOn starts a fresh agent on uri (its peak RSS is then this job's
	// alone), holds released.
	n := 0
	agentOn := func(uri string) *proc {
		n++
		state := filepath.Join(work, fmt.Sprint("node", n))
		run("a0agent", "authorize", "--state-dir", state, "me", strings.TrimSpace(pub))
		p := startAgentProc(t, bin, state, "A0_MONGODB_URI="+uri, "GODEBUG=gctrace=1", "GOGC=25")
		p.holdRelease(t, "backup")
		p.holdRelease(t, "restore")
		return p
	}

	type figures struct {
		backupPeak, restorePeak                    int64 // KiB
		backupLive, restoreLive                    int64 // MB
		backupRate, restoreRate, verifyRate, bytes float64
	}
	measure := func(size, mib int) figures {
		var f figures
		f.bytes = float64(mib << 20)
		file := filepath.Join(work, fmt.Sprint("guard", size, ".enc"))
		p := agentOn(srcURI)
		dev := filepath.Join(work, fmt.Sprint("dev", size))
		os.MkdirAll(dev, 0o700)
		run("a0cli", "-t", p.addr, "set-as-backup", dev)
		_, d := run("a0cli", "-t", p.addr, "backup", "--no-password", "--to", "me", "--wait")
		f.backupRate = f.bytes / 1e6 / d.Seconds()
		f.backupPeak, f.backupLive = peakRSS(t, p), peakLive(t, p)
		run("a0cli", "-t", p.addr, "backup-retrieve", "-o", file)
		p.signal(syscall.SIGTERM)

		_, d = run("a0cli", "verify", file)
		f.verifyRate = f.bytes / 1e6 / d.Seconds()

		p = agentOn(dstURI)
		_, d = run("a0cli", "-t", p.addr, "restore", file, "--drop")
		f.restoreRate = f.bytes / 1e6 / d.Seconds()
		f.restorePeak, f.restoreLive = peakRSS(t, p), peakLive(t, p)
		p.signal(syscall.SIGTERM)
		t.Logf("%d MiB: backup %.1f MB/s, peak RSS %d KiB, live heap %d MB; restore %.1f MB/s, peak RSS %d KiB, live heap %d MB; verify %.1f MB/s",
			mib, f.backupRate, f.backupPeak, f.backupLive, f.restoreRate, f.restorePeak, f.restoreLive, f.verifyRate)
		return f
	}
	// A backup's oplog capture starts a second before it (FerretDB's
	// clock second): writes that end just before the backup are in it,
	// and their replay's batches (bounded, and the same for any size)
	// would then be in one restore's memory and not in the other's. The
	// pause keeps the seed out of both.
	settle := func() { time.Sleep(2500 * time.Millisecond) }
	seedBlobs(t, src, guardSmallMiB)
	settle()
	small := measure(0, guardSmallMiB)
	seedBlobsFrom(t, src, guardSmallMiB*8, guardLargeMiB-guardSmallMiB)
	settle()
	large := measure(1, guardLargeMiB)

	for _, c := range []struct {
		what, unit   string
		small, large int64
		bound        int64
	}{
		{"backup", "live heap MB", small.backupLive, large.backupLive, guardLiveGrowthMiB},
		{"restore", "live heap MB", small.restoreLive, large.restoreLive, guardLiveGrowthMiB},
		{"backup", "peak RSS KiB", small.backupPeak, large.backupPeak, guardRSSGrowthMiB << 10},
		{"restore", "peak RSS KiB", small.restorePeak, large.restorePeak, guardRSSGrowthMiB << 10},
	} {
		if grew := c.large - c.small; grew > c.bound {
			t.Errorf("%s: the agent's %s grew by %d (%d -> %d) for %d MiB more data: memory is not flat",
				c.what, c.unit, grew, c.small, c.large, guardLargeMiB-guardSmallMiB)
		}
	}
	for _, c := range []struct {
		what        string
		rate, floor float64
	}{{"backup", large.backupRate, guardBackupFloor}, {"restore", large.restoreRate, guardRestoreFloor}, {"verify", large.verifyRate, guardVerifyFloor}} {
		if c.rate < c.floor {
			t.Errorf("%s of %d MiB at %.2f MB/s, under the floor of %.2f MB/s: throughput collapsed", c.what, guardLargeMiB, c.rate, c.floor)
		}
	}
}

// peakRSS is the process's peak resident set (VmHWM), in KiB.
func peakRSS(t *testing.T, p *proc) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kib, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kib
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", p.cmd.Process.Pid)
	return 0
}

// gcLive matches a gctrace line's heap sizes: before, after, live (MB).
// The runtime writes one line in several pieces to the stderr the agent's
// log shares, so a log line may fall inside it: the match spans lines.
var gcLive = regexp.MustCompile(`(?s)gc \d+ @.{0,1000}?\d+->\d+->(\d+) MB, \d+ MB goal`)

// peakLive is the largest live heap, in MB, that a collection of the
// agent's process found (GODEBUG=gctrace=1 prints one line per cycle).
func peakLive(t *testing.T, p *proc) int64 {
	t.Helper()
	ms := gcLive.FindAllStringSubmatch(p.log.String(), -1)
	if len(ms) == 0 {
		t.Fatalf("no gctrace line in the agent's log:\n%s", p.log.String())
	}
	var peak int64
	for _, m := range ms {
		mb, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		peak = max(peak, mb)
	}
	return peak
}

// seedBlobsFrom adds mib MiB of incompressible 128 KiB documents to
// blobs.random, _id from first on, 64 at a time.
func seedBlobsFrom(t *testing.T, c *mongo.Client, first, mib int) {
	t.Helper()
	var docs []any
	flush := func() {
		if len(docs) == 0 {
			return
		}
		if _, err := c.Database("blobs").Collection("random").InsertMany(context.Background(), docs); err != nil {
			t.Fatal(err)
		}
		docs = docs[:0]
	}
	for i := first; i < first+mib*8; i++ {
		b := make([]byte, 128<<10)
		rand.Read(b)
		docs = append(docs, bson.D{{Key: "_id", Value: i}, {Key: "blob", Value: b}})
		if len(docs) == 64 {
			flush()
		}
	}
	flush()
}
