package embedded

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"syscall"
)

// SocketName is the file name of the server's Unix socket in its directory.
// The driver takes a host ending in "sock" for a socket path.
const SocketName = "mongodb.sock"

// maxSocketPath is the longest socket path every Unix takes (sun_path is
// 108 bytes on Linux, 104 on the BSDs, with its terminating zero).
const maxSocketPath = 103

// SocketURI is the connection string of a server on the Unix socket at path:
// the path, escaped, as the URI's host, as the Go driver and the stock
// mongo-tools (mongodump, mongorestore) take it.
func SocketURI(path string) string {
	return "mongodb://" + url.QueryEscape(path) + "/"
}

// socketPath makes the socket's directory private to this process's user
// and returns the socket's path, and the directory to remove on Close when
// Start made a fresh one.
func socketPath(dir string) (sock, tmpDir string, err error) {
	if dir != "" {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return "", "", fmt.Errorf("embedded: socket directory: %w", err)
		}
		if sock := filepath.Join(abs, SocketName); len(sock) <= maxSocketPath {
			if err := privateDir(abs); err != nil {
				return "", "", err
			}
			// Left by a killed server: nothing listens on it any more.
			if err := os.Remove(sock); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return "", "", fmt.Errorf("embedded: remove the old socket: %w", err)
			}
			return sock, "", nil
		}
	}
	tmp, err := os.MkdirTemp("", "a0-embedded-")
	if err != nil {
		return "", "", fmt.Errorf("embedded: socket directory: %w", err)
	}
	if err := privateDir(tmp); err != nil {
		os.RemoveAll(tmp)
		return "", "", err
	}
	return filepath.Join(tmp, SocketName), tmp, nil
}

// privateDir creates dir 0700 or makes an existing one 0700, and refuses a
// directory this process's user does not own (or a symlink): another user
// could then reach the socket, or swap it.
func privateDir(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("embedded: socket directory: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("embedded: socket directory: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("embedded: socket directory %s is not a directory owned by this user (uid %d)", dir, os.Geteuid())
	}
	if fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("embedded: socket directory: %w", err)
		}
	}
	return nil
}
