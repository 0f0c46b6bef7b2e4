package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/client"
	"github.com/a0backup/a0/internal/keys"
	"github.com/a0backup/a0/internal/sampledata"
	"github.com/a0backup/a0/internal/statedir"
)

// SeedNode fills the embedded database of the agent state dir under work
// with sampledata.Seed before the agent starts (no oplog yet, as
// `a0agent seed` does before the first start), so that StartNode's agent
// finds users users' worth of data.
func SeedNode(ctx context.Context, work string, users int) (sampledata.Stats, error) {
	st, err := statedir.Open(filepath.Join(work, "state"))
	if err != nil {
		return sampledata.Stats{}, err
	}
	srv, c, err := StartFerret(ctx, st.DBDir())
	if err != nil {
		return sampledata.Stats{}, err
	}
	defer srv.Close()
	defer c.Disconnect(context.WithoutCancel(ctx))
	return sampledata.Seed(ctx, c, sampledata.Options{Users: users})
}

// AgentBackup is one backup run through the agent's API.
type AgentBackup struct {
	// Seconds is the agent's own duration of the job (backup-status).
	Seconds float64 `json:"seconds"`
	// VerifySeconds is the read-back before the backup is found: from
	// the end of the dump (created + duration) to verified_at. It also
	// holds the archive's close and fsync, so it errs high.
	VerifySeconds float64 `json:"verify_seconds,omitempty"`
	Bytes         int64   `json:"bson_bytes"`
	Documents     int64   `json:"documents"`
	Started       time.Time
	Finished      time.Time
}

// MBps is BSON MB per second of the agent's backup job.
func (b AgentBackup) MBps() float64 { return float64(b.Bytes) / 1e6 / b.Seconds }

// Backup asks the node for a backup (POST /v1/slots/backup, as a0cli
// backup does), waits until backup-status reports it stored, then deletes
// it so that the next run can start. bsonBytes is what the database holds
// (the MB/s basis). started, when not nil, is closed once the job runs.
func (n *Node) Backup(ctx context.Context, password string, bsonBytes int64, started chan<- struct{}) (AgentBackup, error) {
	c, err := client.New(n.CLIHome, n.Addr, nil)
	if err != nil {
		return AgentBackup{}, err
	}
	path := api.PathSlot + api.SlotBackup
	b := AgentBackup{Bytes: bsonBytes, Started: time.Now()}
	if err := c.JSON(ctx, "POST", path, api.BackupRequest{Password: password}, nil); err != nil {
		return b, fmt.Errorf("start backup: %w", err)
	}
	if started != nil {
		close(started)
	}
	for {
		var st struct {
			Message   string `json:"message"`
			Arguments struct {
				Duration   string     `json:"duration"`
				Documents  int64      `json:"documents"`
				Error      string     `json:"error"`
				Created    time.Time  `json:"created"`
				VerifiedAt *time.Time `json:"verified_at"`
			} `json:"arguments"`
		}
		if err := c.JSON(ctx, "GET", path+"/status", nil, &st); err != nil {
			return b, fmt.Errorf("backup status: %w", err)
		}
		switch st.Message {
		case "Backup found":
			b.Finished = time.Now()
			d, err := time.ParseDuration(st.Arguments.Duration)
			if err != nil {
				return b, fmt.Errorf("backup status: duration %q: %w", st.Arguments.Duration, err)
			}
			b.Seconds, b.Documents = d.Seconds(), st.Arguments.Documents
			if v := st.Arguments.VerifiedAt; v != nil {
				// created is whole seconds: take the job's start instead
				// when it is later (same clock, this process).
				dumped := st.Arguments.Created.Add(d)
				if alt := b.Started.Add(d); alt.After(dumped) {
					dumped = alt
				}
				b.VerifySeconds = max(v.Sub(dumped).Seconds(), 0)
			}
			if err := c.JSON(ctx, "DELETE", path, nil, nil); err != nil {
				return b, fmt.Errorf("delete backup: %w", err)
			}
			return b, nil
		case "Backup failed":
			return b, fmt.Errorf("backup failed: %s", st.Arguments.Error)
		}
		select {
		case <-ctx.Done():
			return b, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// LoadResult is what the concurrent clients saw.
type LoadResult struct {
	Clients  int     `json:"clients"`
	PauseMS  float64 `json:"pause_ms"`
	Seconds  float64 `json:"seconds"`
	Requests int64   `json:"requests"`
	Errors   int64   `json:"errors"`
	// FirstError is the first failure, if any.
	FirstError string  `json:"first_error,omitempty"`
	P50ms      float64 `json:"p50_ms"`
	P99ms      float64 `json:"p99_ms"`
	Maxms      float64 `json:"max_ms"`
	Start      time.Time
	End        time.Time
}

// LoadClients makes n operator keys (each in its own a0cli home under
// work), authorizes them on the node and returns one internal/client per
// key. Each client keeps its connections alive between requests.
func (n *Node) LoadClients(work string, count int) ([]*client.Client, error) {
	auth := keys.OpenAuthorized(filepath.Join(n.State, "authorized_keys"))
	var cs []*client.Client
	for i := range count {
		home := filepath.Join(work, fmt.Sprintf("load-cli-%02d", i))
		if err := os.MkdirAll(home, 0o700); err != nil {
			return nil, err
		}
		if _, err := keys.Create(home, keys.Ed25519, false); err != nil && !errors.Is(err, keys.ErrKeyExists) {
			return nil, fmt.Errorf("load client key: %w", err)
		}
		line, err := keys.PublicLine(home)
		if err != nil {
			return nil, err
		}
		if err := auth.Add(fmt.Sprintf("load-%02d", i), line); err != nil {
			return nil, fmt.Errorf("authorize load client: %w", err)
		}
		c, err := client.New(home, n.Addr, nil)
		if err != nil {
			return nil, err
		}
		cs = append(cs, c)
	}
	return cs, nil
}

// Load runs every client in a loop for d, alternating GET /v1/ping and GET
// /v1/slots/backup/status (a0cli ping and backup-status), pausing pause
// between requests (0: a closed loop, each client's next request as soon as
// the last is answered), and records every request's latency and failure.
func Load(ctx context.Context, cs []*client.Client, d, pause time.Duration) LoadResult {
	res := LoadResult{Clients: len(cs), PauseMS: float64(pause.Microseconds()) / 1000, Start: time.Now()}
	deadline := res.Start.Add(d)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		lats     []time.Duration
		errs     atomic.Int64
		firstErr atomic.Value
	)
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for i := 0; time.Now().Before(deadline); i++ {
				path := api.PathPing
				if i%2 == 1 {
					path = api.PathSlot + api.SlotBackup + "/status"
				}
				t := time.Now()
				err := c.JSON(ctx, "GET", path, nil, nil)
				mine = append(mine, time.Since(t))
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%s: %v", path, err))
					if ctx.Err() != nil {
						break
					}
				}
				if pause > 0 {
					time.Sleep(pause)
				}
			}
			mu.Lock()
			lats = append(lats, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.End = time.Now()
	res.Seconds = res.End.Sub(res.Start).Seconds()
	res.Requests, res.Errors = int64(len(lats)), errs.Load()
	if s, ok := firstErr.Load().(string); ok {
		res.FirstError = s
	}
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	q := func(p float64) float64 {
		if len(lats) == 0 {
			return 0
		}
		return float64(lats[min(len(lats)-1, int(p*float64(len(lats))))].Microseconds()) / 1000
	}
	res.P50ms, res.P99ms, res.Maxms = q(0.50), q(0.99), q(1)
	return res
}

// LoadFigures is the backup rate alone and under client load.
type LoadFigures struct {
	Users     int           `json:"users"`
	BSONBytes int64         `json:"bson_bytes"`
	Documents int64         `json:"documents"`
	SeedSecs  float64       `json:"seed_seconds"`
	Alone     []AgentBackup `json:"alone"`
	Loaded    AgentBackup   `json:"loaded"`
	Load      LoadResult    `json:"load"`
	// Covered says the load ran entirely while the backup job ran.
	Covered bool `json:"load_within_backup"`
}

// AloneMBps is the mean rate of the unloaded runs.
func (f *LoadFigures) AloneMBps() float64 {
	var s float64
	for _, b := range f.Alone {
		s += b.MBps()
	}
	return s / float64(len(f.Alone))
}

// Drop is the loaded rate's shortfall against the unloaded mean (0.1 = 10%).
func (f *LoadFigures) Drop() float64 { return 1 - f.Loaded.MBps()/f.AloneMBps() }

// MeasureLoad seeds users users into a new node's embedded database, starts
// the real agent, and runs three backups through its API: alone, under load
// (clients concurrent clients for d, started once the job runs), alone
// again (so that order effects cancel in the mean of the two).
func MeasureLoad(ctx context.Context, work string, users, clients int, d, pause time.Duration, password string, logf func(string, ...any)) (*LoadFigures, error) {
	st, err := SeedNode(ctx, work, users)
	if err != nil {
		return nil, fmt.Errorf("load: seed: %w", err)
	}
	f := &LoadFigures{Users: users, BSONBytes: st.Bytes, Documents: st.TotalDocs, SeedSecs: st.Duration.Seconds()}
	logf("load: seeded %d users: %d docs, %.1f MB BSON in %.0f s", users, st.TotalDocs, float64(st.Bytes)/1e6, f.SeedSecs)
	n, err := StartNode(ctx, work)
	if err != nil {
		return nil, err
	}
	defer n.Close()
	cs, err := n.LoadClients(work, clients)
	if err != nil {
		return nil, err
	}
	alone := func() error {
		b, err := n.Backup(ctx, password, f.BSONBytes, nil)
		if err != nil {
			return err
		}
		logf("load: backup alone: %.1f s, %.2f MB/s BSON", b.Seconds, b.MBps())
		f.Alone = append(f.Alone, b)
		return nil
	}
	if err := alone(); err != nil {
		return nil, err
	}
	started := make(chan struct{})
	type out struct {
		b   AgentBackup
		err error
	}
	done := make(chan out, 1)
	go func() {
		b, err := n.Backup(ctx, password, f.BSONBytes, started)
		done <- out{b, err}
	}()
	select {
	case <-started:
	case o := <-done:
		return nil, o.err
	}
	f.Load = Load(ctx, cs, d, pause)
	o := <-done
	if o.err != nil {
		return nil, o.err
	}
	f.Loaded = o.b
	f.Covered = o.b.Finished.After(f.Load.End)
	logf("load: backup under load: %.1f s, %.2f MB/s BSON; %d clients, %d requests, %d errors, p50 %.1f ms, p99 %.1f ms, max %.1f ms",
		o.b.Seconds, o.b.MBps(), f.Load.Clients, f.Load.Requests, f.Load.Errors, f.Load.P50ms, f.Load.P99ms, f.Load.Maxms)
	if err := alone(); err != nil {
		return nil, err
	}
	return f, nil
}
