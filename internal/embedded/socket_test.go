package embedded

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// TestServerReachableOnlyByItsUser (issue 25.4): the embedded server has
// no authentication, so it listens on no TCP port, only on a Unix socket in
// a 0700 directory of this process's user; another user (nobody, when the
// test runs as root) cannot connect, while the server's own URI works.
func TestServerReachableOnlyByItsUser(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc/net/tcp: linux only")
	}
	ctx := context.Background()
	before := tcpListeners(t)
	sockDir := filepath.Join(t.TempDir(), "run")
	// A socket directory that exists, too open, with a stale socket file in
	// it (a killed agent's): made 0700, the file replaced.
	if err := os.Mkdir(sockDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sockDir, SocketName), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Start(ctx, Config{Dir: t.TempDir(), SocketDir: sockDir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := s.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(ctx)
	if _, err := c.Database("auth0").Collection("users").InsertOne(ctx, bson.D{{Key: "x", Value: 1}}); err != nil {
		t.Fatalf("the server's own URI %s: %v", s.URI(), err)
	}

	for port := range tcpListeners(t) {
		if !before[port] {
			t.Errorf("the embedded server listens on TCP port %d: any local user can connect", port)
		}
	}
	if want := SocketURI(filepath.Join(sockDir, SocketName)); s.URI() != want {
		t.Errorf("URI = %s, want the socket's %s", s.URI(), want)
	}
	fi, err := os.Stat(sockDir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 || int(fi.Sys().(*syscall.Stat_t).Uid) != os.Geteuid() {
		t.Errorf("socket directory %v uid %d, want 0700 owned by uid %d", fi.Mode(), fi.Sys().(*syscall.Stat_t).Uid, os.Geteuid())
	}

	if os.Geteuid() != 0 {
		t.Log("not root: cannot try the connection as another user (nobody)")
		return
	}
	out := connectAs(t, 65534, 65534, s.URI())
	if !strings.Contains(out, "REFUSED") || !strings.Contains(out, "permission denied") {
		t.Fatalf("user nobody on %s: %s; want refused with permission denied", s.URI(), out)
	}
}

// TestStartPrivateSocketByDefault: without SocketDir the socket gets a
// fresh 0700 directory, removed on Close.
func TestStartPrivateSocketByDefault(t *testing.T) {
	s, err := Start(context.Background(), Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	dir := s.tmpDir
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("socket directory %q: %v %v", dir, fi, err)
	}
	if !strings.HasPrefix(s.URI(), "mongodb://%2F") {
		t.Errorf("URI = %s, want a socket's", s.URI())
	}
	s.Close()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("socket directory left after Close: %v", err)
	}
}

// TestStartRefusesSocketDirOfAnotherUser: a socket directory another user
// owns could let that user reach or swap the socket.
func TestStartRefusesSocketDirOfAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a directory to another user")
	}
	dir := filepath.Join(t.TempDir(), "run")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	s, err := Start(context.Background(), Config{Dir: t.TempDir(), SocketDir: dir})
	if err == nil {
		s.Close()
		t.Fatal("started with a socket directory owned by nobody")
	}
	if !strings.Contains(err.Error(), "not a directory owned by this user") {
		t.Fatalf("error %v", err)
	}
}

// connectAs runs this test binary as uid:gid to connect to uri and says
// what happened (TestHelperConnect). The binary is copied where that user
// can run it.
func connectAs(t *testing.T, uid, gid uint32, uri string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "a0-connect-as-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "connect.test")
	if err := copyFile(exe, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-test.run=^TestHelperConnect$")
	cmd.Dir = dir
	cmd.Env = []string{"A0_TEST_CONNECT_URI=" + uri, "HOME=" + dir}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	out, _ := cmd.CombinedOutput()
	return string(out)
}

func copyFile(from, to string, mode os.FileMode) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// TestHelperConnect is connectAs's child, not a test of its own.
func TestHelperConnect(t *testing.T) {
	uri := os.Getenv("A0_TEST_CONNECT_URI")
	if uri == "" {
		t.Skip("the child of connectAs")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(3 * time.Second))
	if err == nil {
		defer c.Disconnect(ctx)
		var names []string
		if names, err = c.ListDatabaseNames(ctx, bson.D{}); err == nil {
			fmt.Printf("CONNECTED uid %d, databases %v\n", os.Getuid(), names)
			return
		}
	}
	fmt.Printf("REFUSED uid %d: %v\n", os.Getuid(), err)
}

// tcpListeners is the set of TCP ports this process listens on: the
// listening sockets of /proc/net/tcp{,6} whose inode is one of our fds.
func tcpListeners(t *testing.T) map[int]bool {
	t.Helper()
	ours := map[string]bool{}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		l, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			ours[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	ports := map[int]bool{}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(table)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // the header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			// local_address rem_address st ... inode (the 10th field)
			if len(fields) < 10 || fields[3] != "0A" || !ours[fields[9]] {
				continue
			}
			_, hexPort, _ := strings.Cut(fields[1], ":")
			if p, err := strconv.ParseInt(hexPort, 16, 32); err == nil {
				ports[int(p)] = true
			}
		}
		f.Close()
	}
	return ports
}
