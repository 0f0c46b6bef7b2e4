package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/a0backup/a0/internal/bench"
)

// pitrUsage is `a0bench pitr`'s synopsis.
const pitrUsage = `usage: a0bench pitr [--duration 10m] [--rate 1000] [--slice 10s] [--embedded | --source wire-server|oplog-server] [--replay-docs 100000] [--replay-entries 20000] [--replay-external] [--work DIR] [--json]

Measures issue 26's numbers: the RPO (the newest archived entry's lag behind
the server, sampled once a second, p50/p99/max) under a steady writer, the
archiver's CPU and memory (a process of its own tailing an external
wire-server over the wire), the archive's bytes per entry (an hour at 1,000
writes/s extrapolated) and verify's speed against a plain read, then the
replay rate of restore --to-ts into a collection of --replay-docs documents
through a real agent (embedded server; --replay-external: a wire-server).

--source oplog-server measures the RPO against a SIMULATED mongod oplog over
the wire instead (a0bench oplog-server: no mongod runs here; it generates
--rate entries/s itself and answers the archiver's tailable awaitData cursor
as a MongoDB 7.0 replica-set member would): figures labelled as simulated.`

// runPITR is `a0bench pitr`.
func runPITR(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("a0bench pitr", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, pitrUsage); fs.PrintDefaults() }
	dur := fs.Duration("duration", 10*time.Minute, "how long the writer runs for the RPO figure (0 skips it)")
	rate := fs.Int("rate", 1000, "the writer's writes per second")
	slice := fs.Duration("slice", 10*time.Second, "the archive's slice length")
	docs := fs.Int("replay-docs", 100_000, "documents in the collection the replay figure restores into (0 skips it)")
	entries := fs.Int("replay-entries", 20_000, "writes after the base that the replay figure replays")
	rpoEmbedded := fs.Bool("embedded", false, "measure the RPO on a real agent's embedded server (its archive reads the oplog by insertion key) instead of an external wire-server")
	source := fs.String("source", bench.PITRSourceWireServer, "the RPO figure's source: wire-server (external FerretDB v1.24.2, a process of its own) or oplog-server (a SIMULATED mongod oplog over the wire, a process of its own: no mongod runs here)")
	replayExternal := fs.Bool("replay-external", false, "run the replay figure against a wire-server process instead of the embedded server")
	workFlag := fs.String("work", "", "scratch directory (default: a new temp dir, removed at the end)")
	asJSON := fs.Bool("json", false, "print the figures as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch *source {
	case bench.PITRSourceWireServer:
		if *rpoEmbedded {
			*source = bench.PITRSourceEmbedded
		}
	case bench.PITRSourceOplogServer:
		if *rpoEmbedded {
			return errors.New("--embedded and --source oplog-server name two sources: give one")
		}
	default:
		return fmt.Errorf("--source %q: want %s or %s", *source, bench.PITRSourceWireServer, bench.PITRSourceOplogServer)
	}
	if *rate < 1 {
		return errors.New("--rate must be at least 1")
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	work := *workFlag
	if work == "" {
		if work, err = os.MkdirTemp("", "a0bench-pitr-"); err != nil {
			return err
		}
		defer os.RemoveAll(work)
	}
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, format+"\n", a...) }
	out := struct {
		Args   []string             `json:"args"`
		RPO    *bench.PITRFigures   `json:"rpo,omitempty"`
		Replay *bench.ReplayFigures `json:"replay,omitempty"`
	}{Args: args}
	if *dur > 0 {
		if out.RPO, err = bench.MeasurePITRFrom(ctx, exe, work, *source, *dur, *slice, *rate, logf); err != nil {
			return err
		}
	}
	if *docs > 0 {
		uri, dbDir := "", ""
		if *replayExternal {
			srv, err := bench.StartWireServer(ctx, exe, work+"/replay-server")
			if err != nil {
				return err
			}
			defer srv.Close()
			uri, dbDir = srv.URI, srv.Dir
		}
		if out.Replay, err = bench.MeasureReplay(ctx, work, uri, dbDir, *docs, *entries, logf); err != nil {
			return err
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	if r := out.RPO; r != nil {
		if r.Source != "" {
			fmt.Fprintf(stdout, "source: %s: NOT a real server; %d entries generated (the writes below)\n", r.Source, r.Writes)
		}
		fmt.Fprintf(stdout, "RPO (%s, slices of %.0f s): %.0f s at %.0f writes/s (target %d): lag p50 %.0f s, p99 %.0f s, max %.0f s over %d samples (goal p99 <= slice + 2 s = %.0f s)\n",
			r.Mode, r.SliceSeconds, r.Seconds, r.Rate, r.TargetRate, r.LagP50, r.LagP99, r.LagMax, r.LagSamples, r.SliceSeconds+2)
		if r.Mode == "embedded" {
			fmt.Fprintf(stdout, "process (embedded server, writer and archiver together): RSS %.1f MiB a tenth in, %.1f MiB at the end; the archiver's own CPU is not measured in this mode\n",
				float64(r.ArchiverRSSEarly)/(1<<20), float64(r.ArchiverRSSLate)/(1<<20))
		} else {
			fmt.Fprintf(stdout, "archiver: %.1f%% of one core; RSS %.1f MiB a tenth in, %.1f MiB at the end, peak %.1f MiB (goal < 5%%, flat)\n",
				100*r.ArchiverCPU, float64(r.ArchiverRSSEarly)/(1<<20), float64(r.ArchiverRSSLate)/(1<<20), float64(r.ArchiverPeakRSS)/(1<<20))
		}
		fmt.Fprintf(stdout, "archive: %d entries (%.1f MB BSON) in %d slices, %.1f MB: %.0f bytes/entry; an hour at 1,000 writes/s: %.0f MB (extrapolated)\n",
			r.Entries, float64(r.OplogBytes)/1e6, r.Slices, float64(r.ArchiveBytes)/1e6, r.BytesPerEntry, r.HourBytes/1e6)
		fmt.Fprintf(stdout, "verify --oplog: %.1f MB/s (plain read of the same files: %.1f MB/s, page cache)\n", r.VerifyMBs, r.ReadMBs)
		fmt.Fprintf(stdout, "load: %s at the start, %s at the end\n", r.LoadStart, r.LoadEnd)
	}
	if r := out.Replay; r != nil {
		fmt.Fprintf(stdout, "replay (%s): %d entries after the base into %d documents: restore to the base %.1f s, to the newest entry %.1f s: %.0f entries/s (goal >= 2,000/s); %s\n",
			r.Mode, r.Entries, r.Documents, r.BaseSeconds, r.PITRSeconds, r.EntriesPerSec, r.ReplayedChecks)
		fmt.Fprintf(stdout, "load: %s at the start, %s at the end\n", r.LoadStart, r.LoadEnd)
	}
	return nil
}
