package agent

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/job"
	"github.com/a0backup/a0/internal/ops"
)

func (a *Agent) restoreSource(req api.RestoreRequest, password []byte) (ops.Source, error) {
	src := ops.Source{Password: password, FileKey: req.FileKey, Plain: req.Plain}
	if req.Remote != "" {
		if err := a.remoteSource(&src, req); err != nil {
			return src, err
		}
	} else if req.UploadID != "" {
		if !uploadID.MatchString(req.UploadID) {
			return src, api.Errorf(api.CodeBadRequest, "invalid upload id")
		}
		src.Path, src.Upload = filepath.Join(a.state.UploadsDir(), req.UploadID+".upload"), true
		if _, err := os.Stat(src.Path); err != nil {
			return src, api.Errorf(api.CodeNotFound, "no upload %q on the node", req.UploadID)
		}
	} else {
		n, err := a.state.LoadNode()
		if err != nil {
			return src, err
		}
		if n.Device == "" {
			return src, api.Errorf(api.CodeNotFound, "No backup found: this node has no backup device; give a FILE to upload")
		}
		m, err := a.slot(n, api.SlotBackup).Stored()
		if err != nil {
			return src, api.Errorf(api.CodeNotFound, "No backup found on the node; give a FILE to upload")
		}
		// The slot's metadata names the backup; the file's manifest
		// must prove it (issue 25 point 1).
		src.Path, src.Name = a.slot(n, api.SlotBackup).Path(m), m.Name
	}
	if !src.Plain && len(src.Password) == 0 && len(src.FileKey) == 0 {
		return src, api.Errorf(api.CodeBadRequest, "a password is required to restore an encrypted backup")
	}
	return src, nil
}

func (a *Agent) startRestore(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		api.RestoreRequest
		Password secret `json:"password,omitempty"`
	}
	if err := decode(w, r, &req); err != nil {
		return err
	}
	// The job clears the password when it ends; until it starts, this does.
	started := false
	defer func() {
		if !started {
			clear(req.Password)
			for _, k := range req.SliceKeys {
				clear(k)
			}
		}
	}()
	src, err := a.restoreSource(req.RestoreRequest, req.Password)
	if err != nil {
		return err
	}
	src.WantSHA256 = req.UploadSHA256
	if len(req.NSFrom) != len(req.NSTo) {
		return api.Errorf(api.CodeBadRequest, "bad namespace renaming: %d ns_from and %d ns_to: give them in pairs", len(req.NSFrom), len(req.NSTo))
	}
	opts := ops.RestoreOptions{Drop: req.Drop, NS: req.NS, NSFrom: req.NSFrom, NSTo: req.NSTo, DryRun: req.DryRun, Plain: req.Plain, SpoolDir: a.state.SpoolDir(),
		StopOnError: req.StopOnError, UsersAndRoles: req.UsersAndRoles}
	if fi, err := os.Stat(src.Path); err == nil { // issue 25.2: spools bounded by the upload's size
		opts.InputSize, opts.SpoolReserve = fi.Size(), a.uploadReserve()
	}
	if a.embed != nil {
		// The replay's writes by _id search an index instead of scanning
		// (issue 14): see embedded.IndexIDLookups.
		opts.IndexIDLookups = func(ctx context.Context, db string, colls []string) error {
			_, err := a.embed.IndexIDLookups(ctx, db, colls)
			return err
		}
		opts.Count = a.embed.Catalog().Count
	}
	var pt *ops.PITR
	if req.ToTS != nil {
		// A point in time: the base and slices chosen again, as the plan
		// the CLI unwrapped the keys for chose them.
		if pt, err = a.pitrRestore(r.Context(), req.RestoreRequest); err != nil {
			clear(src.FileKey)
			return err
		}
		// The file the plan chose, whose name the CLI checked and its
		// manifest must prove (CheckBackupName).
		src.Name = pt.Base.Name
		if pt.Remote == nil {
			src.Path = pt.BasePath
		} else {
			// The copy (remoteSource's Fetch) and the slices are
			// downloaded when the job starts; every slice is
			// authenticated and chained in the first pass, before the
			// first write.
			fetchBase, p := src.Fetch, pt
			src.Fetch = func(ctx context.Context) error {
				rb, err := a.copier.Checked(ctx, p.Base.Name)
				if err != nil {
					return err
				}
				if err := p.FetchSlices(ctx, rb.Size); err != nil {
					return err
				}
				a.log.Info("oplog slices downloaded from the remote store for the restore", "slices", len(p.Slices))
				return fetchBase(ctx)
			}
		}
	}
	if err := a.startKeyJob(r, kindRestore, a.restoreJobPITR(src, opts, pt)); err != nil {
		clear(src.FileKey)
		pt.Clear()
		return err
	}
	started = true
	if pt != nil {
		a.log.Info("restore to a point in time started", "key", r.Context().Value(keyNameKey), "base", pt.Base.Name,
			"to_ts", ops.TSText(pt.To), "slices", len(pt.Slices), "dry_run", req.DryRun, "drop", req.Drop)
	} else {
		a.log.Info("restore started", "key", r.Context().Value(keyNameKey), "dry_run", req.DryRun, "drop", req.Drop)
	}
	return writeJSON(w, http.StatusAccepted, api.Message{Message: "Restore in progress."})
}

// restoreJob is the restore job of src with the agent's database.
func (a *Agent) restoreJob(src ops.Source, opts ops.RestoreOptions) job.Func {
	return a.restoreJobPITR(src, opts, nil)
}

// restoreJobPITR is restoreJob to a point in time when p is set.
func (a *Agent) restoreJobPITR(src ops.Source, opts ops.RestoreOptions, p *ops.PITR) job.Func {
	rj := &ops.Restore{Client: a.client, Source: src, Options: opts, LockUpload: a.lockUpload, Hold: a.cfg.Hold, Log: a.log, PITR: p}
	return func(ctx context.Context, j *job.Job) (any, error) {
		// The node's measured restore rate (`backups` predicts from it):
		// a whole restore of a file already on the node, not one that
		// downloads it first or replays oplog slices after it, nor one
		// that writes part of it (--ns, --ns-from): the whole file's
		// bytes over a part's time would predict any backup too fast.
		var size int64
		whole := len(opts.NS) == 0 && len(opts.NSFrom) == 0
		if fi, err := os.Stat(src.Path); err == nil && src.Fetch == nil && p == nil && !opts.DryRun && whole {
			size = fi.Size()
		}
		began := time.Now()
		res, err := a.cfg.Jobs.Restore(ctx, j, rj)
		if err == nil && size > 0 {
			a.recordRestoreRate(src.Name, size, time.Since(began))
		}
		if res == nil {
			return nil, jobError(err)
		}
		return res, jobError(err)
	}
}

func (a *Agent) restoreStatus(w http.ResponseWriter, r *http.Request) error {
	if running, started, progress := a.jobs.Running(); running == kindRestore {
		return writeJSON(w, http.StatusOK, api.Message{Message: "Restore in progress",
			Arguments: api.JobRunning[any]{Progress: progress, Started: started}})
	}
	rec, err := a.jobs.Last(kindRestore)
	if err != nil {
		return err
	}
	if rec == nil {
		return writeJSON(w, http.StatusOK, api.Message{Message: "No restore found"})
	}
	if rec.State == job.StateFailed {
		return writeJSON(w, http.StatusOK, api.Message{Message: "Restore failed", Arguments: api.RestoreFailed{
			Code: rec.Code, Error: rec.Error, Finished: rec.Finished, Result: rec.Result, Started: rec.Started}})
	}
	return writeJSON(w, http.StatusOK, api.Message{Message: "Restore finished", Arguments: api.RestoreEnded{
		Finished: rec.Finished, Result: rec.Result, Started: rec.Started}})
}

func (a *Agent) restoreSensitive(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		api.RestoreSensitiveRequest
		Password secret `json:"password"`
	}
	if err := decode(w, r, &req); err != nil {
		return err
	}
	defer clear(req.Password)
	if !uploadID.MatchString(req.UploadID) {
		return api.Errorf(api.CodeBadRequest, "invalid upload id")
	}
	src := ops.Source{Path: filepath.Join(a.state.UploadsDir(), req.UploadID+".upload"), Password: req.Password, Upload: true,
		WantSHA256: req.UploadSHA256}
	if _, err := os.Stat(src.Path); err != nil {
		return api.Errorf(api.CodeNotFound, "no upload %q on the node", req.UploadID)
	}
	// The whole restore-sensitive holds the job runner: no backup of the
	// same files and no other restore can run while it reads and writes.
	var (
		out    api.Message
		jobErr error
	)
	err := a.startKeyJob(r, kindRestoreSensitive, func(ctx context.Context, j *job.Job) (any, error) {
		rs := &ops.RestoreSensitive{State: a.state, Extra: a.cfg.SensitivePaths, Source: src, Confirm: req.Confirm,
			LockUpload: a.lockUpload, ReloadCert: a.reloadCert, ReloadSecrets: a.reloadSecrets, KeysInUse: a.keysInUse,
			Key: r.Context().Value(keyNameKey), Log: a.log}
		out, jobErr = rs.Run(ctx)
		// The job record keeps the answer: what was written and what was
		// skipped (identity files without consent) stay on the node.
		return out.Arguments, jobErr
	})
	if err != nil {
		return err
	}
	if err := a.jobs.Wait(r.Context()); err != nil {
		return err
	}
	if jobErr != nil {
		return jobErr
	}
	return writeJSON(w, http.StatusOK, out)
}
