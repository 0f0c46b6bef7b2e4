package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
func MeasureExternal(ctx context.Context, exe, work, tools string, users, runs int, password string, logf func(string, ...any)) (*LiveFigures, error) {
	mongodump, mongorestore := filepath.Join(tools, "mongodump"), filepath.Join(tools, "mongorestore")
	for _, t := range []string{mongodump, mongorestore} {
		if _, err := os.Stat(t); err != nil {
			return nil, fmt.Errorf("external: stock tool: %w (see --tools)", err)
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
	f := &LiveFigures{Users: users, External: true}
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
	env := append(os.Environ(), PasswordEnv+"="+password)
	stockFile := filepath.Join(work, "stock.archive.gz.enc")
	a0File := filepath.Join(work, "a0.backup")
	for i := range runs {
		logf("external: backup run %d/%d: a0", i+1, runs)
		b, err := n.liveBackup(ctx, password, i == runs-1)
		if err != nil {
			return nil, err
		}
		f.A0Backup = append(f.A0Backup, b)
		logf("external: backup run %d/%d: a0 %.1f s (202 at %.1f, first byte %.1f, reads %.1f, after %.1f); stock", i+1, runs, b.Seconds, b.Accepted, b.FirstByte, b.Reads, b.After)
		s, out, err := runStock(ctx, env, stockBackupPipe, mongodump, srv.URI, stockFile)
		if err != nil {
			return nil, fmt.Errorf("external: mongodump | openssl: %w: %s", err, out)
		}
		f.StockBackup = append(f.StockBackup, s)
		f.BackupRatios = append(f.BackupRatios, s/b.Seconds)
		logf("external: backup run %d/%d: stock %.1f s", i+1, runs, s)
	}
	if _, err := n.CLI(ctx, "-t", n.Addr, "backup-retrieve", "-o", a0File); err != nil {
		return nil, err
	}
	if fi, err := os.Stat(a0File); err == nil {
		f.A0FileBytes = fi.Size()
	}
	if fi, err := os.Stat(stockFile); err == nil {
		f.StockFileBytes = fi.Size()
	}
	n.Close() // the restores have the machine to themselves
	srv.Close()

	// restore-child must not be told of the server's files (that is what
	// turns the side channels on in it).
	var childEnv []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "A0BENCH_DB_DIR=") {
			childEnv = append(childEnv, e)
		}
	}
	for i := range runs {
		dir := filepath.Join(work, fmt.Sprintf("restore-a0-%d", i))
		tsrv, err := StartWireServer(ctx, exe, dir)
		if err != nil {
			return nil, err
		}
		start := time.Now()
		r, err := childRestoreEnv(exe, a0File, tsrv.URI, password, 0, childEnv)
		wall := time.Since(start).Seconds()
		tsrv.Close()
		os.RemoveAll(dir)
		if err != nil {
			return nil, fmt.Errorf("external: a0 restore: %w", err)
		}
		if !r.OK {
			return nil, errors.New("external: a0 restore: the report is not OK")
		}
		f.A0Restore = append(f.A0Restore, r)
		f.A0RestoreWall = append(f.A0RestoreWall, wall)
		f.OplogReplayed = r.OplogApplied
		logf("external: restore run %d/%d: a0 %.1f s (auth pass %.1f s, data phase %.1f s, indexes+replay+count %.1f s, %d docs, oplog %d entries); stock",
			i+1, runs, wall, r.PlanSeconds, r.DataSeconds, r.Seconds-r.InsertSeconds, r.Documents, r.OplogApplied)

		dir = filepath.Join(work, fmt.Sprintf("restore-stock-%d", i))
		ssrv, err := StartWireServer(ctx, exe, dir)
		if err != nil {
			return nil, err
		}
		s, out, err := runStock(ctx, env, stockRestorePipe, mongorestore, ssrv.URI, stockFile)
		var docs int64
		if err == nil {
			var sc *mongo.Client
			if sc, err = mongo.Connect(options.Client().ApplyURI(ssrv.URI)); err == nil {
				docs, err = countAll(ctx, sc)
				sc.Disconnect(ctx)
			}
		}
		ssrv.Close()
		os.RemoveAll(dir)
		if err != nil {
			return nil, fmt.Errorf("external: openssl -d | mongorestore: %w: %s", err, out)
		}
		f.StockRestore = append(f.StockRestore, s)
		f.StockDocs = docs
		f.RestoreRatios = append(f.RestoreRatios, s/wall)
		logf("external: restore run %d/%d: stock %.1f s (%d docs)", i+1, runs, s, docs)
	}
	return f, nil
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
