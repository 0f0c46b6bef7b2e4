// Command a0bench regenerates a deterministic mongodump-style data set and
// measures a0's data paths on it beside the shell baselines they replace,
// all in one run on the same data, and prints each figure with its goal.
//
//	go run ./cmd/a0bench                 # 1 GiB, 3 runs per figure
//	go run ./cmd/a0bench --size 64MB --runs 1 --json
//	go run ./cmd/a0bench pitr --duration 10m   # issue 26: RPO, archive, replay
//	go run ./cmd/a0bench drill --size 500MiB   # issue 29: a restore drill's cost
//	go run ./cmd/a0bench oplog-server --rate 1000   # a SIMULATED mongod oplog, for benchmarks
//
// It needs bash, tar, openssl and pigz on PATH (apt-get install -y pigz).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/a0backup/a0/internal/archive"
	"github.com/a0backup/a0/internal/bench"
	"github.com/a0backup/a0/internal/embedded"
	"github.com/a0backup/a0/internal/restore"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "fresh-server" {
		code, err := freshServer(os.Args[2:])
		if err != nil {
			fmt.Fprintln(os.Stderr, "a0bench:", err)
		}
		os.Exit(code)
	}
	if len(os.Args) > 1 && os.Args[1] == bench.WireServerArg {
		if len(os.Args) != 4 {
			fmt.Fprintln(os.Stderr, "usage: a0bench wire-server DIR URIFILE")
			os.Exit(2)
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if err := bench.ServeWire(ctx, os.Args[2], os.Args[3]); err != nil {
			fmt.Fprintln(os.Stderr, "a0bench:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == bench.OplogServerArg {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := runOplogServer(ctx, os.Args[2:], os.Stdout, os.Stderr)
		stop()
		if err != nil && !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "a0bench:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == bench.ArchiverChildArg {
		if len(os.Args) != 6 {
			fmt.Fprintln(os.Stderr, "usage: a0bench pitr-archiver URI DIR RECIPIENT SLICE")
			os.Exit(2)
		}
		slice, err := time.ParseDuration(os.Args[5])
		if err == nil {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			err = bench.RunArchiverChild(ctx, os.Args[2], os.Args[3], os.Args[4], slice)
			stop()
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "a0bench:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == bench.DrillChildArg {
		if err := drillChild(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "a0bench:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "drill" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		err := runDrill(ctx, os.Args[2:], os.Stdout, os.Stderr)
		stop()
		if err != nil && !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "a0bench:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "pitr" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		err := runPITR(ctx, os.Args[2:], os.Stdout, os.Stderr)
		stop()
		if err != nil && !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "a0bench:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && (os.Args[1] == bench.ChildArg || os.Args[1] == bench.RestoreChildArg) {
		f := child
		if os.Args[1] == bench.RestoreChildArg {
			f = restoreChild
		}
		if err := f(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "a0bench:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			// -h printed the usage: asked for, not a failure.
			return
		}
		fmt.Fprintln(os.Stderr, "a0bench:", err)
		os.Exit(1)
	}
}

// child is the re-executed pipeline: it does nothing but SealedPipeline, so
// its peak RSS is the pipeline's.
func child(args []string) error {
	if len(args) != 2 {
		return errors.New("usage: a0bench pipeline-child DATAROOT SLOTDIR")
	}
	ds, err := bench.LoadDataset(args[0])
	if err != nil {
		return err
	}
	r, _, err := bench.SealedPipeline(ds, args[1], []byte(os.Getenv(bench.PasswordEnv)), archive.Options{})
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(struct {
		bench.Result
		PeakRSS int64 `json:"peak_rss"`
	}{r, bench.SelfPeakRSS()})
}

// restoreChild is the re-executed restore (Plan + Run into the database at
// URI): its peak RSS is the restore's alone.
func restoreChild(args []string) error {
	if len(args) != 3 {
		return errors.New("usage: a0bench restore-child FILE URI PARALLEL")
	}
	par, err := strconv.Atoi(args[2])
	if err != nil {
		return err
	}
	if path := os.Getenv(cpuProfileEnv); path != "" {
		// Where the restore's own CPU goes (issue 27: on a small node it
		// shares the cores with the server).
		pf, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			return err
		}
		defer func() {
			pprof.StopCPUProfile()
			pf.Close()
		}()
	}
	opts := restore.Options{Parallel: par}
	if dir := os.Getenv(freshDirEnv); dir != "" {
		// The target is an embedded server on dir (fresh-server): the
		// oplog replay's _id lookups get their index, as in the agent.
		opts.IndexIDLookups = func(ctx context.Context, db string, colls []string) error {
			_, err := embedded.IndexIDLookups(ctx, dir, db, colls)
			return err
		}
		opts.Count = embedded.CatalogOf(dir).Count
	}
	r, err := bench.RestoreDB(context.Background(), args[0], args[1], []byte(os.Getenv(bench.PasswordEnv)), opts)
	if err != nil {
		return err
	}
	r.PeakRSS = bench.SelfPeakRSS()
	return json.NewEncoder(os.Stdout).Encode(r)
}

// cpuProfileEnv names the file restore-child writes its CPU profile to
// (go tool pprof), when set.
const cpuProfileEnv = "A0BENCH_CPUPROFILE"

// freshDirEnv and freshURIEnv tell the command fresh-server runs where its
// server keeps its files and listens.
const (
	freshDirEnv = "A0BENCH_DB_DIR"
	freshURIEnv = "A0BENCH_URI"
)

// freshServer is `a0bench fresh-server CMD [ARG...]`: a new embedded
// FerretDB (SQLite, no oplog) in a temporary directory for the one run of
// CMD, which finds it in $A0BENCH_URI (and its files in $A0BENCH_DB_DIR);
// the server and its files are gone afterwards. It exits with CMD's code:
// a restore into a fresh server as one command, for timing it against
// another (e.g. `a0bench fresh-server sh -c 'openssl enc -d ... <F |
// mongorestore --uri "$A0BENCH_URI" --archive --gzip --noIndexRestore'`
// against `a0bench fresh-server sh -c 'a0bench restore-child F "$A0BENCH_URI" 0'`).
func freshServer(args []string) (int, error) {
	if len(args) == 0 {
		return 2, errors.New("usage: a0bench fresh-server CMD [ARG...]")
	}
	dir, err := os.MkdirTemp("", "a0bench-fresh-")
	if err != nil {
		return 1, err
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	srv, err := embedded.Start(ctx, embedded.Config{Dir: dir})
	if err != nil {
		return 1, err
	}
	defer srv.Close()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), freshURIEnv+"="+srv.URI(), freshDirEnv+"="+dir)
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), nil
		}
		return 1, err
	}
	return 0, nil
}

// Row is one figure of the report.
type Row struct {
	Figure   string  `json:"figure"`
	A0       float64 `json:"a0"`
	Baseline float64 `json:"baseline,omitempty"`
	BaseName string  `json:"baseline_name,omitempty"`
	Unit     string  `json:"unit"`
	Goal     string  `json:"goal,omitempty"`
	// Met is nil for figures without a goal (context only).
	Met *bool `json:"met,omitempty"`
}

// Report is everything one run measured.
type Report struct {
	Date        time.Time        `json:"date"`
	CPUs        int              `json:"cpus"`
	LoadAvg     string           `json:"loadavg_at_start"`
	Runs        int              `json:"runs"`
	DataBytes   int64            `json:"data_bytes"`
	DataDocs    int64            `json:"data_documents"`
	SmallBytes  int64            `json:"small_data_bytes"`
	Rows        []Row            `json:"rows"`
	Raw         map[string][]any `json:"raw"`
	EndToEnd    *bench.EndToEnd  `json:"end_to_end,omitempty"`
	Notes       []string         `json:"notes"`
	PipelineCPU float64          `json:"pipeline_cpu_seconds"`
	// RestoreDB holds the restore-into-FerretDB comparison at two sizes.
	RestoreDB []*bench.RestoreDBFigures `json:"restore_db,omitempty"`
	Load      *bench.LoadFigures        `json:"load,omitempty"`
	Live      *bench.LiveFigures        `json:"live,omitempty"`
	External  *bench.LiveFigures        `json:"external,omitempty"`
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("a0bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sizeFlag := fs.String("size", "1GiB", "BSON size of the main data set (e.g. 64MB, 1GiB)")
	smallFlag := fs.String("small-size", "", "size of the second data set for peak RSS (default: size/10)")
	runs := fs.Int("runs", 3, "runs per figure; the median is reported")
	users := fs.Int("users", 10000, "users seeded into FerretDB for the end-to-end figure (0 skips it)")
	workFlag := fs.String("work", "", "scratch directory (default: a new temp dir, removed at the end)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	printJSON := fs.String("print", "", "print the table of a report saved with --json, and measure nothing")
	skipRetrieve := fs.Bool("skip-retrieve", false, "skip the loopback retrieve figure (it starts a real agent)")
	skipPipeline := fs.Bool("skip-pipeline", false, "skip the pipeline, baseline, retrieve and end-to-end figures (run only the restore-db and load figures)")
	restoreSizeFlag := fs.String("restore-size", "20MB", "BSON size for the restore into FerretDB (0 skips it); a second run at 10x measures peak RSS")
	restoreLargeFlag := fs.String("restore-large", "", "size of the second restore run (default: 10 x restore-size)")
	insertPar := fs.String("insert-parallel", "1,2,4,8", "goroutine counts tried for the plain InsertMany baseline")
	restorePar := fs.Int("restore-parallel", 0, "restore.Options.Parallel (0: restore's default)")
	load := fs.Bool("load", false, "also run the load figure: 50 clients during an agent backup (several minutes)")
	loadUsers := fs.Int("load-users", 60000, "users seeded for the load figure (the backup must last >= --load-seconds)")
	loadClients := fs.Int("load-clients", 50, "concurrent clients for the load figure")
	loadSecs := fs.Duration("load-seconds", 30*time.Second, "how long the clients run")
	loadPause := fs.Duration("load-pause", 0, "pause of each client between requests (0: closed loop, as fast as answered)")
	live := fs.Bool("live", false, "also run the live comparison (issue 14): load a server so its oplog holds the load, then a0 backup and restore against mongodump | openssl and openssl -d | mongorestore on it")
	liveUsers := fs.Int("live-users", 60000, "users seeded for --live (60000: about 50 MiB of BSON)")
	liveRuns := fs.Int("live-runs", 3, "runs of each tool for --live, in turn (a0, stock, a0, stock...)")
	external := fs.Bool("external", false, "also run the external-server comparison (issue 27): a FerretDB with local.oplog.rs as its own process, loaded through the wire, an agent given its URI (no embedded side channels), a0 backup and restore against mongodump | openssl and openssl -d | mongorestore on it, pair by pair")
	externalUsers := fs.Int("external-users", 60000, "users seeded for --external (60000: about 50 MiB of BSON)")
	externalRuns := fs.Int("external-runs", 3, "runs of each tool for --external, in turn (a0, stock, a0, stock...)")
	externalFiles := fs.String("external-files", "", "directory keeping --external's two backup files: when it holds them, only the restore pairs run, on them (no seeding, no backups); otherwise the run's files are kept there")
	tools := fs.String("tools", "../shared/tools/mongo-tools-100.18.0", "directory of the stock mongodump and mongorestore (--live)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *printJSON != "" {
		b, err := os.ReadFile(*printJSON)
		if err != nil {
			return err
		}
		var rep Report
		if err := json.Unmarshal(b, &rep); err != nil {
			return err
		}
		printTable(stdout, &rep)
		return nil
	}
	size, err := parseSize(*sizeFlag)
	if err != nil {
		return err
	}
	small := size / 10
	if *smallFlag != "" {
		if small, err = parseSize(*smallFlag); err != nil {
			return err
		}
	}
	if *runs < 1 {
		return errors.New("--runs must be at least 1")
	}
	var restoreSize, restoreLarge int64
	if *restoreSizeFlag != "0" {
		if restoreSize, err = parseSize(*restoreSizeFlag); err != nil {
			return err
		}
		restoreLarge = 10 * restoreSize
		if *restoreLargeFlag != "" {
			if restoreLarge, err = parseSize(*restoreLargeFlag); err != nil {
				return err
			}
		}
	}
	var pars []int
	for _, f := range strings.Split(*insertPar, ",") {
		p, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || p < 1 {
			return fmt.Errorf("bad --insert-parallel %q", *insertPar)
		}
		pars = append(pars, p)
	}
	needed := []string{"bash", "openssl", "sync"}
	if !*skipPipeline {
		// Only the pipeline's baselines pack with tar and pigz.
		needed = append(needed, "tar", "pigz")
	}
	for _, tool := range needed {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found on PATH (apt-get install -y pigz): %w", tool, err)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	work := *workFlag
	if work == "" {
		if work, err = os.MkdirTemp("", "a0bench-"); err != nil {
			return err
		}
		defer os.RemoveAll(work)
	} else if err := os.MkdirAll(work, 0o700); err != nil {
		return err
	}
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "a0bench: "+format+"\n", a...) }
	const password = "a0bench-Passw0rd"

	rep := &Report{Date: time.Now().UTC(), CPUs: runtime.NumCPU(), LoadAvg: loadAvg(), Runs: *runs, Raw: map[string][]any{}}

	if !*skipPipeline {
		if err := pipelineFigures(ctx, rep, exe, work, size, small, *runs, *users, *skipRetrieve, logf); err != nil {
			return err
		}
	}
	if restoreSize > 0 {
		for _, sz := range []int64{restoreSize, restoreLarge} {
			f, err := restoreDBFigures(ctx, exe, work, sz, pars, *restorePar, password, logf)
			if err != nil {
				return err
			}
			rep.RestoreDB = append(rep.RestoreDB, f)
			// Only the first size sweeps the goroutine counts; the larger
			// one reuses the best, for time.
			pars = []int{f.Best.Parallel}
		}
		fillRestoreDB(rep)
	}
	if *load {
		logf("load: seeding %d users into a node's embedded FerretDB", *loadUsers)
		f, err := bench.MeasureLoad(ctx, mkdir(work, "load"), *loadUsers, *loadClients, *loadSecs, *loadPause, password, logf)
		if err != nil {
			return err
		}
		os.RemoveAll(filepath.Join(work, "load"))
		rep.Load = f
		fillLoad(rep, *loadSecs)
	}
	if *live {
		f, err := bench.MeasureLive(ctx, mkdir(work, "live"), *tools, *liveUsers, *liveRuns, password, logf)
		if err != nil {
			return err
		}
		os.RemoveAll(filepath.Join(work, "live"))
		rep.Live = f
		fillLive(rep, f)
	}
	if *external {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		f, err := bench.MeasureExternal(ctx, exe, mkdir(work, "external"), *tools, *externalFiles, *externalUsers, *externalRuns, password, logf)
		if err != nil {
			return err
		}
		os.RemoveAll(filepath.Join(work, "external"))
		rep.External = f
		fillLive(rep, f)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printTable(stdout, rep)
	return nil
}

func fill(rep *Report, a0, gz, pz, rest, restBase, retr []bench.Result, rss, rssSmall int64) {
	yes := func(b bool) *bool { return &b }
	a0MB, gzMB, pzMB := median(a0, bench.Result.MBps), median(gz, bench.Result.MBps), median(pz, bench.Result.MBps)
	a0Ratio, gzRatio := median(a0, bench.Result.Ratio), median(gz, bench.Result.Ratio)
	rep.Rows = append(rep.Rows,
		Row{Figure: "backup pipeline (BSON -> encrypted, md5+sha256, fsync)", A0: a0MB, Baseline: gzMB, BaseName: "tar czf | openssl enc", Unit: "MB/s", Goal: ">= 150 MB/s", Met: yes(a0MB >= 150)},
		Row{Figure: "compression ratio (BSON / file)", A0: a0Ratio, Baseline: gzRatio, BaseName: "gzip -6 (tar czf)", Unit: "x", Goal: ">= 0.9 x gzip -6", Met: yes(a0Ratio >= 0.9*gzRatio)},
		Row{Figure: "speed-up over tar czf | openssl", A0: a0MB / gzMB, Baseline: gzMB, BaseName: "tar czf | openssl enc (MB/s)", Unit: "x", Goal: ">= 4x", Met: yes(a0MB >= 4*gzMB)},
		Row{Figure: "speed-up over tar | pigz -6 | openssl", A0: a0MB / pzMB, Baseline: pzMB, BaseName: "tar | pigz -6 | openssl enc (MB/s)", Unit: "x", Goal: ">= 2x", Met: yes(a0MB >= 2*pzMB)},
		Row{Figure: fmt.Sprintf("pipeline peak RSS, %s data", fmtBytes(rep.SmallBytes)), A0: float64(rssSmall) / 1e6, Unit: "MB", Goal: "< 150 MB", Met: yes(rssSmall < 150e6)},
		Row{Figure: fmt.Sprintf("pipeline peak RSS, %s data", fmtBytes(rep.DataBytes)), A0: float64(rss) / 1e6, Unit: "MB", Goal: "< 150 MB", Met: yes(rss < 150e6)},
	)
	cpu := median(a0, func(r bench.Result) float64 { return r.CPUSeconds })
	rep.PipelineCPU = cpu
	rep.Notes = append(rep.Notes, fmt.Sprintf("pipeline CPU cost: %.1f CPU-seconds per run = %.0f MB per CPU-second; with %d cores free of other load that bounds the pipeline at about %.0f MB/s",
		cpu, float64(rep.DataBytes)/1e6/cpu, rep.CPUs, float64(rep.CPUs)*float64(rep.DataBytes)/1e6/cpu))
	for _, b := range []struct {
		name string
		rs   []bench.Result
	}{{"tar czf | openssl", gz}, {"tar | pigz -6 | openssl", pz}} {
		c := median(b.rs, func(r bench.Result) float64 { return r.CPUSeconds })
		rep.Notes = append(rep.Notes, fmt.Sprintf("%s CPU cost: %.1f CPU-seconds per run = %.0f MB per CPU-second", b.name, c, float64(rep.DataBytes)/1e6/c))
	}
	restMB, restBaseMB := median(rest, bench.Result.MBps), median(restBase, bench.Result.MBps)
	rep.Rows = append(rep.Rows, Row{Figure: "restore file side (auth, decrypt, gunzip, validate BSON)", A0: restMB, Baseline: restBaseMB,
		BaseName: "openssl -d | pigz -d | tar x", Unit: "MB/s BSON", Goal: ">= 180 MB/s and > baseline", Met: yes(restMB >= 180 && restMB > restBaseMB)})
	if len(retr) > 0 {
		m := median(retr, bench.Result.MBps)
		rep.Rows = append(rep.Rows, Row{Figure: "backup-retrieve over loopback (agent + a0cli)", A0: m, Unit: "MB/s of file", Goal: ">= 200 MB/s", Met: yes(m >= 200)})
	}
	if e := rep.EndToEnd; e != nil {
		rep.Rows = append(rep.Rows, Row{Figure: fmt.Sprintf("end-to-end backup from FerretDB (%d users, %.1f MB BSON)", e.Users, float64(e.Backup.InBytes)/1e6),
			A0: e.Backup.MBps(), Baseline: e.Scan.MBps(), BaseName: "plain find scan of FerretDB", Unit: "MB/s BSON"})
		bound := "the FerretDB scan"
		if e.Backup.MBps() < 0.5*e.Scan.MBps() {
			bound = "a0's own stages, not the scan"
		}
		rep.Notes = append(rep.Notes, fmt.Sprintf("end-to-end: scan %.1f MB/s vs backup %.1f MB/s vs pipeline %.1f MB/s: bounded by %s", e.Scan.MBps(), e.Backup.MBps(), a0MB, bound))
	}
	for name, rs := range map[string][]bench.Result{"a0_pipeline": a0, "tar_czf_openssl": gz, "tar_pigz_openssl": pz, "restore_file_side": rest, "openssl_pigz_untar": restBase, "retrieve": retr} {
		for _, r := range rs {
			rep.Raw[name] = append(rep.Raw[name], map[string]any{"seconds": r.Seconds, "cpu_seconds": r.CPUSeconds, "mb_s": r.MBps(), "ratio": r.Ratio()})
		}
	}
	rep.Notes = append(rep.Notes, "medians of "+strconv.Itoa(rep.Runs)+" runs; MB = 10^6 bytes of BSON unless the unit says otherwise; data read from the page cache")
}

func printTable(w io.Writer, rep *Report) {
	data := fmt.Sprintf("  data %s (%d docs)  runs %d (median)", fmtBytes(rep.DataBytes), rep.DataDocs, rep.Runs)
	if rep.DataBytes == 0 {
		data = "  (pipeline figures skipped)"
	}
	fmt.Fprintf(w, "a0bench %s  %d CPUs  load at start %s%s\n\n", rep.Date.Format(time.RFC3339), rep.CPUs, rep.LoadAvg, data)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\ta0\tbaseline\tgoal\tmet?")
	for _, r := range rep.Rows {
		base := ""
		if r.BaseName != "" {
			base = fmt.Sprintf("%.1f (%s)", r.Baseline, r.BaseName)
			if r.Unit == "x" && strings.HasPrefix(r.Figure, "compression") {
				base = fmt.Sprintf("%.2f (%s)", r.Baseline, r.BaseName)
			}
		}
		a0 := fmt.Sprintf("%.1f %s", r.A0, r.Unit)
		switch r.Unit {
		case "docs/s", "requests", "errors":
			a0 = fmt.Sprintf("%.0f %s", r.A0, r.Unit)
			if r.BaseName != "" {
				base = fmt.Sprintf("%.0f (%s)", r.Baseline, r.BaseName)
			}
		case "MB/s BSON":
			if r.A0 < 10 {
				a0 = fmt.Sprintf("%.2f %s", r.A0, r.Unit)
				if r.BaseName != "" {
					base = fmt.Sprintf("%.2f (%s)", r.Baseline, r.BaseName)
				}
			}
		}
		if r.Unit == "x" {
			a0 = fmt.Sprintf("%.2fx", r.A0)
		}
		met := "-"
		if r.Met != nil {
			met = map[bool]string{true: "yes", false: "NO"}[*r.Met]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Figure, a0, base, r.Goal, met)
	}
	tw.Flush()
	for _, n := range rep.Notes {
		fmt.Fprintln(w, "note:", n)
	}
}

func median(rs []bench.Result, f func(bench.Result) float64) float64 {
	if len(rs) == 0 {
		return 0
	}
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	sort.Float64s(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func mkdir(parent, name string) string {
	p := filepath.Join(parent, name)
	os.MkdirAll(p, 0o700)
	return p
}

// parseSize reads 64MB, 100MB (10^6), 1GiB, 512MiB or a plain byte count.
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}}
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			n, err := strconv.ParseFloat(strings.TrimSuffix(s, u.suffix), 64)
			if err != nil || n <= 0 {
				return 0, fmt.Errorf("bad size %q", s)
			}
			return int64(n * float64(u.mult)), nil
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n, nil
}

func fmtBytes(n int64) string {
	if n >= 1<<30 {
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	}
	return fmt.Sprintf("%.0f MB", float64(n)/1e6)
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// pipelineFigures is the backup pipeline, its shell baselines, the file side
// of restore, retrieve and the end-to-end backup, on one generated data set.
func pipelineFigures(ctx context.Context, rep *Report, exe, work string, size, small int64, runs, users int, skipRetrieve bool, logf func(string, ...any)) error {
	const password = "a0bench-Passw0rd"
	logf("generating %s of BSON (and %s for the RSS check) in %s", fmtBytes(size), fmtBytes(small), work)
	ds, err := bench.Generate(mkdir(work, "data"), size, 1)
	if err != nil {
		return err
	}
	dsSmall, err := bench.Generate(mkdir(work, "data-small"), small, 1)
	if err != nil {
		return err
	}
	rep.DataBytes, rep.DataDocs, rep.SmallBytes = ds.Bytes(), ds.Documents(), dsSmall.Bytes()

	// a0 backup pipeline, in a child process for its own peak RSS.
	var a0 []bench.Result
	var rss int64
	var lastSlot string
	for i := range runs {
		lastSlot = filepath.Join(work, fmt.Sprintf("slot-%d", i))
		r, peak, err := bench.ChildPipeline(exe, ds.Root, lastSlot, password)
		if err != nil {
			return err
		}
		logf("a0 pipeline run %d: %.1f MB/s, ratio %.3f, peak RSS %.1f MB, %.1f CPU s", i+1, r.MBps(), r.Ratio(), float64(peak)/1e6, r.CPUSeconds)
		a0 = append(a0, r)
		rss = max(rss, peak)
		if i < runs-1 {
			os.RemoveAll(lastSlot)
		}
	}
	a0File := a0[len(a0)-1].File
	_, rssSmall, err := bench.ChildPipeline(exe, dsSmall.Root, filepath.Join(work, "slot-small"), password)
	if err != nil {
		return err
	}
	os.RemoveAll(filepath.Join(work, "slot-small"))
	os.RemoveAll(dsSmall.Root)
	logf("a0 pipeline on %s: peak RSS %.1f MB", fmtBytes(dsSmall.Bytes()), float64(rssSmall)/1e6)

	// Shell baselines on the same data.
	baseline := func(name, script string) ([]bench.Result, error) {
		var rs []bench.Result
		for i := range runs {
			out := filepath.Join(work, name+".enc")
			os.Remove(out)
			r, err := bench.ShellBackup(script, ds, out, password)
			if err != nil {
				return nil, err
			}
			logf("%s run %d: %.1f MB/s, ratio %.3f, %.1f CPU s", name, i+1, r.MBps(), r.Ratio(), r.CPUSeconds)
			rs = append(rs, r)
		}
		return rs, nil
	}
	gz, err := baseline("tar-czf-openssl", bench.BaselineTarGz)
	if err != nil {
		return err
	}
	os.Remove(gz[0].File)
	pz, err := baseline("tar-pigz-openssl", bench.BaselinePigz)
	if err != nil {
		return err
	}

	// Restore file side, and its baseline on the pigz file.
	var rest, restBase []bench.Result
	for i := range runs {
		r, err := bench.RestoreFileSide(ctx, a0File, []byte(password))
		if err != nil {
			return err
		}
		logf("restore file side run %d: %.1f MB/s", i+1, r.MBps())
		rest = append(rest, r)
	}
	for i := range runs {
		r, err := bench.ShellRestore(pz[0].File, ds, work, password)
		if err != nil {
			return err
		}
		logf("openssl -d | pigz -d | tar x run %d: %.1f MB/s", i+1, r.MBps())
		restBase = append(restBase, r)
	}
	os.Remove(pz[0].File)

	// Retrieve over loopback with a real agent and the real CLI.
	var retr []bench.Result
	if !skipRetrieve {
		node, err := bench.StartNode(ctx, mkdir(work, "node"))
		if err != nil {
			return err
		}
		err = node.InstallBackup(lastSlot)
		for i := 0; err == nil && i < runs; i++ {
			var r bench.Result
			if r, err = node.Retrieve(ctx, filepath.Join(work, "retrieved.enc")); err == nil {
				logf("backup-retrieve run %d: %.1f MB/s", i+1, r.MBps())
				retr = append(retr, r)
			}
		}
		node.Close()
		if err != nil {
			return err
		}
		os.RemoveAll(filepath.Join(work, "node"))
	}
	os.RemoveAll(lastSlot)

	// End to end against FerretDB.
	if users > 0 {
		logf("seeding %d users into embedded FerretDB", users)
		e, err := bench.RunEndToEnd(ctx, mkdir(work, "e2e"), users, []byte(password))
		if err != nil {
			return err
		}
		rep.EndToEnd = e
		logf("end-to-end: %d docs, %.1f MB BSON: scan %.1f MB/s, backup %.1f MB/s", e.Documents, float64(e.Backup.InBytes)/1e6, e.Scan.MBps(), e.Backup.MBps())
		os.RemoveAll(filepath.Join(work, "e2e"))
	}

	fill(rep, a0, gz, pz, rest, restBase, retr, rss, rssSmall)
	return nil
}

// restoreDBFigures generates a data set of size, seals it with the real
// pipeline and compares the real restore into a fresh FerretDB with plain
// parallel InsertMany of the same documents.
func restoreDBFigures(ctx context.Context, exe, work string, size int64, pars []int, restorePar int, password string, logf func(string, ...any)) (*bench.RestoreDBFigures, error) {
	dir := mkdir(work, fmt.Sprintf("restore-db-%d", size))
	defer os.RemoveAll(dir)
	logf("restore into FerretDB: generating %s of BSON", fmtBytes(size))
	ds, err := bench.Generate(mkdir(dir, "data"), size, 1)
	if err != nil {
		return nil, err
	}
	r, _, err := bench.SealedPipeline(ds, filepath.Join(dir, "slot"), []byte(password), archive.Options{})
	if err != nil {
		return nil, err
	}
	return bench.MeasureRestoreDB(ctx, exe, dir, ds, r.File, password, pars, restorePar, logf)
}

func fillRestoreDB(rep *Report) {
	yes := func(b bool) *bool { return &b }
	var rssFirst int64
	for i, f := range rep.RestoreDB {
		r, b := f.Restore, f.Best
		label := fmt.Sprintf("%s, %d docs", fmtBytes(f.DataBytes), f.Documents)
		rep.Rows = append(rep.Rows, Row{Figure: "restore document rate into FerretDB (data phase), " + label, A0: r.DataDocsPerSec(), Baseline: b.DocsPerSec(),
			BaseName: fmt.Sprintf("best plain InsertMany, x%d", b.Parallel), Unit: "docs/s", Goal: ">= 0.8 x plain", Met: yes(f.Ratio() >= 0.8)})
		rep.Rows = append(rep.Rows, Row{Figure: "  restore document rate / plain, " + fmtBytes(f.DataBytes), A0: f.Ratio(), Unit: "x", Goal: ">= 0.8", Met: yes(f.Ratio() >= 0.8)})
		// The whole restore also authenticates the file first, builds every
		// index and counts: work plain inserts do not do. Shown, not judged
		// against plain inserts; the like-for-like baseline adds the same
		// index builds to the plain run.
		rep.Rows = append(rep.Rows, Row{Figure: "  whole restore (auth pass + data + indexes + count), " + fmtBytes(f.DataBytes), A0: r.DocsPerSec(), Baseline: b.DocsPerSec(),
			BaseName: fmt.Sprintf("best plain InsertMany, x%d (%.2fx)", b.Parallel, f.WholeRatio()), Unit: "docs/s"})
		withIdx := float64(b.Documents) / (b.Seconds + f.IndexSeconds)
		rep.Rows = append(rep.Rows, Row{Figure: "  whole restore / (plain inserts + same index builds), " + fmtBytes(f.DataBytes),
			A0: r.DocsPerSec() / withIdx, Baseline: withIdx, BaseName: "plain InsertMany + createIndexes docs/s", Unit: "x", Goal: ">= 0.8", Met: yes(r.DocsPerSec()/withIdx >= 0.8)})
		row := Row{Figure: "restore peak RSS (child), " + fmtBytes(f.DataBytes) + " data", A0: float64(r.PeakRSS) / 1e6, Unit: "MB"}
		if i == 0 {
			rssFirst = r.PeakRSS
		} else {
			row.Goal = "flat: <= 1.2 x smaller run"
			row.Met = yes(float64(r.PeakRSS) <= 1.2*float64(rssFirst))
		}
		rep.Rows = append(rep.Rows, row)
		var plain []string
		for _, p := range f.Plain {
			plain = append(plain, fmt.Sprintf("x%d %.0f", p.Parallel, p.DocsPerSec()))
		}
		par := "default"
		if r.Parallel > 0 {
			par = strconv.Itoa(r.Parallel)
		}
		rep.Notes = append(rep.Notes, fmt.Sprintf("restore %s: %.1f s total (Plan %.1f s, data phase %.1f s, last document acknowledged at %.1f s; Parallel %s; child CPU %.1f s; ok %v, index errors %d); plain InsertMany docs/s: %s; on the x%d plain database afterwards, restore's index builds took %.1f s and its count check %.1f s",
			fmtBytes(f.DataBytes), r.Seconds, r.PlanSeconds, r.DataSeconds, r.InsertSeconds, par, r.CPUSeconds, r.OK, r.IndexErrors, strings.Join(plain, ", "),
			f.Plain[0].Parallel, f.IndexSeconds, f.CountSeconds))
	}
}

func fillLoad(rep *Report, d time.Duration) {
	yes := func(b bool) *bool { return &b }
	f := rep.Load
	l := f.Load
	rep.Rows = append(rep.Rows,
		Row{Figure: fmt.Sprintf("load: %d mTLS clients x %.0f s of ping + backup-status (pause %.0f ms) during an agent backup", l.Clients, d.Seconds(), l.PauseMS), A0: float64(l.Requests), Unit: "requests",
			Goal: "all answered (0 errors)", Met: yes(l.Errors == 0 && l.Requests > 0)},
		Row{Figure: "  load: errors", A0: float64(l.Errors), Unit: "errors", Goal: "0", Met: yes(l.Errors == 0)},
		Row{Figure: "  load: latency p50", A0: l.P50ms, Unit: "ms"},
		Row{Figure: "  load: latency p99", A0: l.P99ms, Unit: "ms"},
		Row{Figure: fmt.Sprintf("agent backup rate under that load (%d users, %.0f MB BSON)", f.Users, float64(f.BSONBytes)/1e6), A0: f.Loaded.MBps(), Baseline: f.AloneMBps(),
			BaseName: "same backup, no clients", Unit: "MB/s BSON", Goal: "drop < 20%", Met: yes(f.Drop() < 0.2)},
	)
	var alone []string
	for _, b := range f.Alone {
		alone = append(alone, fmt.Sprintf("%.1f s (%.2f MB/s)", b.Seconds, b.MBps()))
	}
	rep.Notes = append(rep.Notes, fmt.Sprintf("load: backup alone %s, under load %.1f s (%.2f MB/s): drop %.1f%%; %.0f requests/s; max latency %.1f ms; load window inside the backup: %v; %d docs, %.1f MB BSON seeded in %.0f s%s",
		strings.Join(alone, " and "), f.Loaded.Seconds, f.Loaded.MBps(), 100*f.Drop(), float64(l.Requests)/l.Seconds, l.Maxms, f.Covered, f.Documents, float64(f.BSONBytes)/1e6, f.SeedSecs,
		map[bool]string{true: "", false: "; first error: " + l.FirstError}[l.Errors == 0]))
}

func fillLive(rep *Report, f *bench.LiveFigures) {
	yes := func(b bool) *bool { return &b }
	// live: the agent's embedded server (a0's SQLite side channels);
	// external: a server of its own, over the wire only (issue 27).
	label, server := "live", "embedded server"
	backupGoal, backupMet := ">= 2x", 2.0
	if f.External {
		label, server = "external", "external server, own process"
	}
	var a0b, accepted, first, reads, after, a0r, a0data, plan, data, rest, idx, cnt []float64
	for _, b := range f.A0Backup {
		a0b, accepted, first, reads, after = append(a0b, b.Seconds), append(accepted, b.Accepted), append(first, b.FirstByte), append(reads, b.Reads), append(after, b.After)
	}
	for i, r := range f.A0Restore {
		w := r.Seconds
		if i < len(f.A0RestoreWall) {
			w = f.A0RestoreWall[i]
		}
		a0r, a0data = append(a0r, w), append(a0data, r.DataDocsPerSec())
		plan, data, rest = append(plan, r.PlanSeconds), append(data, r.DataSeconds), append(rest, r.Seconds-r.InsertSeconds)
		idx, cnt = append(idx, r.IndexSeconds), append(cnt, r.ReportSeconds)
	}
	br, rr := bench.Median(f.BackupRatios), bench.Median(f.RestoreRatios)
	stockDocs := float64(f.StockDocs) / bench.Median(f.StockRestore)
	if len(f.A0Backup) > 0 {
		rep.Rows = append(rep.Rows,
			Row{Figure: fmt.Sprintf("%s: backup speed-up over mongodump --archive --gzip | openssl (%s, %d users, %.1f MB BSON, oplog %.1f MB)", label, server, f.Users, float64(f.DataBytes)/1e6, float64(f.OplogBytes)/1e6),
				A0: br, Unit: "x", Goal: backupGoal, Met: yes(br >= backupMet)},
			Row{Figure: fmt.Sprintf("  %s: point-in-time backup, start to Backup found", label), A0: bench.Median(a0b), Baseline: bench.Median(f.StockBackup), BaseName: "mongodump | openssl enc, s", Unit: "s"},
		)
	}
	rep.Rows = append(rep.Rows,
		Row{Figure: fmt.Sprintf("%s: whole restore speed-up over openssl -d | mongorestore --noIndexRestore", label), A0: rr, Unit: "x", Goal: ">= 1x (no slower)", Met: yes(rr >= 1)},
		Row{Figure: fmt.Sprintf("  %s: whole restore (auth pass, data, indexes, oplog replay, count)", label), A0: bench.Median(a0r), Baseline: bench.Median(f.StockRestore), BaseName: "openssl -d | mongorestore, s", Unit: "s"},
		Row{Figure: fmt.Sprintf("  %s: restore data phase", label), A0: bench.Median(a0data), Baseline: stockDocs, BaseName: "mongorestore, whole run", Unit: "docs/s"},
	)
	ratios := func(xs []float64) string {
		var s []string
		for _, x := range xs {
			s = append(s, fmt.Sprintf("%.2f", x))
		}
		return strings.Join(s, " ")
	}
	if len(f.A0Backup) > 0 {
		rep.Notes = append(rep.Notes,
			fmt.Sprintf("%s: %d docs seeded in %.0f s through FerretDB; the oplog holds %d entries, %.1f MB (%.2fx the data); a0 file %.1f MB, stock file %.1f MB",
				label, f.DataDocs, f.SeedSeconds, f.OplogEntries, float64(f.OplogBytes)/1e6, float64(f.OplogBytes)/float64(f.DataBytes), float64(f.A0FileBytes)/1e6, float64(f.StockFileBytes)/1e6),
			fmt.Sprintf("%s: a0 backup phases (medians): POST answered (size check, totals) %.1f s; to the first byte (202, oplog start, listing, estimates) %.1f s, reads %.1f s, after the last read (oplog tail and end, packing, seal, read-back) %.1f s",
				label, bench.Median(accepted), bench.Median(first), bench.Median(reads), bench.Median(after)),
		)
	} else {
		// --external-files: the restores of kept files, no backup run.
		rep.Notes = append(rep.Notes, fmt.Sprintf("%s: restores only, of kept files: a0 file %.1f MB, stock file %.1f MB", label, float64(f.A0FileBytes)/1e6, float64(f.StockFileBytes)/1e6))
	}
	rep.Notes = append(rep.Notes,
		fmt.Sprintf("%s: a0 restore phases (medians): authentication pass %.1f s, data phase %.1f s, after the last document (indexes, oplog replay, count) %.1f s, of which index builds %.1f s and the count check %.1f s", label, bench.Median(plan), bench.Median(data), bench.Median(rest), bench.Median(idx), bench.Median(cnt)),
		fmt.Sprintf("%s: pair by pair (stock / a0): backup %s; restore %s; the restore replayed %d oplog entries", label, ratios(f.BackupRatios), ratios(f.RestoreRatios), f.OplogReplayed),
	)
	if len(f.StockServerCPU) > 0 {
		// The server's CPU per restore does not move with the machine's
		// other load as the wall times do.
		var a0cpu, cpuRatios []float64
		for i, r := range f.A0Restore {
			a0cpu = append(a0cpu, r.ServerCPUSeconds)
			if i < len(f.StockServerCPU) && r.ServerCPUSeconds > 0 {
				cpuRatios = append(cpuRatios, f.StockServerCPU[i]/r.ServerCPUSeconds)
			}
		}
		rep.Notes = append(rep.Notes, fmt.Sprintf("%s: the server process's CPU per restore (medians): a0 %.1f s, stock %.1f s; pair by pair (stock / a0) %s",
			label, bench.Median(a0cpu), bench.Median(f.StockServerCPU), ratios(cpuRatios)))
	}
}
