package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/atomicfile"
	"github.com/a0backup/a0/internal/remote"
	"github.com/a0backup/a0/internal/retention"
	"github.com/a0backup/a0/internal/statedir"
	"github.com/a0backup/a0/internal/store"
	"github.com/a0backup/a0/internal/version"
)

// remoteStateFile records the copy of the stored backup to the remote
// store, so that backup-status reports it and a copy cut by a stop
// resumes at the next start.
const remoteStateFile = "remote.json"

// Copy states (backup-status "remote.state").
const (
	copyCopying = "copying"
	copyCopied  = "copied"
	copyFailed  = "failed"
)

type remoteRecord struct {
	Name string `json:"name"`
	api.RemoteCopyStatus
	Updated time.Time `json:"updated"`
}

func (a *Agent) remoteStatePath() string { return filepath.Join(a.state.Path, remoteStateFile) }

func (a *Agent) loadRemoteRecord() (remoteRecord, error) {
	var rec remoteRecord
	b, err := os.ReadFile(a.remoteStatePath())
	if errors.Is(err, fs.ErrNotExist) {
		return rec, nil
	}
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, fmt.Errorf("%s: %w", a.remoteStatePath(), err)
	}
	return rec, nil
}

func (a *Agent) saveRemoteRecord(rec remoteRecord) {
	rec.Updated = time.Now().UTC()
	rec.Location = a.cfg.Remote.Location()
	b, _ := json.MarshalIndent(rec, "", "  ")
	a.remoteMu.Lock()
	a.remoteRec = rec
	a.remoteMu.Unlock()
	if err := atomicfile.Write(a.remoteStatePath(), append(b, '\n'), 0o600); err != nil {
		a.log.Error("could not record the remote copy's state", "err", err)
	}
	a.metrics.SetRemote(rec.State, rec.CopiedAt)
}

// remoteStatus is backup-status's "remote" for the stored backup name, nil
// without a remote store or before any copy of it.
func (a *Agent) remoteStatus(name string) *api.RemoteCopyStatus {
	if a.cfg.Remote == nil {
		return nil
	}
	a.remoteMu.Lock()
	defer a.remoteMu.Unlock()
	if a.remoteRec.Name != name || a.remoteRec.State == "" {
		return nil
	}
	st := a.remoteRec.RemoteCopyStatus
	return &st
}

// openRemote loads the copy record and resumes a copy that a stop cut.
func (a *Agent) openRemote() error {
	if a.cfg.Remote == nil {
		return nil
	}
	rec, err := a.loadRemoteRecord()
	if err != nil {
		return err
	}
	a.remoteRec = rec
	a.metrics.SetRemote(rec.State, rec.CopiedAt)
	if rec.State == copyCopying {
		a.log.Warn("resuming the remote copy a stop interrupted", "name", rec.Name, "location", a.cfg.Remote.Location())
		a.startCopy(rec.Name)
	}
	return nil
}

// afterBackup copies a verified backup when a remote store is configured.
func (a *Agent) afterBackup(m *storeMeta) {
	if a.cfg.Remote == nil || m == nil || !m.Verified {
		return
	}
	a.startCopy(m.Name)
}

type storeMeta = store.Meta

// startCopy starts the copy loop of the stored backup name unless one is
// running; it reports whether this call started it.
func (a *Agent) startCopy(name string) bool {
	a.remoteMu.Lock()
	if a.copying != "" {
		// A newer backup while an older one's copy runs (deleted and
		// replaced meanwhile): copied as soon as that loop ends, which is
		// at its next attempt, since its file is gone.
		if a.copying != name {
			a.pendingCopy = name
		}
		a.remoteMu.Unlock()
		return false
	}
	a.copying = name
	a.copyDone = make(chan struct{})
	done := a.copyDone
	a.remoteMu.Unlock()
	a.saveRemoteRecord(remoteRecord{Name: name, RemoteCopyStatus: api.RemoteCopyStatus{State: copyCopying}})
	go func() {
		defer func() {
			a.remoteMu.Lock()
			a.copying = ""
			next := a.pendingCopy
			a.pendingCopy = ""
			a.remoteMu.Unlock()
			close(done)
			if next != "" && a.ctx.Err() == nil {
				a.startCopy(next)
			}
		}()
		a.copyLoop(a.ctx, name)
	}()
	return true
}

// permanent errors are not retried: a retry would meet the same answer.
func permanent(err error) bool {
	return errors.Is(err, remote.ErrAuth) || errors.Is(err, remote.ErrNoBucket) || errors.Is(err, remote.ErrBadName) ||
		errors.Is(err, store.ErrNoBackup) || errors.Is(err, errNotThisBackup) || errors.Is(err, errUnverified)
}

var (
	errNotThisBackup = errors.New("the stored backup changed: it is no longer the one to copy")
	errUnverified    = errors.New("the stored backup was not verified: only verified backups are copied")
)

// copyLoop copies with retries: a failed attempt is recorded with its
// error and retried after a wait that doubles (RemoteRetry, at most 5
// minutes), up to RemoteAttempts; the local backup is never touched.
func (a *Agent) copyLoop(ctx context.Context, name string) {
	wait := a.cfg.RemoteRetry
	if wait <= 0 {
		wait = 5 * time.Second
	}
	attempts := a.cfg.RemoteAttempts
	if attempts <= 0 {
		attempts = 10
	}
	for i := 1; ; i++ {
		res, err := a.copyOnce(ctx, name)
		if ctx.Err() != nil {
			// The agent stops: the record stays "copying" and the next
			// start resumes.
			return
		}
		if err == nil {
			now := time.Now().UTC()
			a.saveRemoteRecord(remoteRecord{Name: name, RemoteCopyStatus: api.RemoteCopyStatus{State: copyCopied, Attempts: i,
				CopiedAt: &now, ResumedBytes: res.ResumedBytes}})
			a.log.Info("backup copied to the remote store", "name", name, "location", a.cfg.Remote.Location(),
				"bytes", res.Size, "parts", res.Parts, "resumed_bytes", res.ResumedBytes, "attempts", i)
			if !a.cfg.Retention.Empty() {
				if _, err := a.prune(ctx, false); err != nil {
					a.log.Error("retention after the copy failed", "err", err)
				}
			}
			return
		}
		state := copyCopying
		if permanent(err) || i >= attempts {
			state = copyFailed
		}
		a.saveRemoteRecord(remoteRecord{Name: name, RemoteCopyStatus: api.RemoteCopyStatus{State: state, Error: err.Error(), Attempts: i}})
		a.log.Error("remote copy failed", "name", name, "attempt", i, "final", state == copyFailed, "err", err)
		if state == copyFailed {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Minute)
	}
}

// copyOnce streams the stored backup to <name>.enc, checks the store's
// answer, then writes <name>.json.
func (a *Agent) copyOnce(ctx context.Context, name string) (remote.PutResult, error) {
	n, err := a.state.LoadNode()
	if err != nil {
		return remote.PutResult{}, err
	}
	if n.Device == "" {
		return remote.PutResult{}, store.ErrNoBackup
	}
	f, m, err := a.slot(n, api.SlotBackup).Open()
	if err != nil {
		return remote.PutResult{}, err
	}
	defer f.Close()
	if m.Name != name {
		return remote.PutResult{}, fmt.Errorf("%w (now %s, copying %s)", errNotThisBackup, m.Name, name)
	}
	if !m.Verified {
		return remote.PutResult{}, errUnverified
	}
	st := a.cfg.Remote
	// Already there (backup-copy of a copied backup, or an immutable copy
	// under Object Lock, which cannot be written again): nothing to send.
	if rb, err := a.readSidecar(ctx, m.Name); err == nil && rb.SHA256 == m.SHA256 && rb.Size == m.Size {
		if info, err := st.Stat(ctx, m.File); err == nil && info.Size == rb.Size && info.ETag == rb.ETag {
			return remote.PutResult{Info: info, ResumedBytes: m.Size}, nil
		}
	}
	res, err := st.Put(ctx, m.File, f, m.Size)
	if err != nil {
		return res, err
	}
	if res.Size != m.Size || (res.Parts == 0 && res.ETag != m.MD5) {
		return res, fmt.Errorf("%w: the store holds %d bytes (ETag %s) for %d bytes (md5 %s)", remote.ErrMismatch, res.Size, res.ETag, m.Size, m.MD5)
	}
	host, _ := os.Hostname()
	rb := api.RemoteBackup{Name: m.Name, File: m.File, Size: m.Size, MD5: m.MD5, SHA256: m.SHA256, ETag: res.ETag,
		Created: m.Created, Verified: m.Verified, VerifiedAt: m.VerifiedAt, Format: m.Format, Documents: m.Documents,
		Collections: m.Collections, Consistency: m.Consistency, Duration: m.Duration, Node: host, Agent: version.Version,
		CopiedAt: time.Now().UTC()}
	if l, ok := st.(interface{ LockedUntil() time.Time }); ok && !l.LockedUntil().IsZero() {
		until := l.LockedUntil()
		rb.LockedUntil = &until
	}
	b, _ := json.MarshalIndent(rb, "", "  ")
	b = append(b, '\n')
	if _, err := st.Put(ctx, sidecarName(m.Name), strings.NewReader(string(b)), int64(len(b))); err != nil {
		return res, err
	}
	return res, nil
}

func sidecarName(name string) string { return name + ".json" }

// maxSidecar bounds a .json read from the store: it is not trusted.
const maxSidecar = 64 << 10

func (a *Agent) readSidecar(ctx context.Context, name string) (*api.RemoteBackup, error) {
	rc, err := a.cfg.Remote.Get(ctx, sidecarName(name), 0)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxSidecar+1))
	if err != nil {
		return nil, err
	}
	var rb api.RemoteBackup
	if len(b) > maxSidecar || json.Unmarshal(b, &rb) != nil || rb.Name != name || rb.File != name+".enc" || rb.SHA256 == "" {
		return nil, &api.Error{Code: api.CodeIntegrity, Message: fmt.Sprintf("%s in the remote store is not a copy record of %s", sidecarName(name), name)}
	}
	return &rb, nil
}

// remoteCopies lists the store: one entry per <name>.json, checked against
// its <name>.enc, and the .enc files without a record (unfinished copies).
func (a *Agent) remoteCopies(ctx context.Context) ([]api.BackupEntry, []retention.Item, map[string]time.Time, error) {
	objs, err := a.cfg.Remote.List(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	locks := map[string]time.Time{}
	enc := map[string]remote.Info{}
	var records []string
	for _, o := range objs {
		switch {
		case strings.HasSuffix(o.Name, ".enc"):
			enc[strings.TrimSuffix(o.Name, ".enc")] = o
		case strings.HasSuffix(o.Name, ".json"):
			records = append(records, strings.TrimSuffix(o.Name, ".json"))
		}
	}
	var out []api.BackupEntry
	var items []retention.Item
	seen := map[string]bool{}
	for _, name := range records {
		seen[name] = true
		rb, err := a.readSidecar(ctx, name)
		if err != nil {
			out = append(out, api.BackupEntry{Name: name, Where: []string{"remote"}, Problem: err.Error()})
			continue
		}
		e := api.BackupEntry{Name: name, Created: rb.Created, Size: rb.Size, SHA256: rb.SHA256, Verified: rb.Verified, Where: []string{"remote"}}
		if o, ok := enc[name]; !ok {
			e.Problem = "the record has no " + name + ".enc beside it"
		} else if o.Size != rb.Size || (rb.ETag != "" && o.ETag != rb.ETag) {
			e.Problem = fmt.Sprintf("%s.enc changed in the store since it was copied (%d bytes, ETag %s; recorded %d bytes, ETag %s)", name, o.Size, o.ETag, rb.Size, rb.ETag)
		} else {
			items = append(items, retention.Item{Name: name, Created: rb.Created, Verified: rb.Verified})
			if rb.LockedUntil != nil {
				locks[name] = *rb.LockedUntil
			}
		}
		out = append(out, e)
	}
	for name, o := range enc {
		if !seen[name] {
			out = append(out, api.BackupEntry{Name: name, Size: o.Size, Created: o.Modified, Where: []string{"remote"},
				Problem: "no " + name + ".json: an unfinished copy"})
		}
	}
	return out, items, locks, nil
}

// remoteErr gives the remote store's failures their API codes.
func remoteErr(err error) error {
	var ae *api.Error
	switch {
	case err == nil, errors.As(err, &ae):
		return err
	case errors.Is(err, remote.ErrNotFound):
		return &api.Error{Code: api.CodeNotFound, Message: err.Error()}
	case errors.Is(err, remote.ErrMismatch):
		return &api.Error{Code: api.CodeIntegrity, Message: err.Error()}
	case errors.Is(err, remote.ErrBadName):
		return &api.Error{Code: api.CodeBadRequest, Message: err.Error()}
	case errors.Is(err, remote.ErrAuth), errors.Is(err, remote.ErrNoBucket), errors.Is(err, remote.ErrUnreachable):
		return &api.Error{Code: api.CodeRemote, Message: err.Error()}
	}
	return err
}

func (a *Agent) needRemote() error {
	if a.cfg.Remote == nil {
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
		return api.Errorf(api.CodeNotBackupRole, "this node is not in the backup role: run set-as-backup first")
	}
	m, err := a.slot(n, api.SlotBackup).Stored()
	if errors.Is(err, store.ErrNoBackup) {
		return api.Errorf(api.CodeNotFound, "No backup found: nothing to copy")
	} else if err != nil {
		return err
	}
	if !m.Verified {
		return api.Errorf(api.CodeIntegrity, "%s", errUnverified.Error())
	}
	args := map[string]any{"name": m.Name, "location": a.cfg.Remote.Location()}
	if !a.startCopy(m.Name) {
		args["already_running"] = true
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
	if a.cfg.Remote != nil {
		out.Remote, out.Retention = a.cfg.Remote.Location(), a.cfg.Retention.String()
		entries, _, _, err := a.remoteCopies(r.Context())
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
	return writeJSON(w, http.StatusOK, out)
}

// prunePost is POST /v1/backups/prune.
func (a *Agent) prunePost(w http.ResponseWriter, r *http.Request) error {
	var req api.BackupsPruneRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if err := a.needRemote(); err != nil {
		return err
	}
	res, err := a.prune(r.Context(), req.DryRun)
	if err != nil {
		return remoteErr(err)
	}
	a.log.Info("prune", "dry_run", req.DryRun, "key", r.Context().Value(keyNameKey))
	return writeJSON(w, http.StatusOK, res)
}

// prune applies the retention policy to the complete remote copies;
// copies with a problem are listed by `backups`, never deleted here. A copy
// is removed record first, so that a crash leaves an unfinished copy, never
// a record of a missing file.
func (a *Agent) prune(ctx context.Context, dryRun bool) (*api.BackupsPrune, error) {
	a.pruneMu.Lock()
	defer a.pruneMu.Unlock()
	_, items, locks, err := a.remoteCopies(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	out := &api.BackupsPrune{DryRun: dryRun, Retention: a.cfg.Retention.String(), Decisions: []api.PruneDecision{}}
	for _, d := range retention.Apply(items, a.cfg.Retention) {
		pd := api.PruneDecision{Name: d.Name, Created: d.Created, Keep: d.Keep, Reasons: d.Reasons}
		if until, ok := locks[d.Name]; ok && !d.Keep && until.After(now) {
			// Immutable until then: the store would refuse the delete.
			pd.Keep, pd.Reasons = true, []string{"object lock until " + until.UTC().Format(time.RFC3339)}
		}
		if !pd.Keep && !dryRun {
			if err := a.cfg.Remote.Delete(ctx, sidecarName(d.Name)); err != nil {
				return out, err
			}
			if err := a.cfg.Remote.Delete(ctx, d.Name+".enc"); err != nil {
				return out, err
			}
			pd.Deleted = true
			a.log.Info("retention removed a remote copy", "name", d.Name, "policy", out.Retention)
		}
		out.Decisions = append(out.Decisions, pd)
	}
	return out, nil
}

// checkedCopy reads name's record and checks the object against it
// before anything is served: same size, same ETag as when it was copied.
func (a *Agent) checkedCopy(ctx context.Context, name string) (*api.RemoteBackup, error) {
	if err := a.needRemote(); err != nil {
		return nil, err
	}
	if err := remote.CheckName(name); err != nil || !strings.HasSuffix(name, ".tar.gz") {
		return nil, api.Errorf(api.CodeBadRequest, "invalid backup name %q (a name as `a0cli backups` lists it)", name)
	}
	rb, err := a.readSidecar(ctx, name)
	if errors.Is(err, remote.ErrNotFound) {
		return nil, api.Errorf(api.CodeNotFound, "no copy %s in the remote store %s (see a0cli backups)", name, a.cfg.Remote.Location())
	} else if err != nil {
		return nil, remoteErr(err)
	}
	info, err := a.cfg.Remote.Stat(ctx, rb.File)
	if err != nil {
		return nil, remoteErr(err)
	}
	if info.Size != rb.Size || (rb.ETag != "" && info.ETag != rb.ETag) {
		return nil, &api.Error{Code: api.CodeIntegrity, Message: fmt.Sprintf(
			"%s changed in the remote store since it was copied (%d bytes, ETag %s; recorded %d bytes, ETag %s): refused",
			rb.File, info.Size, info.ETag, rb.Size, rb.ETag)}
	}
	return rb, nil
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
	rc, err := a.cfg.Remote.Get(r.Context(), rb.File, off)
	if err != nil {
		return remoteErr(err)
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

// fetchRemote downloads a remote copy into path on the node for a
// restore, checking its sha256 against the record before the restore
// reads it (the restore then authenticates every byte, as for an upload).
func (a *Agent) fetchRemote(ctx context.Context, name, path string) (*api.RemoteBackup, error) {
	rb, err := a.checkedCopy(ctx, name)
	if err != nil {
		return nil, err
	}
	free, err := freeBytes(filepath.Dir(path))
	if err == nil && free-rb.Size < a.uploadReserve() {
		return nil, insufficientUploadSpace(free, rb.Size)
	}
	rc, err := a.cfg.Remote.Get(ctx, rb.File, 0)
	if err != nil {
		return nil, remoteErr(err)
	}
	defer rc.Close()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	h := newSHA256()
	n, err := io.CopyBuffer(io.MultiWriter(f, h), rc, make([]byte, 1<<20))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return nil, remoteErr(err)
	}
	if got := hexSum(h); n != rb.Size || got != rb.SHA256 {
		os.Remove(path)
		return nil, &api.Error{Code: api.CodeIntegrity, Message: fmt.Sprintf(
			"%s from the remote store does not match its record (%d bytes, sha256 %s; recorded %d bytes, sha256 %s): refused",
			rb.File, n, got, rb.Size, rb.SHA256)}
	}
	return rb, nil
}

// slotRemoteStatus is the remote status of the backup slot's backup (the
// sensitive slot is never copied: it holds the node's keys).
func (a *Agent) slotRemoteStatus(slot store.Slot, name string) *api.RemoteCopyStatus {
	if slot.Kind != api.SlotBackup {
		return nil
	}
	return a.remoteStatus(name)
}

func newSHA256() hash.Hash { return sha256.New() }

func hexSum(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }

// remoteSource makes a restore read a remote copy: the job downloads it to
// the uploads folder, checked against its record, then restores it as an
// upload (every byte authenticated before the first write).
func (a *Agent) remoteSource(src *source, req api.RestoreRequest) error {
	if err := a.needRemote(); err != nil {
		return err
	}
	if req.UploadID != "" {
		return api.Errorf(api.CodeBadRequest, "give a FILE or --remote NAME, not both")
	}
	if err := remote.CheckName(req.Remote); err != nil || !strings.HasSuffix(req.Remote, ".tar.gz") {
		return api.Errorf(api.CodeBadRequest, "invalid backup name %q (a name as `a0cli backups` lists it)", req.Remote)
	}
	if err := os.MkdirAll(a.state.UploadsDir(), 0o700); err != nil {
		return err
	}
	// A dot name is no upload id: no client can write to it.
	src.path = filepath.Join(a.state.UploadsDir(), ".remote-"+strconv.FormatInt(time.Now().UnixNano(), 36)+".upload")
	name := req.Remote
	src.fetch = func(ctx context.Context) error {
		rb, err := a.fetchRemote(ctx, name, src.path)
		if err != nil {
			return err
		}
		a.log.Info("remote copy downloaded for the restore", "name", rb.Name, "bytes", rb.Size)
		return nil
	}
	return nil
}

// waitCopy waits for a running copy to stop (after the agent's context
// ends), so that nothing writes its record after Close.
func (a *Agent) waitCopy() {
	a.remoteMu.Lock()
	done := a.copyDone
	a.remoteMu.Unlock()
	if done != nil {
		<-done
	}
}
