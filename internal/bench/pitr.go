package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"filippo.io/age"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/a0backup/a0/internal/agent"
	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/bench/oplogsim"
	"github.com/a0backup/a0/internal/crypt"
	"github.com/a0backup/a0/internal/embedded"
	"github.com/a0backup/a0/internal/ops"
	"github.com/a0backup/a0/internal/pitr"
)

// ArchiverChildArg is the hidden subcommand `a0bench pitr-archiver URI DIR
// RECIPIENT SLICE`: the continuous archive's Archiver alone, tailing the
// oplog of the server at URI as the agent does for an external server
// (pitr.MongoSource), into DIR, until SIGTERM; it then prints its own peak
// RSS as JSON. A process of its own, so that its CPU time and memory are
// the archiver's and nothing else's.
const ArchiverChildArg = "pitr-archiver"

// RunArchiverChild is the pitr-archiver subcommand's body.
func RunArchiverChild(ctx context.Context, uri, dir, recipient string, slice time.Duration) error {
	r, err := age.ParseX25519Recipient(recipient)
	if err != nil {
		return err
	}
	c, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		return err
	}
	defer c.Disconnect(context.WithoutCancel(ctx))
	a, err := pitr.New(pitr.Config{Source: pitr.NewMongoSource(c), Dir: dir, Recipients: []age.Recipient{r}, SliceLength: slice, Node: "a0bench"})
	if err != nil {
		return err
	}
	if err := a.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	st := a.Status()
	return json.NewEncoder(os.Stdout).Encode(struct {
		PeakRSS int64 `json:"peak_rss"`
		Slices  int   `json:"slices"`
	}{SelfPeakRSS(), st.Slices})
}

// PITRFigures are issue 26's numbers: RPO under a steady writer, the
// archiver's cost, the archive's size and verification speed, and the
// replay rate of a restore to a point in time.
type PITRFigures struct {
	// Mode is where the archive's source ran: "external" (a wire-server
	// process, the archiver a process of its own tailing it over the
	// wire, as the agent does for an external server), "embedded" (a
	// real agent's archive on its embedded server; the Archiver* figures
	// are then the whole process's RSS, server and writer included, and
	// no CPU figure) or "oplog-server" (a simulated mongod oplog: see
	// Source).
	Mode string `json:"mode"`
	// Source labels a simulated source ("oplog-server" mode: a simulated
	// mongod oplog, not a real server); empty for a real one.
	Source       string  `json:"source,omitempty"`
	Seconds      float64 `json:"seconds"`
	SliceSeconds float64 `json:"slice_seconds"`
	TargetRate   int     `json:"target_writes_per_second"`
	Writes       int64   `json:"writes"`
	Rate         float64 `json:"writes_per_second"`
	// Lag samples, once a second: the server's newest entry (the second
	// of the writer's newest acknowledged write, which its entry's ts does
	// not follow) minus the newest archived entry (durable slices only),
	// in whole seconds (an oplog ts counts seconds).
	LagSamples int     `json:"lag_samples"`
	LagP50     float64 `json:"lag_p50_seconds"`
	LagP99     float64 `json:"lag_p99_seconds"`
	LagMax     float64 `json:"lag_max_seconds"`
	// The archiver process: CPU seconds per wall second (1 = one core),
	// its peak RSS, and its RSS a tenth into the run and at the end (flat
	// memory).
	ArchiverCPU      float64 `json:"archiver_cpu_cores"`
	ArchiverPeakRSS  int64   `json:"archiver_peak_rss"`
	ArchiverRSSEarly int64   `json:"archiver_rss_early"`
	ArchiverRSSLate  int64   `json:"archiver_rss_late"`
	// The archive: entries, bytes on the device, bytes per entry, and an
	// hour at 1,000 writes/s extrapolated from that.
	Entries       int64   `json:"entries"`
	OplogBytes    int64   `json:"oplog_bson_bytes"`
	ArchiveBytes  int64   `json:"archive_bytes"`
	Slices        int     `json:"slices"`
	BytesPerEntry float64 `json:"bytes_per_entry"`
	HourBytes     float64 `json:"hour_at_1000_per_second_bytes"`
	// Verify (authenticate, decompress, check the chain) against a plain
	// read of the same files, both from the page cache.
	VerifySeconds float64 `json:"verify_seconds"`
	VerifyMBs     float64 `json:"verify_mb_per_second"`
	ReadMBs       float64 `json:"read_mb_per_second"`
	// Load is /proc/loadavg at the start and the end.
	LoadStart string `json:"load_start"`
	LoadEnd   string `json:"load_end"`
}

// ReplayFigures are the replay rate of restore --to-ts through a real
// agent: the same base restored to its own consistent_to (nothing
// replayed) and to the archive's newest entry; the difference is the
// replay of the archive's entries.
type ReplayFigures struct {
	Mode           string  `json:"mode"`
	Documents      int64   `json:"documents"`
	Entries        int64   `json:"entries"`
	BaseSeconds    float64 `json:"restore_to_base_seconds"`
	PITRSeconds    float64 `json:"restore_to_newest_seconds"`
	EntriesPerSec  float64 `json:"entries_per_second"`
	LoadStart      string  `json:"load_start"`
	LoadEnd        string  `json:"load_end"`
	WriteSeconds   float64 `json:"write_seconds"`
	ArchiveSlices  int     `json:"slices"`
	ArchiveBytes   int64   `json:"archive_bytes"`
	BytesPerEntry  float64 `json:"bytes_per_entry"`
	ReplayedChecks string  `json:"checked"`
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.TrimSpace(string(b))
}

// pitrWriter writes at a steady rate across three collections of
// db "pitrbench" (half inserts, three in ten updates, the rest deletes),
// from conc goroutines with disjoint ids, until stop is closed (a write
// in flight then completes). acked holds the unix second of the newest
// acknowledged write.
func pitrWriter(ctx context.Context, stop <-chan struct{}, c *mongo.Client, rate, conc int, n, acked *atomic.Int64) error {
	var wg sync.WaitGroup
	errs := make(chan error, conc)
	interval := time.Duration(float64(time.Second) * float64(conc) / float64(rate))
	for g := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 26))
			colls := []*mongo.Collection{c.Database("pitrbench").Collection("orders"), c.Database("pitrbench").Collection("users"), c.Database("pitrbench").Collection("events")}
			var ids [3][]int64
			next := int64(g) << 40
			due := time.Now()
			for {
				select {
				case <-stop:
					return
				default:
				}
				k := rng.IntN(3)
				coll := colls[k]
				var err error
				switch r := rng.IntN(10); {
				case r < 5 || len(ids[k]) < 10:
					next++
					_, err = coll.InsertOne(ctx, bson.D{{Key: "_id", Value: next}, {Key: "v", Value: rng.IntN(1000)},
						{Key: "s", Value: fmt.Sprintf("order-%d-%s", next, strings.Repeat("x", 60))}, {Key: "at", Value: time.Now()}})
					ids[k] = append(ids[k], next)
				case r < 8:
					_, err = coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: ids[k][rng.IntN(len(ids[k]))]}},
						bson.D{{Key: "$set", Value: bson.D{{Key: "v", Value: rng.IntN(1000)}}}, {Key: "$inc", Value: bson.D{{Key: "n", Value: 1}}}})
				default:
					i := rng.IntN(len(ids[k]))
					_, err = coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: ids[k][i]}})
					ids[k] = append(ids[k][:i], ids[k][i+1:]...)
				}
				if err != nil {
					errs <- err
					return
				}
				n.Add(1)
				if now := time.Now().Unix(); now > acked.Load() {
					acked.Store(now) // a race with another goroutine only makes it older: the lag larger
				}
				due = due.Add(interval)
				if d := time.Until(due); d > 0 {
					select {
					case <-stop:
					case <-time.After(d):
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// serverNewest is the newest oplog entry's ts outside local.* (the
// newest hundred in natural order, as the agent reads it).
func serverNewest(ctx context.Context, c *mongo.Client) (bson.Timestamp, error) {
	cur, err := c.Database("local").Collection("oplog.rs").Find(ctx, bson.D{},
		options.Find().SetSort(bson.D{{Key: "$natural", Value: -1}}).SetLimit(100).SetProjection(bson.D{{Key: "ts", Value: 1}, {Key: "ns", Value: 1}}))
	if err != nil {
		return bson.Timestamp{}, err
	}
	defer cur.Close(ctx)
	var newest bson.Timestamp
	for cur.Next(ctx) {
		if ns, _ := cur.Current.Lookup("ns").StringValueOK(); strings.HasPrefix(ns, "local.") {
			continue
		}
		if t, i, ok := cur.Current.Lookup("ts").TimestampOK(); ok && newest.Before(bson.Timestamp{T: t, I: i}) {
			newest = bson.Timestamp{T: t, I: i}
		}
	}
	return newest, cur.Err()
}

func archivedNewest(dir string) (bson.Timestamp, error) {
	ar, err := pitr.Open(dir, crypt.Unlock{})
	if err != nil || len(ar.Slices) == 0 {
		return bson.Timestamp{}, err
	}
	return ar.Slices[len(ar.Slices)-1].Last, nil
}

func rssOf(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(rest), "%d", &kb)
			return kb * 1024
		}
	}
	return 0
}

func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p)
	return sorted[i]
}

// MeasurePITR is the RPO figure against an external server: exe's
// wire-server as the source, exe's pitr-archiver tailing it into
// work/archive with slices of slice, a writer at rate writes/s for d; the
// lag sampled once a second; then the archive verified and read.
// embeddedMode measures a real agent's embedded archive instead.
func MeasurePITR(ctx context.Context, exe, work string, d, slice time.Duration, rate int, embeddedMode bool, logf func(string, ...any)) (*PITRFigures, error) {
	src := PITRSourceWireServer
	if embeddedMode {
		src = PITRSourceEmbedded
	}
	return MeasurePITRFrom(ctx, exe, work, src, d, slice, rate, logf)
}

// The sources MeasurePITRFrom measures the archive of.
const (
	// PITRSourceWireServer: exe's wire-server (FerretDB v1.24.2 with
	// local.oplog.rs, a process of its own), written to by a writer.
	PITRSourceWireServer = "wire-server"
	// PITRSourceEmbedded: a real agent's archive on its embedded server.
	PITRSourceEmbedded = "embedded"
	// PITRSourceOplogServer: exe's oplog-server, a SIMULATED mongod oplog
	// (oplogsim; no mongod runs here) whose generator writes rate
	// entries/s for d, tailed over the wire by the pitr-archiver process
	// as a MongoDB replica-set member is (a tailable awaitData cursor).
	PITRSourceOplogServer = "oplog-server"
)

// simTail is how long the oplog-server's generator runs past the lag
// samples, so that every sample is taken under the steady rate.
const simTail = 2 * time.Second

// MeasurePITRFrom is MeasurePITR with the source named (PITRSource*).
func MeasurePITRFrom(ctx context.Context, exe, work, source string, d, slice time.Duration, rate int, logf func(string, ...any)) (*PITRFigures, error) {
	f := &PITRFigures{Mode: "external", SliceSeconds: slice.Seconds(), TargetRate: rate, LoadStart: loadavg()}
	embeddedMode, simulated := false, false
	switch source {
	case PITRSourceWireServer:
	case PITRSourceEmbedded:
		embeddedMode = true
	case PITRSourceOplogServer:
		simulated = true
	default:
		return nil, fmt.Errorf("pitr bench: unknown source %q (%s, %s or %s)", source, PITRSourceWireServer, PITRSourceEmbedded, PITRSourceOplogServer)
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, err
	}
	var c *mongo.Client
	var dir string
	var cmd *exec.Cmd
	var stdout, stderr bytes.Buffer
	stopChild := func() error { return nil }
	var closeSim func() (oplogsim.Stats, error) // the oplog-server's, when it is the source
	pid := os.Getpid()
	if embeddedMode {
		// The agent's own archive on its embedded server (pitr.KeySource),
		// in this process: its CPU and memory are not told from the
		// server's and the writer's, and are not reported.
		f.Mode = "embedded"
		n, err := StartNodeWith(ctx, filepath.Join(work, "node"), "", NodeOptions{PITR: &agent.PITR{Slice: slice},
			Recipients: []string{id.Recipient().String()}})
		if err != nil {
			return nil, err
		}
		defer n.Close()
		c, dir = n.a.Client(), ops.OplogDir(n.Device)
		if _, err := c.Database("pitrbench").Collection("orders").InsertOne(ctx, bson.D{{Key: "_id", Value: -1}}); err != nil {
			return nil, err
		}
	} else {
		var uri string
		if simulated {
			// The simulation generates its entries itself, from its
			// start, for d; its oplog holds five minutes of them (the
			// archiver may trail that far before it loses its place).
			f.Mode, f.Source = PITRSourceOplogServer, OplogServerLabel
			srv, err := StartOplogServer(ctx, exe, filepath.Join(work, "oplog-server"), rate, d+simTail, max(rate*300, 10_000))
			if err != nil {
				return nil, err
			}
			defer srv.Close()
			closeSim = srv.Close
			uri = srv.URI
		} else {
			srv, err := StartWireServer(ctx, exe, filepath.Join(work, "server"))
			if err != nil {
				return nil, err
			}
			defer srv.Close()
			uri = srv.URI
		}
		if c, err = mongo.Connect(options.Client().ApplyURI(uri)); err != nil {
			return nil, err
		}
		defer c.Disconnect(context.WithoutCancel(ctx))
		dir = filepath.Join(work, "archive")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		if !simulated {
			// A first write, so that the archive starts at the run.
			if _, err := c.Database("pitrbench").Collection("orders").InsertOne(ctx, bson.D{{Key: "_id", Value: -1}}); err != nil {
				return nil, err
			}
		}
		cmd = exec.Command(exe, ArchiverChildArg, uri, dir, id.Recipient().String(), slice.String())
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		pid = cmd.Process.Pid
		childDone := make(chan error, 1)
		go func() { childDone <- cmd.Wait() }()
		stopChild = func() error {
			if cmd.Process == nil {
				return nil
			}
			cmd.Process.Signal(syscall.SIGTERM)
			err := <-childDone
			cmd.Process = nil
			if err != nil {
				return fmt.Errorf("pitr-archiver: %w: %s", err, stderr.String())
			}
			return nil
		}
		defer stopChild()
	}
	started := time.Now()

	if simulated {
		logf("pitr (%s): %s generating %d entries/s for %v, slices of %v", f.Mode, OplogServerLabel, rate, d, slice)
	} else {
		logf("pitr (%s): writer at %d writes/s for %v, slices of %v", f.Mode, rate, d, slice)
	}
	stop := make(chan struct{})
	timer := time.AfterFunc(d, func() { close(stop) })
	defer timer.Stop()
	var writes, acked atomic.Int64
	werr := make(chan error, 1)
	if simulated {
		werr <- nil // the oplog-server generates its own entries
	} else {
		go func() { werr <- pitrWriter(ctx, stop, c, rate, 8, &writes, &acked) }()
	}
	var lags []float64
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	wstart := time.Now()
	early := false
sample:
	for {
		select {
		case <-stop:
			break sample
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
		if !early && time.Since(wstart) > d/10 {
			f.ArchiverRSSEarly, early = rssOf(pid), true
		}
		// The server's newest entry is taken as the second of the newest
		// acknowledged write (this host's clock, the server's too): its
		// entry's ts second is not later. Reading it from the server
		// costs a read of the whole oplog on FerretDB ($natural: -1 is
		// sorted in memory), once a second, which loaded the server the
		// run measures (the figures of 2026-12-06 before the poll).
		srvTS := bson.Timestamp{T: uint32(acked.Load())}
		if simulated {
			// The simulation answers the newest entries from its
			// in-memory oplog, as a mongod from the end of its oplog
			// (a $natural: -1 find): the sample costs the source nothing
			// worth measuring.
			if srvTS, err = serverNewest(ctx, c); err != nil {
				return nil, err
			}
		}
		arch, err := archivedNewest(dir)
		if err != nil {
			return nil, err
		}
		if arch.IsZero() {
			continue // before the first slice closed
		}
		lag := 0.0
		if srvTS.T > arch.T {
			lag = float64(srvTS.T - arch.T)
		}
		lags = append(lags, lag)
		if len(lags)%30 == 0 && simulated {
			logf("pitr: %v: simulated oplog at %d.%d, lag %.0f s", time.Since(wstart).Round(time.Second), srvTS.T, srvTS.I, lag)
		} else if len(lags)%30 == 0 {
			logf("pitr: %v: %d writes (%.0f/s), lag %.0f s", time.Since(wstart).Round(time.Second), writes.Load(), float64(writes.Load())/time.Since(wstart).Seconds(), lag)
		}
	}
	if err := <-werr; err != nil {
		return nil, fmt.Errorf("pitr writer: %w", err)
	}
	f.Seconds = time.Since(wstart).Seconds()
	f.Writes = writes.Load()
	f.Rate = float64(f.Writes) / f.Seconds
	// Let the last slice close, then stop the archiver.
	newest, err := serverNewest(ctx, c)
	if err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(slice + 30*time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if simulated {
			// The generator runs simTail past the samples: wait for its
			// very last entry.
			if newest, err = serverNewest(ctx, c); err != nil {
				return nil, err
			}
		}
		if a, _ := archivedNewest(dir); !a.Before(newest) && (!simulated || time.Since(wstart) > d+simTail) {
			break
		}
	}
	f.ArchiverRSSLate = rssOf(pid)
	wall := time.Since(started).Seconds()
	if err := stopChild(); err != nil {
		return nil, err
	}
	if closeSim != nil {
		st, err := closeSim()
		if err != nil {
			return nil, err
		}
		// The generator ran for d, paced by the clock.
		f.Writes, f.Rate = st.Entries, float64(st.Entries)/(d+simTail).Seconds()
	}
	if cmd != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			f.ArchiverCPU = float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9 / wall
		}
		var child struct {
			PeakRSS int64 `json:"peak_rss"`
		}
		if err := json.Unmarshal(stdout.Bytes(), &child); err == nil {
			f.ArchiverPeakRSS = child.PeakRSS
		}
	}
	sort.Float64s(lags)
	f.LagSamples, f.LagP50, f.LagP99 = len(lags), percentile(lags, 0.50), percentile(lags, 0.99)
	if len(lags) > 0 {
		f.LagMax = lags[len(lags)-1]
	}

	// The archive: size, verification against a plain read.
	ar, err := pitr.Open(dir, crypt.Unlock{})
	if err != nil {
		return nil, err
	}
	f.Slices = len(ar.Slices)
	for _, s := range ar.Slices {
		f.ArchiveBytes += s.Size
	}
	readStart := time.Now()
	for _, s := range ar.Slices {
		fh, err := os.Open(s.Path)
		if err != nil {
			return nil, err
		}
		_, err = io.Copy(io.Discard, fh)
		fh.Close()
		if err != nil {
			return nil, err
		}
	}
	f.ReadMBs = float64(f.ArchiveBytes) / 1e6 / time.Since(readStart).Seconds()
	vstart := time.Now()
	proof, err := pitr.Verify(ctx, dir, crypt.Unlock{Identities: []age.Identity{id}})
	if err != nil {
		return nil, err
	}
	f.VerifySeconds = time.Since(vstart).Seconds()
	f.VerifyMBs = float64(f.ArchiveBytes) / 1e6 / f.VerifySeconds
	f.Entries = proof.Entries
	if f.Entries > 0 {
		f.BytesPerEntry = float64(f.ArchiveBytes) / float64(f.Entries)
		f.HourBytes = f.BytesPerEntry * 1000 * 3600
	}
	if f.OplogBytes, err = archiveBSONBytes(ctx, ar, proof, id); err != nil {
		return nil, err
	}
	f.LoadEnd = loadavg()
	return f, nil
}

// archiveBSONBytes sums the entries' BSON sizes (the compression's input).
func archiveBSONBytes(ctx context.Context, ar *pitr.Archive, proof *pitr.Proof, id age.Identity) (int64, error) {
	ar2, err := pitr.Open(ar.Dir, crypt.Unlock{Identities: []age.Identity{id}})
	if err != nil {
		return 0, err
	}
	var n int64
	for _, w := range proof.Windows {
		if err := ar2.Entries(ctx, w.From, w.To, func(raw bson.Raw) error { n += int64(len(raw)); return nil }); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// MeasureReplay is the replay rate of restore --to-ts through a real agent
// (embedded server: uri ""; else the server at uri): docs documents in
// pitrbench.items (ObjectId _ids; the base, backed up while the archive runs), then
// entries updates, inserts and deletes on them as fast as they go,
// archived; then the base restored to its consistent_to and to the
// newest entry, timed.
//
// dbDir is the SQLite directory of the server at uri ("" for the embedded
// server: the node's own). The writes after the base find each document
// by _id on the source (FerretDB's UpdateAll and DeleteAll), a read of the
// whole table each without an index on that lookup (0.4 s at 100k
// documents: 20,000 writes took hours); the source's collection gets the
// index the restore gives its target on the embedded server
// (embedded.IndexIDLookups). It is invisible to clients and goes with the
// collection when the restore drops it: the replay has only the indexes
// the restore makes itself (none on an external server).
func MeasureReplay(ctx context.Context, work, uri, dbDir string, docs, entries int, logf func(string, ...any)) (*ReplayFigures, error) {
	mode := "embedded"
	if uri != "" {
		mode = "external"
	}
	f := &ReplayFigures{Mode: mode, Documents: int64(docs), LoadStart: loadavg()}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, err
	}
	n, err := StartNodeWith(ctx, filepath.Join(work, "replay-node"), uri, NodeOptions{PITR: &agent.PITR{Slice: 10 * time.Second, Retry: time.Second},
		Recipients: []string{id.Recipient().String()}})
	if err != nil {
		return nil, err
	}
	defer n.Close()
	key := filepath.Join(work, "replay-age.key")
	if err := os.WriteFile(key, []byte(id.String()+"\n"), 0o600); err != nil {
		return nil, err
	}
	c := n.a.Client()
	coll := c.Database("pitrbench").Collection("items")
	logf("replay (%s): seeding %d documents", mode, docs)
	batch := make([]any, 0, 1000)
	for i := range docs {
		batch = append(batch, bson.D{{Key: "_id", Value: bson.NewObjectID()}, {Key: "n", Value: int64(i)}, {Key: "v", Value: i % 1000}, {Key: "s", Value: fmt.Sprintf("item-%d-%s", i, strings.Repeat("y", 100))}})
		if len(batch) == cap(batch) || i == docs-1 {
			if _, err := coll.InsertMany(ctx, batch); err != nil {
				return nil, err
			}
			batch = batch[:0]
		}
	}
	if dbDir == "" {
		dbDir = filepath.Join(n.State, "db")
	}
	if _, err := embedded.IndexIDLookups(ctx, dbDir, "pitrbench", []string{"items"}); err != nil {
		return nil, err
	}
	time.Sleep(1100 * time.Millisecond) // the base's consistent_to after the archive's first second
	if err := waitArchive(ctx, n, c, 20*time.Minute, logf); err != nil {
		return nil, err
	}
	if _, err := n.liveBackup(ctx, "", true); err != nil {
		return nil, err
	}
	time.Sleep(1100 * time.Millisecond)
	logf("replay (%s): %d writes after the base", mode, entries)
	// In bulk, so that the writes themselves take little time: each
	// command logs one entry per document (the source finds them by n,
	// one read of the collection per command). Rounds of 1,000 inserts,
	// 1,000 updates, 200 deletes. The _ids are ObjectIds, as drivers
	// make them: FerretDB v1.24.2 finds a document by a number _id only
	// by reading the whole collection (1.9 s per statement at 100k
	// documents), whatever a0 does (restore's indexedLookup).
	next := int64(docs)
	wstart := time.Now()
	written := 0
	for round := int64(0); written < entries; round++ {
		batch = batch[:0]
		for range 1000 {
			next++
			batch = append(batch, bson.D{{Key: "_id", Value: bson.NewObjectID()}, {Key: "n", Value: next}, {Key: "v", Value: 1}, {Key: "s", Value: "new"}})
		}
		if _, err := coll.InsertMany(ctx, batch); err != nil {
			return nil, err
		}
		lo := (round * 1200) % int64(docs)
		u, err := coll.UpdateMany(ctx, bson.D{{Key: "n", Value: bson.D{{Key: "$gte", Value: lo}, {Key: "$lt", Value: lo + 1000}}}},
			bson.D{{Key: "$inc", Value: bson.D{{Key: "v", Value: 1}}}})
		if err != nil {
			return nil, err
		}
		d, err := coll.DeleteMany(ctx, bson.D{{Key: "n", Value: bson.D{{Key: "$gte", Value: lo + 1000}, {Key: "$lt", Value: lo + 1200}}}})
		if err != nil {
			return nil, err
		}
		written += 1000 + int(u.ModifiedCount) + int(d.DeletedCount)
	}
	f.WriteSeconds = time.Since(wstart).Seconds()
	if err := waitArchive(ctx, n, c, 20*time.Minute, logf); err != nil {
		return nil, err
	}
	st, err := pitrStatus(ctx, n)
	if err != nil {
		return nil, err
	}
	if len(st.Windows) != 1 {
		return nil, fmt.Errorf("replay: pitr-status windows %+v", st.Windows)
	}
	f.ArchiveSlices, f.ArchiveBytes = st.Slices, st.Bytes
	w := st.Windows[0]
	base, to := bson.Timestamp{T: w.FromTS.T, I: w.FromTS.I}, bson.Timestamp{T: w.ToTS.T, I: w.ToTS.I}
	if f.Entries, err = countEntries(ctx, c, base, to); err != nil {
		return nil, err
	}
	want, err := coll.CountDocuments(ctx, bson.D{})
	if err != nil {
		return nil, err
	}
	restoreTo := func(ts bson.Timestamp) (float64, error) {
		start := time.Now()
		out, err := n.CLI(ctx, "-t", n.Addr, "restore", "--identity", key, "--drop", "--to-ts", fmt.Sprintf("%d,%d", ts.T, ts.I))
		if err != nil {
			return 0, err
		}
		if !strings.Contains(out, "Restore finished") {
			return 0, fmt.Errorf("restore --to-ts %v: %s", ts, out)
		}
		return time.Since(start).Seconds(), nil
	}
	logf("replay (%s): restore to the base's consistent_to", mode)
	if f.BaseSeconds, err = restoreTo(base); err != nil {
		return nil, err
	}
	if got, _ := coll.CountDocuments(ctx, bson.D{}); got != int64(docs) {
		return nil, fmt.Errorf("replay: restore to the base: %d documents, want %d", got, docs)
	}
	logf("replay (%s): restore to the newest entry (%d entries after the base)", mode, f.Entries)
	if f.PITRSeconds, err = restoreTo(to); err != nil {
		return nil, err
	}
	if got, _ := coll.CountDocuments(ctx, bson.D{}); got != want {
		return nil, fmt.Errorf("replay: restore to the newest entry: %d documents, want %d", got, want)
	}
	f.ReplayedChecks = fmt.Sprintf("document count %d after the replay equals the source's", want)
	if d := f.PITRSeconds - f.BaseSeconds; d > 0 {
		f.EntriesPerSec = float64(f.Entries) / d
	}
	if f.Entries > 0 {
		f.BytesPerEntry = float64(f.ArchiveBytes) / float64(f.Entries)
	}
	f.LoadEnd = loadavg()
	return f, nil
}

func pitrStatus(ctx context.Context, n *Node) (api.PITRStatus, error) {
	out, err := n.CLI(ctx, "-t", n.Addr, "pitr-status", "--json")
	if err != nil {
		return api.PITRStatus{}, err
	}
	var r struct {
		Arguments api.PITRStatus `json:"arguments"`
	}
	err = json.Unmarshal([]byte(out), &r)
	return r.Arguments, err
}

// waitArchive waits until the archive holds the server's newest entry:
// its newest durable slice's last entry, read from the device. Not
// pitr-status's lag: on the embedded server the agent asks FerretDB for
// the oplog's newest entries in natural order, which it answers by
// sorting the whole oplog in memory, and past some 50,000 entries that
// outlasts the agent's 10 s bound, so the lag stays unknown (-1) and a
// wait on it never ended (the replay figure's "hang").
func waitArchive(ctx context.Context, n *Node, c *mongo.Client, limit time.Duration, logf func(string, ...any)) error {
	newest, err := serverNewest(ctx, c)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(limit)
	said := time.Now()
	dir := ""
	for {
		if dir == "" {
			if st, err := pitrStatus(ctx, n); err == nil {
				dir = st.Dir
			}
		}
		var a bson.Timestamp
		if dir != "" {
			if a, err = archivedNewest(dir); err == nil && !a.Before(newest) {
				return nil
			}
		}
		if time.Since(said) > 30*time.Second {
			logf("waiting for the archive to reach the server's newest entry %v: archived up to %v", newest, a)
			said = time.Now()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the archive did not reach %v in %v: archived up to %v (%v)", newest, limit, a, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// countEntries counts the oplog entries outside local.* in (from, to].
func countEntries(ctx context.Context, c *mongo.Client, from, to bson.Timestamp) (int64, error) {
	return c.Database("local").Collection("oplog.rs").CountDocuments(ctx, bson.D{
		{Key: "ts", Value: bson.D{{Key: "$gt", Value: from}, {Key: "$lte", Value: to}}},
		{Key: "ns", Value: bson.D{{Key: "$not", Value: bson.Regex{Pattern: "^local\\."}}}}})
}
