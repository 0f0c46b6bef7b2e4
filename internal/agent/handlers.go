package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/job"
	"github.com/a0backup/a0/internal/ops"
	"github.com/a0backup/a0/internal/statedir"
	"github.com/a0backup/a0/internal/store"
	"github.com/a0backup/a0/internal/version"
)

func (a *Agent) ping(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, api.Message{Message: "PONG"})
}

func (a *Agent) commands(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, api.NodeCommands())
}

func (a *Agent) setAsBackup(w http.ResponseWriter, r *http.Request) error {
	var req api.SetAsBackupRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if req.Device == "" || !filepath.IsAbs(req.Device) {
		return api.Errorf(api.CodeDeviceInvalid, "device must be an absolute path on the node, got %q", req.Device)
	}
	if err := a.checkDevice(req.Device); err != nil {
		return err
	}
	if kind, _, _ := a.jobs.Running(); kind != "" {
		return &job.BusyError{Running: kind}
	}
	st, err := os.Stat(req.Device)
	if err != nil || !st.IsDir() {
		return api.Errorf(api.CodeDeviceInvalid, "device %s does not exist or is not a directory on the node", req.Device)
	}
	if err := syscall.Access(req.Device, 2 /* W_OK */); err != nil {
		return api.Errorf(api.CodeDeviceInvalid, "device %s is not writable by the agent", req.Device)
	}
	left, err := a.storedElsewhere(req.Device, req.Force)
	if err != nil {
		return err
	}
	folder := filepath.Join(req.Device, store.FolderName)
	if _, err := os.Stat(folder); err == nil && !req.Force {
		return api.Errorf(api.CodeDeviceExists, "backup folder %s already exists; run `set-as-backup %s force` to use it anyway", folder, req.Device)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.MkdirAll(folder, 0o700); err != nil {
		return api.Errorf(api.CodeDeviceInvalid, "cannot create %s: %v", folder, err)
	}
	n, err := a.state.LoadNode()
	if err != nil {
		return err
	}
	if !n.HasRole(statedir.RoleBackup) {
		n.Roles = append(n.Roles, statedir.RoleBackup)
	}
	n.Device = req.Device
	if err := a.state.SaveNode(n); err != nil {
		return err
	}
	for _, l := range left {
		a.log.Warn("backup left on the previous device", "kind", l.Kind, "name", l.Name, "path", l.Path)
	}
	a.log.Info("node set as backup", "device", req.Device, "force", req.Force)
	a.archiveOn(n)
	return writeJSON(w, http.StatusOK, api.Message{
		Message:   "Node set as backup",
		Arguments: api.SetAsBackupReply{Device: req.Device, Folder: folder, Roles: n.Roles, LeftBehind: left},
	})
}

// storedElsewhere (issue 28.8): the backups stored on the node's current
// device, when set-as-backup moves it to another one. The node then no
// longer sees them (backup-status would say "No backup found"), so the move
// is refused, naming them and the ways on, unless force: then they stay
// where they are and the reply says where.
func (a *Agent) storedElsewhere(device string, force bool) ([]api.LeftBackup, error) {
	n, err := a.state.LoadNode()
	if err != nil {
		return nil, err
	}
	if n.Device == "" || filepath.Clean(n.Device) == filepath.Clean(device) {
		return nil, nil
	}
	var left []api.LeftBackup
	var names []string
	for _, kind := range []string{api.SlotBackup, api.SlotSensitive} {
		slot := a.slot(n, kind)
		m, err := slot.Stored()
		if err != nil {
			continue // none stored (or unreadable: nothing to keep reachable)
		}
		left = append(left, api.LeftBackup{Kind: kind, Name: m.Name, Device: n.Device, Path: slot.Path(m)})
		names = append(names, fmt.Sprintf("%s backup %s (%s)", kind, m.Name, slot.Path(m)))
	}
	if len(left) == 0 || force {
		return left, nil
	}
	return nil, api.Errorf(api.CodeBackupExists,
		"the current backup device %s holds %s: set-as-backup %s would leave it behind (backup-status would no longer see it); "+
			"first delete it (`a0cli backup-delete`, `backup-sensitive-delete`), or retrieve it (`a0cli backup-retrieve`) and then delete it, "+
			"or run `set-as-backup %s force` to switch and keep it where it is",
		n.Device, strings.Join(names, " and "), device, device)
}

func (a *Agent) nodeStatus(w http.ResponseWriter, r *http.Request) error {
	n, err := a.state.LoadNode()
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	out := api.NodeStatus{Node: host, AgentVersion: version.Version, Roles: n.Roles, Device: n.Device, Database: a.dbName}
	if out.Roles == nil {
		out.Roles = []string{}
	}
	if n.Device != "" {
		out.DeviceFreeBytes, _ = ops.FreeBytes(n.Device)
	}
	// From the cache the metrics use too, read in the background
	// (dbstats.go, sizes.go): never dbStats on the request's path.
	size := a.dbStats.peek(r.Context(), a, statusWait)
	if !size.read.IsZero() {
		at := size.read.UTC()
		out.DatabaseBytes, out.DatabaseBytesRead = size.bytes, &at
		out.DatabaseBytesAgeSeconds = int64(time.Since(size.read).Seconds())
	}
	out.DatabaseBytesRefreshSeconds = int64(dbStatsInterval.Seconds())
	if size.err != nil {
		out.DatabaseBytesError = size.err.Error()
	}
	out.ServerVersion = a.cachedServerVersion()
	out.Job, _, _ = a.jobs.Running()
	out.Keys = a.keysInUse()
	out.Schedule = a.scheduleStatus()
	out.Drill = a.drillStatus()
	if running, _, _ := a.jobs.Running(); running != kindRestore {
		if m, _ := ops.Marker(r.Context(), a.client); m != nil {
			out.InterruptedRestore = m
		}
	}
	return writeJSON(w, http.StatusOK, out)
}

func jobKind(slot string) string { return ops.JobKind(slot) }

// backupSlot resolves {slot} and checks the backup role.
func (a *Agent) backupSlot(r *http.Request) (statedir.Node, store.Slot, error) {
	name := r.PathValue("slot")
	if name != api.SlotBackup && name != api.SlotSensitive {
		return statedir.Node{}, store.Slot{}, api.Errorf(api.CodeNotFound, "unknown backup slot %q", name)
	}
	n, err := a.state.LoadNode()
	if err != nil {
		return n, store.Slot{}, err
	}
	if !n.HasRole(statedir.RoleBackup) || n.Device == "" {
		return n, store.Slot{}, ops.ErrNotBackupRole()
	}
	return n, a.slot(n, name), nil
}

const minPassword = 8

func (a *Agent) startBackup(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		api.BackupRequest
		Password secret `json:"password"`
	}
	if err := decode(w, r, &req); err != nil {
		return err
	}
	// The job clears the password when it ends; until it starts, this does.
	started := false
	defer func() {
		if !started {
			clear(req.Password)
		}
	}()
	n, slot, err := a.backupSlot(r)
	if err != nil {
		return err
	}
	seal, to, err := a.backupSeal(req.BackupRequest, req.Password, slot.Kind)
	if err != nil {
		return err
	}
	if len(req.Password) < minPassword && (len(to) == 0 || len(req.Password) > 0) {
		hint := ""
		if len(req.Password) == 0 && slot.Kind == api.SlotBackup {
			hint = ` (or encrypt to public keys: --to NAME, --to-all, or "recipients" in the agent config)`
		}
		return api.Errorf(api.CodeBadRequest, "password too short: at least %d characters%s", minPassword, hint)
	}
	if m, err := slot.Stored(); err == nil {
		what := "backup"
		if slot.Kind == api.SlotSensitive {
			what = "sensitive backup"
		}
		return &api.Error{Code: api.CodeBackupExists,
			Message: fmt.Sprintf("only one %s may be stored; delete it with %s-delete (stored: %s)", what, jobKind(slot.Kind), m.Name),
			Details: map[string]any{"name": m.Name}}
	} else if !errors.Is(err, store.ErrNoBackup) {
		return err
	}
	if kind, _, _ := a.jobs.Running(); kind != "" {
		return &job.BusyError{Running: kind}
	}
	password := seal.Password
	var fn job.Func
	if slot.Kind == api.SlotSensitive {
		b := &ops.SensitiveBackup{State: a.state, Extra: a.cfg.SensitivePaths, Slot: slot, Password: password, BeforeReadBack: a.cfg.BeforeReadBack, Log: a.log}
		fn = func(ctx context.Context, j *job.Job) (any, error) {
			meta, err := b.Run(ctx, j)
			if meta == nil {
				return nil, err
			}
			return meta, err
		}
	} else {
		if err := a.checkSpaceEstimate(r.Context(), n.Device); err != nil {
			return err
		}
		b := a.newBackup(n.Device, seal, req.AllowPrimary)
		// The exact size check and the totals run in the job, beside the
		// dump (issue 27: measuring them here held the 202 1.6-3.4 s on
		// an external FerretDB).
		b.Measure, b.Measured = true, a.dbStats.set
		fn = a.backupJob(b)
	}
	// The warning's KDF runs once the job is started (issue 25 point 11):
	// parallel requests get their busy answer from the one-job rule
	// before any of them spends a KDF. It reads a copy of the password,
	// which the job clears when it ends, perhaps before the check is done.
	var check []byte
	if len(password) > 0 {
		check = bytes.Clone(password)
		defer clear(check)
	}
	if err := a.startKeyJob(r, jobKind(slot.Kind), fn); err != nil {
		return err
	}
	started = true
	warning := ops.SamePasswordWarning(n.Device, slot.Kind, check)
	a.log.Info("backup started", "slot", slot.Kind, "key", r.Context().Value(keyNameKey), "recipients", len(to), "password", len(password) > 0)
	out := api.Message{Message: "Backup in progress."}
	if args := (api.BackupStarted{Recipients: to, Warning: warning}); !args.Empty() {
		out.Arguments = args
	}
	return writeJSON(w, http.StatusAccepted, out)
}

func (a *Agent) slotStatus(w http.ResponseWriter, r *http.Request) error {
	_, slot, err := a.backupSlot(r)
	if err != nil {
		return err
	}
	kind := jobKind(slot.Kind)
	if running, started, progress := a.jobs.Running(); running == kind {
		return writeJSON(w, http.StatusOK, api.Message{Message: "Backup in progress", Arguments: api.JobRunning[any]{Progress: progress, Started: started}})
	}
	m, err := slot.Stored()
	if err == nil {
		var ct *api.OplogTS
		if m.ConsistentTo != nil {
			ct = &api.OplogTS{T: m.ConsistentTo.T, I: m.ConsistentTo.I}
		}
		return writeJSON(w, http.StatusOK, api.Message{Message: "Backup found", Arguments: api.BackupFound{
			ConsistentTo: ct,
			Name:         m.Name, MD5: m.MD5, Size: m.Size, SHA256: m.SHA256, Created: m.Created.Format("2006-01-02T15:04:05Z"),
			Duration: m.Duration, Documents: m.Documents, Collections: m.Collections, Files: m.Files,
			Format: m.Format, Consistency: m.Consistency, Verified: m.Verified, VerifiedAt: m.VerifiedAt,
			Remote: a.slotRemoteStatus(slot, m.Name),
			Drill:  a.slotDrillStatus(slot.Kind),
		}})
	}
	if !errors.Is(err, store.ErrNoBackup) {
		return err
	}
	if rec, err := a.jobs.Last(kind); err == nil && rec != nil && rec.State == job.StateFailed {
		return writeJSON(w, http.StatusOK, api.Message{Message: "Backup failed", Arguments: api.BackupFailed{Error: rec.Error, Code: rec.Code, Started: rec.Started, Finished: rec.Finished}})
	}
	return writeJSON(w, http.StatusOK, api.Message{Message: "No backup found"})
}

func (a *Agent) download(w http.ResponseWriter, r *http.Request) error {
	_, slot, err := a.backupSlot(r)
	if err != nil {
		return err
	}
	f, m, err := slot.Open()
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set(api.HeaderMD5, m.MD5)
	h.Set(api.HeaderSHA256, m.SHA256)
	h.Set(api.HeaderName, m.Name)
	// The sha256 as ETag lets a resumed download (If-Range) notice that the
	// backup changed in between and start over instead of splicing two files.
	h.Set("ETag", `"`+m.SHA256+`"`)
	h.Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, m.Name+".enc", st.ModTime(), ctxReadSeeker{ctx: r.Context(), rs: f})
	return nil
}

func (a *Agent) deleteBackup(w http.ResponseWriter, r *http.Request) error {
	_, slot, err := a.backupSlot(r)
	if err != nil {
		return err
	}
	if running, _, _ := a.jobs.Running(); running == jobKind(slot.Kind) {
		return &job.BusyError{Running: running}
	}
	m, err := slot.Delete()
	if errors.Is(err, store.ErrNoBackup) {
		return api.Errorf(api.CodeNotFound, "No backup found")
	}
	if err != nil {
		return err
	}
	a.log.Info("backup deleted", "slot", slot.Kind, "name", m.Name)
	return writeJSON(w, http.StatusOK, api.Message{Message: "Backup deleted", Arguments: api.BackupDeleted{Name: m.Name, MD5: m.MD5}})
}
