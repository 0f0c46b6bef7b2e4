package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAccessKeysPingPinning(t *testing.T) {
	n := startNode(t, "", "")
	op := newOperator(t)

	t.Run("no key", func(t *testing.T) {
		r := op.on(n, "ping")
		if r.code != ExitAuth || !strings.Contains(r.stderr, "create-key") {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
	})
	t.Run("create and show key", func(t *testing.T) {
		r := op.run("create-key")
		if r.code != 0 || !strings.HasPrefix(r.stdout, "ssh-ed25519 AAAA") {
			t.Fatalf("create-key: %d %q %q", r.code, r.stdout, r.stderr)
		}
		st, err := os.Stat(filepath.Join(op.home, "id_a0"))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("private key: %v %v", st, err)
		}
		if s := op.run("show-key"); s.stdout != r.stdout {
			t.Fatalf("show-key %q != create-key %q", s.stdout, r.stdout)
		}
		if again := op.run("create-key"); again.code == 0 {
			t.Fatal("create-key replaced an existing key without --force")
		}
	})
	t.Run("unknown key refused with advice", func(t *testing.T) {
		r := op.on(n, "ping")
		if r.code != ExitAuth || !strings.Contains(r.stderr, "a0agent authorize") {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
		if !strings.Contains(r.stderr, "pinned") {
			t.Fatalf("first contact did not report the pinned fingerprint: %q", r.stderr)
		}
	})
	t.Run("authorized key answers PONG", func(t *testing.T) {
		n.authorize("ops", op.home)
		r := op.on(n, "ping")
		if r.code != 0 || r.stdout != "{\"message\":\"PONG\"}\n" {
			t.Fatalf("ping: %d %q %q", r.code, r.stdout, r.stderr)
		}
		if strings.Contains(r.stderr, "pinned") {
			t.Fatalf("second contact pinned again: %q", r.stderr)
		}
	})
	t.Run("readable private key refused", func(t *testing.T) {
		p := filepath.Join(op.home, "id_a0")
		os.Chmod(p, 0o644)
		defer os.Chmod(p, 0o600)
		r := op.on(n, "ping")
		if r.code != ExitAuth || !strings.Contains(r.stderr, "chmod 600") {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
	})
	t.Run("update-commands and usage", func(t *testing.T) {
		op.mustOn(n, "update-commands")
		r := op.run()
		if !strings.Contains(r.stdout, "commands the node accepts") || !strings.Contains(r.stdout, "backup-sensitive-retrieve") {
			t.Fatalf("usage lacks the cached commands: %s", r.stdout)
		}
		if v := op.run("-V"); v.code != 0 || !strings.HasPrefix(v.stdout, "a0cli ") {
			t.Fatalf("-V: %+v", v)
		}
	})
	t.Run("revoked key refused", func(t *testing.T) {
		other := newOperator(t).withKey(n)
		other.mustOn(n, "ping")
		if err := keysRevoke(n, "ops"); err != nil {
			t.Fatal(err)
		}
		r := op.on(n, "ping")
		if r.code != ExitAuth {
			t.Fatalf("revoked key still accepted: %+v", r)
		}
	})
	t.Run("changed certificate refused, forget-node resets", func(t *testing.T) {
		n2 := startNode(t, "", "")
		op2 := newOperator(t).withKey(n2)
		op2.mustOn(n2, "ping")
		addr := n2.addr
		n2.stop()
		// Another node (new state dir, new certificate) at the same address.
		n3 := startNode(t, "", addr)
		n3.authorize("ops", op2.home)
		r := op2.on(n3, "ping")
		if r.code != ExitAuth || !strings.Contains(r.stderr, "forget-node") {
			t.Fatalf("changed certificate: exit %d, stderr %q", r.code, r.stderr)
		}
		op2.mustOn(n3, "forget-node", addr)
		if r := op2.on(n3, "ping"); r.code != 0 {
			t.Fatalf("after forget-node: %+v", r)
		}
	})
}

func keysRevoke(n *testNode, name string) error {
	return keysOpen(n).Remove(name)
}

func TestSetAsBackup(t *testing.T) {
	n := startNode(t, "", "")
	op := newOperator(t).withKey(n)
	dev := t.TempDir()
	r := op.mustOn(n, "set-as-backup", dev)
	if !strings.Contains(r.stdout, `"message":"Node set as backup"`) {
		t.Fatalf("set-as-backup: %q", r.stdout)
	}
	if st, err := os.Stat(filepath.Join(dev, "backup")); err != nil || !st.IsDir() {
		t.Fatalf("backup folder not created: %v", err)
	}
	if r := op.on(n, "set-as-backup", dev); r.code != ExitRefused || !strings.Contains(r.stderr, "force") {
		t.Fatalf("second set-as-backup without force: %+v", r)
	}
	op.mustOn(n, "set-as-backup", dev, "force")
	if r := op.on(n, "set-as-backup", filepath.Join(dev, "missing")); r.code == 0 {
		t.Fatalf("missing device accepted: %+v", r)
	}
	// The role survives a restart.
	state := n.state
	n.stop()
	n2 := startNode(t, state, "")
	st := op.mustOn(n2, "node-status")
	if !strings.Contains(st.stdout, "[backup]") || !strings.Contains(st.stdout, dev) {
		t.Fatalf("node-status after restart: %s", st.stdout)
	}
}
