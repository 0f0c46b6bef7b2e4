package statedir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// errHeld is lockFile's answer when another descriptor holds the lock.
var errHeld = errors.New("held")

// LockFile is the file in the state directory that a running agent holds
// an exclusive lock (flock) on, with its PID inside.
const LockFile = "a0agent.lock"

// LockedError is returned by Lock when another process holds the state
// directory. PID is 0 when the holder has not written it yet.
type LockedError struct {
	Dir string
	PID int
}

func (e *LockedError) Error() string {
	if e.PID == 0 {
		return fmt.Sprintf("state directory %s is in use by another a0agent", e.Dir)
	}
	return fmt.Sprintf("state directory %s is in use by another a0agent (pid %d)", e.Dir, e.PID)
}

// Lock is held on a state directory until Release (or the process's end:
// the kernel drops a flock with its last descriptor, so a killed agent
// leaves no stale lock).
type Lock struct{ f *os.File }

// TakeLock takes the state directory's lock for this process, or returns
// a *LockedError naming the PID that holds it. It is the first thing an
// agent does: a second agent on the same directory must touch nothing
// (job records, partial files, the embedded server's files). It creates
// the directory (0700) when missing and writes nothing else in it.
func TakeLock(dir string) (*Lock, error) {
	if dir == "" {
		return nil, errors.New("state directory not set (--state-dir)")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(abs, LockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state directory lock: %w", err)
	}
	if err := lockFile(f); err != nil {
		defer f.Close()
		if errors.Is(err, errHeld) {
			b, _ := os.ReadFile(f.Name())
			pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			return nil, &LockedError{Dir: abs, PID: pid}
		}
		return nil, fmt.Errorf("state directory lock: %w", err)
	}
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("state directory lock: %w", err)
	}
	return &Lock{f: f}, nil
}

// Release drops the lock. The file stays: removing it would let a third
// agent lock a new file while a second still waits on the old one.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
