package ops

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/atomicfile"
	"github.com/a0backup/a0/internal/remote"
	"github.com/a0backup/a0/internal/retention"
	"github.com/a0backup/a0/internal/statedir"
	"github.com/a0backup/a0/internal/store"
	"github.com/a0backup/a0/internal/version"
)

// RemoteStateFile records the copy of the stored backup to the remote
// store, so that backup-status reports it and a copy cut by a stop
// resumes at the next start.
const RemoteStateFile = "remote.json"

// Copy states (backup-status "remote.state").
const (
	copyCopying = api.CopyCopying
	copyCopied  = api.CopyCopied
	copyFailed  = api.CopyFailed
)

// Copier is the service that copies every verified backup to the remote
// store, with retries, and keeps the record of the copy; it also reads the
// store for the handlers (Copies, Checked, Prune, Fetch). Open it once at
// start (it resumes a copy a stop cut), Copy after each stored backup, Wait
// after the context given to Open ends.
type Copier struct {
	Remote    remote.Store
	Retention retention.Policy
	// RetryWait is the first wait after a failed copy (0: 5s), doubled
	// after each failure up to 5 minutes; Attempts bounds the attempts
	// (0: 10).
	RetryWait time.Duration
	Attempts  int
	State     *statedir.Dir
	// Reserve is the free space a fetched copy must leave on the state disk.
	Reserve int64
	// Recorded hears of every change of the copy's state (the metrics).
	Recorded func(state string, copiedAt *time.Time)
	Log      *slog.Logger

	ctx context.Context

	mu  sync.Mutex
	rec RemoteRecord
	// copying is the name being copied; pending is a backup to copy once
	// the running copy ends.
	copying, pending string
	done             chan struct{}
	pruneMu          sync.Mutex
}

// RemoteRecord is the record of the copy (RemoteStateFile).
type RemoteRecord struct {
	Name string `json:"name"`
	api.RemoteCopyStatus
	Updated time.Time `json:"updated"`
}

func (c *Copier) statePath() string { return filepath.Join(c.State.Path, RemoteStateFile) }

// LoadRecord reads the record of the copy from the state directory.
func (c *Copier) LoadRecord() (RemoteRecord, error) { return c.loadRecord() }

func (c *Copier) loadRecord() (RemoteRecord, error) {
	var rec RemoteRecord
	b, err := os.ReadFile(c.statePath())
	if errors.Is(err, fs.ErrNotExist) {
		return rec, nil
	}
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, fmt.Errorf("%s: %w", c.statePath(), err)
	}
	return rec, nil
}

func (c *Copier) saveRecord(rec RemoteRecord) {
	rec.Updated = time.Now().UTC()
	rec.Location = c.Remote.Location()
	b, _ := json.MarshalIndent(rec, "", "  ")
	c.mu.Lock()
	c.rec = rec
	c.mu.Unlock()
	if err := atomicfile.Write(c.statePath(), append(b, '\n'), 0o600); err != nil {
		c.Log.Error("could not record the remote copy's state", "err", err)
	}
	c.recorded(rec)
}

func (c *Copier) recorded(rec RemoteRecord) {
	if c.Recorded != nil {
		c.Recorded(rec.State, rec.CopiedAt)
	}
}

// Status is backup-status's "remote" for the stored backup name, nil
// before any copy of it.
func (c *Copier) Status(name string) *api.RemoteCopyStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rec.Name != name || c.rec.State == "" {
		return nil
	}
	st := c.rec.RemoteCopyStatus
	return &st
}

// Open loads the copy record and resumes a copy that a stop cut. Copies
// run until ctx ends.
func (c *Copier) Open(ctx context.Context) error {
	c.ctx = ctx
	rec, err := c.loadRecord()
	if err != nil {
		return err
	}
	c.rec = rec
	c.recorded(rec)
	if rec.State == copyCopying {
		c.Log.Warn("resuming the remote copy a stop interrupted", "name", rec.Name, "location", c.Remote.Location())
		c.Copy(rec.Name)
	}
	return nil
}

// Copy starts the copy loop of the stored backup name unless one is
// running; it reports whether this call started it.
func (c *Copier) Copy(name string) bool {
	c.mu.Lock()
	if c.copying != "" {
		// A newer backup while an older one's copy runs (deleted and
		// replaced meanwhile): copied as soon as that loop ends, which is
		// at its next attempt, since its file is gone.
		if c.copying != name {
			c.pending = name
		}
		c.mu.Unlock()
		return false
	}
	c.copying = name
	c.done = make(chan struct{})
	done := c.done
	c.mu.Unlock()
	c.saveRecord(RemoteRecord{Name: name, RemoteCopyStatus: api.RemoteCopyStatus{State: copyCopying}})
	go func() {
		defer func() {
			c.mu.Lock()
			c.copying = ""
			next := c.pending
			c.pending = ""
			c.mu.Unlock()
			close(done)
			if next != "" && c.ctx.Err() == nil {
				c.Copy(next)
			}
		}()
		c.loop(c.ctx, name)
	}()
	return true
}

// Wait waits for a running copy to stop (after Open's context ends), so
// that nothing writes its record after the agent closed.
func (c *Copier) Wait() {
	c.mu.Lock()
	done := c.done
	c.mu.Unlock()
	if done != nil {
		<-done
	}
}

// permanent errors are not retried: a retry would meet the same answer.
func permanent(err error) bool {
	return errors.Is(err, remote.ErrAuth) || errors.Is(err, remote.ErrNoBucket) || errors.Is(err, remote.ErrBadName) ||
		errors.Is(err, store.ErrNoBackup) || errors.Is(err, errNotThisBackup) || errors.Is(err, ErrUnverified)
}

var errNotThisBackup = errors.New("the stored backup changed: it is no longer the one to copy")

// ErrUnverified: only verified backups are copied.
var ErrUnverified = errors.New("the stored backup was not verified: only verified backups are copied")

// loop copies with retries: a failed attempt is recorded with its error
// and retried after a wait that doubles (RetryWait, at most 5 minutes), up
// to Attempts; the local backup is never touched.
func (c *Copier) loop(ctx context.Context, name string) {
	wait := c.RetryWait
	if wait <= 0 {
		wait = 5 * time.Second
	}
	attempts := c.Attempts
	if attempts <= 0 {
		attempts = 10
	}
	for i := 1; ; i++ {
		res, err := c.once(ctx, name)
		if ctx.Err() != nil {
			// The agent stops: the record stays "copying" and the next
			// start resumes.
			return
		}
		if err == nil {
			now := time.Now().UTC()
			c.saveRecord(RemoteRecord{Name: name, RemoteCopyStatus: api.RemoteCopyStatus{State: copyCopied, Attempts: i,
				CopiedAt: &now, ResumedBytes: res.ResumedBytes}})
			c.Log.Info("backup copied to the remote store", "name", name, "location", c.Remote.Location(),
				"bytes", res.Size, "parts", res.Parts, "resumed_bytes", res.ResumedBytes, "attempts", i)
			if !c.Retention.Empty() {
				if _, err := c.Prune(ctx, false); err != nil {
					c.Log.Error("retention after the copy failed", "err", err)
				}
			}
			return
		}
		state := copyCopying
		if permanent(err) || i >= attempts {
			state = copyFailed
		}
		c.saveRecord(RemoteRecord{Name: name, RemoteCopyStatus: api.RemoteCopyStatus{State: state, Error: err.Error(), Attempts: i}})
		c.Log.Error("remote copy failed", "name", name, "attempt", i, "final", state == copyFailed, "err", err)
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

// once streams the stored backup to <name>.enc, checks the store's
// answer, then writes <name>.json.
func (c *Copier) once(ctx context.Context, name string) (remote.PutResult, error) {
	n, err := c.State.LoadNode()
	if err != nil {
		return remote.PutResult{}, err
	}
	if n.Device == "" {
		return remote.PutResult{}, store.ErrNoBackup
	}
	f, m, err := Slot(n.Device, api.SlotBackup).Open()
	if err != nil {
		return remote.PutResult{}, err
	}
	defer f.Close()
	if m.Name != name {
		return remote.PutResult{}, fmt.Errorf("%w (now %s, copying %s)", errNotThisBackup, m.Name, name)
	}
	if !m.Verified {
		return remote.PutResult{}, ErrUnverified
	}
	st := c.Remote
	// Already there (backup-copy of a copied backup, or an immutable copy
	// under Object Lock, which cannot be written again): nothing to send.
	if rb, err := c.readSidecar(ctx, m.Name); err == nil && rb.SHA256 == m.SHA256 && rb.Size == m.Size {
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
		Collections: m.Collections, Consistency: m.Consistency, ConsistentTo: apiPos(m.ConsistentTo), Duration: m.Duration, Node: host, Agent: version.Version,
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

func (c *Copier) readSidecar(ctx context.Context, name string) (*api.RemoteBackup, error) {
	rc, err := c.Remote.Get(ctx, sidecarName(name), 0)
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
		return nil, errorf(Integrity, "%s in the remote store is not a copy record of %s", sidecarName(name), name)
	}
	return &rb, nil
}

// Copies lists the store: one entry per <name>.json, checked against its
// <name>.enc, and the .enc files without a record (unfinished copies).
func (c *Copier) Copies(ctx context.Context) ([]api.BackupEntry, error) {
	out, _, _, err := c.copies(ctx)
	return out, err
}

func (c *Copier) copies(ctx context.Context) ([]api.BackupEntry, []retention.Item, map[string]time.Time, error) {
	objs, err := c.Remote.List(ctx)
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
		rb, err := c.readSidecar(ctx, name)
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

// Prune applies the retention policy to the complete remote copies;
// copies with a problem are listed by `backups`, never deleted here. A copy
// is removed record first, so that a crash leaves an unfinished copy, never
// a record of a missing file.
func (c *Copier) Prune(ctx context.Context, dryRun bool) (*api.BackupsPrune, error) {
	c.pruneMu.Lock()
	defer c.pruneMu.Unlock()
	_, items, locks, err := c.copies(ctx)
	if err != nil {
		return nil, remoteError(err)
	}
	now := time.Now()
	out := &api.BackupsPrune{DryRun: dryRun, Retention: c.Retention.String(), Decisions: []api.PruneDecision{}}
	for _, d := range retention.Apply(items, c.Retention) {
		pd := api.PruneDecision{Name: d.Name, Created: d.Created, Keep: d.Keep, Reasons: d.Reasons}
		if until, ok := locks[d.Name]; ok && !d.Keep && until.After(now) {
			// Immutable until then: the store would refuse the delete.
			pd.Keep, pd.Reasons = true, []string{"object lock until " + until.UTC().Format(time.RFC3339)}
		}
		if !pd.Keep && !dryRun {
			if err := c.Remote.Delete(ctx, sidecarName(d.Name)); err != nil {
				return out, remoteError(err)
			}
			if err := c.Remote.Delete(ctx, d.Name+".enc"); err != nil {
				return out, remoteError(err)
			}
			pd.Deleted = true
			c.Log.Info("retention removed a remote copy", "name", d.Name, "policy", out.Retention)
		}
		out.Decisions = append(out.Decisions, pd)
	}
	return out, nil
}

// CheckName refuses what is not a backup's name as `a0cli backups` lists it.
func CheckName(name string) error {
	if err := remote.CheckName(name); err != nil || !strings.HasSuffix(name, ".tar.gz") {
		return errorf(Invalid, "invalid backup name %q (a name as `a0cli backups` lists it)", name)
	}
	return nil
}

// Checked reads name's record and checks the object against it before
// anything is served: same size, same ETag as when it was copied.
func (c *Copier) Checked(ctx context.Context, name string) (*api.RemoteBackup, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	rb, err := c.readSidecar(ctx, name)
	if errors.Is(err, remote.ErrNotFound) {
		return nil, errorf(NotFound, "no copy %s in the remote store %s (see a0cli backups)", name, c.Remote.Location())
	} else if err != nil {
		return nil, remoteError(err)
	}
	info, err := c.Remote.Stat(ctx, rb.File)
	if err != nil {
		return nil, remoteError(err)
	}
	if info.Size != rb.Size || (rb.ETag != "" && info.ETag != rb.ETag) {
		return nil, errorf(Integrity,
			"%s changed in the remote store since it was copied (%d bytes, ETag %s; recorded %d bytes, ETag %s): refused",
			rb.File, info.Size, info.ETag, rb.Size, rb.ETag)
	}
	return rb, nil
}

// OpenFile reads a checked copy's file from off (Checked first).
func (c *Copier) OpenFile(ctx context.Context, rb *api.RemoteBackup, off int64) (io.ReadCloser, error) {
	rc, err := c.Remote.Get(ctx, rb.File, off)
	return rc, remoteError(err)
}

// Fetch downloads a remote copy into path on the node for a restore,
// checking its sha256 against the record before the restore reads it (the
// restore then authenticates every byte, as for an upload).
func (c *Copier) Fetch(ctx context.Context, name, path string) (*api.RemoteBackup, error) {
	rb, err := c.Checked(ctx, name)
	if err != nil {
		return nil, err
	}
	free, err := FreeBytes(filepath.Dir(path))
	if err == nil && free-rb.Size < c.Reserve {
		return nil, NoSpaceForUpload(free, rb.Size)
	}
	rc, err := c.Remote.Get(ctx, rb.File, 0)
	if err != nil {
		return nil, remoteError(err)
	}
	defer rc.Close()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	// No more than the record's size and one byte: the object may have
	// grown since its Stat (or the store may send more than it says), and
	// the free-space check above counted only the record's size.
	n, err := io.CopyBuffer(io.MultiWriter(f, h), io.LimitReader(rc, rb.Size+1), make([]byte, 1<<20))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return nil, remoteError(err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != rb.Size || got != rb.SHA256 {
		os.Remove(path)
		return nil, errorf(Integrity,
			"%s from the remote store does not match its record (%d bytes, sha256 %s; recorded %d bytes, sha256 %s): refused",
			rb.File, n, got, rb.Size, rb.SHA256)
	}
	return rb, nil
}

// apiPos is a stored backup's position as the API says it.
func apiPos(p *store.Position) *api.OplogPos {
	if p == nil {
		return nil
	}
	return &api.OplogPos{T: p.T, I: p.I, Wall: p.Wall}
}
