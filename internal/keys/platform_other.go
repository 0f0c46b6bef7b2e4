//go:build !unix

package keys

import "io/fs"

func inode(fs.FileInfo) uint64 { return 0 }

func owner(fs.FileInfo) int { return -1 }

// lockFile is a no-op where flock is unavailable; the rewrite stays atomic,
// only concurrent edits by two processes may lose one of them.
func lockFile(string) (func(), error) { return func() {}, nil }

// Windows modes do not reflect ACLs, so a mode check would refuse every key.
const checkPrivateMode = false
