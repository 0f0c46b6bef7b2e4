package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"

	"github.com/a0backup/a0/internal/backupfile"
	"github.com/a0backup/a0/internal/crypt"
	"github.com/a0backup/a0/internal/embedded"
	"github.com/a0backup/a0/internal/restore"
)

// RestoreChildArg is the hidden subcommand that runs RestoreDB alone in a
// process, so that its peak RSS is the restore's and not FerretDB's (which
// runs in the parent, as a separate mongod would).
const RestoreChildArg = "restore-child"

// InsertBatch is the plain baseline's batch size, the one restore uses.
const InsertBatch = 1000

// DBResult is one timed write of documents into a database.
type DBResult struct {
	Seconds   float64 `json:"seconds"`
	Documents int64   `json:"documents"`
	Bytes     int64   `json:"bytes"`
	// Parallel is the number of insert goroutines (per collection).
	Parallel int `json:"parallel"`
	// PlanSeconds is restore.Plan's share of Seconds (the authentication
	// pass over the whole file before the first write); InsertSeconds is
	// the time until the last document was acknowledged (the rest is index
	// builds and the count check).
	PlanSeconds   float64 `json:"plan_seconds,omitempty"`
	InsertSeconds float64 `json:"insert_seconds,omitempty"`
	// DataSeconds is the data phase: from the start of the second pass
	// (the one that writes) to the last document acknowledged. Documents
	// over DataSeconds is restore's document rate into the database.
	DataSeconds float64 `json:"data_seconds,omitempty"`
	OK          bool    `json:"ok"`
	IndexErrors int     `json:"index_errors,omitempty"`
	CPUSeconds  float64 `json:"cpu_seconds,omitempty"`
	PeakRSS     int64   `json:"peak_rss,omitempty"`
	// OplogApplied is the oplog entries the restore replayed.
	OplogApplied int64 `json:"oplog_applied,omitempty"`
	// IndexSeconds is the index builds (Run's indexes step) and
	// ReportSeconds the count check (its report step), from the steps
	// Progress showed every 20 ms.
	IndexSeconds  float64 `json:"index_seconds,omitempty"`
	ReportSeconds float64 `json:"report_seconds,omitempty"`
	// ServerCPUSeconds is the CPU time the target server's process spent
	// during the restore (external runs: the wire server is a process of
	// its own).
	ServerCPUSeconds float64 `json:"server_cpu_s,omitempty"`
}

// DocsPerSec is documents written per second of wall time.
func (r DBResult) DocsPerSec() float64 { return float64(r.Documents) / r.Seconds }

// DataDocsPerSec is documents written per second of the data phase.
func (r DBResult) DataDocsPerSec() float64 { return float64(r.Documents) / r.DataSeconds }

// StartFerret starts a fresh embedded FerretDB (SQLite) in dir, as the
// agent does without an oplog, and a client to it.
func StartFerret(ctx context.Context, dir string) (*embedded.Server, *mongo.Client, error) {
	srv, err := embedded.Start(ctx, embedded.Config{Dir: dir})
	if err != nil {
		return nil, nil, err
	}
	c, err := srv.Connect(ctx)
	if err != nil {
		srv.Close()
		return nil, nil, err
	}
	return srv, c, nil
}

// PlainInsert is the server's limit for this data: every collection of the
// data set read from its .bson file and written with unordered InsertMany
// batches of InsertBatch documents by parallel goroutines, one collection
// after the other (as restore does), no decryption, no validation, no
// indexes. The database must be empty.
func PlainInsert(ctx context.Context, client *mongo.Client, ds *Dataset, parallel int) (DBResult, error) {
	start := time.Now()
	res := DBResult{Parallel: parallel, OK: true}
	for _, c := range ds.Collections {
		f, err := os.Open(c.BSONPath(ds.DumpDir()))
		if err != nil {
			return res, err
		}
		coll := client.Database(c.DB).Collection(c.Name)
		batches := make(chan []any, parallel)
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			firstErr error
		)
		for range parallel {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for b := range batches {
					if _, err := coll.InsertMany(ctx, b, options.InsertMany().SetOrdered(false)); err != nil {
						mu.Lock()
						if firstErr == nil {
							firstErr = fmt.Errorf("plain insert %s.%s: %w", c.DB, c.Name, err)
						}
						mu.Unlock()
					}
				}
			}()
		}
		var batch []any
		err = ReadDocs(f, func(doc bsoncore.Document) error {
			batch = append(batch, bson.Raw(bytes.Clone(doc)))
			res.Documents++
			res.Bytes += int64(len(doc))
			if len(batch) == InsertBatch {
				batches <- batch
				batch = nil
			}
			return nil
		})
		if len(batch) > 0 {
			batches <- batch
		}
		close(batches)
		wg.Wait()
		f.Close()
		if err == nil {
			err = firstErr
		}
		if err != nil {
			return res, err
		}
	}
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// RestoreDB is the real restore of an a0 file into the database at uri:
// backupfile.Open + restore.Plan (the authentication pass), then the
// second pass with the first one's keys (backupfile's Reopen) +
// restore.Run with opts (inserts, indexes, count check), as the agent's
// restore job does.
func RestoreDB(ctx context.Context, file, uri string, password []byte, opts restore.Options) (DBResult, error) {
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		return DBResult{}, err
	}
	defer client.Disconnect(context.WithoutCancel(ctx))
	if err := client.Ping(ctx, nil); err != nil {
		return DBResult{}, err
	}
	start := time.Now()
	f, err := os.Open(file)
	if err != nil {
		return DBResult{}, fmt.Errorf("restore: %w", err)
	}
	defer f.Close()
	bf, err := backupfile.Open(f, backupfile.Options{Unlock: crypt.Unlock{Password: password}})
	if err != nil {
		return DBResult{}, fmt.Errorf("restore: %w", err)
	}
	var p *restore.PlanResult
	if _, err := bf.Authenticate(ctx, func(plain io.Reader) (err error) {
		p, err = restore.Plan(ctx, plain, opts)
		return err
	}); err != nil {
		return DBResult{}, fmt.Errorf("restore plan: %w", err)
	}
	planSecs := time.Since(start).Seconds()
	var total int64
	for _, c := range p.Collections {
		total += c.Documents
	}
	// Watch the progress to split insert time from index builds.
	prog := &restore.Progress{}
	var insertSecs, indexAt, reportAt float64
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				s := prog.Snapshot()
				now := time.Since(start).Seconds()
				if insertSecs == 0 && s.Documents >= total {
					insertSecs = now
				}
				if indexAt == 0 && s.Step == restore.StepIndexes {
					indexAt = now
				}
				if reportAt == 0 && s.Step == restore.StepReport {
					reportAt = now
				}
			}
		}
	}()
	runStart := time.Since(start).Seconds()
	stream, err := bf.Reopen()
	if err != nil {
		close(stop)
		return DBResult{}, fmt.Errorf("restore: %w", err)
	}
	rep, err := restore.Run(ctx, client, stream, p, opts, prog)
	close(stop)
	<-watched
	if err != nil {
		return DBResult{}, fmt.Errorf("restore run: %w", err)
	}
	res := DBResult{Seconds: time.Since(start).Seconds(), PlanSeconds: planSecs, InsertSeconds: insertSecs, OK: rep.OK, Parallel: opts.Parallel,
		OplogApplied: rep.OplogApplied}
	if insertSecs == 0 {
		res.InsertSeconds = res.Seconds
	}
	res.DataSeconds = res.InsertSeconds - runStart
	if indexAt > 0 && reportAt == 0 {
		// The report step ended between two looks (it takes under a
		// millisecond when the counts come from the writes): the index
		// step lasted until the end, within 20 ms.
		reportAt = res.Seconds
	}
	if indexAt > 0 && reportAt >= indexAt {
		res.IndexSeconds, res.ReportSeconds = reportAt-indexAt, res.Seconds-reportAt
	}
	for _, c := range rep.Collections {
		res.Documents += c.DocumentsFound
		res.IndexErrors += len(c.IndexErrors)
	}
	for _, c := range p.Collections {
		res.Bytes += c.Bytes
	}
	return res, nil
}

// ChildRestore runs `exe restore-child FILE URI PARALLEL`, which must run
// RestoreDB and print its DBResult as JSON, and adds the child's CPU time
// and the peak RSS the child reports of itself.
func ChildRestore(exe, file, uri, password string, parallel int) (DBResult, error) {
	return childRestoreEnv(exe, file, uri, password, parallel, os.Environ())
}

// childRestoreEnv is ChildRestore with the child's environment (plus the
// password).
func childRestoreEnv(exe, file, uri, password string, parallel int, env []string) (DBResult, error) {
	cmd := exec.Command(exe, RestoreChildArg, file, uri, fmt.Sprint(parallel))
	cmd.Env = append(env, PasswordEnv+"="+password)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return DBResult{}, fmt.Errorf("restore child: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	var r DBResult
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		return DBResult{}, fmt.Errorf("restore child: %w", err)
	}
	// PeakRSS comes from the child itself (see ChildPipeline for why not
	// ru_maxrss).
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.CPUSeconds = float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
	}
	return r, nil
}

// RestoreDBFigures is the restore-into-the-embedded-database comparison on
// one data set.
type RestoreDBFigures struct {
	DataBytes int64 `json:"data_bytes"`
	Documents int64 `json:"documents"`
	// Plain holds one plain InsertMany run per goroutine count tried.
	Plain   []DBResult `json:"plain"`
	Best    DBResult   `json:"best_plain"`
	Restore DBResult   `json:"restore"`
	// IndexSeconds and CountSeconds are measured on the first plain run's
	// database after its inserts: the createIndexes calls restore makes (one
	// per index, as it does) and the collStats + listIndexes of its
	// report. With the plain insert time they account for the restore's.
	IndexSeconds float64 `json:"index_seconds"`
	CountSeconds float64 `json:"count_seconds"`
}

// afterInsert times what restore.Run does after a collection's inserts, on
// a database that already holds the documents: every index of the plan,
// then restore's report (CountDocuments and listIndexes per collection).
func afterInsert(ctx context.Context, client *mongo.Client, p *restore.PlanResult) (index, count float64, err error) {
	start := time.Now()
	for _, c := range p.Collections {
		db := client.Database(c.DB)
		for _, spec := range c.Indexes {
			cmd := bson.D{{Key: "createIndexes", Value: c.Name}, {Key: "indexes", Value: bson.A{spec}}}
			if err := db.RunCommand(ctx, cmd).Err(); err != nil {
				return 0, 0, fmt.Errorf("create index on %s: %w", c.Namespace(), err)
			}
		}
	}
	index = time.Since(start).Seconds()
	start = time.Now()
	for _, c := range p.Collections {
		coll := client.Database(c.DB).Collection(c.Name)
		// As restore's report counts: collStats.
		if err := client.Database(c.DB).RunCommand(ctx, bson.D{{Key: "collStats", Value: c.Name}}).Err(); err != nil {
			return 0, 0, err
		}
		cur, err := coll.Indexes().List(ctx)
		if err != nil {
			return 0, 0, err
		}
		var idx []bson.Raw
		if err := cur.All(ctx, &idx); err != nil {
			return 0, 0, err
		}
	}
	return index, time.Since(start).Seconds(), nil
}

// planFile is the first pass of a restore over file: restore.Plan while
// every byte is authenticated.
func planFile(ctx context.Context, file string, password []byte) (*restore.PlanResult, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	bf, err := backupfile.Open(f, backupfile.Options{Unlock: crypt.Unlock{Password: password}})
	if err != nil {
		return nil, err
	}
	var p *restore.PlanResult
	_, err = bf.Authenticate(ctx, func(plain io.Reader) (err error) {
		p, err = restore.Plan(ctx, plain, restore.Options{})
		return err
	})
	return p, err
}

// Ratio is restore's document rate (data phase) over the best plain docs/s.
func (f *RestoreDBFigures) Ratio() float64 { return f.Restore.DataDocsPerSec() / f.Best.DocsPerSec() }

// WholeRatio is the whole restore's docs/s (authentication pass, inserts,
// index builds, count check) over the best plain docs/s.
func (f *RestoreDBFigures) WholeRatio() float64 { return f.Restore.DocsPerSec() / f.Best.DocsPerSec() }

// MeasureRestoreDB runs PlainInsert with each goroutine count of parallels,
// each into a fresh FerretDB, keeps the best, then the real restore of file
// (the same documents, sealed by SealedPipeline) in a child process into
// another fresh FerretDB. restoreParallel 0 is restore's default.
func MeasureRestoreDB(ctx context.Context, exe, work string, ds *Dataset, file, password string, parallels []int, restoreParallel int, logf func(string, ...any)) (*RestoreDBFigures, error) {
	fig := &RestoreDBFigures{DataBytes: ds.Bytes(), Documents: ds.Documents()}
	plan, err := planFile(ctx, file, []byte(password))
	if err != nil {
		return nil, err
	}
	for i, p := range parallels {
		dir := filepath.Join(work, fmt.Sprintf("ferret-plain-%d", i))
		srv, c, err := StartFerret(ctx, dir)
		if err != nil {
			return nil, err
		}
		r, err := PlainInsert(ctx, c, ds, p)
		if err == nil && i == 0 {
			fig.IndexSeconds, fig.CountSeconds, err = afterInsert(ctx, c, plan)
			logf("after the plain inserts: restore's index builds %.1f s, its count check %.1f s", fig.IndexSeconds, fig.CountSeconds)
		}
		c.Disconnect(context.WithoutCancel(ctx))
		srv.Close()
		os.RemoveAll(dir)
		if err != nil {
			return nil, err
		}
		logf("plain InsertMany x%d: %d docs in %.1f s = %.0f docs/s", p, r.Documents, r.Seconds, r.DocsPerSec())
		fig.Plain = append(fig.Plain, r)
		if r.DocsPerSec() > fig.Best.DocsPerSec() || fig.Best.Seconds == 0 {
			fig.Best = r
		}
	}
	dir := filepath.Join(work, "ferret-restore")
	srv, err := embedded.Start(ctx, embedded.Config{Dir: dir})
	if err != nil {
		return nil, err
	}
	r, err := ChildRestore(exe, file, srv.URI(), password, restoreParallel)
	srv.Close()
	os.RemoveAll(dir)
	if err != nil {
		return nil, err
	}
	if r.Documents != ds.Documents() {
		return nil, fmt.Errorf("restore: %d documents in the database, the data set has %d", r.Documents, ds.Documents())
	}
	logf("restore (Plan+Run, parallel %d): %d docs in %.1f s (plan %.1f s, data phase %.1f s = %.0f docs/s, inserts done at %.1f s) = %.0f docs/s overall, peak RSS %.1f MB, ok %v",
		r.Parallel, r.Documents, r.Seconds, r.PlanSeconds, r.DataSeconds, r.DataDocsPerSec(), r.InsertSeconds, r.DocsPerSec(), float64(r.PeakRSS)/1e6, r.OK)
	fig.Restore = r
	return fig, nil
}
