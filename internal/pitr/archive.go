package pitr

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/atomicfile"
	"github.com/a0backup/a0/internal/crypt"
)

// GapsFile, in the archive's directory, records the gaps (JSON, written
// with atomicfile). Each gap is also in the authenticated header of the
// first slice after it; this file also holds a gap no slice follows yet.
const GapsFile = "gaps.json"

// maxGapsBytes bounds what readGaps accepts.
const maxGapsBytes = 16 << 20

// Window is a stretch of the oplog the archive holds without a gap:
// every entry from From to To.
type Window struct {
	From bson.Timestamp `json:"from"`
	To   bson.Timestamp `json:"to"`
}

// Contains reports whether ts lies inside the window.
func (w Window) Contains(ts bson.Timestamp) bool { return !tsLess(ts, w.From) && !tsLess(w.To, ts) }

// Archive is a directory of slices and its gaps, as listed (names and
// gaps.json, nothing decrypted).
type Archive struct {
	Dir    string
	Slices []Slice // oldest first
	Gaps   []Gap
	// FileKeys, when set, open each slice by its name with its own file
	// key (crypt.Unlock.FileKey): a node reads slices with the keys the
	// CLI unwrapped with its identity, which never leaves the workstation.
	// A slice without a key is refused (*ChainError naming it).
	FileKeys map[string][]byte
	// ReplSet, when set, is the replica set every slice Entries reads
	// must come from (a restore's base backup's, from its authenticated
	// manifest): a slice whose authenticated header names another set is
	// refused (*SetError) before any of its entries reaches fn. A slice
	// or a base that names no set is not refused for it.
	ReplSet string
	unlock  crypt.Unlock
}

// SetError: a slice of the archive holds the oplog of another replica set
// than the one wanted (Archive.ReplSet): replaying it onto a backup of
// that set would mix two sets' writes. The chain cannot tell: the slices
// of one set chain among themselves.
type SetError struct {
	Slice string
	// Want is Archive.ReplSet, Got the slice header's set.
	Want, Got string
}

func (e *SetError) Error() string {
	return fmt.Sprintf("pitr: slice %s holds the oplog of replica set %q, not of %q (the base backup's)", e.Slice, e.Got, e.Want)
}

// Open lists the slices and gaps in dir. unlock is what Entries opens
// slices with (identities on the operator's side; zero on the node, which
// never reads its slices back).
func Open(dir string, unlock crypt.Unlock) (*Archive, error) {
	slices, err := listSlices(dir)
	if err != nil {
		return nil, err
	}
	gaps, err := readGaps(dir)
	if err != nil {
		return nil, err
	}
	return &Archive{Dir: dir, Slices: slices, Gaps: gaps, unlock: unlock}, nil
}

// listSlices returns the slice files in dir in name (time) order. Files
// that are not slices are ignored; a missing dir is an empty archive.
func listSlices(dir string) ([]Slice, error) {
	des, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pitr: list %s: %w", dir, err)
	}
	var out []Slice
	for _, de := range des {
		first, last, ok := ParseSliceName(de.Name())
		if !ok || !de.Type().IsRegular() {
			continue
		}
		info, err := de.Info()
		if err != nil {
			return nil, fmt.Errorf("pitr: list %s: %w", dir, err)
		}
		out = append(out, Slice{Name: de.Name(), Path: filepath.Join(dir, de.Name()), First: first, Last: last, Size: info.Size()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func readGaps(dir string) ([]Gap, error) {
	f, err := os.Open(filepath.Join(dir, GapsFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pitr: read gaps: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxGapsBytes+1))
	if err != nil {
		return nil, fmt.Errorf("pitr: read gaps: %w", err)
	}
	if len(b) > maxGapsBytes {
		return nil, fmt.Errorf("pitr: read gaps: %s is larger than %d bytes", GapsFile, maxGapsBytes)
	}
	var gaps []Gap
	if err := json.Unmarshal(b, &gaps); err != nil {
		return nil, fmt.Errorf("pitr: read gaps: %s: %w", GapsFile, err)
	}
	return gaps, nil
}

func writeGaps(dir string, gaps []Gap) error {
	b, err := json.MarshalIndent(gaps, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, GapsFile), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("pitr: record gap: %w", err)
	}
	return nil
}

// Windows are the archive's windows by the slices' names and the recorded
// gaps (not proven: Verify proves them).
func (a *Archive) Windows() []Window { return windows(a.Slices, a.Gaps) }

// windows cuts the slices at every gap: a gap lies before the first slice
// whose first entry is after the gap's From (the archiver resumes after
// From).
func windows(slices []Slice, gaps []Gap) []Window {
	var out []Window
	for i, s := range slices {
		cut := i == 0
		if i > 0 {
			for _, g := range gaps {
				if !tsLess(g.From, slices[i-1].Last) && tsLess(g.From, s.First) || g.To == s.First && !g.To.IsZero() {
					cut = true
				}
			}
		}
		if cut {
			out = append(out, Window{From: s.First, To: s.Last})
			continue
		}
		out[len(out)-1].To = s.Last
	}
	return out
}

// ChainError says that a slice breaks the archive's chain: it is not
// authentic, it does not follow the slice before it (one is missing,
// reordered or replaced), or its name lies about its content.
type ChainError struct {
	// Slice is the file name of the slice that breaks the chain.
	Slice string
	// After is the slice it should have followed ("" for the first).
	After string
	Err   error
}

func (e *ChainError) Error() string {
	if errors.Is(e.Err, crypt.ErrWrongKey) {
		// Not evidence of tampering: most often an identity that is not
		// among the slices' recipients (the agent config's
		// "recipients"). A damaged header reads the same, as for a
		// backup's NOT OPENED.
		return fmt.Sprintf("pitr: oplog slice %s NOT OPENED: none of the keys given opens it (give the identity of one of the agent config's \"recipients\"; a damaged header reads the same): %v", e.Slice, e.Err)
	}
	if e.After != "" {
		return fmt.Sprintf("pitr: oplog archive broken at %s (after %s): %v", e.Slice, e.After, e.Err)
	}
	return fmt.Sprintf("pitr: oplog archive broken at %s: %v", e.Slice, e.Err)
}

func (e *ChainError) Unwrap() error { return e.Err }

// ErrChain is what a ChainError wraps when a slice does not hold the hash
// of the slice before it.
var ErrChain = errors.New("the slice does not follow the one before it (a slice is missing, reordered or replaced)")

// Proof is what Verify proved.
type Proof struct {
	Windows []Window
	Slices  int
	Entries int64
	Bytes   int64
	Gaps    []Gap
}

// Verify reads every slice in dir with u: each is authentic, its name
// matches its content, and each holds the hash of the one before it. It
// returns the windows that proves, cut at the gaps the slices' headers
// and gaps.json record. The first failure is a *ChainError naming the
// slice. The oldest slice's own Prev is not checked: older slices may
// have been pruned, and the proof starts there.
func Verify(ctx context.Context, dir string, u crypt.Unlock) (*Proof, error) {
	return verify(ctx, dir, u, 0)
}

// verify is Verify reading up to readers slices at once (0: one per core,
// verifyReaders).
func verify(ctx context.Context, dir string, u crypt.Unlock, readers int) (*Proof, error) {
	a, err := Open(dir, u)
	if err != nil {
		return nil, err
	}
	p := &Proof{Slices: len(a.Slices), Gaps: append([]Gap(nil), a.Gaps...)}
	var prev *Slice
	proved := make([]Slice, 0, len(a.Slices))
	// The slices are read on several cores at once (readInOrder), their
	// results taken in order: the chain is checked here, one slice after
	// the other, and the first failure is the one a sequential read meets.
	if readers == 0 {
		readers = verifyReaders(len(a.Slices))
	}
	err = a.readInOrder(ctx, readers, func(i int, meta Meta, sum [32]byte, err error) error {
		s := a.Slices[i]
		if err != nil {
			return chainErr(s, prev, err)
		}
		if prev != nil && meta.Prev != prev.SHA256 {
			return chainErr(s, prev, ErrChain)
		}
		s.Entries, s.SHA256, s.Prev = meta.Entries, sum, meta.Prev
		if meta.Gap != nil && !hasGap(p.Gaps, *meta.Gap) {
			p.Gaps = append(p.Gaps, *meta.Gap)
		}
		p.Entries += meta.Entries
		p.Bytes += s.Size
		proved = append(proved, s)
		prev = &proved[len(proved)-1]
		return nil
	})
	if err != nil {
		return nil, err
	}
	p.Windows = windows(proved, p.Gaps)
	return p, nil
}

func hasGap(gaps []Gap, g Gap) bool {
	for _, h := range gaps {
		if h.From == g.From {
			return true
		}
	}
	return false
}

func chainErr(s Slice, prev *Slice, err error) *ChainError {
	e := &ChainError{Slice: s.Name, Err: err}
	if prev != nil {
		e.After = prev.Name
	}
	return e
}

// readSlice reads one slice whole, calls fn with each entry, checks that
// its name matches its content and returns its meta and the file's hash.
func (a *Archive) readSlice(ctx context.Context, s Slice, fn func(bson.Raw) error) (Meta, [32]byte, error) {
	st, err := newReadState()
	if err != nil {
		return Meta{}, [32]byte{}, err
	}
	defer st.close()
	return a.readSliceWith(ctx, st, s, fn)
}

// readSliceWith is readSlice with st's decompressor and buffers.
func (a *Archive) readSliceWith(ctx context.Context, st *readState, s Slice, fn func(bson.Raw) error) (Meta, [32]byte, error) {
	var sum [32]byte
	f, err := os.Open(s.Path)
	if err != nil {
		return Meta{}, sum, err
	}
	defer f.Close()
	h := sha256.New()
	u := a.unlock
	if a.FileKeys != nil {
		k, ok := a.FileKeys[s.Name]
		if !ok {
			return Meta{}, sum, &SliceError{Name: s.Name, Err: ErrNoFileKey}
		}
		u = crypt.Unlock{FileKey: k}
	}
	r, err := openSlice(s.Name, io.TeeReader(f, h), u, st)
	if err != nil {
		return Meta{}, sum, err
	}
	if a.ReplSet != "" && r.meta.ReplSet != "" && r.meta.ReplSet != a.ReplSet {
		return Meta{}, sum, &SetError{Slice: s.Name, Want: a.ReplSet, Got: r.meta.ReplSet}
	}
	for n := 0; ; n++ {
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return Meta{}, sum, err
			}
		}
		raw, err := r.next()
		if err != nil {
			return Meta{}, sum, err
		}
		if raw == nil {
			break
		}
		if err := fn(raw); err != nil {
			return Meta{}, sum, err
		}
	}
	// The crypt reader stops at its final record: anything after it in
	// the file is not part of the slice.
	if n, _ := io.Copy(io.Discard, io.TeeReader(f, h)); n != 0 {
		return Meta{}, sum, &SliceError{Name: s.Name, Err: fmt.Errorf("%d bytes after the end", n)}
	}
	m := r.meta
	if m.First != s.First || m.Last != s.Last {
		return Meta{}, sum, &SliceError{Name: s.Name, Err: fmt.Errorf("holds %d.%d to %d.%d, not what its name says",
			m.First.T, m.First.I, m.Last.T, m.Last.I)}
	}
	copy(sum[:], h.Sum(nil))
	return m, sum, nil
}

// ErrNoFileKey: Archive.FileKeys holds no key for a slice a read needs.
var ErrNoFileKey = errors.New("no file key was given for this slice")

// Needed returns the slices Entries(from, to) reads, oldest first.
func (a *Archive) Needed(from, to bson.Timestamp) []Slice {
	var out []Slice
	for _, s := range a.Slices {
		if tsLess(s.Last, from) {
			continue
		}
		if tsLess(to, s.First) {
			break
		}
		out = append(out, s)
	}
	return out
}

// Header returns the crypt header of slice s (not authenticated: it is
// what the CLI unwraps the slice's file key from, and the key then
// authenticates the whole slice).
func Header(s Slice) ([]byte, error) {
	f, err := os.Open(s.Path)
	if err != nil {
		return nil, fmt.Errorf("pitr: %w", err)
	}
	defer f.Close()
	h, err := crypt.ReadHeader(f)
	if err != nil {
		return nil, &SliceError{Name: s.Name, Err: err}
	}
	return h, nil
}

// After returns the oplog position just after ts: one increment more.
func After(ts bson.Timestamp) bson.Timestamp {
	if ts.I < ^uint32(0) {
		return bson.Timestamp{T: ts.T, I: ts.I + 1}
	}
	return bson.Timestamp{T: ts.T + 1}
}

// Serving returns the window that holds every entry from after to to
// (after < to): a base consistent at after restores to to with it. ok is
// false when no window serves.
func Serving(windows []Window, after, to bson.Timestamp) (Window, bool) {
	for _, w := range windows {
		if !tsLess(after, w.From) && !tsLess(w.To, to) && !tsLess(to, after) {
			return w, true
		}
	}
	return Window{}, false
}

// GapError says a range of entries asked for crosses a gap.
type GapError struct {
	Gap Gap
}

func (e *GapError) Error() string {
	return fmt.Sprintf("pitr: the archive has a gap after %d.%d (%s)", e.Gap.From.T, e.Gap.From.I, e.Gap.Reason)
}

// Entries calls fn with every archived entry whose ts lies in [from, to],
// in archive order (the oplog's order), decrypting one slice at a time.
// The slices it reads must chain (a *ChainError otherwise) and no
// recorded gap may lie inside the range (a *GapError). fn's raw is valid
// only during the call.
func (a *Archive) Entries(ctx context.Context, from, to bson.Timestamp, fn func(bson.Raw) error) error {
	for _, g := range a.Gaps {
		if !tsLess(g.From, from) && tsLess(g.From, to) {
			return &GapError{Gap: g}
		}
	}
	var prev *Slice
	for i := range a.Slices {
		s := a.Slices[i]
		if tsLess(s.Last, from) {
			continue
		}
		if tsLess(to, s.First) {
			// The slice after `to` holds no entry to stream, but its hash
			// proves that none is missing between the last one read and
			// `to`. Read for that only when a key was given for it (a
			// restore's plan names it then).
			if prev != nil && tsLess(prev.Last, to) && (a.FileKeys == nil || len(a.FileKeys[s.Name]) > 0) {
				meta, _, err := a.readSlice(ctx, s, func(bson.Raw) error { return nil })
				if err != nil {
					var se *SliceError
					if errors.As(err, &se) || errors.Is(err, crypt.ErrCorrupt) {
						return chainErr(s, prev, err)
					}
					return err
				}
				if meta.Prev != prev.SHA256 {
					return chainErr(s, prev, ErrChain)
				}
			}
			break
		}
		meta, sum, err := a.readSlice(ctx, s, func(raw bson.Raw) error {
			ts, _ := entryTS(raw)
			if tsLess(ts, from) || tsLess(to, ts) {
				return nil
			}
			return fn(raw)
		})
		if err != nil {
			var se *SliceError
			if errors.As(err, &se) || errors.Is(err, crypt.ErrCorrupt) {
				return chainErr(s, prev, err)
			}
			return err
		}
		if prev != nil && meta.Prev != prev.SHA256 {
			return chainErr(s, prev, ErrChain)
		}
		if meta.Gap != nil && prev != nil {
			return &GapError{Gap: *meta.Gap}
		}
		s.SHA256 = sum
		prev = &s
	}
	return nil
}

// EntrySource streams oplog entries to fn in order: an archive's range,
// or a live oplog's tail.
type EntrySource func(ctx context.Context, fn func(bson.Raw) error) error

// Range is the EntrySource of a's entries in [from, to].
func (a *Archive) Range(from, to bson.Timestamp) EntrySource {
	return func(ctx context.Context, fn func(bson.Raw) error) error { return a.Entries(ctx, from, to, fn) }
}

// removeParts removes the .part files an interrupted writer left.
func removeParts(dir string) error {
	des, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, de := range des {
		if strings.HasPrefix(de.Name(), ".slice-") && strings.HasSuffix(de.Name(), partExt) {
			if err := os.Remove(filepath.Join(dir, de.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}
