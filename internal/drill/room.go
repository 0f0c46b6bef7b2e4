package drill

import (
	"fmt"
	"os"
	"syscall"

	"github.com/a0backup/a0/internal/bytesize"
)

// RoomFactor is how many times the data size a restore test needs free
// where its temporary directory goes: the throwaway server stores documents
// as SQLite rows of JSON, larger than their BSON, beside the restore's
// spools (`a0bench drill` measured a peak of 4.3x the BSON size). The
// node's drills use the same figure (internal/ops, drillSpaceFactor).
const RoomFactor = 5

// NoRoomError says the directory a restore test would work in has too
// little free space for the data: the test is not started, for a disk that
// fills part way fails the restore ("database or disk is full"), which
// reads as a backup that does not restore.
type NoRoomError struct {
	Dir              string
	Free, Need, Data int64
}

func (e *NoRoomError) Error() string {
	return fmt.Sprintf("not enough free space in %s for the restore test: %s free, %s needed (%d times the %s of BSON the backup holds); choose another directory with --restore-test-dir",
		e.Dir, bytesize.IEC(e.Free), bytesize.IEC(e.Need), RoomFactor, bytesize.IEC(e.Data))
}

// CheckRoom refuses a restore test of dataBytes of BSON under parent
// (os.TempDir() when empty) when parent's file system has less than
// RoomFactor times that free.
func CheckRoom(parent string, dataBytes int64) error {
	if parent == "" {
		parent = os.TempDir()
	}
	var s syscall.Statfs_t
	if err := syscall.Statfs(parent, &s); err != nil {
		return fmt.Errorf("drill: free space of %s: %w", parent, err)
	}
	return room(parent, int64(s.Bavail)*int64(s.Bsize), dataBytes)
}

func room(dir string, free, dataBytes int64) error {
	if need := RoomFactor * dataBytes; free < need {
		return &NoRoomError{Dir: dir, Free: free, Need: need, Data: dataBytes}
	}
	return nil
}
