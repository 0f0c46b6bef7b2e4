package agent

import (
	"errors"
	"net/http"
	"os"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/crypt"
	"github.com/a0backup/a0/internal/ops"
	"github.com/a0backup/a0/internal/pitr"
)

// pitrPlan is POST /v1/pitr/plan: the base and the slices a restore to a
// point in time reads, with the crypt headers the CLI unwraps their file
// keys from (the node holds no identity and decrypts nothing here).
func (a *Agent) pitrPlan(w http.ResponseWriter, r *http.Request) error {
	var req api.PITRPlanRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	p, err := a.planPITR(req.ToTS)
	if err != nil {
		return err
	}
	out := api.PITRPlan{Base: p.Base.Name, ConsistentTo: api.OplogTS{T: p.After.T, I: p.After.I}, ToTS: req.ToTS,
		Window: api.OplogWindow{From: api.OplogTS{T: p.Window.From.T, I: p.Window.From.I}, To: api.OplogTS{T: p.Window.To.T, I: p.Window.To.I}},
		Slices: make([]api.PITRSlice, 0, len(p.Slices))}
	if out.BaseHeader, err = readHeader(p.BasePath); err != nil {
		return err
	}
	for _, s := range p.Slices {
		h, err := pitr.Header(s)
		if err != nil {
			return &ops.Error{Kind: ops.Integrity, Msg: "oplog archive refused: " + err.Error(), Details: map[string]any{"slice": s.Name}, Err: err}
		}
		out.Slices = append(out.Slices, api.PITRSlice{Name: s.Name, Header: h})
	}
	return writeJSON(w, http.StatusOK, out)
}

func (a *Agent) planPITR(ts api.OplogTS) (*ops.PITR, error) {
	n, err := a.state.LoadNode()
	if err != nil {
		return nil, err
	}
	return ops.PlanPITR(n.Device, bson.Timestamp{T: ts.T, I: ts.I})
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
func (a *Agent) pitrRestore(req api.RestoreRequest) (*ops.PITR, error) {
	if req.Remote != "" || req.UploadID != "" || req.Plain {
		return nil, api.Errorf(api.CodeBadRequest, "a restore to a point in time starts from the stored backup: no FILE, --remote or --plain")
	}
	p, err := a.planPITR(*req.ToTS)
	if err != nil {
		return nil, err
	}
	if req.Base != p.Base.Name {
		return nil, api.Errorf(api.CodeBadRequest, "the stored backup is %s, not %q as planned: run the restore again", p.Base.Name, req.Base)
	}
	if err := p.SetKeys(req.SliceKeys); err != nil {
		return nil, err
	}
	return p, nil
}
