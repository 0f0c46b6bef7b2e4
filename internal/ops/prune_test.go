package ops

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/crypt"
	"github.com/a0backup/a0/internal/pitr"
)

// TestPruneSlicesKeepsTheBasesWindow: the prune removes the slices that
// end before the oldest base, but never so many that the archive starts
// after the base: a base consistent to a clock point between two slices
// (an idle server's consistent_to) keeps the slice before it, or its
// window (From = the oldest slice's first entry) would be gone and a
// restore from it refused. Before, that slice was removed.
func TestPruneSlicesKeepsTheBasesWindow(t *testing.T) {
	names := []string{pitr.SliceName(ts(100, 1), ts(105, 3)), pitr.SliceName(ts(106, 1), ts(110, 5)), pitr.SliceName(ts(112, 1), ts(115, 2)), pitr.SliceName(ts(116, 1), ts(118, 1))}
	cases := []struct {
		name    string
		before  bson.Timestamp
		removed []string
	}{
		{"a base between two slices", ts(111, 0), names[:1]},
		{"a base inside a slice", ts(113, 0), names[:2]},
		{"a base at a slice's first entry", ts(112, 1), names[:2]},
		{"a base before the archive", ts(90, 0), nil},
		{"a base after the archive: the newest stays", ts(200, 0), names[:3]},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, n := range names {
				if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got, err := PruneSlices(dir, c.before, false)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, " ") != strings.Join(c.removed, " ") {
				t.Fatalf("removed %v, want %v", got, c.removed)
			}
			// A base inside the archive before stays inside it.
			ar, err := pitr.Open(dir, crypt.Unlock{})
			if err != nil {
				t.Fatal(err)
			}
			if ws := ar.Windows(); !tsLess(c.before, ts(100, 1)) && !tsLess(ts(118, 1), c.before) && (len(ws) == 0 || tsLess(c.before, ws[0].From)) {
				t.Fatalf("after the prune the archive %v no longer holds the base %v", ws, c.before)
			}
		})
	}
}
