package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/ops"
	"github.com/a0backup/a0/internal/statedir"
	"github.com/a0backup/a0/internal/store"
)

// The handlers of the remote store (issue 16); the copy itself is the
// ops.Copier service (jobs.go).

// slotRemoteStatus is the remote status of the backup slot's backup (the
// sensitive slot is never copied: it holds the node's keys).
func (a *Agent) slotRemoteStatus(slot store.Slot, name string) *api.RemoteCopyStatus {
	if slot.Kind != api.SlotBackup || a.copier == nil {
		return nil
	}
	return a.copier.Status(name)
}

func (a *Agent) needRemote() error {
	if a.copier == nil {
		return api.Errorf(api.CodeUnsupported, `this node has no remote store: add "remote" to the agent config (docs/operations.md)`)
	}
	return nil
}

// copyNow is POST /v1/remote/copy: copy the stored backup now.
func (a *Agent) copyNow(w http.ResponseWriter, r *http.Request) error {
	if err := a.needRemote(); err != nil {
		return err
	}
	n, err := a.state.LoadNode()
	if err != nil {
		return err
	}
	if !n.HasRole(statedir.RoleBackup) || n.Device == "" {
		return ops.ErrNotBackupRole()
	}
	m, err := a.slot(n, api.SlotBackup).Stored()
	if errors.Is(err, store.ErrNoBackup) {
		return api.Errorf(api.CodeNotFound, "No backup found: nothing to copy")
	} else if err != nil {
		return err
	}
	if !m.Verified {
		return api.Errorf(api.CodeIntegrity, "%s", ops.ErrUnverified.Error())
	}
	args := api.CopyStarted{Name: m.Name, Location: a.cfg.Remote.Location()}
	if !a.copier.Copy(m.Name) {
		args.AlreadyRunning = true
	}
	a.log.Info("remote copy requested", "name", m.Name, "key", r.Context().Value(keyNameKey))
	return writeJSON(w, http.StatusAccepted, api.Message{Message: "Copy in progress.", Arguments: args})
}

// listBackups is GET /v1/backups: the local slot and the remote copies.
func (a *Agent) listBackups(w http.ResponseWriter, r *http.Request) error {
	out := api.Backups{Backups: []api.BackupEntry{}}
	var local *store.Meta
	if n, err := a.state.LoadNode(); err == nil && n.Device != "" {
		if m, err := a.slot(n, api.SlotBackup).Stored(); err == nil {
			local = m
			out.Backups = append(out.Backups, api.BackupEntry{Name: m.Name, Created: m.Created, Size: m.Size, SHA256: m.SHA256,
				Verified: m.Verified, Where: []string{"local"}})
		}
	}
	if a.copier != nil {
		out.Remote, out.Retention = a.cfg.Remote.Location(), a.cfg.Retention.String()
		entries, err := a.copier.Copies(r.Context())
		if err != nil {
			out.RemoteError = err.Error()
		}
		for _, e := range entries {
			if local != nil && e.Name == local.Name && e.Problem == "" && e.SHA256 == local.SHA256 {
				out.Backups[0].Where = append(out.Backups[0].Where, "remote")
				continue
			}
			out.Backups = append(out.Backups, e)
		}
	}
	sort.SliceStable(out.Backups, func(i, j int) bool { return out.Backups[i].Created.After(out.Backups[j].Created) })
	for i := range out.Backups {
		out.Backups[i].RestorePrediction = a.restorePrediction(out.Backups[i].Size)
	}
	if a.archive != nil {
		if st, _, err := a.pitrReport(r.Context()); err == nil {
			out.PITRWindows = st.Windows
		}
	} else if a.copier != nil {
		// No archive here, but the store's may serve a restore to a time
		// (restore --to-time --remote): its windows.
		if wins, _, err := a.pitrWindows(r.Context()); err == nil && len(wins.All()) > 0 {
			out.PITRWindows = ops.APIWindows(wins.All())
		}
	}
	return writeJSON(w, http.StatusOK, out)
}

// prunePost is POST /v1/backups/prune.
func (a *Agent) prunePost(w http.ResponseWriter, r *http.Request) error {
	var req api.BackupsPruneRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	var res *api.BackupsPrune
	switch {
	case a.copier != nil:
		var err error
		if res, err = a.copier.Prune(r.Context(), req.DryRun); err != nil {
			return err
		}
	case a.archive != nil:
		// No store, no copies: the prune is the device's oplog slices'
		// (what backups prune does for the archive on any node).
		res = &api.BackupsPrune{DryRun: req.DryRun, Retention: "no remote store", Decisions: []api.PruneDecision{}}
	default:
		return a.needRemote()
	}
	var err error
	if a.archive != nil {
		if res.PITR, err = a.prunePITR(r.Context(), req.DryRun); err != nil {
			return err
		}
	}
	a.log.Info("prune", "dry_run", req.DryRun, "key", r.Context().Value(keyNameKey))
	return writeJSON(w, http.StatusOK, res)
}

// checkedCopy is ops.Copier.Checked behind the check for a remote store.
func (a *Agent) checkedCopy(ctx context.Context, name string) (*api.RemoteBackup, error) {
	if err := a.needRemote(); err != nil {
		return nil, err
	}
	return a.copier.Checked(ctx, name)
}

// remoteBackup is GET /v1/remote/backups/{name}: the copy's record.
func (a *Agent) remoteBackup(w http.ResponseWriter, r *http.Request) error {
	rb, err := a.checkedCopy(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, rb)
}

// remoteFile is GET /v1/remote/backups/{name}/file: the copy streamed from
// the store through the node, with the record's md5 and sha256 in the
// headers for the CLI to check, and resumable with Range + If-Range.
func (a *Agent) remoteFile(w http.ResponseWriter, r *http.Request) error {
	rb, err := a.checkedCopy(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	var off int64
	if rg := r.Header.Get("Range"); rg != "" && r.Header.Get("If-Range") == `"`+rb.SHA256+`"` {
		if v, ok := strings.CutPrefix(rg, "bytes="); ok && strings.HasSuffix(v, "-") {
			if n, err := strconv.ParseInt(strings.TrimSuffix(v, "-"), 10, 64); err == nil && n >= 0 && n < rb.Size {
				off = n
			}
		}
	}
	rc, err := a.copier.OpenFile(r.Context(), rb, off)
	if err != nil {
		return err
	}
	defer rc.Close()
	h := w.Header()
	h.Set(api.HeaderMD5, rb.MD5)
	h.Set(api.HeaderSHA256, rb.SHA256)
	h.Set(api.HeaderName, rb.Name)
	h.Set("ETag", `"`+rb.SHA256+`"`)
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.FormatInt(rb.Size-off, 10))
	status := http.StatusOK
	if off > 0 {
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, rb.Size-1, rb.Size))
		status = http.StatusPartialContent
	}
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return nil
	}
	if _, err := io.CopyBuffer(w, rc, make([]byte, 1<<20)); err != nil {
		a.log.Warn("remote download cut", "name", rb.Name, "err", err)
	}
	return nil
}

// remoteSource makes a restore read a remote copy: the job downloads it to
// the uploads folder, checked against its record, then restores it as an
// upload (every byte authenticated before the first write).
func (a *Agent) remoteSource(src *ops.Source, req api.RestoreRequest) error {
	if err := a.needRemote(); err != nil {
		return err
	}
	if req.UploadID != "" {
		return api.Errorf(api.CodeBadRequest, "give a FILE or --remote NAME, not both")
	}
	if err := ops.CheckName(req.Remote); err != nil {
		return err
	}
	if err := os.MkdirAll(a.state.UploadsDir(), 0o700); err != nil {
		return err
	}
	// A dot name is no upload id: no client can write to it.
	src.Path = filepath.Join(a.state.UploadsDir(), ".remote-"+strconv.FormatInt(time.Now().UnixNano(), 36)+".upload")
	name, path := req.Remote, src.Path
	// The record beside the copy is the bucket's word: the copy's
	// authenticated manifest must prove it is NAME (issue 25 point 1).
	src.Name = name
	src.Fetch = func(ctx context.Context) error {
		rb, err := a.copier.Fetch(ctx, name, path)
		if err != nil {
			return err
		}
		a.log.Info("remote copy downloaded for the restore", "name", rb.Name, "bytes", rb.Size)
		return nil
	}
	return nil
}
