package dbjob

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/job"
	"github.com/a0backup/a0/internal/ops"
	"github.com/a0backup/a0/internal/restore"
	"github.com/a0backup/a0/internal/spool"
)

// CleanSpools removes the encrypted spools a killed restore left in dir:
// their key died with the process. It returns what it removed
// (ops.Runners.CleanSpools).
func CleanSpools(dir string) []string {
	removed, _ := spool.Clean(dir, restore.OplogSpoolPattern)
	// A mongodump archive's interleaved collections (package dumparchive).
	more, _ := spool.Clean(dir, ".a0-archive-spool-*")
	return append(removed, more...)
}

func planSummary(p *restore.PlanResult) *api.RestorePlan {
	s := &api.RestorePlan{OplogEntries: p.OplogEntries, Collections: []string{}, Users: p.Users, Roles: p.Roles, Skipped: p.Skipped, OplogOnly: p.OplogOnly}
	if p.Manifest != nil {
		s.Created = p.Manifest.Started.Format("2006-01-02T15:04:05Z")
		s.Consistency = p.Manifest.Consistency
	}
	for _, c := range p.Collections {
		s.Collections = append(s.Collections, c.DB+"."+c.Name)
		s.Documents += c.Documents
	}
	return s
}

// report is restore's report as the API carries it: the same JSON
// (TestReportJSON keeps the two types in step).
func report(r *restore.Report) *api.RestoreReport {
	if r == nil {
		return nil
	}
	b, err := json.Marshal(r)
	if err != nil {
		return nil
	}
	var out api.RestoreReport
	if json.Unmarshal(b, &out) != nil {
		return nil
	}
	return &out
}

func counters(s restore.Snapshot) api.RestoreCounters {
	return api.RestoreCounters{CollectionsDone: s.CollectionsDone, CollectionsTotal: s.CollectionsTotal, Documents: s.Documents,
		Bytes: s.Bytes, OplogApplied: s.OplogApplied, Step: s.Step}
}

// RunRestore is the restore job of r (ops.Runners.Restore).
func RunRestore(ctx context.Context, j *job.Job, r *ops.Restore) (*api.RestoreResult, error) {
	src := r.Source
	defer clear(src.Password)
	defer clear(src.FileKey)
	opts := restore.Options{Drop: r.Options.Drop, NS: r.Options.NS, DryRun: r.Options.DryRun, Plain: r.Options.Plain,
		SpoolDir: r.Options.SpoolDir, StopOnError: r.Options.StopOnError, UsersAndRoles: r.Options.UsersAndRoles,
		IndexIDLookups: r.Options.IndexIDLookups, Count: r.Options.Count,
		InputSize: r.Options.InputSize, SpoolReserve: r.Options.SpoolReserve}
	var mu sync.Mutex
	phase, docsTotal, bytesTotal, oplogTotal := "authenticating", int64(0), int64(0), int64(0)
	setPhase := func(p string) {
		mu.Lock()
		phase = p
		mu.Unlock()
	}
	prog := &restore.Progress{}
	if src.Fetch != nil {
		setPhase("downloading")
		defer os.Remove(src.Path)
		if err := src.Fetch(ctx); err != nil {
			return nil, err
		}
		setPhase("authenticating")
	}
	var fileTotal int64
	if st, err := os.Stat(src.Path); err == nil {
		fileTotal = st.Size()
	}
	var fileRead atomic.Int64
	j.SetProgress(func() any {
		s := prog.Snapshot()
		mu.Lock()
		defer mu.Unlock()
		p := api.RestoreProgress{Phase: phase, RestoreCounters: counters(s), DocumentsTotal: docsTotal, BytesTotal: bytesTotal, OplogEntriesTotal: oplogTotal}
		if phase == "authenticating" {
			p.FileBytes, p.FileBytesTotal = fileRead.Load(), fileTotal
		}
		return p
	})
	// No PUT may change an upload while it is read: both passes must
	// read the bytes whose hash was checked.
	if src.Upload {
		unlock, ok := r.LockUpload(src.Path)
		if !ok {
			return nil, &ops.Error{Kind: ops.Busy, Msg: "a client is uploading this file right now"}
		}
		defer unlock()
	}
	// Pass 1: authenticate every byte and validate the archive, before
	// the first write to the database.
	file, bf, err := src.Open()
	if err != nil {
		return nil, err
	}
	defer file.Close()
	// The file's offset is how far pass 1 has read (its buffer ahead).
	stopPos := make(chan struct{})
	stopPolling := sync.OnceFunc(func() { close(stopPos) })
	defer stopPolling()
	go func() {
		for {
			select {
			case <-stopPos:
				return
			case <-time.After(200 * time.Millisecond):
				if pos, err := file.Seek(0, io.SeekCurrent); err == nil {
					fileRead.Store(pos)
				}
			}
		}
	}()
	// The archive may end before the encrypted stream does: Authenticate
	// reads to the last byte all the same.
	var plan *restore.PlanResult
	_, err = bf.Authenticate(ctx, func(plain io.Reader) (err error) {
		plan, err = restore.Plan(ctx, plain, opts)
		return err
	})
	if err == nil {
		err = src.CheckHash()
	}
	if err != nil {
		return nil, openError(err)
	}
	stopPolling()
	res := &api.RestoreResult{Phase: "planned", Plan: planSummary(plan)}
	mu.Lock()
	for _, c := range plan.Collections {
		docsTotal += c.Documents
		bytesTotal += c.Bytes
	}
	oplogTotal = plan.OplogEntries
	mu.Unlock()
	if err := restore.CheckTargets(ctx, r.Client, plan, opts); err != nil {
		var ne *restore.NonEmptyError
		if errors.As(err, &ne) {
			return res, &ops.Error{Kind: ops.NonEmptyTarget,
				Msg:     fmt.Sprintf("target collections already hold documents: %s; use --drop to replace them", strings.Join(ne.Namespaces, ", ")),
				Details: map[string]any{"namespaces": ne.Namespaces}, Err: err}
		}
		return res, err
	}
	if opts.DryRun {
		res.Phase = "dry-run"
		return res, nil
	}
	// Whether the server can hold everything (time-series, views,
	// users and roles...) is known before the first document goes in.
	if err := restore.Preflight(ctx, r.Client, plan, opts); err != nil {
		var ue *restore.UnsupportedError
		if errors.As(err, &ue) {
			return res, &ops.Error{Kind: ops.Unsupported, Msg: ue.Error(),
				Details: map[string]any{"namespace": ue.Namespace, "feature": ue.Feature}, Err: err}
		}
		return res, err
	}
	stream, err := bf.Reopen()
	if err != nil {
		return res, openError(err)
	}
	if prev, _ := ops.Marker(ctx, r.Client); prev != nil {
		res.Previous = prev
		r.Log.Warn("a previous restore did not finish; this one replaces it", "started", prev["started"])
	}
	if err := ops.SetMarker(ctx, r.Client, bson.D{{Key: "state", Value: "running"}, {Key: "started", Value: time.Now().UTC()},
		{Key: "collections", Value: len(plan.Collections)}}); err != nil {
		return res, fmt.Errorf("write the restore marker: %w", err)
	}
	// From here on the database may be partly written: the marker says so.
	setPhase("restoring")
	r.Log.Info("restore writing to the database", "collections", len(plan.Collections))
	r.Hold.At(ctx, ops.HoldRestore)
	rep, err := restore.Run(ctx, r.Client, stream, plan, opts, prog)
	res.Report, res.Phase = report(rep), "done"
	if err != nil {
		res.Phase = "failed"
		// The marker stays, now saying why: the next restore and
		// node-status report a database left half-written.
		ops.SetMarker(context.WithoutCancel(ctx), r.Client, bson.D{{Key: "state", Value: "failed"},
			{Key: "error", Value: err.Error()}, {Key: "finished", Value: time.Now().UTC()}})
		r.Log.Error("restore failed part way: the database is partly restored", "err", err)
		return res, fmt.Errorf("restore failed part way, the database is partly restored (run restore again with --drop): %w", err)
	}
	if err := ops.ClearMarker(ctx, r.Client); err != nil {
		r.Log.Warn("could not clear the restore marker", "err", err)
	}
	src.Done()
	if rep != nil && rep.DocumentsFailed > 0 {
		return res, &ops.Error{Kind: ops.Integrity, Msg: fmt.Sprintf(
			"restore finished, but the server refused %d documents (duplicate keys or validation failures, counted per collection in the report; restore with --stop-on-error to stop at the first)",
			rep.DocumentsFailed)}
	}
	if rep != nil && !rep.OK {
		return res, &ops.Error{Kind: ops.Integrity, Msg: "restore finished with differences between the backup and the database: see the report"}
	}
	r.Log.Info("restore done")
	return res, nil
}

// openError gives the failures of reading a backup file for a restore their
// kinds: those of the file itself first (ops.OpenError), then restore's
// refusals of its archive.
func openError(err error) error {
	var oe *ops.Error
	if fe := ops.OpenError(err); err == nil || errors.As(fe, &oe) {
		return fe
	}
	switch {
	case errors.Is(err, restore.ErrInvalidArchive):
		return &ops.Error{Kind: ops.Integrity, Msg: "backup archive refused: " + err.Error(), Err: err}
	case errors.Is(err, restore.ErrNoMatch):
		return &ops.Error{Kind: ops.Invalid, Msg: err.Error(), Err: err}
	}
	return err
}
