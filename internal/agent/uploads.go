package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/job"
	"github.com/a0backup/a0/internal/ops"
)

var uploadID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func (a *Agent) uploadPath(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if !uploadID.MatchString(id) {
		return "", api.Errorf(api.CodeBadRequest, "invalid upload id: use 1-64 letters, digits, '-' or '_'")
	}
	return filepath.Join(a.state.UploadsDir(), id+".upload"), nil
}

func (a *Agent) uploadState(w http.ResponseWriter, r *http.Request) error {
	p, err := a.uploadPath(r)
	if err != nil {
		return err
	}
	out := api.Upload{ID: r.PathValue("id")}
	if f, err := os.Open(p); err == nil {
		defer f.Close()
		h := sha256.New()
		if out.Size, err = io.Copy(h, f); err != nil {
			return err
		}
		out.SHA256 = hex.EncodeToString(h.Sum(nil))
	}
	return writeJSON(w, http.StatusOK, out)
}

// upload appends the body to an upload at the offset the client names. The
// offset must equal what the node holds, so a resumed upload can never
// leave a gap or a duplicated range.
func (a *Agent) upload(w http.ResponseWriter, r *http.Request) error {
	p, err := a.uploadPath(r)
	if err != nil {
		return err
	}
	if err := a.noRestoreRunning(); err != nil {
		return err
	}
	off, err := strconv.ParseInt(r.Header.Get(api.HeaderOffset), 10, 64)
	if err != nil || off < 0 {
		return api.Errorf(api.CodeBadRequest, "missing or invalid %s header", api.HeaderOffset)
	}
	// One writer per upload: two clients appending at the same offset
	// would both pass the offset check below.
	unlock, ok := a.lockUpload(p)
	if !ok {
		return api.Errorf(api.CodeJobRunning, "another client is uploading this file right now")
	}
	defer unlock()
	// The state disk also holds the embedded database: never let an upload
	// fill it. A declared length is reserved against what the uploads
	// running in parallel reserved; without one (chunked), and in any case
	// as bytes arrive, the free space is measured again (spaceGuard).
	release, err := a.reserveUpload(r.ContentLength)
	if err != nil {
		return err
	}
	defer release()
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() != off {
		return &api.Error{Code: api.CodeBadRequest, Message: fmt.Sprintf("upload offset %d does not match the %d bytes the node holds", off, st.Size()),
			Details: map[string]any{"size": st.Size()}}
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return err
	}
	guard := &spaceGuard{w: f, dir: a.state.UploadsDir(), reserve: a.uploadReserve(), since: spaceCheckBytes}
	n, err := io.Copy(guard, ctxReader{ctx: r.Context(), r: r.Body})
	// Keep what arrived even on error: the next run resumes from there.
	if serr := f.Sync(); err == nil {
		err = serr
	}
	var oe *ops.Error
	if errors.As(err, &oe) {
		return oe
	}
	if err != nil {
		return api.Errorf(api.CodeBadRequest, "upload interrupted after %d bytes: %v", off+n, err)
	}
	return writeJSON(w, http.StatusOK, api.Upload{ID: r.PathValue("id"), Size: off + n})
}

func (a *Agent) deleteUpload(w http.ResponseWriter, r *http.Request) error {
	p, err := a.uploadPath(r)
	if err != nil {
		return err
	}
	if err := a.noRestoreRunning(); err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
		return err
	}
	return writeJSON(w, http.StatusOK, api.Message{Message: "Upload deleted"})
}

// defaultUploadReserve is the free space an upload must leave on the state
// disk (Config.UploadReserve overrides it).
const defaultUploadReserve = 256 << 20

func (a *Agent) uploadReserve() int64 {
	if a.cfg.UploadReserve > 0 {
		return a.cfg.UploadReserve
	}
	return defaultUploadReserve
}

// reserveUpload checks a declared upload length against the free space
// less what running uploads reserved, and reserves it until release.
func (a *Agent) reserveUpload(length int64) (release func(), err error) {
	length = max(length, 0)
	a.uploadsMu.Lock()
	defer a.uploadsMu.Unlock()
	free, err := ops.FreeBytes(a.state.UploadsDir())
	if err != nil {
		return nil, fmt.Errorf("measure free space: %w", err)
	}
	need := length + a.uploadReserve()
	if free-a.uploadReserved < need {
		return nil, ops.NoSpaceForUpload(free-a.uploadReserved, need)
	}
	a.uploadReserved += length
	return func() {
		a.uploadsMu.Lock()
		a.uploadReserved -= length
		a.uploadsMu.Unlock()
	}, nil
}

// spaceGuard writes an upload and, every spaceCheckBytes, stops it when the
// state disk's free space has fallen below the reserve: a chunked upload
// declares no length, and parallel uploads share one disk.
type spaceGuard struct {
	w       io.Writer
	dir     string
	reserve int64
	since   int64
}

const spaceCheckBytes = 1 << 20

func (g *spaceGuard) Write(p []byte) (int, error) {
	if g.since+int64(len(p)) > spaceCheckBytes {
		g.since = 0
		if free, err := ops.FreeBytes(g.dir); err == nil && free < g.reserve+int64(len(p)) {
			return 0, ops.NoSpaceForUpload(free, g.reserve+int64(len(p)))
		}
	}
	n, err := g.w.Write(p)
	g.since += int64(n)
	return n, err
}

// lockUpload takes the lock of one upload file, or reports it busy.
func (a *Agent) lockUpload(path string) (unlock func(), ok bool) {
	a.uploadsMu.Lock()
	defer a.uploadsMu.Unlock()
	if a.uploading == nil {
		a.uploading = map[string]bool{}
	}
	if a.uploading[path] {
		return nil, false
	}
	a.uploading[path] = true
	return func() {
		a.uploadsMu.Lock()
		delete(a.uploading, path)
		a.uploadsMu.Unlock()
	}, true
}

// noRestoreRunning refuses changes to uploads while a restore reads one.
func (a *Agent) noRestoreRunning() error {
	if kind, _, _ := a.jobs.Running(); kind == kindRestore || kind == kindRestoreSensitive {
		return &job.BusyError{Running: kind}
	}
	return nil
}
