package ops

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/crypt"
	"github.com/a0backup/a0/internal/pitr"
	"github.com/a0backup/a0/internal/store"
)

// OplogDirName is the oplog archive's directory in a device's backup
// folder: <device>/backup/oplog (package pitr's slices).
const OplogDirName = "oplog"

// OplogDir is the oplog archive's directory on device.
func OplogDir(device string) string { return filepath.Join(device, store.FolderName, OplogDirName) }

// PITR is what a restore to a point in time reads on the node: the base
// (the stored backup) and the archive's slices from just after its
// consistent_to up to To. The node reads slices only with the file keys
// the CLI unwrapped (Archive.FileKeys).
type PITR struct {
	Base     *store.Meta
	BasePath string
	// After is the base's consistent_to; To the last position replayed.
	After, To bson.Timestamp
	Window    pitr.Window
	Archive   *pitr.Archive
	// Slices are the slices the replay reads, oldest first: those that
	// hold entries after After up to To, and the one before them in the
	// same window, so that the first one's chain hash is checked too.
	Slices []pitr.Slice
	// readFrom is where the read starts (the chain's predecessor's last
	// entry, or just after After).
	readFrom bson.Timestamp
}

// PlanPITR chooses the base and the slices of a restore to `to` on device:
// the stored backup when its consistent_to is at most `to` and one window
// of the archive holds every entry from there to `to`. Anything else is a
// NotRestorable *Error naming the windows, before any write.
func PlanPITR(device string, to bson.Timestamp) (*PITR, error) {
	if device == "" {
		return nil, &Error{Kind: NotBackupRole, Msg: "this node has no backup device: no base and no oplog archive"}
	}
	arch, err := pitr.Open(OplogDir(device), crypt.Unlock{})
	if err != nil {
		return nil, err
	}
	wins := arch.Windows()
	refuse := func(why string) error {
		return &Error{Kind: NotRestorable, Msg: fmt.Sprintf("cannot restore to %s: %s; the archive's windows: %s", TSText(to), why, WindowsText(wins)),
			Details: map[string]any{"to_ts": api.OplogTS{T: to.T, I: to.I}, "windows": apiWindows(wins)}}
	}
	m, err := Slot(device, api.SlotBackup).Stored()
	if errors.Is(err, store.ErrNoBackup) {
		return nil, refuse("no backup is stored on the node to start from")
	}
	if err != nil {
		return nil, err
	}
	if m.ConsistentTo == nil {
		return nil, refuse(fmt.Sprintf("the stored backup %s records no consistent_to (made by an older a0, or without an oplog): make a new backup", m.Name))
	}
	after := bson.Timestamp{T: m.ConsistentTo.T, I: m.ConsistentTo.I}
	if tsLess(to, after) {
		return nil, refuse(fmt.Sprintf("the stored backup %s is consistent to %s, after it", m.Name, TSText(after)))
	}
	w, ok := pitr.Serving(wins, after, to)
	if !ok {
		return nil, refuse(fmt.Sprintf("no window holds every entry from the stored backup %s (consistent to %s) to it", m.Name, TSText(after)))
	}
	p := &PITR{Base: m, BasePath: Slot(device, api.SlotBackup).Path(m), After: after, To: to, Window: w, Archive: arch,
		readFrom: pitr.After(after)}
	p.Slices = arch.Needed(p.readFrom, to)
	if len(p.Slices) > 0 {
		for i, s := range arch.Slices {
			if s.Name == p.Slices[0].Name && i > 0 && w.Contains(arch.Slices[i-1].First) {
				prev := arch.Slices[i-1]
				p.Slices = append([]pitr.Slice{prev}, p.Slices...)
				p.readFrom = prev.Last
				break
			}
		}
	}
	return p, nil
}

// Source is the entries the replay reads after the base: the archive's,
// after After up to To, every slice authenticated and chained as it is
// read (a *pitr.ChainError naming a slice that is not).
func (p *PITR) Source() func(ctx context.Context, fn func(bson.Raw) error) error {
	return func(ctx context.Context, fn func(bson.Raw) error) error {
		return p.Archive.Entries(ctx, p.readFrom, p.To, func(raw bson.Raw) error {
			t, i, _ := raw.Lookup("ts").TimestampOK()
			if !tsLess(p.After, bson.Timestamp{T: t, I: i}) {
				return nil // the chain's predecessor: read for its hash only
			}
			return fn(raw)
		})
	}
}

// SetKeys gives the archive the slices' file keys (name to key) and checks
// that every slice the replay reads has one; Clear wipes them.
func (p *PITR) SetKeys(keys map[string][]byte) error {
	var missing []string
	for _, s := range p.Slices {
		if len(keys[s.Name]) == 0 {
			missing = append(missing, s.Name)
		}
	}
	if len(missing) > 0 {
		return &Error{Kind: Invalid, Msg: fmt.Sprintf("no file key was sent for the slices %s (the archive changed since the plan: run the restore again)", strings.Join(missing, ", "))}
	}
	p.Archive.FileKeys = keys
	return nil
}

// Clear wipes the slices' file keys.
func (p *PITR) Clear() {
	if p == nil || p.Archive == nil {
		return
	}
	for _, k := range p.Archive.FileKeys {
		clear(k)
	}
}

// PITRError gives the archive's failures during a restore their kinds: a
// slice not authentic or out of the chain is an integrity failure naming
// it; a gap is a refusal.
func PITRError(err error) error {
	var ce *pitr.ChainError
	var ge *pitr.GapError
	switch {
	case errors.As(err, &ce):
		return &Error{Kind: Integrity, Msg: "oplog archive refused, nothing was written: " + ce.Error(),
			Details: map[string]any{"slice": ce.Slice}, Err: err}
	case errors.As(err, &ge):
		return &Error{Kind: NotRestorable, Msg: ge.Error(), Err: err}
	}
	return nil
}

// TSText is an oplog position for an operator: its time and its ts.
func TSText(ts bson.Timestamp) string {
	return fmt.Sprintf("%s (ts %d,%d)", time.Unix(int64(ts.T), 0).UTC().Format("2006-01-02 15:04:05 UTC"), ts.T, ts.I)
}

// WindowsText lists windows for an error message.
func WindowsText(ws []pitr.Window) string {
	if len(ws) == 0 {
		return "none (no slice archived)"
	}
	parts := make([]string, len(ws))
	for i, w := range ws {
		parts[i] = TSText(w.From) + " .. " + TSText(w.To)
	}
	return strings.Join(parts, ", ")
}

func apiWindows(ws []pitr.Window) []api.OplogWindow {
	out := make([]api.OplogWindow, len(ws))
	for i, w := range ws {
		out[i] = api.OplogWindow{From: api.OplogTS{T: w.From.T, I: w.From.I}, To: api.OplogTS{T: w.To.T, I: w.To.I}}
	}
	return out
}

func tsLess(a, b bson.Timestamp) bool { return a.T < b.T || (a.T == b.T && a.I < b.I) }
