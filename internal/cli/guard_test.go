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
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/a0backup/a0/internal/devappliance"
)

const (
	// guardSmallMiB and guardLargeMiB are the two sizes of incompressible
	// data (128 KiB documents): the large one adds 24 MiB. The small one
	// already fills the server's largest cursor batches (16 MiB, the dump
	// asks for 10000 documents), the memory that legitimately grows with
	// a small collection.
	guardSmallMiB, guardLargeMiB = 16, 40
	// guardGrowthMiB bounds how much more the built agent's peak RSS may
	// be for the large size than for the small one: a pipeline that held
	// the backup (or any share of it above a third) in memory would
	// exceed it; buffers, the KDF's 64 MiB and GC pacing do not.
	guardGrowthMiB = 12
	// Throughput floors, MB/s of BSON: 10-100x below what the built agent
	// does here on a loaded 2-core machine (FerretDB bounds it), so only a
	// collapse fails them.
	guardBackupFloor, guardRestoreFloor, guardVerifyFloor = 0.2, 0.1, 2.0
)

// TestGuardMemoryFlatAndThroughput backs up and restores, with the built
// agent on an outside FerretDB server, 16 MiB and then 40 MiB of data; the
// agent's peak RSS (VmHWM, a fresh process per job) grows by less than
// guardGrowthMiB, and the backup, restore and offline verify rates stay
// above floors far below the benchmarks.
func TestGuardMemoryFlatAndThroughput(t *testing.T) {
	t.Parallel()
	bin := buildBinaries(t)
	ctx := context.Background()
	server := func() (string, *mongo.Client) {
		srv, err := devappliance.Start(ctx, devappliance.Config{Dir: t.TempDir(), Oplog: true})
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
	pwEnv := []string{"A0_BACKUP_PASSWORD=Passw0rd-guard"}
	run := func(name string, args ...string) (string, time.Duration) {
		t.Helper()
		start := time.Now()
		code, out, errs := sh(t, bin, work, home, pwEnv, name, args...)
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
		p := startAgentProc(t, bin, state, "A0_MONGODB_URI="+uri)
		p.holdRelease(t, "backup")
		p.holdRelease(t, "restore")
		return p
	}

	type figures struct {
		backupPeak, restorePeak                    int64 // KiB
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
		_, d := run("a0cli", "-t", p.addr, "backup", "--wait")
		f.backupRate = f.bytes / 1e6 / d.Seconds()
		f.backupPeak = peakRSS(t, p)
		run("a0cli", "-t", p.addr, "backup-retrieve", "-o", file)
		p.signal(syscall.SIGTERM)

		_, d = run("a0cli", "verify", file)
		f.verifyRate = f.bytes / 1e6 / d.Seconds()

		p = agentOn(dstURI)
		_, d = run("a0cli", "-t", p.addr, "restore", file, "--drop")
		f.restoreRate = f.bytes / 1e6 / d.Seconds()
		f.restorePeak = peakRSS(t, p)
		p.signal(syscall.SIGTERM)
		t.Logf("%d MiB: backup %.1f MB/s, peak RSS %d KiB; restore %.1f MB/s, peak RSS %d KiB; verify %.1f MB/s",
			mib, f.backupRate, f.backupPeak, f.restoreRate, f.restorePeak, f.verifyRate)
		return f
	}
	seedBlobs(t, src, guardSmallMiB)
	small := measure(0, guardSmallMiB)
	seedBlobsFrom(t, src, guardSmallMiB*8, guardLargeMiB-guardSmallMiB)
	large := measure(1, guardLargeMiB)

	for _, c := range []struct {
		what         string
		small, large int64
	}{{"backup", small.backupPeak, large.backupPeak}, {"restore", small.restorePeak, large.restorePeak}} {
		if grew := c.large - c.small; grew > guardGrowthMiB<<10 {
			t.Errorf("%s: the agent's peak RSS grew by %d KiB (%d -> %d) for %d MiB more data: memory is not flat",
				c.what, grew, c.small, c.large, guardLargeMiB-guardSmallMiB)
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
