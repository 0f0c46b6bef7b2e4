package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/a0backup/a0/internal/archive"
	"github.com/a0backup/a0/internal/dump"
	"github.com/a0backup/a0/internal/sampledata"
	"github.com/a0backup/a0/internal/store"
)

// EndToEnd is a full backup against the embedded FerretDB, beside a plain
// scan of the same collections.
type EndToEnd struct {
	Users    int     `json:"users"`
	SeedSecs float64 `json:"seed_seconds"`
	// Scan is a plain find over every collection, DefaultParallel at a time
	// with the dump's batch size, discarding the documents: the most any
	// client can read from this server.
	Scan Result `json:"scan"`
	// Backup is dump.Run into CreateSealed (spool, tar, gzip, crypt, fsync).
	Backup    Result `json:"backup"`
	Documents int64  `json:"documents"`
}

// RunEndToEnd starts an embedded FerretDB under work, seeds users users
// with sampledata.Seed, then times a plain scan and a full backup.
func RunEndToEnd(ctx context.Context, work string, users int, password []byte) (*EndToEnd, error) {
	srv, client, err := StartFerret(ctx, filepath.Join(work, "ferretdb"))
	if err != nil {
		return nil, fmt.Errorf("end-to-end: %w", err)
	}
	defer srv.Close()
	defer client.Disconnect(context.WithoutCancel(ctx))
	st, err := sampledata.Seed(ctx, client, sampledata.Options{Users: users})
	if err != nil {
		return nil, fmt.Errorf("end-to-end: seed: %w", err)
	}
	e := &EndToEnd{Users: users, SeedSecs: st.Duration.Seconds(), Documents: st.TotalDocs}
	if e.Scan, err = Scan(ctx, client, dump.DefaultParallel); err != nil {
		return nil, err
	}

	slotDir := filepath.Join(work, "slot")
	spool := filepath.Join(slotDir, ".work")
	start := time.Now()
	s, err := store.Slot{Dir: slotDir, Kind: "backup"}.CreateSealed("e2e.tar.gz", password, archive.Options{})
	if err != nil {
		return nil, fmt.Errorf("end-to-end: %w", err)
	}
	man, err := dump.Run(ctx, client, s.Archive(), dump.Options{SpoolDir: spool, ToolVersion: "a0bench", Oplog: dump.OplogOff}, nil)
	if err != nil {
		s.Abort()
		return nil, fmt.Errorf("end-to-end: dump: %w", err)
	}
	meta, err := s.Finish(store.Meta{Created: start.UTC()})
	if err != nil {
		return nil, fmt.Errorf("end-to-end: %w", err)
	}
	e.Backup = Result{Seconds: time.Since(start).Seconds(), InBytes: man.TotalBytes(), OutBytes: meta.Size}
	os.RemoveAll(slotDir)
	return e, nil
}

// Scan reads every document of every user database with plain finds,
// parallel collections at a time, and returns the BSON bytes per second.
func Scan(ctx context.Context, client *mongo.Client, parallel int) (Result, error) {
	start := time.Now()
	dbs, err := client.ListDatabaseNames(ctx, bson.D{})
	if err != nil {
		return Result{}, fmt.Errorf("scan: %w", err)
	}
	type ns struct{ db, coll string }
	var all []ns
	for _, db := range dbs {
		if db == "local" || db == "config" || db == "admin" {
			continue
		}
		colls, err := client.Database(db).ListCollectionNames(ctx, bson.D{})
		if err != nil {
			return Result{}, fmt.Errorf("scan: %w", err)
		}
		for _, c := range colls {
			all = append(all, ns{db, c})
		}
	}
	var (
		bytes    atomic.Int64
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		jobs     = make(chan ns)
	)
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				cur, err := client.Database(j.db).Collection(j.coll).Find(ctx, bson.D{}, options.Find().SetBatchSize(10000))
				if err == nil {
					for cur.Next(ctx) {
						bytes.Add(int64(len(cur.Current)))
					}
					err = cur.Err()
					cur.Close(ctx)
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("scan %s.%s: %w", j.db, j.coll, err)
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, j := range all {
		jobs <- j
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return Result{}, firstErr
	}
	return Result{Seconds: time.Since(start).Seconds(), InBytes: bytes.Load()}, nil
}
