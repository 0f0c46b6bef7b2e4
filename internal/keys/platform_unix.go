//go:build unix

package keys

import (
	"io/fs"
	"os"
	"syscall"
)

// inode identifies the file behind a path, so a rename over it is seen even
// when size and mtime happen to match.
func inode(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino)
	}
	return 0
}

// owner is the file's owner uid.
func owner(fi fs.FileInfo) int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}

// lockFile takes an exclusive advisory lock on path (created if missing), so
// two processes editing the same file do not lose each other's update.
func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// checkPrivateMode is true where file modes mean something.
const checkPrivateMode = true
