package ops

import (
	"fmt"
	"path/filepath"
	"syscall"

	"github.com/a0backup/a0/internal/bytesize"
	"github.com/a0backup/a0/internal/crypt"
	"github.com/a0backup/a0/internal/pitr"
	"github.com/a0backup/a0/internal/store"
)

// FreeBytes is the space available to the agent on dir's file system.
func FreeBytes(dir string) (int64, error) {
	var s syscall.Statfs_t
	if err := syscall.Statfs(dir, &s); err != nil {
		return 0, err
	}
	return int64(s.Bavail) * int64(s.Bsize), nil
}

// FmtBytes writes n for an operator: "1.5 GiB (1610612736 bytes)".
func FmtBytes(n int64) string { return fmt.Sprintf("%s (%d bytes)", bytesize.IEC(n), n) }

// NoSpaceForUpload is the failure of a file written to the node's state
// disk (an upload, a remote copy fetched for a restore) that would leave
// less than the reserve free.
func NoSpaceForUpload(free, need int64) *Error {
	return &Error{Kind: NoSpace,
		Msg: fmt.Sprintf("not enough free space on the node's state disk for this upload: %s free, %s needed",
			FmtBytes(free), FmtBytes(need))}
}

// Slot is a slot ("backup", "sensitive") of the backup device.
func Slot(device, kind string) store.Slot {
	return store.Slot{Dir: filepath.Join(device, store.FolderName), Kind: kind}
}

// checkSpace refuses a backup onto device when its free space is less than
// twice size, the database's data size, plus the oplog archive's size on
// the device: the archive keeps growing beside the backup, and until the
// next prune it holds the slices back to the oldest kept base, about as
// much again as it holds now (the slices already there are used space:
// they count as the room the archive needs for the next stretch).
func checkSpace(device string, size int64) error {
	free, err := FreeBytes(device)
	if err != nil {
		return fmt.Errorf("measure free space: %w", err)
	}
	return SpaceError(device, free, size)
}

// SpaceError is the free-space rule's refusal of a backup onto device that
// has free bytes free for a database of size bytes (see checkSpace), nil
// when it fits. The agent applies it twice to one backup (issue 27): before
// the 202 to an estimate that costs no scan (the size the agent last read),
// then, while the dump runs, to the size measured anew against the space
// that was free when the job started (Backup.Measure).
func SpaceError(device string, free, size int64) error {
	archive, err := ArchiveBytes(device)
	if err != nil {
		return fmt.Errorf("measure the oplog archive: %w", err)
	}
	need := 2*size + archive
	if free < need {
		why := fmt.Sprintf("twice the database's data size of %s", FmtBytes(size))
		if archive > 0 {
			why += fmt.Sprintf(", plus the oplog archive's %s for its growth", FmtBytes(archive))
		}
		return &Error{Kind: NoSpace,
			Msg: fmt.Sprintf("not enough free space on %s: %s free, %s needed (%s)",
				device, FmtBytes(free), FmtBytes(need), why),
			Details: map[string]any{"free_bytes": free, "needed_bytes": need, "data_bytes": size, "archive_bytes": archive}}
	}
	return nil
}

// ArchiveBytes is the size of the oplog archive's slices on device (0
// without an archive).
func ArchiveBytes(device string) (int64, error) {
	ar, err := pitr.Open(OplogDir(device), crypt.Unlock{})
	if err != nil {
		return 0, err
	}
	var n int64
	for _, s := range ar.Slices {
		n += s.Size
	}
	return n, nil
}
