package ops

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/pitr"
)

func ts(t, i uint32) bson.Timestamp { return bson.Timestamp{T: t, I: i} }

// TestRestorableIsWhatChooseAccepts: for every position around the
// archive, a restore's plan (choose) accepts it exactly when a listed
// window (restorable, what pitr-status shows) holds it, and starts from
// the newest base at or before it.
func TestRestorableIsWhatChooseAccepts(t *testing.T) {
	slice := func(f, l bson.Timestamp) pitr.Slice { return pitr.Slice{Name: pitr.SliceName(f, l), First: f, Last: l} }
	// Two windows: 100.1..110.5, a gap, 120.1..130.2.
	ar := &pitr.Archive{Slices: []pitr.Slice{
		slice(ts(100, 1), ts(105, 3)), slice(ts(105, 4), ts(110, 5)),
		slice(ts(120, 1), ts(125, 1)), slice(ts(125, 2), ts(130, 2)),
	}, Gaps: []pitr.Gap{{From: ts(110, 5), To: ts(120, 1), Reason: "test"}}}
	cases := []struct {
		name  string
		bases []Base
		open  bool
		want  [][2]bson.Timestamp // windows listed
	}{
		{"no base", nil, false, nil},
		{"a base before the archive", []Base{{Name: "b0", ConsistentTo: ts(90, 1)}}, false, nil},
		{"one base in the first window", []Base{{Name: "b1", ConsistentTo: ts(103, 2)}}, false, [][2]bson.Timestamp{{ts(103, 2), ts(110, 5)}}},
		{"bases in both windows", []Base{{Name: "b2", ConsistentTo: ts(122, 0)}, {Name: "b1", ConsistentTo: ts(103, 2)}, {Name: "b3", ConsistentTo: ts(126, 0)}}, false,
			[][2]bson.Timestamp{{ts(103, 2), ts(110, 5)}, {ts(122, 0), ts(130, 2)}}},
		{"a base in the gap", []Base{{Name: "g", ConsistentTo: ts(115, 0)}}, false, nil},
		{"a base after the end, not caught up", []Base{{Name: "late", ConsistentTo: ts(140, 0)}}, false, nil},
		{"a base after the end, caught up", []Base{{Name: "b2", ConsistentTo: ts(122, 0)}, {Name: "late", ConsistentTo: ts(140, 0)}}, true,
			[][2]bson.Timestamp{{ts(122, 0), ts(140, 0)}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rs := restorable(ar, c.bases, c.open)
			if len(rs) != len(c.want) {
				t.Fatalf("windows %+v, want %v", rs, c.want)
			}
			for i, r := range rs {
				if r.From != c.want[i][0] || r.To != c.want[i][1] {
					t.Fatalf("window %d: %v..%v, want %v", i, r.From, r.To, c.want[i])
				}
			}
			for sec := uint32(85); sec <= 145; sec++ {
				for _, inc := range []uint32{0, 1, 2, 3, 5, 6, ^uint32(0)} {
					to := ts(sec, inc)
					listed := false
					for _, r := range rs {
						listed = listed || !tsLess(to, r.From) && !tsLess(r.To, to)
					}
					r, b, ok := choose(rs, to)
					if ok != listed {
						t.Fatalf("restore to %v: accepted %v, listed %v", to, ok, listed)
					}
					if !ok {
						continue
					}
					// The newest base at or before `to` that starts its window.
					for _, o := range c.bases {
						if !tsLess(to, o.ConsistentTo) && tsLess(b.ConsistentTo, o.ConsistentTo) && (r.Window.Contains(o.ConsistentTo) || c.open) {
							t.Fatalf("restore to %v starts from %s, not the newer %s", to, b.Name, o.Name)
						}
					}
					if _, serves := pitr.Serving([]pitr.Window{r.Window}, b.ConsistentTo, to); !serves && !c.open {
						t.Fatalf("restore to %v from %s: its window %v does not hold every entry", to, b.Name, r.Window)
					}
				}
			}
		})
	}
}

// TestPlanRefusalNamesBothWindows: a point neither the device nor the store
// serves is refused naming the windows of each.
func TestPlanRefusalNamesBothWindows(t *testing.T) {
	l := []Restorable{{From: ts(100, 1), To: ts(110, 1)}}
	r := []Restorable{{From: ts(90, 1), To: ts(95, 1)}}
	err := refusePITR(ts(200, 0), []string{"why"}, l, r, true, true)
	oe, ok := err.(*Error)
	if !ok || oe.Kind != NotRestorable {
		t.Fatalf("%v", err)
	}
	for _, want := range []string{"the archive's windows: " + TSText(ts(100, 1)), "the remote store's windows: " + TSText(ts(90, 1)), "why"} {
		if !strings.Contains(oe.Msg, want) {
			t.Fatalf("%q lacks %q", oe.Msg, want)
		}
	}
}

// TestChooseAsOfWholeSecond: a whole second S (restore --to-time S) that
// a window ends inside is served up to the window's last entry, the
// second pitr-status shows as the window's end; an exact position after
// the window's end, and a second after it, are still refused.
func TestChooseAsOfWholeSecond(t *testing.T) {
	slice := func(f, l bson.Timestamp) pitr.Slice { return pitr.Slice{Name: pitr.SliceName(f, l), First: f, Last: l} }
	ar := &pitr.Archive{Slices: []pitr.Slice{slice(ts(100, 1), ts(105, 3)), slice(ts(105, 4), ts(110, 5)),
		slice(ts(120, 1), ts(130, 2))}, Gaps: []pitr.Gap{{From: ts(110, 5), To: ts(120, 1), Reason: "test"}}}
	rs := restorable(ar, []Base{{Name: "b1", ConsistentTo: ts(103, 2)}, {Name: "b2", ConsistentTo: ts(122, 0)}}, false)
	for _, c := range []struct {
		to, want bson.Timestamp
		ok       bool
		base     string
	}{
		{ts(110, WholeSecond), ts(110, 5), true, "b1"}, // the first window's last second
		{ts(130, WholeSecond), ts(130, 2), true, "b2"}, // the archive's last second
		{ts(109, WholeSecond), ts(109, WholeSecond), true, "b1"},
		{ts(110, 6), ts(110, 6), false, ""},                     // an exact position is exact
		{ts(131, WholeSecond), ts(131, WholeSecond), false, ""}, // after the end
		{ts(115, WholeSecond), ts(115, WholeSecond), false, ""}, // in the gap
	} {
		r, b, at, ok := chooseAsOf(rs, c.to)
		if ok != c.ok || at != c.want || (ok && b.Name != c.base) {
			t.Errorf("chooseAsOf(%v) = %v, base %q, %v; want %v, base %q, %v", c.to, at, b.Name, ok, c.want, c.base, c.ok)
		}
		if ok && (tsLess(at, r.From) || tsLess(r.To, at)) {
			t.Errorf("chooseAsOf(%v) = %v outside its window %v..%v", c.to, at, r.From, r.To)
		}
		if note := asOfNote(ar, c.to, at); ok && (note != "") != (at != c.to) {
			t.Errorf("note for %v -> %v: %q", c.to, at, note)
		}
	}
}

// TestPITRErrorAnotherSet: a slice of another replica set than the base's
// refuses the restore as not restorable (exit 4), naming both sets and the
// slice.
func TestPITRErrorAnotherSet(t *testing.T) {
	se := &pitr.SetError{Slice: "s1.slice", Want: "rsA", Got: "rsB"}
	err := PITRError(fmt.Errorf("replay: %w", se))
	var oe *Error
	if !errors.As(err, &oe) || oe.Kind != NotRestorable {
		t.Fatalf("%v: want a NotRestorable *Error", err)
	}
	for _, want := range []string{`"rsA"`, `"rsB"`, "s1.slice", "nothing was written"} {
		if !strings.Contains(oe.Msg, want) {
			t.Errorf("message %q does not say %s", oe.Msg, want)
		}
	}
}

// TestAsOfNoteNamesTheGap: a window that ends inside a second because a
// gap begins there is not "not archived yet": the rest of that second is
// lost to the archive, and the note says so with the gap's reason; a
// window that ends at the archive's newest entry still points at the lag.
func TestAsOfNoteNamesTheGap(t *testing.T) {
	ar := &pitr.Archive{Gaps: []pitr.Gap{{From: ts(110, 5), To: ts(120, 1), Reason: "oplog rolled past the archive"}}}
	for _, c := range []struct {
		name       string
		to, at     bson.Timestamp
		want, not_ string
	}{
		{"a gap begins at the window's end", ts(110, WholeSecond), ts(110, 5), "where a gap begins (oplog rolled past the archive)", "not archived yet"},
		{"the archive's newest entry", ts(130, WholeSecond), ts(130, 2), "not archived yet", "gap"},
	} {
		t.Run(c.name, func(t *testing.T) {
			note := asOfNote(ar, c.to, c.at)
			if !strings.Contains(note, c.want) || strings.Contains(note, c.not_) {
				t.Fatalf("note %q: want %q, not %q", note, c.want, c.not_)
			}
		})
	}
}

// TestPlanNamesTheSliceAfterTo: when the last slice a restore to `to`
// reads ends before `to`, the plan names the slice after it too (the CLI
// sends its key; a remote restore downloads it), so that the replay's
// chain check proves no slice is missing up to `to`; so also when no
// slice holds an entry between the base and `to` (an idle stretch): the
// one before and the one after. Without it a slice missing from the
// device or the store went unnoticed and the restore stopped early.
func TestPlanNamesTheSliceAfterTo(t *testing.T) {
	slice := func(f, l bson.Timestamp) pitr.Slice { return pitr.Slice{Name: pitr.SliceName(f, l), First: f, Last: l} }
	s := []pitr.Slice{slice(ts(100, 1), ts(105, 3)), slice(ts(106, 1), ts(110, 5)), slice(ts(112, 1), ts(115, 2))}
	ar := &pitr.Archive{Slices: s}
	r := Restorable{Window: pitr.Window{From: ts(100, 1), To: ts(115, 2)}}
	cases := []struct {
		name string
		base bson.Timestamp
		to   bson.Timestamp
		want []pitr.Slice
	}{
		{"to inside a stretch", ts(101, 0), ts(111, 0), s},
		{"to at a slice's last entry", ts(101, 0), ts(110, 5), s[:2]},
		{"to inside a slice", ts(101, 0), ts(107, 0), s[:2]},
		{"an idle stretch from the base to to", ts(110, 5), ts(111, 0), s[1:]},
		{"the base in one slice, to in the next", ts(104, 0), ts(113, 0), s},
		{"to after the archive", ts(101, 0), ts(116, 0), s},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := newPITR(ar, r, Base{Name: "b", ConsistentTo: c.base}, c.to)
			var got, want []string
			for _, x := range p.Slices {
				got = append(got, x.Name)
			}
			for _, x := range c.want {
				want = append(want, x.Name)
			}
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Fatalf("plan reads %v, want %v", got, want)
			}
		})
	}
}
