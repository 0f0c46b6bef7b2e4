package agent

import (
	"context"
	"errors"
	"net/http"
	"os"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/crypt"
	"github.com/a0backup/a0/internal/ops"
	"github.com/a0backup/a0/internal/pitr"
	"github.com/a0backup/a0/internal/remote"
)

// pitrPlan is POST /v1/pitr/plan: the base and the slices a restore to a
// point in time reads, with the crypt headers the CLI unwraps their file
// keys from (the node holds no identity and decrypts nothing here).
func (a *Agent) pitrPlan(w http.ResponseWriter, r *http.Request) error {
	var req api.PITRPlanRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	p, err := a.planPITR(r.Context(), req.ToTS, req.Remote)
	if err != nil {
		return err
	}
	out := api.PITRPlan{Base: p.Base.Name, ConsistentTo: api.OplogTS{T: p.After.T, I: p.After.I}, ToTS: api.OplogTS{T: p.To.T, I: p.To.I},
		Window: api.OplogWindow{From: api.OplogTS{T: p.Window.From.T, I: p.Window.From.I}, To: api.OplogTS{T: p.Window.To.T, I: p.Window.To.I}},
		Slices: make([]api.PITRSlice, 0, len(p.Slices)), Remote: p.Remote != nil, Note: p.Note}
	if p.Remote != nil {
		out.BaseHeader, err = a.remoteHeader(r.Context(), p.Base.Name)
	} else {
		out.BaseHeader, err = readHeader(p.BasePath)
	}
	if err != nil {
		return err
	}
	for _, s := range p.Slices {
		h, err := p.SliceHeader(r.Context(), s)
		var oe *ops.Error
		if errors.As(err, &oe) {
			return err // the store's failure (remoteError)
		}
		if err != nil {
			return &ops.Error{Kind: ops.Integrity, Msg: "oplog archive refused: " + err.Error(), Details: map[string]any{"slice": s.Name}, Err: err}
		}
		out.Slices = append(out.Slices, api.PITRSlice{Name: s.Name, Header: h})
	}
	return writeJSON(w, http.StatusOK, out)
}

// planPITR plans a restore to ts by the rules pitr-status lists windows
// with (pitrSources): the device first, else the remote store by itself;
// remoteOnly (restore --remote) plans from the store alone.
func (a *Agent) planPITR(ctx context.Context, ts api.OplogTS, remoteOnly bool) (*ops.PITR, error) {
	src, err := a.pitrSources(ctx)
	if err != nil {
		return nil, err
	}
	return src.Plan(ctx, bson.Timestamp{T: ts.T, I: ts.I}, remoteOnly)
}

// pitrSources are what a restore to a time can start from on this node:
// the device (its stored backup and archive; the server's newest entry
// says whether the archive is caught up) and the remote store's copies
// and archive.
func (a *Agent) pitrSources(ctx context.Context) (ops.PITRSources, error) {
	n, err := a.state.LoadNode()
	if err != nil {
		return ops.PITRSources{}, err
	}
	src := ops.PITRSources{Device: n.Device}
	if n.Device != "" {
		src.Newest = a.serverNewest(ctx)
	}
	if a.copier != nil {
		if sub, ok := a.cfg.Remote.(interface{ Sub(string) remote.Store }); ok {
			src.Remote = &ops.RemoteArchive{Copier: a.copier, Oplog: sub.Sub(ops.OplogDirName), Reserve: a.uploadReserve(),
				Dir: a.state.UploadsDir()}
		}
	}
	return src, nil
}

// remoteHeader is the crypt header of the remote copy name, its record
// checked first (not authenticated: the key the CLI unwraps from it
// authenticates the copy in the restore's first pass).
func (a *Agent) remoteHeader(ctx context.Context, name string) ([]byte, error) {
	rb, err := a.copier.Checked(ctx, name)
	if err != nil {
		return nil, err
	}
	rc, err := a.copier.OpenFile(ctx, rb, 0)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	h, err := crypt.ReadHeader(rc)
	if errors.Is(err, crypt.ErrNotA0) || errors.Is(err, crypt.ErrCorrupt) {
		return nil, &ops.Error{Kind: ops.Integrity, Msg: "remote copy " + name + " is not an a0 file: " + err.Error(), Err: err}
	}
	return h, err
}

func readHeader(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h, err := crypt.ReadHeader(f)
	if errors.Is(err, crypt.ErrNotA0) || errors.Is(err, crypt.ErrCorrupt) {
		return nil, &ops.Error{Kind: ops.Integrity, Msg: "the stored backup is not an a0 file: " + err.Error(), Err: err}
	}
	return h, err
}

// pitrRestore checks a restore request to a point in time and returns
// what its job reads: the plan made again (the base must be the one the
// CLI unwrapped a key for) with the slices' keys.
func (a *Agent) pitrRestore(ctx context.Context, req api.RestoreRequest) (*ops.PITR, error) {
	if req.UploadID != "" || req.Plain {
		return nil, api.Errorf(api.CodeBadRequest, "a restore to a point in time starts from the stored backup or a remote copy: no FILE or --plain")
	}
	if req.Remote != "" && req.Remote != req.Base {
		return nil, api.Errorf(api.CodeBadRequest, "a restore to a point in time from the remote store names its base copy as remote and base (%q, %q)", req.Remote, req.Base)
	}
	p, err := a.planPITR(ctx, *req.ToTS, req.Remote != "")
	if err != nil {
		return nil, err
	}
	if req.Base != p.Base.Name {
		return nil, api.Errorf(api.CodeBadRequest, "the base is %s, not %q as planned: run the restore again", p.Base.Name, req.Base)
	}
	if err := p.SetKeys(req.SliceKeys); err != nil {
		return nil, err
	}
	return p, nil
}

// parseSince reads an RFC 3339 bound of a time range ("" is none).
func parseBound(name, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return t, api.Errorf(api.CodeBadRequest, "%s %q: want RFC 3339, e.g. 2026-12-06T10:15:00Z", name, s)
	}
	return t, nil
}

// pitrSlices is POST /v1/pitr/slices: the slices of a time range with
// their crypt headers (oplog-find's CLI unwraps their keys).
func (a *Agent) pitrSlices(w http.ResponseWriter, r *http.Request) error {
	var req api.PITRSlicesRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	since, err := parseBound("since", req.Since)
	if err != nil {
		return err
	}
	until, err := parseBound("until", req.Until)
	if err != nil {
		return err
	}
	n, err := a.state.LoadNode()
	if err != nil {
		return err
	}
	slices, err := ops.SlicesIn(n.Device, since, until)
	if err != nil {
		return err
	}
	out := api.PITRSlices{Slices: make([]api.PITRSlice, 0, len(slices))}
	for _, s := range slices {
		h, err := pitr.Header(s)
		if err != nil {
			return &ops.Error{Kind: ops.Integrity, Msg: "oplog archive refused: " + err.Error(), Details: map[string]any{"slice": s.Name}, Err: err}
		}
		out.Slices = append(out.Slices, api.PITRSlice{Name: s.Name, Header: h})
	}
	return writeJSON(w, http.StatusOK, out)
}

// oplogFind is POST /v1/oplog/find: the destructive operations of the
// archive (read with the slices' file keys the CLI sent: each opens one
// slice of this node's own oplog, never an identity) and of the live
// oplog's tail.
func (a *Agent) oplogFind(w http.ResponseWriter, r *http.Request) error {
	var req api.OplogFindRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	defer func() {
		for _, k := range req.SliceKeys {
			clear(k)
		}
	}()
	f := pitr.Filter{NS: req.NS, Ops: req.Ops}
	var err error
	if f.Since, err = parseBound("since", req.Since); err != nil {
		return err
	}
	if f.Until, err = parseBound("until", req.Until); err != nil {
		return err
	}
	// The filter's own checks (operation names, the pattern) first.
	if _, err := pitr.Find(r.Context(), func(context.Context, func(bson.Raw) error) error { return nil }, f); err != nil {
		return api.Errorf(api.CodeBadRequest, "%v", err)
	}
	n, err := a.state.LoadNode()
	if err != nil {
		return err
	}
	res, err := ops.Find(r.Context(), a.client, n.Device, f, req.SliceKeys)
	if err != nil {
		return err
	}
	out := api.OplogFindReply{Findings: res.Findings, Slices: res.Slices, Entries: res.Entries, Live: res.Live, Windows: []api.OplogWindow{}}
	for _, w := range res.Windows {
		out.Windows = append(out.Windows, api.OplogWindow{From: api.OplogTS{T: w.From.T, I: w.From.I}, To: api.OplogTS{T: w.To.T, I: w.To.I}})
	}
	return writeJSON(w, http.StatusOK, out)
}
