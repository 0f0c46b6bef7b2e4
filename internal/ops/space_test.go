package ops

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/pitr"
	"github.com/a0backup/a0/internal/store"
)

// TestCheckSpaceCountsArchive: the free-space rule for a backup counts the
// oplog archive's slices on the device (their size again, for the growth
// until the next prune). A sparse slice larger than the free space takes
// no room on the disk, so only the rule can refuse.
func TestCheckSpaceCountsArchive(t *testing.T) {
	dev := t.TempDir()
	if err := checkSpace(dev, 1<<20); err != nil {
		t.Fatalf("an empty device refused: %v", err)
	}
	free, err := FreeBytes(dev)
	if err != nil {
		t.Fatal(err)
	}
	dir := OplogDir(dev)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	name := pitr.SliceName(bson.Timestamp{T: 1_800_000_000, I: 1}, bson.Timestamp{T: 1_800_000_010, I: 3})
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	// Past the free space by far: other processes on the disk may free
	// some meanwhile.
	size := 2*free + 1<<30
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if n, err := ArchiveBytes(dev); err != nil || n != size {
		t.Fatalf("ArchiveBytes = %d, %v; want %d", n, err, size)
	}
	err = checkSpace(dev, 1<<20)
	var oe *Error
	if !errors.As(err, &oe) || oe.Kind != NoSpace || oe.Details["archive_bytes"] != size {
		t.Fatalf("a device whose archive needs its free space: %v", err)
	}
	t.Log(err)
}

// TestDrillCheckSpace: a drill needs drillSpaceFactor times the data size
// free, not the backup's twice: a device with room for a backup (between
// 2x and 5x free) refuses the drill, naming what it needs.
func TestDrillCheckSpace(t *testing.T) {
	dev := t.TempDir()
	free, err := FreeBytes(dev)
	if err != nil {
		t.Fatal(err)
	}
	m := &store.Meta{Name: "b.tar.gz", Size: 1}
	for _, tc := range []struct {
		name string
		size int64
		ok   bool
	}{
		{"a sixth of the free space", free / 6, true},
		{"a third: enough for a backup, not a drill", free / 3, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &Driller{DataSize: func(context.Context) (int64, error) { return tc.size, nil }}
			err := d.checkSpace(context.Background(), dev, m)
			if tc.ok {
				if err != nil {
					t.Fatalf("checkSpace: %v", err)
				}
				return
			}
			var oe *Error
			if !errors.As(err, &oe) || oe.Kind != NoSpace {
				t.Fatalf("checkSpace = %v, want NoSpace", err)
			}
			if !strings.Contains(oe.Msg, "5 times the data size") {
				t.Errorf("message %q does not say what the drill needs", oe.Msg)
			}
		})
	}
}
