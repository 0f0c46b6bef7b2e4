package agent

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/a0backup/a0/internal/atomicfile"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/archive"
	"github.com/a0backup/a0/internal/crypt"
	"github.com/a0backup/a0/internal/job"
	"github.com/a0backup/a0/internal/manifest"
	"github.com/a0backup/a0/internal/restore"
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
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae
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

func insufficientUploadSpace(free, need int64) error {
	return &api.Error{Code: api.CodeInsufficientSpace,
		Message: fmt.Sprintf("not enough free space on the node's state disk for this upload: %s free, %s needed",
			fmtBytes(free), fmtBytes(need))}
}

// reserveUpload checks a declared upload length against the free space
// less what running uploads reserved, and reserves it until release.
func (a *Agent) reserveUpload(length int64) (release func(), err error) {
	length = max(length, 0)
	a.uploadsMu.Lock()
	defer a.uploadsMu.Unlock()
	free, err := freeBytes(a.state.UploadsDir())
	if err != nil {
		return nil, fmt.Errorf("measure free space: %w", err)
	}
	need := length + a.uploadReserve()
	if free-a.uploadReserved < need {
		return nil, insufficientUploadSpace(free-a.uploadReserved, need)
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
		if free, err := freeBytes(g.dir); err == nil && free < g.reserve+int64(len(p)) {
			return 0, insufficientUploadSpace(free, g.reserve+int64(len(p)))
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

// source is a file to restore from and how to read it.
type source struct {
	path     string
	password []byte
	// fileKey opens a file encrypted to public keys (format v2); the CLI
	// unwrapped it, the node never sees an identity.
	fileKey []byte
	plain   bool
	// upload is set when path is an upload, removed once restored: a
	// restored backup should not stay on the node's state disk.
	upload bool
	// wantSHA256 is the hash the client gave of the file it uploaded
	// (empty: not checked). The first pass hashes every byte it reads and
	// checkHash compares.
	wantSHA256 string
	hash       hash.Hash
	// fetch, when set, first downloads a remote copy to path (remote.go);
	// the file is removed when the job ends.
	fetch func(ctx context.Context) error
}

// checkHash refuses a source whose first pass read other bytes than the
// client uploaded: another key holder may have planted or extended an
// upload under the same id, which authentication cannot tell for --plain.
func (s source) checkHash() error {
	if s.wantSHA256 == "" || s.hash == nil {
		return nil
	}
	if got := hex.EncodeToString(s.hash.Sum(nil)); got != strings.ToLower(s.wantSHA256) {
		return &api.Error{Code: api.CodeIntegrity, Message: "the upload on the node is not the file this client uploaded (sha256 " + got + "): upload it again"}
	}
	return nil
}

// done removes an upload that has served its purpose.
func (s source) done() {
	if s.upload {
		os.Remove(s.path)
	}
}

// open opens the source file once: both passes of a restore read the same
// open file, so the file that was authenticated is the file that is
// restored, even if its path is replaced or deleted in between.
func (s source) open() (*os.File, error) {
	return os.Open(s.path)
}

// openStream opens the source and returns the file (to close, and to read
// again with stream) and its plain tar.gz stream.
func (s *source) openStream() (*os.File, io.Reader, error) {
	f, err := s.open()
	if err != nil {
		return nil, nil, err
	}
	if s.wantSHA256 != "" {
		s.hash = sha256.New()
	}
	r, err := s.stream(f, nil)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, r, nil
}

// stream returns the plain tar.gz stream of f from its start. For an
// encrypted file every byte it yields has been authenticated. prev is the
// stream of an earlier pass over f, or nil: its keys serve again, so a
// second pass costs no second key derivation.
func (s source) stream(f *os.File, prev io.Reader) (io.Reader, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	var in io.Reader = f
	if prev == nil && s.hash != nil {
		in = io.TeeReader(f, s.hash)
	}
	br := bufio.NewReaderSize(in, 1<<20)
	if s.plain {
		return br, nil
	}
	var (
		cr  *crypt.Reader
		err error
	)
	if first, ok := prev.(*crypt.Reader); ok {
		cr, err = first.Reopen(br)
	} else {
		cr, err = crypt.Open(br, crypt.Unlock{Password: s.password, FileKey: s.fileKey})
	}
	if err != nil {
		return nil, cryptError(err)
	}
	return cr, nil
}

// cryptError gives crypt's failures their API codes.
func cryptError(err error) error {
	switch {
	case errors.Is(err, crypt.ErrNoPassword):
		return api.Errorf(api.CodeWrongPassword, "this backup has no password: it is encrypted to public keys (restore it with --identity)")
	case errors.Is(err, crypt.ErrWrongPassword):
		return api.Errorf(api.CodeWrongPassword, "wrong password for this backup")
	case errors.Is(err, crypt.ErrWrongKey):
		return api.Errorf(api.CodeWrongPassword, "the file key sent does not open this backup")
	case errors.Is(err, crypt.ErrCorrupt), errors.Is(err, crypt.ErrNotA0), errors.Is(err, crypt.ErrUnsupported):
		return &api.Error{Code: api.CodeIntegrity, Message: "backup file failed authentication: " + err.Error()}
	case errors.Is(err, restore.ErrInvalidArchive), errors.Is(err, archive.ErrUnsafe):
		return &api.Error{Code: api.CodeIntegrity, Message: "backup archive refused: " + err.Error()}
	case errors.Is(err, restore.ErrNoMatch):
		return api.Errorf(api.CodeBadRequest, "%v", err)
	}
	return err
}

func (a *Agent) restoreSource(req api.RestoreRequest, password []byte) (source, error) {
	src := source{password: password, fileKey: req.FileKey, plain: req.Plain}
	if req.Remote != "" {
		if err := a.remoteSource(&src, req); err != nil {
			return src, err
		}
	} else if req.UploadID != "" {
		if !uploadID.MatchString(req.UploadID) {
			return src, api.Errorf(api.CodeBadRequest, "invalid upload id")
		}
		src.path, src.upload = filepath.Join(a.state.UploadsDir(), req.UploadID+".upload"), true
		if _, err := os.Stat(src.path); err != nil {
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
		src.path = a.slot(n, api.SlotBackup).Path(m)
	}
	if !src.plain && len(src.password) == 0 && len(src.fileKey) == 0 {
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
		}
	}()
	src, err := a.restoreSource(req.RestoreRequest, req.Password)
	if err != nil {
		return err
	}
	src.wantSHA256 = req.UploadSHA256
	opts := restore.Options{Drop: req.Drop, NS: req.NS, DryRun: req.DryRun, Plain: req.Plain, SpoolDir: a.state.SpoolDir(),
		StopOnError: req.StopOnError, UsersAndRoles: req.UsersAndRoles}
	if fi, err := os.Stat(src.path); err == nil { // issue 25.2: spools bounded by the upload's size
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
	if err := a.startKeyJob(r, kindRestore, a.restoreJob(src, opts)); err != nil {
		clear(src.fileKey)
		return err
	}
	started = true
	a.log.Info("restore started", "key", r.Context().Value(keyNameKey), "dry_run", req.DryRun, "drop", req.Drop)
	return writeJSON(w, http.StatusAccepted, api.Message{Message: "Restore in progress."})
}

// restoreResult is what restore-status shows after a restore.
type restoreResult struct {
	Phase string `json:"phase"`
	// Previous is the marker of an earlier restore that did not finish.
	Previous bson.M          `json:"previous_unfinished,omitempty"`
	Plan     *planSummary    `json:"plan,omitempty"`
	Report   *restore.Report `json:"report,omitempty"`
}

type planSummary struct {
	Created      string   `json:"created,omitempty"`
	Consistency  string   `json:"consistency,omitempty"`
	Collections  []string `json:"collections"`
	Documents    int64    `json:"documents"`
	OplogEntries int64    `json:"oplog_entries"`
	// Users and Roles are in the backup; restored only with
	// --users-and-roles.
	Users int64 `json:"users,omitempty"`
	Roles int64 `json:"roles,omitempty"`
	// Skipped lists the namespaces of the backup not restored.
	Skipped []string `json:"skipped,omitempty"`
	// OplogOnly lists the namespaces only the oplog writes (created
	// during the dump): restored from empty, dropped first with --drop.
	OplogOnly []string `json:"oplog_only,omitempty"`
}

func summarize(p *restore.PlanResult) *planSummary {
	s := &planSummary{OplogEntries: p.OplogEntries, Collections: []string{}, Users: p.Users, Roles: p.Roles, Skipped: p.Skipped, OplogOnly: p.OplogOnly}
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

// restoreProgress reports the phase and, while restoring, the counters.
type restoreProgress struct {
	Phase string `json:"phase"`
	*restore.Snapshot
	// Totals from the plan, for the CLI's progress bar and ETA.
	DocumentsTotal int64 `json:"documents_total,omitempty"`
	BytesTotal     int64 `json:"bytes_total,omitempty"`
	// FileBytes of FileBytesTotal have been authenticated: the progress
	// of the first pass, before the plan's totals are known.
	FileBytes      int64 `json:"file_bytes,omitempty"`
	FileBytesTotal int64 `json:"file_bytes_total,omitempty"`
}

func (a *Agent) restoreJob(src source, opts restore.Options) job.Func {
	return func(ctx context.Context, j *job.Job) (any, error) {
		defer clear(src.password)
		defer clear(src.fileKey)
		var mu sync.Mutex
		phase, docsTotal, bytesTotal := "authenticating", int64(0), int64(0)
		setPhase := func(p string) {
			mu.Lock()
			phase = p
			mu.Unlock()
		}
		prog := &restore.Progress{}
		if src.fetch != nil {
			setPhase("downloading")
			defer os.Remove(src.path)
			if err := src.fetch(ctx); err != nil {
				return nil, err
			}
			setPhase("authenticating")
		}
		var fileTotal int64
		if st, err := os.Stat(src.path); err == nil {
			fileTotal = st.Size()
		}
		var fileRead atomic.Int64
		j.SetProgress(func() any {
			s := prog.Snapshot()
			mu.Lock()
			defer mu.Unlock()
			p := restoreProgress{Phase: phase, Snapshot: &s, DocumentsTotal: docsTotal, BytesTotal: bytesTotal}
			if phase == "authenticating" {
				p.FileBytes, p.FileBytesTotal = fileRead.Load(), fileTotal
			}
			return p
		})
		// No PUT may change an upload while it is read: both passes must
		// read the bytes whose hash was checked.
		if src.upload {
			unlock, ok := a.lockUpload(src.path)
			if !ok {
				return nil, api.Errorf(api.CodeJobRunning, "a client is uploading this file right now")
			}
			defer unlock()
		}
		// Pass 1: authenticate every byte and validate the archive, before
		// the first write to the database.
		file, stream, err := src.openStream()
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
		plan, err := restore.Plan(ctx, stream, opts)
		if err == nil {
			// The archive may end before the encrypted stream does:
			// authenticate to the last byte all the same.
			_, err = io.Copy(io.Discard, stream)
		}
		if err == nil {
			err = src.checkHash()
		}
		if err != nil {
			return nil, cryptError(err)
		}
		stopPolling()
		res := &restoreResult{Phase: "planned", Plan: summarize(plan)}
		mu.Lock()
		for _, c := range plan.Collections {
			docsTotal += c.Documents
			bytesTotal += c.Bytes
		}
		mu.Unlock()
		if err := restore.CheckTargets(ctx, a.client, plan, opts); err != nil {
			var ne *restore.NonEmptyError
			if errors.As(err, &ne) {
				return res, &api.Error{Code: api.CodeNonEmptyTarget,
					Message: fmt.Sprintf("target collections already hold documents: %s; use --drop to replace them", strings.Join(ne.Namespaces, ", ")),
					Details: map[string]any{"namespaces": ne.Namespaces}}
			}
			return res, err
		}
		if opts.DryRun {
			res.Phase = "dry-run"
			return res, nil
		}
		// Whether the server can hold everything (time-series, views,
		// users and roles...) is known before the first document goes in.
		if err := restore.Preflight(ctx, a.client, plan, opts); err != nil {
			var ue *restore.UnsupportedError
			if errors.As(err, &ue) {
				return res, &api.Error{Code: api.CodeUnsupported, Message: ue.Error(),
					Details: map[string]any{"namespace": ue.Namespace, "feature": ue.Feature}}
			}
			return res, err
		}
		if stream, err = src.stream(file, stream); err != nil {
			return res, err
		}
		if prev, _ := a.restoreMarker(ctx); prev != nil {
			res.Previous = prev
			a.log.Warn("a previous restore did not finish; this one replaces it", "started", prev["started"])
		}
		if err := a.setRestoreMarker(ctx, bson.D{{Key: "state", Value: "running"}, {Key: "started", Value: time.Now().UTC()},
			{Key: "collections", Value: len(plan.Collections)}}); err != nil {
			return res, fmt.Errorf("write the restore marker: %w", err)
		}
		// From here on the database may be partly written: the marker says so.
		setPhase("restoring")
		a.log.Info("restore writing to the database", "collections", len(plan.Collections))
		a.hold(ctx, HoldRestore)
		report, err := restore.Run(ctx, a.client, stream, plan, opts, prog)
		res.Report, res.Phase = report, "done"
		if err != nil {
			res.Phase = "failed"
			// The marker stays, now saying why: the next restore and
			// node-status report a database left half-written.
			a.setRestoreMarker(context.WithoutCancel(ctx), bson.D{{Key: "state", Value: "failed"},
				{Key: "error", Value: err.Error()}, {Key: "finished", Value: time.Now().UTC()}})
			a.log.Error("restore failed part way: the database is partly restored", "err", err)
			return res, fmt.Errorf("restore failed part way, the database is partly restored (run restore again with --drop): %w", err)
		}
		if err := a.clearRestoreMarker(ctx); err != nil {
			a.log.Warn("could not clear the restore marker", "err", err)
		}
		src.done()
		if report != nil && report.DocumentsFailed > 0 {
			return res, &api.Error{Code: api.CodeIntegrity, Message: fmt.Sprintf(
				"restore finished, but the server refused %d documents (duplicate keys or validation failures, counted per collection in the report; restore with --stop-on-error to stop at the first)",
				report.DocumentsFailed)}
		}
		if report != nil && !report.OK {
			return res, &api.Error{Code: api.CodeIntegrity, Message: "restore finished with differences between the backup and the database: see the report"}
		}
		a.log.Info("restore done")
		return res, nil
	}
}

func (a *Agent) restoreStatus(w http.ResponseWriter, r *http.Request) error {
	if running, started, progress := a.jobs.Running(); running == kindRestore {
		return writeJSON(w, http.StatusOK, api.Message{Message: "Restore in progress",
			Arguments: map[string]any{"started": started, "progress": progress}})
	}
	rec, err := a.jobs.Last(kindRestore)
	if err != nil {
		return err
	}
	if rec == nil {
		return writeJSON(w, http.StatusOK, api.Message{Message: "No restore found"})
	}
	args := map[string]any{"started": rec.Started, "finished": rec.Finished, "result": rec.Result}
	if rec.State == job.StateFailed {
		args["error"] = rec.Error
		args["code"] = rec.Code
		return writeJSON(w, http.StatusOK, api.Message{Message: "Restore failed", Arguments: args})
	}
	return writeJSON(w, http.StatusOK, api.Message{Message: "Restore finished", Arguments: args})
}

// The restore marker lives in the node's `local` database, which is never
// dumped, restored or replicated: it describes this node's data, and it
// survives an agent crash, so a half-written database is never silent.
const (
	markerDB   = "local"
	markerColl = "a0_restore_marker"
	markerID   = "restore"
)

func (a *Agent) markerColl() *mongo.Collection {
	return a.client.Database(markerDB).Collection(markerColl)
}

// setRestoreMarker upserts fields into the marker.
func (a *Agent) setRestoreMarker(ctx context.Context, fields bson.D) error {
	_, err := a.markerColl().UpdateOne(ctx, bson.D{{Key: "_id", Value: markerID}},
		bson.D{{Key: "$set", Value: fields}}, options.UpdateOne().SetUpsert(true))
	return err
}

func (a *Agent) clearRestoreMarker(ctx context.Context) error {
	_, err := a.markerColl().DeleteOne(ctx, bson.D{{Key: "_id", Value: markerID}})
	return err
}

// restoreMarker returns the marker of an unfinished restore, or nil.
func (a *Agent) restoreMarker(ctx context.Context) (bson.M, error) {
	var m bson.M
	err := a.markerColl().FindOne(ctx, bson.D{{Key: "_id", Value: markerID}}).Decode(&m)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	delete(m, "_id")
	return m, nil
}

// sensitivePlanEntry is one file restore-sensitive would put back.
type sensitivePlanEntry struct {
	Path    string `json:"path"`
	Target  string `json:"target"`
	Mode    string `json:"mode"`
	Exists  bool   `json:"exists"`
	Changes bool   `json:"changes"`
	// Skipped is set for an identity file (authorized_keys, the TLS key
	// and certificate) when the node holds no valid recovery consent:
	// it is listed, never written.
	Skipped bool   `json:"skipped,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// skippedFile is one entry of "skipped" in restore-sensitive's answer and
// job record.
type skippedFile struct {
	Path   string `json:"path"`
	Target string `json:"target"`
	Reason string `json:"reason"`
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
	src := source{path: filepath.Join(a.state.UploadsDir(), req.UploadID+".upload"), password: req.Password, upload: true,
		wantSHA256: req.UploadSHA256}
	if _, err := os.Stat(src.path); err != nil {
		return api.Errorf(api.CodeNotFound, "no upload %q on the node", req.UploadID)
	}
	// The whole restore-sensitive holds the job runner: no backup of the
	// same files and no other restore can run while it reads and writes.
	var (
		out    api.Message
		jobErr error
	)
	err := a.startKeyJob(r, kindRestoreSensitive, func(ctx context.Context, j *job.Job) (any, error) {
		out, jobErr = a.runRestoreSensitive(ctx, r, src, req.Confirm)
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

func (a *Agent) runRestoreSensitive(ctx context.Context, r *http.Request, src source, confirm bool) (api.Message, error) {
	// Extract into a private work area first: nothing on the node changes
	// until every byte is authenticated and every file matches its manifest.
	work, err := os.MkdirTemp(a.state.UploadsDir(), "sensitive-*")
	if err != nil {
		return api.Message{}, err
	}
	defer os.RemoveAll(work)
	man, err := a.extractSensitive(ctx, src, work)
	if err != nil {
		return api.Message{}, err
	}
	// The identity files need the node operator's consent, given on the
	// node (a0agent allow-recovery): a key holder alone may restore the
	// other sensitive files, never who may call the node or who it is.
	consent, expires, noConsent := a.state.RecoveryConsent(time.Now())
	identity := a.state.IdentityPaths()
	var (
		plan       []sensitivePlanEntry
		skipped    = []skippedFile{}
		useConsent bool
	)
	for _, f := range man.Files {
		target, err := a.sensitiveTarget(f)
		if err != nil {
			return api.Message{}, err
		}
		if st, err := os.Stat(filepath.Dir(target)); err != nil || !st.IsDir() {
			return api.Message{}, api.Errorf(api.CodeIntegrity, "cannot restore %s: its folder does not exist on this node", target)
		}
		e := sensitivePlanEntry{Path: f.Path, Target: target, Mode: fmt.Sprintf("%04o", f.Mode)}
		if cur, err := os.ReadFile(target); err == nil {
			e.Exists = true
			sum := sha256.Sum256(cur)
			e.Changes = hex.EncodeToString(sum[:]) != f.SHA256
		} else {
			e.Changes = true
		}
		if slices.Contains(identity, target) {
			if consent {
				useConsent = true
			} else {
				e.Skipped, e.Reason = true, noConsent
				skipped = append(skipped, skippedFile{Path: f.Path, Target: target, Reason: noConsent})
			}
		}
		plan = append(plan, e)
	}
	consentArgs := map[string]any{"valid": consent}
	if !expires.IsZero() {
		consentArgs["expires"] = expires.Format(time.RFC3339)
	}
	if !confirm {
		return api.Message{Message: "Sensitive restore plan", Arguments: map[string]any{"files": plan, "skipped": skipped, "recovery_consent": consentArgs}}, nil
	}
	if useConsent {
		// Single use: consumed before the first identity file is written,
		// so a failure part way cannot leave it for another restore.
		if err := a.state.ConsumeRecoveryConsent(); err != nil {
			return api.Message{}, err
		}
		consentArgs["used"] = true
	}
	var written []string
	for i, f := range man.Files {
		if plan[i].Skipped {
			a.log.Warn("sensitive restore skipped an identity file: no recovery consent", "file", plan[i].Target)
			continue
		}
		data, err := os.ReadFile(filepath.Join(work, filepath.FromSlash(f.Path)))
		if err == nil {
			// Secrets go back 0600 whatever mode they had: group or world
			// access to a key is never what an operator wants restored.
			err = atomicfile.Write(plan[i].Target, data, 0o600)
		}
		if err != nil {
			return api.Message{}, fmt.Errorf("restore %s failed after writing %d of %d files (%s): %w",
				plan[i].Target, len(written), len(plan), strings.Join(written, ", "), err)
		}
		written = append(written, plan[i].Target)
	}
	// Every restored key is taken into use in place: no restart. The
	// identity (authorized keys, TLS certificate) only when the node's
	// operator consented to restoring it.
	reloaded := []string{}
	var failed []string
	if useConsent {
		reloaded = append(reloaded, "authorized keys (read on every call)")
		if err := a.reloadCert(); err == nil {
			reloaded = append(reloaded, "TLS certificate")
		} else {
			failed = append(failed, err.Error())
		}
	}
	if err := a.reloadSecrets(); err == nil {
		reloaded = append(reloaded, "data encryption key", "token signing key")
	} else {
		failed = append(failed, err.Error())
	}
	src.done()
	a.log.Info("sensitive configuration restored", "files", len(written), "skipped", len(skipped), "key", r.Context().Value(keyNameKey))
	args := map[string]any{"files": plan, "skipped": skipped, "recovery_consent": consentArgs, "reloaded": reloaded, "keys": a.keysInUse()}
	if len(failed) > 0 {
		a.log.Error("a restored key could not be taken into use", "err", strings.Join(failed, "; "))
		args["restart_needed_for"] = "not taken into use (" + strings.Join(failed, "; ") + "): fix the file and restart the agent"
	}
	return api.Message{Message: "Sensitive configuration restored", Arguments: args}, nil
}

// sensitiveTarget maps an archive path to where it goes on this node. Only
// the node's own sensitive paths (the state directory's secrets and
// authorized keys, and the files the agent's config declares sensitive) are
// ever written: an authenticated archive is still a file its uploader
// chose, and must not become a way to write anywhere the agent can.
func (a *Agent) sensitiveTarget(f manifest.File) (string, error) {
	clean, err := archive.CleanName(f.Path)
	if err != nil || clean != f.Path {
		return "", api.Errorf(api.CodeIntegrity, "unsafe path in sensitive backup: %q", f.Path)
	}
	allowed, err := a.state.SensitivePaths(a.cfg.SensitivePaths)
	if err != nil {
		return "", err
	}
	var target string
	if rel, ok := strings.CutPrefix(clean, "state/"); ok {
		target = filepath.Join(a.state.Path, filepath.FromSlash(rel))
	} else if strings.HasPrefix(clean, "extra/") && filepath.IsAbs(f.Origin) {
		target = filepath.Clean(f.Origin)
	} else {
		return "", api.Errorf(api.CodeIntegrity, "unexpected path in sensitive backup: %q", f.Path)
	}
	if !slices.Contains(allowed, target) {
		return "", api.Errorf(api.CodeIntegrity, "sensitive backup names %s, which is not sensitive configuration of this node (declare it in the agent's sensitive_paths to restore it)", target)
	}
	return target, nil
}

// Limits of a sensitive backup's extraction: it holds the node's keys and
// the operator's few sensitive_paths, kilobytes in all; these bound what a
// crafted one can make the node write into its work area.
const (
	sensitiveMaxEntry   = 16 << 20
	sensitiveMaxEntries = 1000
	sensitiveMaxTotal   = 64 << 20
)

func (a *Agent) extractSensitive(ctx context.Context, src source, dir string) (*manifest.Manifest, error) {
	unlock, ok := a.lockUpload(src.path)
	if !ok {
		return nil, api.Errorf(api.CodeJobRunning, "a client is uploading this file right now")
	}
	defer unlock()
	file, stream, err := src.openStream()
	if err != nil {
		return nil, err
	}
	defer file.Close()
	ar, err := archive.NewReader(stream, archive.Limits{MaxEntrySize: sensitiveMaxEntry, MaxEntries: sensitiveMaxEntries, MaxTotal: sensitiveMaxTotal})
	if err != nil {
		return nil, cryptError(err)
	}
	defer ar.Close()
	if err := archive.Extract(ctx, ar, dir); err != nil {
		return nil, cryptError(err)
	}
	if _, err := io.Copy(io.Discard, stream); err != nil {
		return nil, cryptError(err)
	}
	if err := src.checkHash(); err != nil {
		return nil, err
	}
	mf, err := os.Open(filepath.Join(dir, manifest.Name))
	if err != nil {
		return nil, api.Errorf(api.CodeIntegrity, "not a sensitive backup: no manifest")
	}
	defer mf.Close()
	man, err := manifest.Decode(mf)
	if err != nil {
		return nil, api.Errorf(api.CodeIntegrity, "not a sensitive backup: %v", err)
	}
	if man.Kind != manifest.KindSensitive {
		return nil, api.Errorf(api.CodeBadRequest, "this is an ordinary backup, not a sensitive one: use restore")
	}
	for _, f := range man.Files {
		if clean, err := archive.CleanName(f.Path); err != nil || clean != f.Path {
			return nil, api.Errorf(api.CodeIntegrity, "unsafe path in sensitive backup: %q", f.Path)
		}
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f.Path)))
		if err != nil {
			return nil, api.Errorf(api.CodeIntegrity, "sensitive backup lacks %s", f.Path)
		}
		sum := sha256.Sum256(b)
		if hex.EncodeToString(sum[:]) != f.SHA256 {
			return nil, api.Errorf(api.CodeIntegrity, "sensitive backup: %s does not match its manifest", f.Path)
		}
	}
	return man, nil
}
