package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/crypt"
	"github.com/a0backup/a0/internal/pitr"
	"github.com/a0backup/a0/internal/remote"
	"github.com/a0backup/a0/internal/store"
)

// OplogDirName is the oplog archive's directory in a device's backup
// folder: <device>/backup/oplog (package pitr's slices).
const OplogDirName = "oplog"

// OplogDir is the oplog archive's directory on device.
func OplogDir(device string) string { return filepath.Join(device, store.FolderName, OplogDirName) }

// PITR is what a restore to a point in time reads on the node: the base
// (the stored backup, or a remote copy) and the archive's slices from just
// after its consistent_to up to To. The node reads slices only with the
// file keys the CLI unwrapped (Archive.FileKeys).
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
	// Remote is set when the base is a remote copy and the slices are
	// the store's (<prefix>/oplog/): FetchSlices downloads them before
	// the replay reads them. Note says why the remote was chosen.
	Remote *RemoteArchive
	Note   string
	// BaseSet is the replica set the base's manifest names (restore.Plan
	// gives it through Options.ExtraReplicaSet before it reads the
	// slices): Source refuses a slice of another set (*pitr.SetError).
	BaseSet string
	// readFrom is where the read starts (the chain's predecessor's last
	// entry, or just after After).
	readFrom bson.Timestamp
	// dir is where FetchSlices put the slices (removed by Clear).
	dir string
}

// PlanPITR chooses the base and the slices of a restore to `to` on device
// from the stored backup and the device's archive alone (PITRSources.Plan
// with neither the server's newest entry nor a remote store).
func PlanPITR(device string, to bson.Timestamp) (*PITR, error) {
	return PITRSources{Device: device}.Plan(context.Background(), to, false)
}

// PITRSources are what a restore to a point in time can start from: the
// device's stored backup with the device's archive, and the remote copies
// with the store's archive. One set of rules (restorable) makes both the
// windows pitr-status and backups list and the plan a restore follows.
type PITRSources struct {
	// Device is the backup device ("": none).
	Device string
	// Newest is the server's newest entry (zero: unknown): the device's
	// archive is caught up when it holds it (see caughtUp).
	Newest bson.Timestamp
	// Remote is the store's archive and copies (nil: no remote store).
	Remote *RemoteArchive
}

// RemoteArchive is the archive's copy in the remote store: the slices
// under <prefix>/oplog/ (Oplog) and the copies as bases (Copier).
type RemoteArchive struct {
	Copier *Copier
	Oplog  remote.Store
	// Reserve is the free space a download must leave on Dir's disk.
	Reserve int64
	// Dir is where a restore's slices are downloaded (the state disk's
	// uploads folder, as a remote copy is).
	Dir string
}

// maxRemoteGaps bounds gaps.json read from the store (not trusted: every
// gap is also in the authenticated header of the slice after it).
const maxRemoteGaps = 16 << 20

// Load lists the store's archive (names and gaps.json, nothing trusted:
// a restore authenticates every slice it reads and checks the chain) and
// its bases (the copies' records; the restore's manifest check proves the
// one it restores).
func (r *RemoteArchive) Load(ctx context.Context) (*pitr.Archive, []Base, error) {
	objs, err := r.Oplog.List(ctx)
	if err != nil {
		return nil, nil, remoteError(fmt.Errorf("list %s: %w", r.Oplog.Location(), err))
	}
	ar := &pitr.Archive{}
	for _, o := range objs {
		if first, last, ok := pitr.ParseSliceName(o.Name); ok {
			ar.Slices = append(ar.Slices, pitr.Slice{Name: o.Name, First: first, Last: last, Size: o.Size})
		}
	}
	sort.Slice(ar.Slices, func(i, j int) bool { return ar.Slices[i].Name < ar.Slices[j].Name })
	rc, err := r.Oplog.Get(ctx, pitr.GapsFile, 0)
	switch {
	case errors.Is(err, remote.ErrNotFound):
	case err != nil:
		return nil, nil, remoteError(err)
	default:
		b, err := io.ReadAll(io.LimitReader(rc, maxRemoteGaps+1))
		rc.Close()
		if err != nil {
			return nil, nil, remoteError(err)
		}
		if len(b) > maxRemoteGaps || json.Unmarshal(b, &ar.Gaps) != nil {
			return nil, nil, errorf(Integrity, "%s in the remote store %s is not the archive's gaps record", pitr.GapsFile, r.Oplog.Location())
		}
	}
	bases, err := r.Copier.RemoteBases(ctx)
	if err != nil {
		return nil, nil, remoteError(err)
	}
	for i := range bases {
		bases[i].Remote = true
	}
	return ar, bases, nil
}

// Restorable is one window a restore to a point in time accepts: every
// position from From (its oldest base's consistent_to) to To.
type Restorable struct {
	From, To bson.Timestamp
	// Base is the oldest base that starts it; a restore to a point in it
	// starts from the newest base at or before the point.
	Base   Base
	Window pitr.Window
	bases  []Base // those that serve it, oldest first
}

// restorable are the windows of ar that the bases serve: for each window
// of the archive with a base inside it, from the oldest such base to the
// window's end. The last window of a caught-up archive (open, see
// caughtUp) reaches on to the newest base after it: no entry lies between.
func restorable(ar *pitr.Archive, bases []Base, open bool) []Restorable {
	bs := append([]Base(nil), bases...)
	sort.SliceStable(bs, func(i, j int) bool { return tsBefore(bs[i].ConsistentTo, bs[j].ConsistentTo) })
	ws := ar.Windows()
	var out []Restorable
	for i, w := range ws {
		last := open && i == len(ws)-1
		r := Restorable{Window: w, From: w.From, To: w.To}
		for _, b := range bs {
			if !serves(w, last, b.ConsistentTo) {
				continue
			}
			if len(r.bases) == 0 {
				r.Base, r.From = b, b.ConsistentTo
			}
			r.bases = append(r.bases, b)
			if tsBefore(r.To, b.ConsistentTo) {
				r.To = b.ConsistentTo
			}
		}
		if len(r.bases) > 0 {
			out = append(out, r)
		}
	}
	return out
}

// choose is the newest base of the windows that serves a restore to `to`
// (ok false: none does).
func choose(rs []Restorable, to bson.Timestamp) (Restorable, Base, bool) {
	for _, r := range rs {
		if tsLess(to, r.From) || tsLess(r.To, to) {
			continue
		}
		b := r.bases[0]
		for _, c := range r.bases[1:] {
			if !tsLess(to, c.ConsistentTo) {
				b = c
			}
		}
		return r, b, true
	}
	return Restorable{}, Base{}, false
}

// WholeSecond is the increment of a point that means every entry of its
// second (restore --to-time sends it: an oplog ts counts seconds).
const WholeSecond = math.MaxUint32

// chooseAsOf is choose, and for a point that means a whole second S (I
// WholeSecond) that no window holds entirely, the window whose last
// entry lies inside S: restored to that entry, every entry of S the
// archive holds (pitr-status shows such a window ending at S, and
// --to-time S asks for the data as of S). at is the point restored to.
func chooseAsOf(rs []Restorable, to bson.Timestamp) (Restorable, Base, bson.Timestamp, bool) {
	if r, b, ok := choose(rs, to); ok {
		return r, b, to, true
	}
	if to.I != WholeSecond {
		return Restorable{}, Base{}, to, false
	}
	for _, w := range rs {
		if w.To.T == to.T {
			if r, b, ok := choose(rs, w.To); ok {
				return r, b, w.To, true
			}
		}
	}
	return Restorable{}, Base{}, to, false
}

// asOfNote tells the operator that a restore to the whole second of
// `to` stops at the window's end inside it, at. When a gap of ar begins
// there, the rest of that second is not "not archived yet" but lost to
// the archive: the note says so, with the gap's reason.
func asOfNote(ar *pitr.Archive, to, at bson.Timestamp) string {
	if to == at {
		return ""
	}
	sec := time.Unix(int64(to.T), 0).UTC().Format("2006-01-02 15:04:05 UTC")
	for _, g := range ar.Gaps {
		if g.From == at {
			return fmt.Sprintf("the archive ends inside %s at %s, where a gap begins (%s): restoring to that entry, the last of that second the archive holds; a later entry of that second, if the server had one, was never archived and is not restored",
				sec, TSText(at), g.Reason)
		}
	}
	return fmt.Sprintf("the archive ends inside %s at %s: restoring to that entry, the last of that second the archive holds (a later entry of that second, if the server has one, is not archived yet: pitr-status shows the lag)",
		sec, TSText(at))
}

// open reports whether the device's archive is caught up and nothing
// after its last slice is recorded as missing: its last window then
// reaches on to the newest base (caughtUp).
func (s PITRSources) open(ar *pitr.Archive) bool {
	if !caughtUp(ar, s.Newest) {
		return false
	}
	last := ar.Slices[len(ar.Slices)-1].Last
	for _, g := range ar.Gaps {
		if !tsLess(g.From, last) {
			return false
		}
	}
	return true
}

// PITRWindows are the windows a restore accepts: the device's (its
// stored backup with its archive) and the store's (the copies with the
// store's archive, Base.Remote).
type PITRWindows struct {
	Local, Remote []Restorable
	// RemoteErr: the store could not be read (the local windows are
	// still listed).
	RemoteErr error
}

// All are the windows a restore without --remote accepts, oldest first:
// the device's, and the store's that add to them (a remote window inside
// a local one is served from the device).
func (w PITRWindows) All() []Restorable {
	out := append([]Restorable(nil), w.Local...)
	for _, r := range w.Remote {
		inside := false
		for _, l := range w.Local {
			if !tsLess(r.From, l.From) && !tsLess(l.To, r.To) {
				inside = true
			}
		}
		if !inside {
			out = append(out, r)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return tsLess(out[i].From, out[j].From) })
	return out
}

// Windows lists the windows by the rules Plan follows (restorable, choose).
func (s PITRSources) Windows(ctx context.Context) (PITRWindows, error) {
	var out PITRWindows
	if s.Device != "" {
		ar, err := pitr.Open(OplogDir(s.Device), crypt.Unlock{})
		if err != nil {
			return out, err
		}
		var bases []Base
		if b, ok := LocalBase(s.Device); ok {
			bases = append(bases, b)
		}
		out.Local = restorable(ar, bases, s.open(ar))
	}
	if s.Remote != nil {
		ar, bases, err := s.Remote.Load(ctx)
		if err != nil {
			out.RemoteErr = err
			return out, nil
		}
		out.Remote = restorable(ar, bases, false)
	}
	return out, nil
}

// Plan chooses the base and the slices of a restore to `to`: from the
// device (its stored backup and archive) when they serve it, else from
// the remote store by itself (the newest copy whose consistent_to is at
// most `to`, and the store's slices); remoteOnly skips the device. A
// point neither serves is a NotRestorable *Error naming both windows,
// before any write.
func (s PITRSources) Plan(ctx context.Context, to bson.Timestamp, remoteOnly bool) (*PITR, error) {
	if s.Device == "" && s.Remote == nil {
		return nil, &Error{Kind: NotBackupRole, Msg: "this node has no backup device: no base and no oplog archive"}
	}
	if remoteOnly && s.Remote == nil {
		return nil, &Error{Kind: Unsupported, Msg: `this node has no remote store: add "remote" to the agent config (docs/operations.md)`}
	}
	var why []string
	var localWins, remoteWins []Restorable
	if s.Device != "" && !remoteOnly {
		ar, err := pitr.Open(OplogDir(s.Device), crypt.Unlock{})
		if err != nil {
			return nil, err
		}
		m, err := Slot(s.Device, api.SlotBackup).Stored()
		switch {
		case errors.Is(err, store.ErrNoBackup):
			why = append(why, "no backup is stored on the node to start from")
		case err != nil:
			return nil, err
		case m.ConsistentTo == nil:
			why = append(why, fmt.Sprintf("the stored backup %s records no consistent_to (made by an older a0, or without an oplog): make a new backup", m.Name))
		default:
			base := Base{Name: m.Name, ConsistentTo: bson.Timestamp{T: m.ConsistentTo.T, I: m.ConsistentTo.I}}
			localWins = restorable(ar, []Base{base}, s.open(ar))
			if r, _, at, ok := chooseAsOf(localWins, to); ok {
				p := newPITR(ar, r, base, at)
				p.Base, p.BasePath = m, Slot(s.Device, api.SlotBackup).Path(m)
				p.Note = asOfNote(ar, to, at)
				return p, nil
			}
			if tsLess(to, base.ConsistentTo) {
				why = append(why, fmt.Sprintf("the stored backup %s is consistent to %s, after it", m.Name, TSText(base.ConsistentTo)))
			} else {
				why = append(why, fmt.Sprintf("no window holds every entry from the stored backup %s (consistent to %s) to it", m.Name, TSText(base.ConsistentTo)))
			}
		}
		if len(localWins) == 0 {
			// The windows named are the archive's own, as before a base.
			for _, w := range ar.Windows() {
				localWins = append(localWins, Restorable{From: w.From, To: w.To, Window: w})
			}
		}
	}
	if s.Remote != nil {
		ar, bases, err := s.Remote.Load(ctx)
		if err != nil {
			if remoteOnly {
				return nil, err
			}
			why = append(why, "the remote store cannot be read: "+err.Error())
		} else {
			remoteWins = restorable(ar, bases, false)
			if r, b, at, ok := chooseAsOf(remoteWins, to); ok {
				p := newPITR(ar, r, b, at)
				p.Base, p.Remote = &store.Meta{Name: b.Name}, s.Remote
				if !remoteOnly {
					lack := "this node has no backup device"
					if len(why) > 0 {
						lack = "the node's device lacks what this point needs (" + strings.Join(why, "; ") + ")"
					}
					p.Note = lack + ": restoring from the remote store " + s.Remote.Copier.Remote.Location() + " by itself (its copy and oplog slices)"
				}
				if n := asOfNote(ar, to, at); n != "" {
					p.Note = strings.TrimPrefix(p.Note+"; "+n, "; ")
				}
				return p, nil
			}
			why = append(why, fmt.Sprintf("no remote copy (of %d with a consistent_to) starts a window of the remote archive that reaches it", len(bases)))
		}
	}
	return nil, refusePITR(to, why, localWins, remoteWins, s.Device != "" && !remoteOnly, s.Remote != nil)
}

func refusePITR(to bson.Timestamp, why []string, local, rem []Restorable, hasLocal, hasRemote bool) error {
	var names []string
	if hasLocal {
		names = append(names, "the archive's windows: "+restorableText(local))
	}
	if hasRemote {
		names = append(names, "the remote store's windows: "+restorableText(rem))
	}
	var wins []pitr.Window
	for _, r := range append(append([]Restorable(nil), local...), rem...) {
		wins = append(wins, pitr.Window{From: r.From, To: r.To})
	}
	return &Error{Kind: NotRestorable, Msg: fmt.Sprintf("cannot restore to %s: %s; %s", TSText(to), strings.Join(why, "; "), strings.Join(names, "; ")),
		Details: map[string]any{"to_ts": api.OplogTS{T: to.T, I: to.I}, "windows": apiWindows(wins)}}
}

func restorableText(rs []Restorable) string {
	ws := make([]pitr.Window, len(rs))
	for i, r := range rs {
		ws[i] = pitr.Window{From: r.From, To: r.To}
	}
	return WindowsText(ws)
}

// newPITR is the plan of a restore to `to` from base b in window r of ar:
// the slices after the base's consistent_to up to `to`, the one before
// them in the same window (its hash starts the chain check) and, when
// the last of them ends before `to`, the one after them: only its hash
// proves that no slice is missing between them and `to` (names cannot: a
// stretch without writes leaves no slice either). Its entries are all
// after `to`: the replay reads it for its hash only (pitr.Archive.Entries).
func newPITR(ar *pitr.Archive, r Restorable, b Base, to bson.Timestamp) *PITR {
	p := &PITR{After: b.ConsistentTo, To: to, Window: r.Window, Archive: ar, readFrom: pitr.After(b.ConsistentTo)}
	lo := len(ar.Slices) // the first slice ending at or after readFrom
	for i, s := range ar.Slices {
		if !tsLess(s.Last, p.readFrom) {
			lo = i
			break
		}
	}
	hi := lo // past the last slice starting at or before `to`
	for hi < len(ar.Slices) && !tsLess(to, ar.Slices[hi].First) {
		hi++
	}
	if lo > 0 && r.Window.Contains(ar.Slices[lo-1].First) && (hi > lo || hi < len(ar.Slices)) {
		lo--
		p.readFrom = ar.Slices[lo].Last
	}
	if hi > lo && hi < len(ar.Slices) && tsLess(ar.Slices[hi-1].Last, to) {
		hi++
	}
	p.Slices = append([]pitr.Slice(nil), ar.Slices[lo:hi]...)
	return p
}

// SliceHeader is the crypt header of slice s of the plan (the device's
// file, or the store's object; not authenticated: the CLI unwraps the
// key from it and the key then authenticates the whole slice).
func (p *PITR) SliceHeader(ctx context.Context, s pitr.Slice) ([]byte, error) {
	if p.Remote == nil {
		return pitr.Header(s)
	}
	rc, err := p.Remote.Oplog.Get(ctx, s.Name, 0)
	if err != nil {
		return nil, remoteError(err)
	}
	defer rc.Close()
	h, err := crypt.ReadHeader(rc)
	if err != nil {
		return nil, &pitr.SliceError{Name: s.Name, Err: err}
	}
	return h, nil
}

// FetchSlices downloads the slices of a remote plan into a new folder of
// Remote.Dir, one at a time (streamed, each bounded by its listed size),
// after checking that they fit: the disk keeps Remote.Reserve free beside
// them and the base copy (baseSize). The replay then reads them there,
// authenticating each and checking the chain in the restore's first
// pass, before the first write. Clear removes them.
func (p *PITR) FetchSlices(ctx context.Context, baseSize int64) error {
	if p.Remote == nil {
		return nil
	}
	var need int64
	for _, s := range p.Slices {
		need += s.Size
	}
	if err := os.MkdirAll(p.Remote.Dir, 0o700); err != nil {
		return err
	}
	if free, err := FreeBytes(p.Remote.Dir); err == nil && free-need-baseSize < p.Remote.Reserve {
		return NoSpaceForUpload(free, need+baseSize)
	}
	dir, err := os.MkdirTemp(p.Remote.Dir, RemoteSlicesPattern)
	if err != nil {
		return err
	}
	p.dir = dir
	for i := range p.Slices {
		s := &p.Slices[i]
		path := filepath.Join(dir, s.Name)
		if err := fetchSlice(ctx, p.Remote.Oplog, s.Name, path, s.Size); err != nil {
			return err
		}
		s.Path = path
	}
	// The archive the replay reads is the slices downloaded.
	p.Archive = &pitr.Archive{Dir: dir, Slices: p.Slices, Gaps: p.Archive.Gaps, FileKeys: p.Archive.FileKeys}
	return nil
}

// RemoteSlicesPattern names the folders FetchSlices makes (a dot name: no
// client can upload into it).
const RemoteSlicesPattern = ".remote-oplog-*"

func fetchSlice(ctx context.Context, st remote.Store, name, path string, size int64) error {
	rc, err := st.Get(ctx, name, 0)
	if err != nil {
		return remoteError(fmt.Errorf("download slice %s: %w", name, err))
	}
	defer rc.Close()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	// No more than the listed size and one byte: what the free-space
	// check counted. A longer or shorter object fails authentication.
	_, err = io.CopyBuffer(f, io.LimitReader(rc, size+1), make([]byte, 256<<10))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return remoteError(fmt.Errorf("download slice %s: %w", name, err))
	}
	return nil
}

// Source is the entries the replay reads after the base: the archive's,
// after After up to To, every slice authenticated and chained as it is
// read (a *pitr.ChainError naming a slice that is not).
func (p *PITR) Source() func(ctx context.Context, fn func(bson.Raw) error) error {
	return func(ctx context.Context, fn func(bson.Raw) error) error {
		ar := *p.Archive
		ar.ReplSet = p.BaseSet
		return ar.Entries(ctx, p.readFrom, p.To, func(raw bson.Raw) error {
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

// Clear wipes the slices' file keys and removes the slices FetchSlices
// downloaded.
func (p *PITR) Clear() {
	if p == nil {
		return
	}
	if p.dir != "" {
		os.RemoveAll(p.dir)
	}
	if p.Archive == nil {
		return
	}
	for _, k := range p.Archive.FileKeys {
		clear(k)
	}
}

// PITRError gives the archive's failures during a restore their kinds: a
// slice not authentic or out of the chain is an integrity failure naming
// it; a gap, or a slice of another replica set than the base's, is a
// refusal.
func PITRError(err error) error {
	var ce *pitr.ChainError
	var ge *pitr.GapError
	var se *pitr.SetError
	switch {
	case errors.As(err, &se):
		return &Error{Kind: NotRestorable, Msg: fmt.Sprintf("cannot restore to this point, nothing was written: the oplog archive's slice %s comes from replica set %q, the base backup from replica set %q: an archive only restores backups of its own set (docs/consistency.md)", se.Slice, se.Got, se.Want),
			Details: map[string]any{"slice": se.Slice, "archive_replica_set": se.Got, "base_replica_set": se.Want}, Err: err}
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
