package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	"github.com/a0backup/a0/internal/bench"
)

// benchDrillPassword seals the drill's backup (the other figures' one).
const benchDrillPassword = "a0bench-Passw0rd"

// drillUsage is `a0bench drill`'s synopsis.
const drillUsage = `usage: a0bench drill [--size 500MiB] [--runs 1] [--work DIR] [--json]

Measures a restore drill's cost (issue 29; package drill, as verify
--restore-test and the node's scheduled drills run it): the benchmark's
generated data set of --size BSON, sealed with content digests, restored
into a throwaway embedded FerretDB (the drill's server, whatever server the
backup came from) and read back to compare, in a child process. Prints the
authentication, restore and compare times, the peak disk of the drill's
directory and the child's peak RSS and CPU time.`

// runDrill is `a0bench drill`.
func runDrill(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("a0bench drill", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, drillUsage); fs.PrintDefaults() }
	sizeFlag := fs.String("size", "500MiB", "BSON size of the data set drilled (e.g. 50MiB, 500MiB)")
	runs := fs.Int("runs", 1, "drills of the same backup")
	workFlag := fs.String("work", "", "scratch directory (default: a new temp dir, removed at the end); a data set generated there is reused")
	asJSON := fs.Bool("json", false, "print the figures as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	size, err := parseSize(*sizeFlag)
	if err != nil {
		return err
	}
	if *runs < 1 {
		return fmt.Errorf("--runs must be at least 1")
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	work := *workFlag
	if work == "" {
		if work, err = os.MkdirTemp("", "a0bench-drill-"); err != nil {
			return err
		}
		defer os.RemoveAll(work)
	} else if err := os.MkdirAll(work, 0o700); err != nil {
		return err
	}
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, format+"\n", a...) }
	started := time.Now().UTC()
	load := loadAvg()
	figs, err := bench.MeasureDrill(ctx, exe, work, size, *runs, benchDrillPassword, logf)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Args    []string             `json:"args"`
			Started time.Time            `json:"started"`
			CPUs    int                  `json:"cpus"`
			Load    string               `json:"load_at_start"`
			Runs    []bench.DrillFigures `json:"runs"`
		}{args, started, runtime.NumCPU(), load, figs})
	}
	fmt.Fprintf(stdout, "a0bench drill %s  %d CPUs  load at start %s  (into a throwaway embedded FerretDB: a drill's server by nature)\n",
		started.Format(time.RFC3339), runtime.NumCPU(), load)
	for i, f := range figs {
		verdict := "ok"
		if !f.OK {
			verdict = "FAILED"
		}
		fmt.Fprintf(stdout, "run %d: %s, %d collections (%d same, %d differ, %d not held), %d documents, %.1f MB BSON, file %.1f MB\n",
			i+1, verdict, f.Collections, f.Same, f.Differs, f.NotHeld, f.Documents, float64(f.BSONBytes)/1e6, float64(f.FileBytes)/1e6)
		fmt.Fprintf(stdout, "  authenticate %.1f s, restore %.1f s, compare %.1f s, %.1f s in all; %.2f MB/s restored\n",
			f.AuthSeconds, f.RestoreSeconds, f.CompareSeconds, f.TotalSeconds, float64(f.BSONBytes)/1e6/f.RestoreSeconds)
		fmt.Fprintf(stdout, "  peak disk of the drill directory %.1f MB (%.1fx the BSON), peak RSS %.1f MB, CPU %.1f s\n",
			float64(f.PeakDiskBytes)/1e6, float64(f.PeakDiskBytes)/float64(max(f.BSONBytes, 1)), float64(f.PeakRSS)/1e6, f.CPUSeconds)
	}
	return nil
}

// drillChild is `a0bench drill-child FILE PARENT`: one drill, its figures
// as JSON on stdout.
func drillChild(args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("usage: a0bench %s FILE PARENT", bench.DrillChildArg)
	}
	f, err := bench.RunDrillChild(context.Background(), args[0], args[1], []byte(os.Getenv(bench.PasswordEnv)))
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(f)
}
