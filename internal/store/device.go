package store

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/a0backup/a0/internal/crypt"
)

// DeviceError says why a directory may not be a node's backup device.
type DeviceError struct {
	Device, Reason string
}

func (e *DeviceError) Error() string {
	return fmt.Sprintf("device %s cannot be the backup device: %s", e.Device, e.Reason)
}

// systemTrees are the directories whose content belongs to the system: a
// backup device inside one of them would mix a0's files with the
// system's, and a cleaning of the backup folder would run among them.
var systemTrees = []string{"/etc", "/dev", "/proc", "/sys", "/run", "/boot", "/usr", "/bin", "/sbin",
	"/lib", "/lib32", "/lib64", "/libx32", "/var/run", "/var/lock"}

// systemDirs are refused themselves, not what is under them.
var systemDirs = []string{"/", "/var", "/var/lib", "/home", "/root", "/tmp", "/var/tmp", "/opt", "/srv", "/mnt", "/media"}

// CheckDevice refuses a backup device that is a system path (issue 25
// point 9): one of systemDirs, anything under systemTrees (and the
// /lib directories), and the agent's state directory stateDir itself,
// anything inside it or containing it (its secrets would sit beside the
// backups). The paths are compared once symbolic links are resolved, so
// that a link to /etc is /etc.
func CheckDevice(device, stateDir string) error {
	dev := realPath(device)
	refuse := func(reason string) error { return &DeviceError{Device: device, Reason: reason} }
	for _, d := range systemDirs {
		if dev == d {
			return refuse("it is a system directory; give a directory of its own (a mounted disk, or one made for the backups)")
		}
	}
	for _, d := range systemTrees {
		if within(dev, d) {
			return refuse(fmt.Sprintf("it is in the system directory %s", d))
		}
	}
	if stateDir != "" {
		state := realPath(stateDir)
		switch {
		case within(dev, state):
			return refuse(fmt.Sprintf("it is in the agent's state directory %s", stateDir))
		case within(state, dev):
			return refuse(fmt.Sprintf("it contains the agent's state directory %s", stateDir))
		}
	}
	return nil
}

// within reports whether p is d or inside it (both clean and absolute).
func within(p, d string) bool {
	return p == d || strings.HasPrefix(p, strings.TrimSuffix(d, "/")+"/")
}

// realPath is p, clean, with its symbolic links resolved as far as the
// path exists (a part that does not exist yet is kept as given).
func realPath(p string) string {
	p = filepath.Clean(p)
	var rest []string
	for cur := p; ; cur = filepath.Dir(cur) {
		if r, err := filepath.EvalSymlinks(cur); err == nil {
			return filepath.Join(append([]string{r}, rest...)...)
		} else if !errors.Is(err, fs.ErrNotExist) || cur == "/" {
			return p
		}
		rest = append([]string{filepath.Base(cur)}, rest...)
	}
}

// isOwnFile reports whether the file named n in dir is one a0 wrote: a
// backup file starts with the a0 magic (crypt.IsA0), and a part file
// either does too or is shorter than the magic and a prefix of it (a (hidden) part
// cut before its first bytes reached the disk). Clean removes nothing
// else, whatever its name: a folder given to set-as-backup with force may
// hold files a0 did not write.
func isOwnFile(dir, n string) bool {
	p := filepath.Join(dir, n)
	if st, err := os.Lstat(p); err != nil || !st.Mode().IsRegular() {
		return false
	}
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	prefix := make([]byte, crypt.MagicLen)
	k, _ := io.ReadFull(f, prefix)
	if k == len(prefix) {
		return crypt.IsA0(prefix)
	}
	return strings.HasPrefix(n, ".") && strings.HasSuffix(n, ".part") && crypt.IsA0Start(prefix[:k])
}
