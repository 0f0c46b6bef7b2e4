package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/client"
	"github.com/a0backup/a0/internal/embedded"
	"github.com/a0backup/a0/internal/restore"
	"github.com/a0backup/a0/internal/sampledata"
)

// LiveBackup is one a0 backup through the agent, as the operator waits for
// it (POST to "Backup found"), split into the phases the status shows.
type LiveBackup struct {
	Seconds float64 `json:"seconds"`
	// Accepted is the start to the POST's answer (202): the size check
	// for the free-space rule and the totals the first status shows.
	Accepted float64 `json:"accepted_s,omitempty"`
	// FirstByte is the start to the first BSON byte read: the oplog
	// start, the listing and the size estimates.
	FirstByte float64 `json:"first_byte_s"`
	// Reads is the first to the last collection byte read (collections
	// read in parallel).
	Reads float64 `json:"reads_s"`
	// After is the last byte to "Backup found": the oplog's end and tail,
	// packing the last files, the seal and the read-back.
	After float64 `json:"after_s"`
}

// LiveFigures compare a0 with the stock tools on one live-sized server.
type LiveFigures struct {
	Users        int     `json:"users"`
	DataBytes    int64   `json:"data_bytes"`
	DataDocs     int64   `json:"data_docs"`
	OplogBytes   int64   `json:"oplog_bytes"`
	OplogEntries int64   `json:"oplog_entries"`
	SeedSeconds  float64 `json:"seed_seconds"`

	A0Backup       []LiveBackup `json:"a0_backup"`
	StockBackup    []float64    `json:"stock_backup_s"`
	BackupRatios   []float64    `json:"backup_ratios"` // stock / a0, pair by pair
	A0FileBytes    int64        `json:"a0_file_bytes"`
	StockFileBytes int64        `json:"stock_file_bytes"`

	A0Restore     []DBResult `json:"a0_restore"`
	StockRestore  []float64  `json:"stock_restore_s"`
	StockDocs     int64      `json:"stock_restore_docs"`
	RestoreRatios []float64  `json:"restore_ratios"` // stock / a0
	OplogReplayed int64      `json:"oplog_replayed"`

	// External says the server ran as its own process, reached over the
	// wire by the agent, the restores and the stock tools alike
	// (MeasureExternal); otherwise it was the agent's embedded server
	// (MeasureLive), with a0's SQLite side channels.
	External bool `json:"external,omitempty"`
	// A0RestoreWall is each a0 restore's wall time as a whole process
	// (start to exit), the figure the stock pipeline's is compared with.
	A0RestoreWall []float64 `json:"a0_restore_wall_s,omitempty"`
	// StockServerCPU is the wire server's CPU time during each stock
	// restore (the a0 side's is in A0Restore's ServerCPUSeconds). On a
	// shared machine the server's CPU share swings with the other load,
	// and the wall times with it; the CPU each tool made the server
	// spend does not.
	StockServerCPU []float64 `json:"stock_server_cpu_s,omitempty"`
}

// Median returns the median of xs (0 when empty).
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// MeasureLive loads a real agent's embedded server with users users
// through FerretDB, so that its oplog holds the load (every document's
// insert, as on a long-running replica set), then, runs times in turn,
// times an a0 point-in-time backup through the agent against `mongodump
// --archive --gzip | openssl enc -aes-256-ctr -pbkdf2 -iter 600000` of the
// same server, and the whole a0 restore of the a0 file into a fresh server
// (authentication pass, data, indexes, oplog replay, count check) against
// `openssl enc -d | mongorestore --archive --gzip --noIndexRestore` of the
// stock file into a fresh server. tools is the mongo-tools directory.
func MeasureLive(ctx context.Context, work, tools string, users, runs int, password string, logf func(string, ...any)) (*LiveFigures, error) {
	p, err := newPairs("live", tools, runs, password, logf)
	if err != nil {
		return nil, err
	}
	n, err := StartNode(ctx, filepath.Join(work, "node"))
	if err != nil {
		return nil, err
	}
	defer n.Close()
	srv := n.a.Embedded()
	c, err := srv.Connect(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Disconnect(context.WithoutCancel(ctx))
	f := &LiveFigures{Users: users}
	logf("live: seeding %d users through the agent's embedded FerretDB (the oplog logs every write)", users)
	st, err := sampledata.Seed(ctx, c, sampledata.Options{Users: users})
	if err != nil {
		return nil, fmt.Errorf("live: seed: %w", err)
	}
	f.DataBytes, f.DataDocs, f.SeedSeconds = st.Bytes, st.TotalDocs, st.Duration.Seconds()
	if f.OplogEntries, f.OplogBytes, err = scanOplog(ctx, c); err != nil {
		return nil, err
	}
	logf("live: %d docs, %.1f MB of BSON; the oplog holds %d entries, %.1f MB", f.DataDocs, float64(f.DataBytes)/1e6, f.OplogEntries, float64(f.OplogBytes)/1e6)

	stockFile := filepath.Join(work, "stock.archive.gz.enc")
	a0File := filepath.Join(work, "a0.backup")
	if err := p.backups(ctx, f, n, srv.URI(), a0File, stockFile); err != nil {
		return nil, err
	}
	n.Close() // the restores have the machine to themselves

	// a0 restores in this process into a fresh embedded server, with the
	// side channels the agent gives it there (the _id lookups, the count
	// from the catalog).
	a0 := func(ctx context.Context, dir string) (DBResult, float64, error) {
		tsrv, err := embedded.Start(ctx, embedded.Config{Dir: dir})
		if err != nil {
			return DBResult{}, 0, err
		}
		defer tsrv.Close()
		opts := restore.Options{IndexIDLookups: func(ctx context.Context, db string, colls []string) error {
			_, err := tsrv.IndexIDLookups(ctx, db, colls)
			return err
		}, Count: tsrv.Catalog().Count}
		r, err := RestoreDB(ctx, a0File, tsrv.URI(), []byte(password), opts)
		return r, r.Seconds, err
	}
	start := func(ctx context.Context, dir string) (*target, error) {
		ssrv, err := embedded.Start(ctx, embedded.Config{Dir: dir})
		if err != nil {
			return nil, err
		}
		count := func(ctx context.Context) (int64, error) { return countServer(ctx, ssrv) }
		return &target{uri: ssrv.URI(), count: count, close: func() { ssrv.Close() }}, nil
	}
	if err := p.restores(ctx, f, work, a0File, stockFile, a0, start); err != nil {
		return nil, err
	}
	return f, nil
}

// countServer counts the documents of every user collection of srv.
func countServer(ctx context.Context, srv *embedded.Server) (int64, error) {
	c, err := srv.Connect(ctx)
	if err != nil {
		return 0, err
	}
	defer c.Disconnect(ctx)
	return countAll(ctx, c)
}

// countAll counts the documents of every user collection.
func countAll(ctx context.Context, c *mongo.Client) (int64, error) {
	dbs, err := c.ListDatabaseNames(ctx, bson.D{})
	if err != nil {
		return 0, err
	}
	var n int64
	for _, db := range dbs {
		if db == "local" || db == "config" || db == "admin" {
			continue
		}
		colls, err := c.Database(db).ListCollectionNames(ctx, bson.D{})
		if err != nil {
			return 0, err
		}
		for _, coll := range colls {
			k, err := c.Database(db).Collection(coll).CountDocuments(ctx, bson.D{})
			if err != nil {
				return 0, err
			}
			n += k
		}
	}
	return n, nil
}

// liveBackup asks for a backup as a0cli backup does and polls its status
// every 100 ms until it is found; the backup is deleted after unless keep.
func (n *Node) liveBackup(ctx context.Context, password string, keep bool) (LiveBackup, error) {
	c, err := client.New(n.CLIHome, n.Addr, nil)
	if err != nil {
		return LiveBackup{}, err
	}
	path := api.PathSlot + api.SlotBackup
	start := time.Now()
	if err := c.JSON(ctx, "POST", path, api.BackupRequest{Password: password}, nil); err != nil {
		return LiveBackup{}, fmt.Errorf("start backup: %w", err)
	}
	accepted := time.Since(start).Seconds()
	var first, last time.Time
	for {
		var st struct {
			Message   string `json:"message"`
			Arguments struct {
				Error    string `json:"error"`
				Progress *struct {
					Total     int64 `json:"collections_total"`
					Done      int64 `json:"collections_done"`
					Bytes     int64 `json:"bytes"`
					Estimated int64 `json:"estimated_bytes"`
				} `json:"progress"`
			} `json:"arguments"`
		}
		if err := c.JSON(ctx, "GET", path+"/status", nil, &st); err != nil {
			return LiveBackup{}, fmt.Errorf("backup status: %w", err)
		}
		now := time.Now()
		switch st.Message {
		case "Backup in progress":
			if p := st.Arguments.Progress; p != nil {
				if p.Bytes > 0 && first.IsZero() {
					first = now
				}
				if p.Total > 0 && p.Done == p.Total && last.IsZero() {
					last = now
				}
			}
		case "Backup found":
			if first.IsZero() {
				first = now
			}
			if last.IsZero() {
				last = now
			}
			b := LiveBackup{Seconds: now.Sub(start).Seconds(), Accepted: accepted, FirstByte: first.Sub(start).Seconds(),
				Reads: last.Sub(first).Seconds(), After: now.Sub(last).Seconds()}
			if !keep {
				if err := c.JSON(ctx, "DELETE", path, nil, nil); err != nil {
					return b, fmt.Errorf("delete backup: %w", err)
				}
			}
			return b, nil
		case "Backup failed":
			return LiveBackup{}, fmt.Errorf("backup failed: %s", st.Arguments.Error)
		}
		select {
		case <-ctx.Done():
			return LiveBackup{}, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
