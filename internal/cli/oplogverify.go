package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/crypt"
	"github.com/a0backup/a0/internal/pitr"
)

// OplogVerifyResult is what verify --oplog prints with --json.
type OplogVerifyResult struct {
	Dir       string            `json:"dir"`
	Authentic bool              `json:"authentic"`
	Slices    int               `json:"slices"`
	Entries   int64             `json:"entries"`
	Bytes     int64             `json:"bytes"`
	Windows   []api.OplogWindow `json:"windows"`
	Gaps      []OplogGap        `json:"gaps,omitempty"`
	// Base is the FILE given with it: the backup a restore starts from.
	Base *OplogBase `json:"base,omitempty"`
}

// OplogGap is a recorded gap.
type OplogGap struct {
	From   api.OplogTS `json:"from"`
	To     api.OplogTS `json:"to"`
	Reason string      `json:"reason"`
}

// OplogBase says what the archive restores a base backup to.
type OplogBase struct {
	File         string      `json:"file"`
	ConsistentTo api.OplogTS `json:"consistent_to"`
	// RestorableTo is the newest position the proven archive restores
	// the base to (its window's end).
	RestorableTo api.OplogTS `json:"restorable_to"`
}

func apiTS(ts bson.Timestamp) api.OplogTS { return api.OplogTS{T: ts.T, I: ts.I} }

// RunVerifyOplog reads every slice in o.Oplog with the identities: each
// authentic, each holding the hash of the one before it. A slice that is
// not is named, exit 6. With a FILE, the base backup is verified too and
// the window it starts in printed.
func RunVerifyOplog(ctx context.Context, env *Env, o OfflineOptions) error {
	if st, err := os.Stat(o.Oplog); err != nil || !st.IsDir() {
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			return &NotFoundError{Msg: fmt.Sprintf("no such directory: %s", o.Oplog)}
		}
		return err
	}
	ids, err := o.load(env)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return usagef("verify --oplog: the slices are encrypted to the agent config's recipients: give --identity FILE")
	}
	proof, err := pitr.Verify(ctx, o.Oplog, crypt.Unlock{Identities: ids})
	if err != nil {
		var ce *pitr.ChainError
		if errors.As(err, &ce) && !errors.Is(err, crypt.ErrWrongKey) {
			return &IntegrityError{Msg: err.Error()}
		}
		return err
	}
	if proof.Slices == 0 {
		return &NotFoundError{Msg: fmt.Sprintf("no oplog slices (*%s) in %s", pitr.SliceExt, o.Oplog)}
	}
	res := OplogVerifyResult{Dir: o.Oplog, Authentic: true, Slices: proof.Slices, Entries: proof.Entries, Bytes: proof.Bytes,
		Windows: []api.OplogWindow{}}
	for _, w := range proof.Windows {
		res.Windows = append(res.Windows, api.OplogWindow{From: apiTS(w.From), To: apiTS(w.To)})
	}
	for _, g := range proof.Gaps {
		res.Gaps = append(res.Gaps, OplogGap{From: apiTS(g.From), To: apiTS(g.To), Reason: g.Reason})
	}
	var baseErr error
	if o.File != "" {
		vr, err := verifyFile(ctx, env, &o, nil)
		if err != nil {
			return err
		}
		if vr.Manifest == nil || vr.Manifest.ConsistentTo == nil {
			baseErr = &RefusedError{Msg: fmt.Sprintf("%s records no consistent_to: it is no base for the oplog archive", o.File)}
		} else {
			ct := bson.Timestamp{T: vr.Manifest.ConsistentTo.T, I: vr.Manifest.ConsistentTo.I}
			res.Base = &OplogBase{File: o.File, ConsistentTo: apiTS(ct)}
			found := false
			for _, w := range proof.Windows {
				if !ct.Before(w.From) && !w.To.Before(ct) {
					res.Base.RestorableTo, found = apiTS(w.To), true
				}
			}
			if !found {
				baseErr = &RefusedError{Msg: fmt.Sprintf("%s is consistent to %s, which no window of the archive holds", o.File, tsText(apiTS(ct)))}
			}
		}
	}
	if o.JSON {
		if err := printCompact(env, res); err != nil {
			return err
		}
		return baseErr
	}
	fmt.Fprintf(env.Stdout, "OK: %d oplog slices, %d entries, %d bytes: every slice authentic, the chain unbroken\n", res.Slices, res.Entries, res.Bytes)
	for _, w := range res.Windows {
		fmt.Fprintf(env.Stdout, "window: %s .. %s\n", tsText(w.From), tsText(w.To))
	}
	for _, g := range res.Gaps {
		fmt.Fprintf(env.Stdout, "gap after %s: %s\n", tsText(g.From), g.Reason)
	}
	if res.Base != nil && baseErr == nil {
		fmt.Fprintf(env.Stdout, "restorable: %s (consistent to %s) .. %s\n", res.Base.File, tsText(res.Base.ConsistentTo), tsText(res.Base.RestorableTo))
	}
	return baseErr
}
