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
	"go.mongodb.org/mongo-driver/v2/mongo"

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
	s := &api.RestorePlan{OplogEntries: p.OplogEntries, Collections: []string{}, Users: p.Users, Roles: p.Roles, Skipped: p.Skipped, OplogOnly: p.OplogOnly,
		Renamed: p.Renamed}
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

// refusal types the refusals found before the first write: targets that
// hold documents (non_empty_target) and what the server cannot hold
// (unsupported, exit 4). CheckTargets finds a namespace the server refuses
// (a --ns-to onto a database name FerretDB does not take) as Preflight
// finds a time-series collection: both are the same refusal.
func refusal(err error) error {
	var ne *restore.NonEmptyError
	var ue *restore.UnsupportedError
	switch {
	case errors.As(err, &ne):
		return &ops.Error{Kind: ops.NonEmptyTarget,
			Msg:     fmt.Sprintf("target collections already hold documents: %s; use --drop to replace them", strings.Join(ne.Namespaces, ", ")),
			Details: map[string]any{"namespaces": ne.Namespaces}, Err: err}
	case errors.As(err, &ue):
		return &ops.Error{Kind: ops.Unsupported, Msg: ue.Error(),
			Details: map[string]any{"namespace": ue.Namespace, "feature": ue.Feature}, Err: err}
	}
	return err
}

// RunRestore is the restore job of r (ops.Runners.Restore).
func RunRestore(ctx context.Context, j *job.Job, r *ops.Restore) (*api.RestoreResult, error) {
	src := r.Source
	defer clear(src.Password)
	defer clear(src.FileKey)
	opts := restore.Options{Drop: r.Options.Drop, NS: r.Options.NS, NSFrom: r.Options.NSFrom, NSTo: r.Options.NSTo, DryRun: r.Options.DryRun, Plain: r.Options.Plain,
		SpoolDir: r.Options.SpoolDir, StopOnError: r.Options.StopOnError, UsersAndRoles: r.Options.UsersAndRoles,
		IndexIDLookups: r.Options.IndexIDLookups, Count: r.Options.Count,
		InputSize: r.Options.InputSize, SpoolReserve: r.Options.SpoolReserve, Logger: r.Log}
	if p := r.PITR; p != nil {
		defer p.Clear()
		opts.Extra = restore.ExtraSource(p.Source())
		opts.ExtraAfter = &restore.Position{T: p.After.T, I: p.After.I}
		opts.ExtraTo = &restore.Position{T: p.To.T, I: p.To.I}
		opts.ExtraReplicaSet = func(set string) { p.BaseSet = set }
	}
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
		return nil, ops.CancelledError(ctx, openError(err), "it stopped while authenticating the file, before the first write: the database is unchanged")
	}
	// Which backup this is, proven by its authenticated manifest, before
	// the targets are looked at and long before the first write (issue 25
	// point 1).
	if err := src.CheckBackupName(plan.Manifest); err != nil {
		return nil, err
	}
	stopPolling()
	res := &api.RestoreResult{Phase: "planned", Plan: planSummary(plan)}
	if p := r.PITR; p != nil {
		res.Plan.ArchiveEntries, res.Plan.ArchiveSlices = plan.ExtraEntries, len(p.Slices)
		res.Plan.ToTS = &api.OplogTS{T: p.To.T, I: p.To.I}
	}
	mu.Lock()
	for _, c := range plan.Collections {
		docsTotal += c.Documents
		bytesTotal += c.Bytes
	}
	oplogTotal = plan.OplogEntries
	mu.Unlock()
	checkOpts := opts
	if opts.DryRun {
		// A dry run lists the targets that hold documents whether or not
		// --drop is given (issue 28.7): they are what --drop replaces, and
		// a plan without --drop that has them is shown, not refused.
		checkOpts.Drop = false
	}
	if err := restore.CheckTargets(ctx, r.Client, plan, checkOpts); err != nil {
		var ne *restore.NonEmptyError
		switch {
		case errors.As(err, &ne) && opts.DryRun:
			res.Plan.NonEmpty = ne.Namespaces
		default:
			return res, refusal(err)
		}
	}
	if opts.DryRun {
		res.Phase = "dry-run"
		return res, nil
	}
	// Whether the server can hold everything (time-series, views,
	// users and roles...) is known before the first document goes in.
	if err := restore.Preflight(ctx, r.Client, plan, opts); err != nil {
		return res, refusal(err)
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
	if err != nil && errors.Is(context.Cause(ctx), job.ErrCancelled) {
		return res, cancelledPartWay(ctx, r, res, plan)
	}
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

// cancelledPartWay ends a restore an operator cancelled after the marker
// was written (issue 28.1): the marker stays, saying "cancelled" and what
// the database holds now, and so do the result and the error, so that
// nothing looks restored that is not.
func cancelledPartWay(ctx context.Context, r *ops.Restore, res *api.RestoreResult, plan *restore.PlanResult) error {
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	res.Phase = "cancelled"
	res.Written = writtenCollections(bg, r.Client, plan)
	what := "no target collection holds documents yet; some may have been created"
	if len(res.Written) > 0 {
		what = "written so far: " + strings.Join(res.Written, ", ")
	}
	msg := job.ErrCancelled.Error() + " part way, after the restore began writing: the database is partly restored (" + what +
		"); the restore marker stays (node-status: interrupted restore) until a restore succeeds: run restore again with --drop"
	if err := ops.SetMarker(bg, r.Client, bson.D{{Key: "state", Value: "cancelled"}, {Key: "error", Value: msg},
		{Key: "written", Value: res.Written}, {Key: "finished", Value: time.Now().UTC()}}); err != nil {
		r.Log.Warn("could not update the restore marker", "err", err)
	}
	r.Log.Warn("restore cancelled part way: the database is partly restored", "written", len(res.Written))
	return &ops.Error{Kind: ops.Cancelled, Msg: msg, Err: job.ErrCancelled}
}

// writtenCollections are the planned targets that hold documents now, as
// "db.coll (N documents)" (the server's estimate: cheap, and a cancelled
// restore's writes are settled).
func writtenCollections(ctx context.Context, c *mongo.Client, plan *restore.PlanResult) []string {
	names := make([]string, 0, len(plan.Collections)+len(plan.OplogOnly))
	for _, pc := range plan.Collections {
		if pc.Type != "view" {
			names = append(names, pc.DB+"."+pc.Name)
		}
	}
	names = append(names, plan.OplogOnly...)
	var out []string
	for _, ns := range names {
		db, coll, _ := strings.Cut(ns, ".")
		n, err := c.Database(db).Collection(coll).EstimatedDocumentCount(ctx)
		if err == nil && n > 0 {
			out = append(out, fmt.Sprintf("%s (%d documents)", ns, n))
		}
	}
	return out
}

// openError gives the failures of reading a backup file for a restore their
// kinds: those of the file itself first (ops.OpenError), then restore's
// refusals of its archive.
func openError(err error) error {
	if pe := ops.PITRError(err); pe != nil {
		return pe
	}
	var oe *ops.Error
	if fe := ops.OpenError(err); err == nil || errors.As(fe, &oe) {
		return fe
	}
	switch {
	case errors.Is(err, restore.ErrInvalidArchive):
		return &ops.Error{Kind: ops.Integrity, Msg: "backup archive refused: " + err.Error(), Err: err}
	case errors.Is(err, restore.ErrNoMatch), errors.Is(err, restore.ErrBadRename):
		return &ops.Error{Kind: ops.Invalid, Msg: err.Error(), Err: err}
	}
	return err
}
