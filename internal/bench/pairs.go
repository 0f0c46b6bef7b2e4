package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// pairs is what MeasureLive and MeasureExternal share: their backups and
// restores timed pair by pair (a0, then stock, runs times in turn), so
// that a load which comes and goes on the machine touches both tools of a
// pair alike and the ratios are taken pair by pair.
type pairs struct {
	// label prefixes the log lines and errors ("live", "external").
	label        string
	runs         int
	password     string
	mongodump    string
	mongorestore string
	logf         func(string, ...any)
}

// newPairs checks that the stock tools are in tools.
func newPairs(label, tools string, runs int, password string, logf func(string, ...any)) (*pairs, error) {
	p := &pairs{label: label, runs: runs, password: password, logf: logf,
		mongodump: filepath.Join(tools, "mongodump"), mongorestore: filepath.Join(tools, "mongorestore")}
	for _, t := range []string{p.mongodump, p.mongorestore} {
		if _, err := os.Stat(t); err != nil {
			return nil, fmt.Errorf("%s: stock tool: %w (see --tools)", label, err)
		}
	}
	return p, nil
}

func (p *pairs) env() []string { return append(os.Environ(), PasswordEnv+"="+p.password) }

// backups times an a0 point-in-time backup through n (POST to "Backup
// found") against `mongodump --archive --gzip | openssl enc` of uri into
// stockFile, then retrieves the last a0 backup into a0File.
func (p *pairs) backups(ctx context.Context, f *LiveFigures, n *Node, uri, a0File, stockFile string) error {
	for i := range p.runs {
		p.logf("%s: backup run %d/%d: a0", p.label, i+1, p.runs)
		b, err := n.liveBackup(ctx, p.password, i == p.runs-1)
		if err != nil {
			return err
		}
		f.A0Backup = append(f.A0Backup, b)
		p.logf("%s: backup run %d/%d: a0 %.1f s (202 at %.1f, first byte %.1f, reads %.1f, after %.1f); stock", p.label, i+1, p.runs, b.Seconds, b.Accepted, b.FirstByte, b.Reads, b.After)
		s, out, err := runStock(ctx, p.env(), stockBackupPipe, p.mongodump, uri, stockFile)
		if err != nil {
			return fmt.Errorf("%s: mongodump | openssl: %w: %s", p.label, err, out)
		}
		f.StockBackup = append(f.StockBackup, s)
		f.BackupRatios = append(f.BackupRatios, s/b.Seconds)
		p.logf("%s: backup run %d/%d: stock %.1f s", p.label, i+1, p.runs, s)
	}
	if _, err := n.CLI(ctx, "-t", n.Addr, "backup-retrieve", "-o", a0File); err != nil {
		return err
	}
	return nil
}

// target is a fresh server a restore writes into.
type target struct {
	uri string
	// count counts the documents of every user collection.
	count func(context.Context) (int64, error)
	close func()
	// cpu, when set, is the server process's CPU time so far.
	cpu func() float64
}

// restores times, pair by pair, the a0 restore of a0File (a0, given a
// fresh directory; it returns its result and the wall time the ratio
// uses) against `openssl enc -d | mongorestore --archive --gzip
// --noIndexRestore` of stockFile into a fresh server (start).
func (p *pairs) restores(ctx context.Context, f *LiveFigures, work, a0File, stockFile string,
	a0 func(ctx context.Context, dir string) (r DBResult, wall float64, err error),
	start func(ctx context.Context, dir string) (*target, error)) error {
	if fi, err := os.Stat(a0File); err == nil {
		f.A0FileBytes = fi.Size()
	}
	if fi, err := os.Stat(stockFile); err == nil {
		f.StockFileBytes = fi.Size()
	}
	for i := range p.runs {
		dir := filepath.Join(work, fmt.Sprintf("restore-a0-%d", i))
		r, wall, err := a0(ctx, dir)
		os.RemoveAll(dir)
		if err != nil {
			return fmt.Errorf("%s: a0 restore: %w", p.label, err)
		}
		if !r.OK {
			return errors.New(p.label + ": a0 restore: the report is not OK")
		}
		f.A0Restore = append(f.A0Restore, r)
		if f.External {
			f.A0RestoreWall = append(f.A0RestoreWall, wall)
		}
		f.OplogReplayed = r.OplogApplied
		p.logf("%s: restore run %d/%d: a0 %.1f s (auth pass %.1f s, data phase %.1f s, indexes+replay+count %.1f s, %d docs, oplog %d entries); stock",
			p.label, i+1, p.runs, wall, r.PlanSeconds, r.DataSeconds, r.Seconds-r.InsertSeconds, r.Documents, r.OplogApplied)

		dir = filepath.Join(work, fmt.Sprintf("restore-stock-%d", i))
		t, err := start(ctx, dir)
		if err != nil {
			return err
		}
		var cpu0 float64
		if t.cpu != nil {
			cpu0 = t.cpu()
		}
		s, out, err := runStock(ctx, p.env(), stockRestorePipe, p.mongorestore, t.uri, stockFile)
		if t.cpu != nil {
			f.StockServerCPU = append(f.StockServerCPU, t.cpu()-cpu0)
		}
		var docs int64
		if err == nil {
			docs, err = t.count(ctx)
		}
		t.close()
		os.RemoveAll(dir)
		if err != nil {
			return fmt.Errorf("%s: openssl -d | mongorestore: %w: %s", p.label, err, out)
		}
		f.StockRestore = append(f.StockRestore, s)
		f.StockDocs = docs
		f.RestoreRatios = append(f.RestoreRatios, s/wall)
		p.logf("%s: restore run %d/%d: stock %.1f s (%d docs)", p.label, i+1, p.runs, s, docs)
	}
	return nil
}
