package pitr

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"filippo.io/age"
	"go.mongodb.org/mongo-driver/v2/bson"
)

// Slice lengths (issue 26: 1 s to 10 min, 10 s by default).
const (
	MinSliceLength     = time.Second
	MaxSliceLength     = 10 * time.Minute
	DefaultSliceLength = 10 * time.Second
	// DefaultMaxEntries cuts a slice early under a heavy writer, so that
	// no slice grows without bound.
	DefaultMaxEntries = 1 << 20
	// DefaultRetry is the pause after a failure (a cursor lost, a write
	// refused) before the archiver resumes from its last durable slice.
	DefaultRetry = 5 * time.Second
)

// Clock is the archiver's time (a test may step it).
type Clock interface{ Now() time.Time }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// Config is what an Archiver needs.
type Config struct {
	Source Source
	// Dir is the archive's directory (<device>/backup/oplog); created
	// 0700 when missing.
	Dir string
	// Recipients the slices are encrypted to (format v2). At least one:
	// a node holds no password and no private key.
	Recipients []age.Recipient
	// SliceLength is how long a slice stays open once it holds an entry;
	// zero means DefaultSliceLength.
	SliceLength time.Duration
	// MaxEntries cuts a slice at this many entries; zero means
	// DefaultMaxEntries.
	MaxEntries int64
	// Node and ReplSet go into every slice's header. ReplSet is the
	// member's replica set when the Source is not a SetReporter, or
	// reports no name.
	Node, ReplSet string
	// Retry is the pause after a failure; zero means DefaultRetry.
	Retry  time.Duration
	Clock  Clock
	Logger *slog.Logger
	// OnSlice is called (from Run's goroutine) after each slice is durable:
	// the remote copier and metrics.
	OnSlice func(Slice)
	// OnGap is called when a gap is detected and recorded.
	OnGap func(Gap)
}

// Archiver tails the oplog into slices; see the package doc.
type Archiver struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	status Status

	// Position: the newest durable slice.
	last    bson.Timestamp
	prev    [32]byte
	gaps    []Gap
	pending *Gap   // detected, not yet followed by a slice
	failure string // the last write failure, for the gap it may cause
	// pos is the source's position after the newest durable slice (a
	// Resumer's); nil: resume by ts.
	pos, nextPos []byte
	// set is the member's replica set, asked at each resume.
	set ReplicaSet
}

// Status is what the archiver reports to pitr-status and the metrics.
type Status struct {
	Running bool
	// Newest is the newest archived entry; NewestAt when its slice closed.
	Newest   bson.Timestamp
	NewestAt time.Time
	Slices   int
	Bytes    int64
	Gaps     int
	// Gap is the gap detected and not yet followed by a slice (nil: none).
	// It is in gaps.json too unless the device refused that write (full):
	// pitr-status shows it from here then.
	Gap *Gap
	// Err is the last failure, cleared by the next durable slice.
	Err string
}

// New checks cfg and returns an archiver; Run starts it.
func New(cfg Config) (*Archiver, error) {
	if cfg.Source == nil {
		return nil, errors.New("pitr: no oplog source")
	}
	if cfg.Dir == "" {
		return nil, errors.New("pitr: no archive directory")
	}
	if len(cfg.Recipients) == 0 {
		return nil, errors.New("pitr: no recipients: slices are encrypted to public keys only")
	}
	if cfg.SliceLength == 0 {
		cfg.SliceLength = DefaultSliceLength
	}
	if cfg.SliceLength < MinSliceLength || cfg.SliceLength > MaxSliceLength {
		return nil, fmt.Errorf("pitr: slice length %v outside [%v, %v]", cfg.SliceLength, MinSliceLength, MaxSliceLength)
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = DefaultMaxEntries
	}
	if cfg.MaxEntries > MaxSliceEntries {
		return nil, fmt.Errorf("pitr: %d entries per slice: at most %d", cfg.MaxEntries, MaxSliceEntries)
	}
	if cfg.Retry <= 0 {
		cfg.Retry = DefaultRetry
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Archiver{cfg: cfg, log: log, set: ReplicaSet{Name: cfg.ReplSet}}, nil
}

// Status returns a snapshot of the archiver's state.
func (a *Archiver) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.status
}

// Run archives until ctx is done and returns ctx's error. A failure (the
// server unreachable, a write refused) is logged and retried after
// Config.Retry from the last durable slice; only a broken archive
// directory (a gaps.json or owner.json it cannot read) ends Run early. A slice open when
// ctx ends is abandoned, as a kill would: the next Run takes its entries
// again from the oplog.
func (a *Archiver) Run(ctx context.Context) error {
	if err := os.MkdirAll(a.cfg.Dir, 0o700); err != nil {
		return fmt.Errorf("pitr: %w", err)
	}
	if err := a.load(); err != nil {
		return err
	}
	a.setStatus(func(s *Status) { s.Running = true })
	defer a.setStatus(func(s *Status) { s.Running = false })
	for {
		err := a.stream(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		a.log.Warn("pitr: archiving interrupted, resuming from the last durable slice", "err", err, "retry", a.cfg.Retry)
		a.setStatus(func(s *Status) { s.Err = err.Error() })
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(a.cfg.Retry):
		}
	}
}

// load reads the position from the newest durable slice: its name gives
// the newest archived ts and its bytes the chain hash, so that a node,
// which cannot decrypt its slices, resumes the chain.
func (a *Archiver) load() error {
	if err := removeParts(a.cfg.Dir); err != nil {
		return fmt.Errorf("pitr: clean %s: %w", a.cfg.Dir, err)
	}
	slices, err := listSlices(a.cfg.Dir)
	if err != nil {
		return err
	}
	gaps, err := readGaps(a.cfg.Dir)
	if err != nil {
		return err
	}
	// A record that cannot be read says nothing of the set: stop rather
	// than resume past a change nobody can see.
	if _, _, err := ReadOwner(a.cfg.Dir); err != nil {
		return err
	}
	a.gaps = gaps
	a.pending = nil
	if n := len(gaps); n > 0 && gaps[n-1].To.IsZero() {
		a.pending = &a.gaps[n-1]
	}
	var bytes int64
	for _, s := range slices {
		bytes += s.Size
	}
	a.last, a.prev, a.pos = bson.Timestamp{}, [32]byte{}, nil
	if n := len(slices); n > 0 {
		newest := slices[n-1]
		sum, err := fileHash(newest.Path)
		if err != nil {
			return fmt.Errorf("pitr: resume: %w", err)
		}
		a.last, a.prev = newest.Last, sum
		if a.pos, err = readPosition(a.cfg.Dir, newest.Name); err != nil {
			return err
		}
	}
	var pending *Gap
	if a.pending != nil {
		g := *a.pending
		pending = &g
	}
	a.setStatus(func(s *Status) {
		s.Newest, s.Slices, s.Bytes, s.Gaps, s.Gap = a.last, len(slices), bytes, len(gaps), pending
	})
	return nil
}

func fileHash(path string) ([32]byte, error) {
	var sum [32]byte
	f, err := os.Open(path)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return sum, err
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

// resumePoint checks that the oplog still holds the newest archived entry
// and returns where to tail from. When it does not, the entries between
// are lost to the archive: a gap is recorded, and the tail starts after
// the archived position anyway (every entry the oplog still has past it).
//
// The replica set is checked first (checkOwner): an oplog of another set
// may well hold an entry with the same ts, and Contains would take it for
// the archived one.
func (a *Archiver) resumePoint(ctx context.Context) (bson.Timestamp, error) {
	if changed, err := a.checkOwner(ctx); err != nil || changed {
		return a.last, err
	}
	if a.last.IsZero() {
		return bson.Timestamp{}, nil // a new archive starts at the oplog's oldest entry
	}
	has, err := a.cfg.Source.Contains(ctx, a.last)
	if err != nil || has {
		return a.last, err
	}
	oldest, ok, err := a.cfg.Source.Oldest(ctx)
	if err != nil {
		return a.last, err
	}
	var reason string
	if !ok || tsLess(a.last, oldest) {
		reason = fmt.Sprintf("%s: the newest archived entry %d.%d is older than the oplog's oldest %d.%d",
			ReasonRolledOff, a.last.T, a.last.I, oldest.T, oldest.I)
	} else {
		reason = fmt.Sprintf("%s: the newest archived entry %d.%d is no longer on the server (the oplog holds %d.%d and later)",
			ReasonRollback, a.last.T, a.last.I, oldest.T, oldest.I)
	}
	if a.failure != "" {
		reason += " (after a failed write: " + a.failure + ")"
	}
	if err := a.recordGap(Gap{From: a.last, Reason: reason, Detected: a.cfg.Clock.Now().UTC()}); err != nil {
		return a.last, err
	}
	return a.last, nil
}

// memberSet is the member's replica set: the Source's (a SetReporter),
// else Config.ReplSet.
func (a *Archiver) memberSet(ctx context.Context) (ReplicaSet, error) {
	r, ok := a.cfg.Source.(SetReporter)
	if !ok {
		return ReplicaSet{Name: a.cfg.ReplSet}, nil
	}
	set, err := r.ReplicaSet(ctx)
	if err != nil {
		return ReplicaSet{}, fmt.Errorf("pitr: the member's replica set: %w", err)
	}
	if set.Name == "" {
		set.Name = a.cfg.ReplSet
	}
	return set, nil
}

// checkOwner compares the archive's owner record (OwnerFile) with the
// member's replica set. Another set records a gap (ReasonSetChanged: the
// archive's windows end there, whatever the new oplog holds) when the
// archive holds slices, then the record names the new set. A missing
// record (an archive from before it existed, or a new one) is written,
// with no gap: nothing says the slices came from another set. The gap is
// durable before the record moves, so that a crash between the two finds
// the change again (and the gap already pending).
func (a *Archiver) checkOwner(ctx context.Context) (changed bool, err error) {
	set, err := a.memberSet(ctx)
	if err != nil {
		return false, err
	}
	a.set = set
	old, ok, err := ReadOwner(a.cfg.Dir)
	if err != nil {
		return false, err
	}
	if ok && old.Same(set) {
		if old.ReplicaSet == set {
			return false, nil
		}
		// The same set, its id learned now: the record keeps it.
		if set.ID == "" {
			set.ID = old.ID
		}
		a.set = set
		return false, writeOwner(a.cfg.Dir, Owner{ReplicaSet: set, Node: a.cfg.Node, Since: old.Since})
	}
	if ok && !a.last.IsZero() {
		reason := fmt.Sprintf("%s: %s -> %s (the archive's slices come from %s; the member %s reads the oplog of %s)",
			ReasonSetChanged, old.ReplicaSet, set, old.ReplicaSet, a.cfg.Node, set)
		if a.pending != nil {
			// One gap covers everything until the next slice: it says
			// both why and that the set changed.
			if !strings.Contains(a.pending.Reason, ReasonSetChanged) {
				a.pending.Reason += "; " + reason
				g := *a.pending
				a.setStatus(func(s *Status) { s.Gap = &g })
				a.log.Error("pitr: gap in the oplog archive", "from", fmt.Sprintf("%d.%d", g.From.T, g.From.I), "reason", g.Reason)
			}
		} else if err := a.recordGap(Gap{From: a.last, Reason: reason, Detected: a.cfg.Clock.Now().UTC()}); err != nil {
			return false, err
		}
		if err := writeGaps(a.cfg.Dir, a.gaps); err != nil {
			return false, err
		}
		changed = true
	}
	if err := writeOwner(a.cfg.Dir, Owner{ReplicaSet: set, Node: a.cfg.Node, Since: a.cfg.Clock.Now().UTC()}); err != nil {
		return false, err
	}
	return changed, nil
}

// recordGap persists a new gap (unless one is already pending: one gap
// covers everything until the next slice) and reports it.
func (a *Archiver) recordGap(g Gap) error {
	if a.pending != nil {
		return nil
	}
	gaps := append(append([]Gap(nil), a.gaps...), g)
	if err := writeGaps(a.cfg.Dir, gaps); err != nil {
		// A full device refuses gaps.json too: the gap is kept in memory
		// (status, alert) and goes into the next slice's header and
		// gaps.json once a slice can be written.
		a.log.Warn("pitr: the gap is not in gaps.json yet", "err", err)
	}
	a.gaps = gaps
	a.pending = &a.gaps[len(a.gaps)-1]
	a.log.Error("pitr: gap in the oplog archive", "from", fmt.Sprintf("%d.%d", g.From.T, g.From.I), "reason", g.Reason)
	pending := *a.pending
	a.setStatus(func(s *Status) { s.Gaps, s.Gap = len(a.gaps), &pending })
	if a.cfg.OnGap != nil {
		a.cfg.OnGap(g)
	}
	return nil
}

// stream tails from the resume point and cuts slices until an error.
func (a *Archiver) stream(ctx context.Context) error {
	from, err := a.resumePoint(ctx)
	if err != nil {
		return err
	}
	var tail Tail
	if r, ok := a.cfg.Source.(Resumer); ok && a.pos != nil {
		tail, err = r.TailAt(ctx, from, a.pos)
	} else {
		if _, ok := a.cfg.Source.(Resumer); ok && !a.last.IsZero() {
			a.log.Warn("pitr: no position recorded for the newest slice, resuming by ts", "after", fmt.Sprintf("%d.%d", from.T, from.I))
		}
		tail, err = a.cfg.Source.Tail(ctx, from)
	}
	if err != nil {
		return err
	}
	var before func(string) error
	if pt, ok := tail.(PositionedTail); ok {
		before = func(name string) error {
			pos := pt.Position()
			if err := writePosition(a.cfg.Dir, name, pos); err != nil {
				return err
			}
			a.nextPos = pos
			return nil
		}
	}
	defer tail.Close(ctx)
	var sw *sliceWriter
	defer func() {
		if sw != nil {
			sw.abort()
		}
	}()
	var deadline time.Time
	for {
		raw, err := tail.Next(ctx)
		if err != nil {
			return err
		}
		if raw != nil {
			ts, ok := entryTS(raw)
			if !ok {
				return errors.New("pitr: oplog entry without ts")
			}
			if archived(raw) {
				if sw == nil {
					// Slices sort by name in the order they were written:
					// one whose first entry is late (older than the last
					// slice's newest) starts just after that slice.
					first := ts
					if !a.last.IsZero() && !tsLess(a.last, ts) {
						first = bson.Timestamp{T: a.last.T, I: a.last.I + 1}
						if a.last.I == ^uint32(0) {
							first = bson.Timestamp{T: a.last.T + 1}
						}
					}
					h := header{Version: FormatVersion, Node: a.cfg.Node, ReplSet: a.set.Name, First: first,
						Created: a.cfg.Clock.Now().UTC(), Gap: a.pending}
					if a.prev != ([32]byte{}) {
						h.Prev = append([]byte(nil), a.prev[:]...)
					}
					if sw, err = createSlice(a.cfg.Dir, a.cfg.Recipients, h); err != nil {
						return a.writeFailed(err)
					}
					deadline = a.cfg.Clock.Now().Add(a.cfg.SliceLength)
				}
				if err := sw.add(raw, ts); err != nil {
					return a.writeFailed(err)
				}
			}
		}
		if sw != nil && (sw.n >= a.cfg.MaxEntries || !a.cfg.Clock.Now().Before(deadline)) {
			s, err := sw.finish(before)
			sw = nil
			if err != nil {
				return a.writeFailed(err)
			}
			if err := a.closed(s); err != nil {
				return err
			}
		}
	}
}

// ErrDeviceFull is what a write refused for lack of space (ENOSPC, or
// EDQUOT: a quota) matches.
var ErrDeviceFull = errors.New("device full")

// IsDeviceFull reports whether err is a write refused for lack of space.
func IsDeviceFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || errors.Is(err, ErrDeviceFull)
}

// writeFailed notes a failed slice write (its .part is removed; Run
// retries from the last durable slice). A device full records a gap at
// once (ReasonDeviceFull, alerted through OnGap): the archive cannot hold
// what the server writes until space returns, and the operator must act
// before the oplog rolls past it. The gap ends the window even when the
// oplog still holds every entry when space returns (those entries are
// archived after it): a restore to a time after it needs a base taken
// after it.
func (a *Archiver) writeFailed(err error) error {
	a.failure = err.Error()
	if IsDeviceFull(err) {
		reason := fmt.Sprintf("%s: a slice write failed: %v", ReasonDeviceFull, err)
		if gerr := a.recordGap(Gap{From: a.last, Reason: reason, Detected: a.cfg.Clock.Now().UTC()}); gerr != nil {
			a.log.Warn("pitr: record the device-full gap", "err", gerr)
		}
	}
	return err
}

// closed moves the position to a slice that is now durable.
func (a *Archiver) closed(s Slice) error {
	a.last, a.prev, a.pos = s.Last, s.SHA256, a.nextPos
	a.failure = ""
	if a.pending != nil {
		a.pending.To = s.First
		a.pending = nil
		if err := writeGaps(a.cfg.Dir, a.gaps); err != nil {
			// The gap is in the slice's authenticated header already.
			a.log.Warn("pitr: record the end of a gap", "err", err)
		}
	}
	a.setStatus(func(st *Status) {
		st.Newest, st.NewestAt, st.Err, st.Gap = s.Last, a.cfg.Clock.Now().UTC(), "", nil
		st.Slices++
		st.Bytes += s.Size
	})
	a.log.Debug("pitr: slice", "name", s.Name, "entries", s.Entries, "bytes", s.Size)
	if a.cfg.OnSlice != nil {
		a.cfg.OnSlice(s)
	}
	return nil
}

// archived reports whether an entry belongs in the archive: FerretDB logs
// writes to local.* (its own oplog's trims), which a replica-set member
// never does and which are not data.
func archived(raw bson.Raw) bool {
	ns, _ := raw.Lookup("ns").StringValueOK()
	return !strings.HasPrefix(ns, "local.")
}

func (a *Archiver) setStatus(f func(*Status)) {
	a.mu.Lock()
	f(&a.status)
	a.mu.Unlock()
}
