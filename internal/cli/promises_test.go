package cli

// Promises of docs/cli.md that no other test shows: exit 7 for a node that
// does not answer, uploads locked while a restore runs and removed after it
// succeeds, restore-status --wait, and decrypt -o -.

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/a0backup/a0/internal/agent"
)

func TestUnreachableNodeExits7(t *testing.T) {
	t.Parallel()
	// A port nobody listens on: the listener is closed and nothing is
	// started on it again.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	op := newOperator(t)
	if r := op.run("create-key"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	for _, cmd := range [][]string{{"ping"}, {"backup-status"}, {"node-status"}} {
		if r := op.run(append([]string{"-t", addr}, cmd...)...); r.code != ExitConn {
			t.Errorf("%v against a closed port: exit %d, want %d: %s", cmd, r.code, ExitConn, r.stderr)
		}
	}
}

// TestUploadsLockedDuringRestore: while a restore runs (held after its
// marker is written) the node refuses another restore's upload (exit 4);
// restore-status --wait follows it to the end; a successful restore removes
// its upload from the node.
func TestUploadsLockedDuringRestore(t *testing.T) {
	t.Parallel()
	src, op, _ := backupNode(t, 30)
	op.env["A0_BACKUP_PASSWORD"] = "Passw0rd-uploads"
	op.mustOn(src, "backup", "--wait")
	op.mustOn(src, "backup-retrieve")
	file := filepath.Join(op.dir, "backup-retrieve.tar.gz.enc")

	h := newHolds(agent.HoldRestore)
	dst := startNodeWith(t, "", "", agent.Config{Hold: h.hook})
	dst.authorize("ops", op.home)
	op.mustOn(dst, "restore", file, "--detach")
	h.wait(t, agent.HoldRestore)
	uploads := filepath.Join(dst.state, "uploads", "*.upload")
	held, _ := filepath.Glob(uploads)
	if len(held) != 1 {
		t.Fatalf("uploads during the restore: %v", held)
	}
	before := readFile(t, held[0])
	// A second file (another name, so another upload) is refused while the
	// first restore reads its upload.
	other := filepath.Join(op.dir, "other.enc")
	os.WriteFile(other, append(bytes.Clone(readFile(t, file)), 0), 0o600)
	if r := op.on(dst, "restore", other, "--dry-run"); r.code != ExitRefused || !strings.Contains(r.stderr, "running") {
		t.Fatalf("upload during a restore: exit %d, want %d: %s", r.code, ExitRefused, r.stderr)
	}
	if now, _ := filepath.Glob(uploads); len(now) != 1 {
		t.Fatalf("an upload was written while a restore ran: %v", now)
	}
	if after := readFile(t, held[0]); !bytes.Equal(before, after) {
		t.Fatal("the upload being restored changed during the restore")
	}
	h.let(agent.HoldRestore)
	r := op.mustOn(dst, "restore-status", "--wait")
	if !strings.Contains(r.stdout, "Restore finished") {
		t.Fatalf("restore-status --wait: %s", r.stdout)
	}
	if left, _ := filepath.Glob(uploads); len(left) != 0 {
		t.Fatalf("uploads left after a successful restore: %v", left)
	}
	sameCollection(t, src.client(), dst.client(), "auth0.users")

	t.Run("decrypt -o - streams the plain archive to stdout", func(t *testing.T) {
		out := filepath.Join(op.dir, "plain.tar.gz")
		op.mustOn(dst, "decrypt", file, "-o", out)
		r := op.run("decrypt", file, "-o", "-")
		if r.code != 0 || !bytes.HasPrefix([]byte(r.stdout), []byte{0x1f, 0x8b}) || r.stdout != string(readFile(t, out)) {
			t.Fatalf("decrypt -o -: exit %d, %d bytes (file %d): %s", r.code, len(r.stdout), len(readFile(t, out)), r.stderr)
		}
	})
}

// TestUploadStateDiskReserve: an upload that would leave less than the
// reserve free on the node's state disk (a small tmpfs on its uploads
// folder) is refused (exit 4) and writes nothing.
func TestUploadStateDiskReserve(t *testing.T) {
	if os.Geteuid() != 0 {
		skipOutsideCI(t, "not root: cannot mount a small tmpfs as the state disk")
	}
	t.Parallel()
	dst := startNode(t, "", "")
	op := newOperator(t).withKey(dst)
	uploads := filepath.Join(dst.state, "uploads")
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", uploads).CombinedOutput(); err != nil {
		skipOutsideCI(t, "mount tmpfs failed (%v: %s)", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() { exec.Command("umount", "-l", uploads).Run() })
	file := filepath.Join(op.dir, "some.enc")
	os.WriteFile(file, bytes.Repeat([]byte{1}, 1<<20), 0o600)
	r := op.on(dst, "restore", file, "--password", "Passw0rd-reserve")
	if r.code != ExitRefused || !strings.Contains(r.stderr, "not enough free space on the node's state disk") {
		t.Fatalf("upload onto a nearly full state disk: exit %d, want %d: %s", r.code, ExitRefused, r.stderr)
	}
	ents, _ := os.ReadDir(uploads)
	for _, e := range ents {
		if st, err := e.Info(); err == nil && st.Size() > 0 {
			t.Fatalf("a refused upload wrote %s (%d bytes)", e.Name(), st.Size())
		}
	}
}
