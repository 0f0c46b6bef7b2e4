package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/a0backup/a0/internal/atomicfile"
	"github.com/a0backup/a0/internal/embedded"
	"github.com/a0backup/a0/internal/sampledata"
)

// WireServerArg is the hidden subcommand `a0bench wire-server DIR URIFILE`:
// a MongoDB-wire server (FerretDB v1.24.2 on SQLite in DIR, with
// local.oplog.rs, so that it logs its writes as a replica-set member does)
// as a process of its own, which writes its URI to URIFILE once it answers
// and serves until SIGTERM or SIGINT. No a0 code reads its files: clients
// reach it over the wire only, as they reach a production mongod.
const WireServerArg = "wire-server"

// wireOplogEntries is the wire server's oplog budget. Nothing trims that
// oplog (no agent runs the server), so the budget only has to exceed what a
// benchmark writes.
const wireOplogEntries = 1 << 40

// ServeWire is the wire-server subcommand's body: it returns when ctx is
// done, after the server has stopped.
func ServeWire(ctx context.Context, dir, uriFile string) error {
	srv, err := embedded.Start(ctx, embedded.Config{Dir: dir, Oplog: true, OplogEntries: wireOplogEntries})
	if err != nil {
		return err
	}
	defer srv.Close()
	if err := atomicfile.Write(uriFile, []byte(srv.URI()+"\n"), 0o600); err != nil {
		return err
	}
	<-ctx.Done()
	return srv.Close()
}

// WireServer is a running `a0bench wire-server` child.
type WireServer struct {
	URI     string
	URIFile string
	Dir     string
	cmd     *exec.Cmd
	done    chan error
}

// StartWireServer starts exe (a0bench) as a wire server on dir and waits
// until it has written its URI.
func StartWireServer(ctx context.Context, exe, dir string) (*WireServer, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("wire server: %w", err)
	}
	w := &WireServer{URIFile: filepath.Join(dir, "uri"), Dir: filepath.Join(dir, "db"), done: make(chan error, 1)}
	os.Remove(w.URIFile)
	var stderr strings.Builder
	w.cmd = exec.Command(exe, WireServerArg, w.Dir, w.URIFile)
	w.cmd.Stderr = &stderr
	if err := w.cmd.Start(); err != nil {
		return nil, fmt.Errorf("wire server: %w", err)
	}
	go func() { w.done <- w.cmd.Wait() }()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if b, err := os.ReadFile(w.URIFile); err == nil && len(b) > 0 {
			w.URI = strings.TrimSpace(string(b))
			return w, nil
		}
		select {
		case err := <-w.done:
			return nil, fmt.Errorf("wire server exited before it answered: %v: %s", err, stderr.String())
		case <-ctx.Done():
			w.Close()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			w.Close()
			return nil, errors.New("wire server: no URI after 2 minutes")
		}
	}
}

// CPUSeconds is the CPU time (user and system) the server's process has
// used so far, from /proc (0 where it cannot be read).
func (w *WireServer) CPUSeconds() float64 {
	if w.cmd.Process == nil {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", w.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	return statCPUSeconds(b)
}

// statCPUSeconds reads utime + stime from a /proc/PID/stat line, in
// seconds (0 for a line it cannot read). The command name (field 2) may
// hold spaces and parentheses: the fields are counted from after its last
// closing parenthesis; utime and stime are fields 14 and 15, in clock
// ticks of 1/100 s (USER_HZ).
func statCPUSeconds(b []byte) float64 {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return (ut + st) / 100
}

// Close stops the server (SIGTERM) and waits for the process to end.
func (w *WireServer) Close() {
	if w.cmd.Process == nil {
		return
	}
	w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.done:
	case <-time.After(time.Minute):
		w.cmd.Process.Kill()
		<-w.done
	}
	w.cmd.Process = nil
}

// MeasureExternal is MeasureLive against a server run as its own process
// (exe's wire-server, FerretDB with local.oplog.rs), which is how an
// operator's appliance runs: users users are seeded through the wire (so
// the oplog holds the load), a real agent is started with the server's URI
// (as `a0agent --mongodb-uri-file`), so it has none of the embedded
// server's side channels, and, runs times in turn, an a0 point-in-time
// backup through the agent is timed against `mongodump --archive --gzip |
// openssl enc` of the same server; then the a0 restore of the a0 file
// (exe's restore-child, a process of its own: authentication pass, data,
// indexes, oplog replay, count check) against `openssl enc -d |
// mongorestore --archive --gzip --noIndexRestore` of the stock file, each
// into a fresh wire server. tools is the mongo-tools directory.
//
// files, when not empty, is a directory that keeps the two backup files
// (a0.backup, stock.archive.gz.enc): when it already holds both, the
// seeding and the backups are skipped and only the restore pairs run on
// them (a restore-only run, to compare restore code in minutes); otherwise
// the files of this run are copied there.
func MeasureExternal(ctx context.Context, exe, work, tools, files string, users, runs int, password string, logf func(string, ...any)) (*LiveFigures, error) {
	p, err := newPairs("external", tools, runs, password, logf)
	if err != nil {
		return nil, err
	}
	f := &LiveFigures{Users: users, External: true}
	a0File, stockFile := filepath.Join(work, externalA0File), filepath.Join(work, externalStockFile)
	if files != "" {
		_, err1 := os.Stat(filepath.Join(files, externalA0File))
		_, err2 := os.Stat(filepath.Join(files, externalStockFile))
		if err1 == nil && err2 == nil {
			logf("external: restores only, of the files kept in %s", files)
			f.Users = 0
			a0File, stockFile = filepath.Join(files, externalA0File), filepath.Join(files, externalStockFile)
			if err := p.restores(ctx, f, work, a0File, stockFile, externalA0Restore(exe, a0File, password), externalTarget(exe)); err != nil {
				return nil, err
			}
			return f, nil
		}
	}
	srv, err := StartWireServer(ctx, exe, filepath.Join(work, "server"))
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	c, err := mongo.Connect(options.Client().ApplyURI(srv.URI))
	if err != nil {
		return nil, err
	}
	defer c.Disconnect(context.WithoutCancel(ctx))
	logf("external: seeding %d users through the wire into a FerretDB process of its own (its oplog logs every write)", users)
	st, err := sampledata.Seed(ctx, c, sampledata.Options{Users: users})
	if err != nil {
		return nil, fmt.Errorf("external: seed: %w", err)
	}
	f.DataBytes, f.DataDocs, f.SeedSeconds = st.Bytes, st.TotalDocs, st.Duration.Seconds()
	if f.OplogEntries, f.OplogBytes, err = scanOplog(ctx, c); err != nil {
		return nil, err
	}
	logf("external: %d docs, %.1f MB of BSON; the oplog holds %d entries, %.1f MB", f.DataDocs, float64(f.DataBytes)/1e6, f.OplogEntries, float64(f.OplogBytes)/1e6)

	n, err := StartNodeURI(ctx, filepath.Join(work, "node"), srv.URI)
	if err != nil {
		return nil, err
	}
	defer n.Close()
	if err := p.backups(ctx, f, n, srv.URI, a0File, stockFile); err != nil {
		return nil, err
	}
	n.Close() // the restores have the machine to themselves
	srv.Close()
	if files != "" {
		if err := keepFiles(files, a0File, stockFile); err != nil {
			return nil, err
		}
	}
	if err := p.restores(ctx, f, work, a0File, stockFile, externalA0Restore(exe, a0File, password), externalTarget(exe)); err != nil {
		return nil, err
	}
	return f, nil
}

// externalA0Restore is the a0 side of an external restore pair: exe's
// restore-child (a process of its own, no side channel) into a fresh wire
// server, timed as a whole process.
func externalA0Restore(exe, a0File, password string) func(ctx context.Context, dir string) (DBResult, float64, error) {
	// restore-child must not be told of the server's files (that is what
	// turns the side channels on in it).
	var childEnv []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "A0BENCH_DB_DIR=") {
			childEnv = append(childEnv, e)
		}
	}
	return func(ctx context.Context, dir string) (DBResult, float64, error) {
		tsrv, err := StartWireServer(ctx, exe, dir)
		if err != nil {
			return DBResult{}, 0, err
		}
		defer tsrv.Close()
		cpu0 := tsrv.CPUSeconds()
		start := time.Now()
		r, err := childRestoreEnv(exe, a0File, tsrv.URI, password, 0, childEnv)
		wall := time.Since(start).Seconds()
		r.ServerCPUSeconds = tsrv.CPUSeconds() - cpu0
		return r, wall, err
	}
}

// externalTarget starts a fresh wire server (exe's) for a stock restore.
func externalTarget(exe string) func(ctx context.Context, dir string) (*target, error) {
	return func(ctx context.Context, dir string) (*target, error) {
		ssrv, err := StartWireServer(ctx, exe, dir)
		if err != nil {
			return nil, err
		}
		count := func(ctx context.Context) (int64, error) {
			sc, err := mongo.Connect(options.Client().ApplyURI(ssrv.URI))
			if err != nil {
				return 0, err
			}
			defer sc.Disconnect(ctx)
			return countAll(ctx, sc)
		}
		return &target{uri: ssrv.URI, count: count, close: ssrv.Close, cpu: ssrv.CPUSeconds}, nil
	}
}

// The backup files of an external run, in its work directory and in the
// directory --external-files keeps them in.
const (
	externalA0File    = "a0.backup"
	externalStockFile = "stock.archive.gz.enc"
)

// keepFiles copies the run's two backup files into dir.
func keepFiles(dir string, paths ...string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("external: keep files: %w", err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, filepath.Base(p)), b, 0o600)
		}
		if err != nil {
			return fmt.Errorf("external: keep files: %w", err)
		}
	}
	return nil
}

// scanOplog counts the oplog's entries and BSON bytes.
func scanOplog(ctx context.Context, c *mongo.Client) (entries, bytes int64, err error) {
	cur, err := c.Database(embedded.OplogDB).Collection(embedded.OplogColl).Find(ctx, bson.D{}, options.Find().SetBatchSize(10000))
	if err != nil {
		return 0, 0, fmt.Errorf("measure the oplog: %w", err)
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		bytes += int64(len(cur.Current))
		entries++
	}
	if err := cur.Err(); err != nil {
		return 0, 0, fmt.Errorf("measure the oplog: %w", err)
	}
	return entries, bytes, nil
}
