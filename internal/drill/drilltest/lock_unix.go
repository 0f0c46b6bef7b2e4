//go:build unix

package drilltest

import (
	"os"
	"syscall"
	"testing"
)

// HoldLock takes the flock a running drill holds on path (creating the
// file), as a live drill would, until the returned function is called.
func HoldLock(t testing.TB, path string) func() {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		t.Fatal(err)
	}
	return func() { f.Close() }
}
