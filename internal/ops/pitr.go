package ops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"filippo.io/age"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/crypt"
	"github.com/a0backup/a0/internal/pitr"
)

// OplogDirName and OplogDir (pitrrestore.go) name the archive's folder,
// <device>/backup/oplog.

// Archive is the service that runs the continuous oplog archive (package
// pitr) on the node's backup device, beside the jobs: a backup, a restore
// or a copy never stops it and the one-job rule does not apply to it (it
// writes only under OplogDir and reads only the oplog). SetDevice starts
// it on a device, moves it when the device changes and stops it when there
// is none; Close stops it for good.
type Archive struct {
	// SliceLength is the slices' length (pitr.Config.SliceLength).
	SliceLength time.Duration
	Recipients  []age.Recipient
	// Source opens the oplog source for one run, and what closes it.
	Source        func(ctx context.Context) (pitr.Source, func(), error)
	Node, ReplSet string
	OnSlice       func(pitr.Slice)
	OnGap         func(pitr.Gap)
	// Retry is the archiver's pause after a failure (0: its default).
	Retry time.Duration
	Log   *slog.Logger

	// mu serialises SetDevice and Close; runMu guards run alone, so that
	// State (which the archiver's own callbacks call) never waits for a
	// stop that waits for them.
	mu     sync.Mutex
	closed bool
	runMu  sync.Mutex
	run    *archiveRun
}

type archiveRun struct {
	device string
	a      *pitr.Archiver
	cancel context.CancelFunc
	done   chan struct{}
}

// ArchiveState is what pitr-status and the metrics read.
type ArchiveState struct {
	// Device is where the archive runs ("" when it does not).
	Device string
	Dir    string
	pitr.Status
}

// SetDevice runs the archive on device ("" stops it). ctx is the agent's
// lifetime.
func (s *Archive) SetDevice(ctx context.Context, device string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	if cur := s.current(); cur != nil && cur.device == device {
		return nil
	}
	s.stopLocked()
	if device == "" {
		return nil
	}
	dir := OplogDir(device)
	rctx, cancel := context.WithCancel(ctx)
	src, release, err := s.Source(rctx)
	if err != nil {
		cancel()
		return err
	}
	a, err := pitr.New(pitr.Config{Source: src, Dir: dir, Recipients: s.Recipients, SliceLength: s.SliceLength,
		Node: s.Node, ReplSet: s.ReplSet, Retry: s.Retry, Logger: s.Log, OnSlice: s.OnSlice, OnGap: s.OnGap})
	if err != nil {
		cancel()
		release()
		return err
	}
	run := &archiveRun{device: device, a: a, cancel: cancel, done: make(chan struct{})}
	s.runMu.Lock()
	s.run = run
	s.runMu.Unlock()
	s.Log.Info("pitr: archiving the oplog", "dir", dir, "slice", s.SliceLength)
	go func() {
		defer close(run.done)
		defer release()
		if err := a.Run(rctx); err != nil && !errors.Is(err, context.Canceled) {
			s.Log.Error("pitr: the oplog archive stopped", "dir", dir, "err", err)
		}
	}()
	return nil
}

func (s *Archive) current() *archiveRun {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	return s.run
}

func (s *Archive) stopLocked() {
	s.runMu.Lock()
	run := s.run
	s.run = nil
	s.runMu.Unlock()
	if run == nil {
		return
	}
	run.cancel()
	<-run.done
}

// Close stops the archive and waits for it.
func (s *Archive) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
	s.closed = true
}

// State is the archive's state now.
func (s *Archive) State() ArchiveState {
	run := s.current()
	if run == nil {
		return ArchiveState{}
	}
	return ArchiveState{Device: run.device, Dir: OplogDir(run.device), Status: run.a.Status()}
}

// Base is a backup a window of the archive can start from: its name and
// consistent_to.
type Base struct {
	Name         string
	ConsistentTo bson.Timestamp
	// Remote: a copy in the remote store (its window is the store's
	// archive's).
	Remote bool
}

// LocalBase is the stored backup of device as a Base (ok false: none, or
// one without consistent_to).
func LocalBase(device string) (Base, bool) {
	m, err := Slot(device, api.SlotBackup).Stored()
	if err != nil || m == nil || m.ConsistentTo == nil {
		return Base{}, false
	}
	return Base{Name: m.Name, ConsistentTo: bson.Timestamp{T: m.ConsistentTo.T, I: m.ConsistentTo.I}}, true
}

// PITRStatus is pitr-status's arguments for the archive in dir: its
// slices and gaps as listed, the windows a restore accepts (wins, from
// PITRSources.Windows: the rules a restore's plan follows) and the lag
// behind newest, the server's newest entry (zero: unknown).
func PITRStatus(dir string, st pitr.Status, wins []Restorable, newest bson.Timestamp) (api.PITRStatus, error) {
	out := api.PITRStatus{Dir: dir, Error: st.Err, LagSeconds: -1, Windows: []api.PITRWindow{}, Gaps: []api.PITRGap{}}
	ar, err := pitr.Open(dir, crypt.Unlock{})
	if err != nil {
		return out, err
	}
	out.Slices = len(ar.Slices)
	for _, s := range ar.Slices {
		out.Bytes += s.Size
	}
	if n := len(ar.Slices); n > 0 {
		since, last := tsTime(ar.Slices[0].First), tsTime(ar.Slices[n-1].Last)
		out.Since, out.Newest = &since, &last
		if !newest.IsZero() {
			out.LagSeconds = 0
			if l := ar.Slices[n-1].Last; l.T < newest.T {
				out.LagSeconds = float64(newest.T - l.T)
			}
		}
	}
	gaps := ar.Gaps
	if g := st.Gap; g != nil && !slices.ContainsFunc(gaps, func(r pitr.Gap) bool { return r.From == g.From && r.Reason == g.Reason }) {
		// Detected but not in gaps.json: the device refused that write.
		gaps = append(append([]pitr.Gap(nil), gaps...), *g)
	}
	for _, g := range gaps {
		pg := api.PITRGap{From: tsTime(g.From), Reason: g.Reason}
		if !g.To.IsZero() {
			to := tsTime(g.To)
			pg.To = &to
		}
		out.Gaps = append(out.Gaps, pg)
	}
	out.Windows = APIWindows(wins)
	return out, nil
}

// APIWindows are windows as pitr-status and backups show them.
func APIWindows(wins []Restorable) []api.PITRWindow {
	out := make([]api.PITRWindow, 0, len(wins))
	for _, r := range wins {
		out = append(out, api.PITRWindow{From: tsTime(r.From), To: tsTime(r.To), Base: r.Base.Name, Remote: r.Base.Remote,
			FromTS: api.OplogPos{T: r.From.T, I: r.From.I, Wall: tsTime(r.From)}, ToTS: api.OplogPos{T: r.To.T, I: r.To.I, Wall: tsTime(r.To)}})
	}
	return out
}

// caughtUp reports whether the archive holds the server's newest entry
// (newest; zero: unknown). Its last window then reaches on to now: no
// entry lies after it, so a backup taken since (whose consistent_to, on
// an idle embedded server, is a point after the newest entry) is a base
// of that window: the state at its consistent_to is the state after the
// window's last entry.
func caughtUp(ar *pitr.Archive, newest bson.Timestamp) bool {
	n := len(ar.Slices)
	return n > 0 && !newest.IsZero() && !tsBefore(ar.Slices[n-1].Last, newest)
}

// serves reports whether a base at c starts in window w (open: the last
// window of a caught-up archive, see caughtUp).
func serves(w pitr.Window, open bool, c bson.Timestamp) bool {
	return w.Contains(c) || open && !tsBefore(c, w.From)
}

func tsTime(ts bson.Timestamp) time.Time { return time.Unix(int64(ts.T), 0).UTC() }

func tsBefore(a, b bson.Timestamp) bool { return a.T < b.T || (a.T == b.T && a.I < b.I) }

// RemoteBases are the remote copies with a consistent_to, as Bases (a
// copy whose record cannot be read is left out: `backups` names it).
func (c *Copier) RemoteBases(ctx context.Context) ([]Base, error) {
	entries, err := c.Copies(ctx)
	if err != nil {
		return nil, err
	}
	var out []Base
	for _, e := range entries {
		if e.Problem != "" {
			continue
		}
		rb, err := c.readSidecar(ctx, e.Name)
		if err != nil || rb.ConsistentTo == nil {
			continue
		}
		out = append(out, Base{Name: rb.Name, ConsistentTo: bson.Timestamp{T: rb.ConsistentTo.T, I: rb.ConsistentTo.I}})
	}
	return out, nil
}

// OldestBase is the ConsistentTo of the oldest base that lies inside a
// window of the archive in dir (the last one reaching on to now when the
// archive holds newest, the server's newest entry: caughtUp) (ok false: none does, and nothing may be
// pruned: no restore to a time is possible yet, and a backup to come
// needs what is there).
func OldestBase(dir string, bases []Base, newest bson.Timestamp) (bson.Timestamp, bool, error) {
	ar, err := pitr.Open(dir, crypt.Unlock{})
	if err != nil {
		return bson.Timestamp{}, false, err
	}
	var oldest bson.Timestamp
	found := false
	ws, open := ar.Windows(), caughtUp(ar, newest)
	for i, w := range ws {
		for _, b := range bases {
			if serves(w, open && i == len(ws)-1, b.ConsistentTo) && (!found || tsBefore(b.ConsistentTo, oldest)) {
				oldest, found = b.ConsistentTo, true
			}
		}
	}
	return oldest, found, nil
}

// PruneSlices removes the slices of dir that end before `before` (the
// oldest kept base's consistent_to: no restore to a time can need them),
// never the newest (the archive resumes its chain from it), nor the last
// one before `before` when the next starts after it (a base consistent to
// a clock point between two slices, as an idle server's is: without that
// slice the archive would start after the base, and its window would be
// gone), and returns their names. The oldest slice left starts the chain
// Verify proves.
func PruneSlices(dir string, before bson.Timestamp, dryRun bool) ([]string, error) {
	return PruneSlicesKeeping(dir, before, dryRun, nil)
}

// PruneSlicesKeeping is PruneSlices that also stops at the first slice
// keep holds back (a slice the remote store lacks yet: SliceCopier.Holds),
// so that what stays is still one unbroken run of slices.
func PruneSlicesKeeping(dir string, before bson.Timestamp, dryRun bool, keep func(pitr.Slice) bool) ([]string, error) {
	ar, err := pitr.Open(dir, crypt.Unlock{})
	if err != nil {
		return nil, err
	}
	var out []string
	for i, s := range ar.Slices {
		if i == len(ar.Slices)-1 || !tsBefore(s.Last, before) || tsBefore(before, ar.Slices[i+1].First) || keep != nil && keep(s) {
			break
		}
		if !dryRun {
			if err := os.Remove(s.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return out, fmt.Errorf("pitr: prune %s: %w", s.Name, err)
			}
		}
		out = append(out, s.Name)
	}
	return out, nil
}
