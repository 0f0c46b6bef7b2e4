package bench

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/a0backup/a0/internal/archive"
)

// benchSize keeps `go test -bench . ./internal/bench` quick on two shared
// cores; cmd/a0bench runs the full-size figures.
const benchSize = 32 << 20

var (
	benchOnce sync.Once
	benchDS   *Dataset
	benchErr  error
	benchDir  string
)

var benchPassword = []byte("a0bench-password")

func dataset(b *testing.B) *Dataset {
	benchOnce.Do(func() {
		benchDir, benchErr = os.MkdirTemp("", "a0bench-")
		if benchErr == nil {
			benchDS, benchErr = Generate(benchDir, benchSize, 1)
		}
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchDS
}

func TestMain(m *testing.M) {
	// The test binary is also `a0bench wire-server DIR URIFILE`, so that a
	// test starts the server as a process of its own (StartWireServer
	// with os.Args[0]) without building a0bench.
	if len(os.Args) == 4 && os.Args[1] == WireServerArg {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		err := ServeWire(ctx, os.Args[2], os.Args[3])
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

// BenchmarkSealedPipeline is the agent's backup tail: BSON files in, an
// encrypted, hashed, fsynced file out. MB/s are of BSON input.
func BenchmarkSealedPipeline(b *testing.B) {
	ds := dataset(b)
	b.SetBytes(ds.Bytes())
	var last Result
	for i := 0; b.Loop(); i++ {
		dir := filepath.Join(b.TempDir(), "slot")
		r, _, err := SealedPipeline(ds, dir, benchPassword, archive.Options{})
		if err != nil {
			b.Fatal(err)
		}
		last = r
		os.Remove(r.File)
	}
	b.ReportMetric(last.Ratio(), "ratio")
}

// BenchmarkRestoreFileSide is crypt.NewReader + restore.Plan on a sealed
// file. MB/s are of BSON output.
func BenchmarkRestoreFileSide(b *testing.B) {
	ds := dataset(b)
	r, _, err := SealedPipeline(ds, filepath.Join(b.TempDir(), "slot"), benchPassword, archive.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(ds.Bytes())
	b.ResetTimer()
	for b.Loop() {
		got, err := RestoreFileSide(context.Background(), r.File, benchPassword)
		if err != nil {
			b.Fatal(err)
		}
		if got.InBytes != ds.Bytes() {
			b.Fatalf("restore saw %d BSON bytes, data set has %d", got.InBytes, ds.Bytes())
		}
	}
}
