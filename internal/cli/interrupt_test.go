package cli

import (
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startCLI starts the built a0cli with args in dir, its output captured.
func startCLI(t *testing.T, bin, dir, home string, env []string, args ...string) (*exec.Cmd, *syncBuffer, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, "a0cli"), args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "A0CLI_HOME="+home), env...)
	out, errb := &syncBuffer{}, &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, out, errb
}

// waitFor polls until buf holds want.
func waitFor(t *testing.T, buf *syncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(buf.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in:\n%s", want, buf.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// interrupt sends a real SIGINT (Ctrl-C) to a0cli and returns its exit code.
func interrupt(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

// Issue 28.1, with the built binaries and a real SIGINT: Ctrl-C during
// `backup --wait` and `restore` says that the job goes on on the node and
// how to follow or stop it, exit 130; backup-status --wait follows a
// backup; cancel stops a backup (its .part removed, the record says
// cancelled) and a restore (the marker stays, restore-status and
// node-status say the database is partly restored); the -cancel aliases
// refuse another kind of job.
func TestBinaryCtrlCAndCancel(t *testing.T) {
	bin := buildBinaries(t)
	work := t.TempDir()
	state, dev, home := filepath.Join(work, "node"), filepath.Join(work, "dev"), filepath.Join(work, "cli")
	os.MkdirAll(dev, 0o700)
	pwEnv := []string{"A0_BACKUP_PASSWORD=Passw0rd-ctrlc"}
	run := func(wantCode int, name string, args ...string) (string, string) {
		t.Helper()
		code, out, errs := sh(t, bin, work, home, pwEnv, name, args...)
		if code != wantCode {
			t.Fatalf("%s %v: exit %d, want %d\nstdout: %s\nstderr: %s", name, args, code, wantCode, out, errs)
		}
		return out, errs
	}
	agent := startAgentProc(t, bin, state)
	run(0, "a0agent", "seed", "--state-dir", state, "--users", "200")
	pub, _ := run(0, "a0cli", "create-key")
	run(0, "a0agent", "authorize", "--state-dir", state, "me", strings.TrimSpace(pub))
	run(0, "a0cli", "-t", agent.addr, "set-as-backup", dev)

	// Ctrl-C during backup --wait: the backup goes on, and a0cli says so.
	cmd, out, errb := startCLI(t, bin, work, home, pwEnv, "-t", agent.addr, "backup", "--wait")
	agent.holdReached(t, "backup")
	waitFor(t, out, "Backup in progress.")
	if code := interrupt(t, cmd); code != ExitInterrupted {
		t.Fatalf("exit %d, want %d\n%s", code, ExitInterrupted, errb.String())
	}
	for _, want := range []string{"a0cli: interrupted: the backup goes on on the node",
		"`a0cli -t " + agent.addr + " backup-status --wait`", "`a0cli -t " + agent.addr + " cancel`"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errb.String())
		}
	}
	if strings.Contains(errb.String(), "context canceled") {
		t.Errorf("stderr says only %q:\n%s", "context canceled", errb.String())
	}
	if st, _ := run(0, "a0cli", "-t", agent.addr, "backup-status"); !strings.Contains(st, "Backup in progress") {
		t.Fatalf("the backup did not go on: %s", st)
	}

	// Nothing of another kind is cancelled; cancel stops the backup.
	if _, e := run(ExitRefused, "a0cli", "-t", agent.addr, "restore-cancel"); !strings.Contains(e, "is a backup, not a restore") {
		t.Fatalf("restore-cancel of a backup: %s", e)
	}
	o, _ := run(0, "a0cli", "-t", agent.addr, "cancel")
	if !strings.Contains(o, "Job cancelled: the backup job") || !strings.Contains(o, "cancelled by an operator: the backup's partial file was removed") {
		t.Fatalf("cancel: %s", o)
	}
	if part, _ := filepath.Glob(filepath.Join(dev, "backup", ".*.part")); len(part) != 0 {
		t.Fatalf("the cancelled backup left %v", part)
	}
	if left, _ := filepath.Glob(filepath.Join(dev, "backup", "*.enc")); len(left) != 0 {
		t.Fatalf("the cancelled backup left a file that looks valid: %v", left)
	}
	if st, _ := run(0, "a0cli", "-t", agent.addr, "backup-status"); !strings.Contains(st, `"message":"Backup failed"`) || !strings.Contains(st, "cancelled by an operator") {
		t.Fatalf("status after cancel: %s", st)
	}
	if _, e := run(ExitNotFound, "a0cli", "-t", agent.addr, "cancel"); !strings.Contains(e, "no job is running") {
		t.Fatalf("cancel with nothing running: %s", e)
	}

	// backup-status --wait follows a running backup to its status line.
	agent.holdRelease(t, "backup")
	run(0, "a0cli", "-t", agent.addr, "backup")
	if st, _ := run(0, "a0cli", "-t", agent.addr, "backup-status", "--wait"); !strings.Contains(st, `"message":"Backup found"`) {
		t.Fatalf("backup-status --wait: %s", st)
	}
	run(0, "a0cli", "-t", agent.addr, "backup-retrieve")

	// Ctrl-C during restore: the restore goes on (held after its marker);
	// restore-cancel stops it and says what the database holds.
	state2 := filepath.Join(work, "node2")
	agent2 := startAgentProc(t, bin, state2)
	run(0, "a0agent", "authorize", "--state-dir", state2, "me", strings.TrimSpace(pub))
	cmd, out, errb = startCLI(t, bin, work, home, pwEnv, "-t", agent2.addr, "restore", "backup-retrieve.tar.gz.enc")
	agent2.holdReached(t, "restore")
	waitFor(t, out, "Restore in progress.")
	if code := interrupt(t, cmd); code != ExitInterrupted {
		t.Fatalf("restore: exit %d, want %d\n%s", code, ExitInterrupted, errb.String())
	}
	for _, want := range []string{"a0cli: interrupted: the restore goes on on the node",
		"`a0cli -t " + agent2.addr + " restore-status --wait`", "`a0cli -t " + agent2.addr + " cancel`"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errb.String())
		}
	}
	if st, _ := run(0, "a0cli", "-t", agent2.addr, "restore-status"); !strings.Contains(st, "Restore in progress") {
		t.Fatalf("the restore did not go on: %s", st)
	}
	if _, e := run(ExitRefused, "a0cli", "-t", agent2.addr, "backup-cancel"); !strings.Contains(e, "is a restore, not a backup") {
		t.Fatalf("backup-cancel of a restore: %s", e)
	}
	o, _ = run(0, "a0cli", "-t", agent2.addr, "restore-cancel")
	if !strings.Contains(o, "Job cancelled: the restore job") || !strings.Contains(o, "the database is partly restored") {
		t.Fatalf("restore-cancel: %s", o)
	}
	if st, _ := run(0, "a0cli", "-t", agent2.addr, "restore-status"); !strings.Contains(st, "Restore failed") || !strings.Contains(st, `"code":"cancelled"`) ||
		!strings.Contains(st, "partly restored") || !strings.Contains(st, `"phase":"cancelled"`) {
		t.Fatalf("restore-status after cancel: %s", st)
	}
	if st, _ := run(0, "a0cli", "-t", agent2.addr, "node-status"); !strings.Contains(st, "did not finish") {
		t.Fatalf("node-status after a cancelled restore: %s", st)
	}
}

// stallProxy forwards TCP to a node and, on each connection, stops passing
// the node's bytes after down of them without closing: a download that
// hangs mid-file until the operator presses Ctrl-C.
func stallProxy(t *testing.T, target string, down int64) (string, <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	stalled := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, s)
			mu.Unlock()
			go io.Copy(s, c)
			go func() {
				if n, _ := io.CopyN(c, s, down); n == down {
					// Nothing more: the connection stays open.
					once.Do(func() { close(stalled) })
				}
			}()
		}
	}()
	return ln.Addr().String(), stalled
}

// Issue 28.1: Ctrl-C during backup-retrieve says that nothing runs on the
// node, where the bytes are kept and that the same command resumes (exit
// 130); the next run resumes from the partial file.
func TestCtrlCDuringRetrieve(t *testing.T) {
	// More than 2 MiB: the download writes its partial file in 1 MiB
	// buffers, and half the file must be on disk when it stalls.
	n, op, _ := backupNode(t, 15000)
	op.env["A0_BACKUP_PASSWORD"] = "Passw0rd-retrieve"
	op.mustOn(n, "backup", "--wait")
	st := decodeStatus(t, op.mustOn(n, "backup-status").stdout)
	if st.Arguments.Size < 2<<20+64<<10 {
		t.Fatalf("backup of %d bytes: too small to stop half way", st.Arguments.Size)
	}
	// Headers, the status answer and half the file pass; then it stalls.
	px, stalled := stallProxy(t, n.addr, st.Arguments.Size/2)
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	done := make(chan result, 1)
	go func() { done <- op.runCtx(ctx, "-t", px, "backup-retrieve") }()
	select {
	case <-stalled:
	case r := <-done:
		t.Fatalf("retrieve ended before the stall: %+v", r)
	case <-time.After(2 * time.Minute):
		t.Fatal("the download did not reach the stall")
	}
	// The stalled download has written its first buffer.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		parts, _ := filepath.Glob(filepath.Join(op.dir, ".backup-retrieve.tar.gz.enc.*.part"))
		if len(parts) == 1 {
			if fi, err := os.Stat(parts[0]); err == nil && fi.Size() > 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("nothing of the download reached the disk")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// What a0cli's main does on Ctrl-C (SignalContext).
	cancel(&Signalled{Signal: os.Interrupt})
	r := <-done
	if r.code != ExitInterrupted {
		t.Fatalf("exit %d, want %d: %+v", r.code, ExitInterrupted, r)
	}
	for _, want := range []string{"a0cli: interrupted: the download stopped at byte ", "nothing runs there", "the same backup-retrieve command resumes the download"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if r := op.mustOn(n, "backup-retrieve"); !strings.Contains(r.stderr, "resuming download at byte") {
		t.Fatalf("the next run did not resume: %+v", r)
	}
	if v := op.run("verify", "backup-retrieve.tar.gz.enc"); v.code != 0 {
		t.Fatalf("verify: %+v", v)
	}
}
