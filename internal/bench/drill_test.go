package bench

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/a0backup/a0/internal/drill"
)

// TestDrillFigures: the drill bench's backup carries content digests, so
// the drill compares every collection's content (same, not no-digest),
// and the figures it reports are filled: the drill's directory held
// something at its peak and is gone afterwards.
func TestDrillFigures(t *testing.T) {
	work := t.TempDir()
	ds, err := Generate(filepath.Join(work, "data"), 1<<20, 1)
	if err != nil {
		t.Fatal(err)
	}
	file, err := SealedBackup(ds, filepath.Join(work, "slot"), benchPassword)
	if err != nil {
		t.Fatal(err)
	}
	parent := filepath.Join(work, "parent")
	f, err := RunDrillChild(context.Background(), file, parent, benchPassword)
	if err != nil {
		t.Fatal(err)
	}
	if !f.OK || f.Same != len(ds.Collections) || f.Collections != len(ds.Collections) || f.Documents != ds.Documents() || f.BSONBytes != ds.Bytes() {
		t.Fatalf("%+v, want every one of %d collections the same", f, len(ds.Collections))
	}
	if f.PeakDiskBytes <= 0 || f.PeakRSS <= 0 || f.RestoreSeconds <= 0 || f.CompareSeconds <= 0 {
		t.Fatalf("figures not filled: %+v", f)
	}
	if left, _ := filepath.Glob(filepath.Join(parent, drill.DirPattern)); len(left) != 0 {
		t.Fatalf("the drill left %v", left)
	}
}
