package cli

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// binaries builds a0cli and a0agent once per test binary run.
var builtBin string

func buildBinaries(t *testing.T) string {
	t.Helper()
	if builtBin != "" {
		return builtBin
	}
	if testing.Short() {
		t.Skip("builds the binaries: skipped with -short")
	}
	dir, err := os.MkdirTemp("", "a0bin")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-o", dir+"/", "github.com/a0backup/a0/cmd/a0cli", "github.com/a0backup/a0/cmd/a0agent")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	builtBin = dir
	return dir
}

// proc is a0agent running as a real process.
type proc struct {
	cmd  *exec.Cmd
	log  *syncBuffer
	addr string
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startAgentProc(t *testing.T, bin, state, addr string) *proc {
	t.Helper()
	p := &proc{log: &syncBuffer{}, addr: addr}
	p.cmd = exec.Command(filepath.Join(bin, "a0agent"), "--state-dir", state, "--listen", addr)
	p.cmd.Stderr = p.log
	p.cmd.Stdout = p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		p.cmd.Wait()
	})
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p.log.String(), "a0agent listening") {
		if time.Now().After(deadline) {
			t.Fatalf("agent did not start:\n%s", p.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return p
}

// sh runs a built binary in dir with A0CLI_HOME=home.
func sh(t *testing.T, bin, dir, home string, env []string, name string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, name), args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "A0CLI_HOME="+home), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

// TestBinariesAsAUserWould runs the built binaries through the README's
// cycle, then kills the agent (SIGKILL) in the middle of a backup and checks
// that the next start reports the backup as interrupted, leaves no file that
// looks valid, and accepts a new backup.
func TestBinariesAsAUserWould(t *testing.T) {
	bin := buildBinaries(t)
	work := t.TempDir()
	state, dev, home := filepath.Join(work, "node"), filepath.Join(work, "dev"), filepath.Join(work, "cli")
	os.MkdirAll(dev, 0o700)
	pwEnv := []string{"A0_BACKUP_PASSWORD=Passw0rd-binary"}
	run := func(wantCode int, name string, args ...string) string {
		t.Helper()
		code, out, errs := sh(t, bin, work, home, pwEnv, name, args...)
		if code != wantCode {
			t.Fatalf("%s %v: exit %d, want %d\nstdout: %s\nstderr: %s", name, args, code, wantCode, out, errs)
		}
		return out
	}
	addr := freeAddr(t)
	agent := startAgentProc(t, bin, state, addr)
	// Seeding while the agent runs goes through the agent's own database.
	if out := run(0, "a0agent", "seed", "--state-dir", state, "--users", "1500"); !strings.Contains(out, "running agent") {
		t.Fatalf("seed did not use the running agent's database: %s", out)
	}
	run(1, "a0agent", "seed", "--state-dir", state, "--users", "10")
	pub := run(0, "a0cli", "create-key")
	run(0, "a0agent", "authorize", "--state-dir", state, "me", strings.TrimSpace(pub))
	if out := run(0, "a0agent", "keys", "--state-dir", state); !strings.Contains(out, "me") || !strings.Contains(out, "SHA256:") {
		t.Fatalf("keys: %s", out)
	}
	if out := run(0, "a0cli", "-t", addr, "ping"); out != "{\"message\":\"PONG\"}\n" {
		t.Fatalf("ping: %q", out)
	}
	run(0, "a0cli", "-t", addr, "set-as-backup", dev)
	if out := run(0, "a0cli", "-t", addr, "backup"); out != "Backup in progress.\n" {
		t.Fatalf("backup: %q", out)
	}

	// SIGKILL in the middle of the backup.
	time.Sleep(300 * time.Millisecond)
	if out := run(0, "a0cli", "-t", addr, "backup-status"); !strings.Contains(out, "Backup in progress") {
		t.Skipf("backup finished before the kill; status %s", out)
	}
	agent.cmd.Process.Signal(syscall.SIGKILL)
	agent.cmd.Wait()
	agent = startAgentProc(t, bin, state, addr)
	out := run(0, "a0cli", "-t", addr, "backup-status")
	if !strings.Contains(out, `"message":"Backup failed"`) || !strings.Contains(out, "interrupted") {
		t.Fatalf("status after SIGKILL: %s\nagent log:\n%s", out, agent.log.String())
	}
	left, _ := filepath.Glob(filepath.Join(dev, "backup", "*"))
	hidden, _ := filepath.Glob(filepath.Join(dev, "backup", ".*.part"))
	if len(hidden) != 0 {
		t.Fatalf("partial files left after restart: %v", hidden)
	}
	for _, f := range left {
		if strings.HasSuffix(f, ".enc") {
			t.Fatalf("a file that looks valid was left: %s", f)
		}
	}

	// The next backup works, and the retrieved file matches the status md5.
	run(0, "a0cli", "-t", addr, "backup", "--wait")
	var st foundStatus
	json.Unmarshal([]byte(run(0, "a0cli", "-t", addr, "backup-status")), &st)
	if st.Message != "Backup found" {
		t.Fatalf("status %+v", st)
	}
	run(0, "a0cli", "-t", addr, "backup-retrieve")
	body, _ := os.ReadFile(filepath.Join(work, "backup-retrieve.tar.gz.enc"))
	if sum := md5.Sum(body); hex.EncodeToString(sum[:]) != st.Arguments.MD5 {
		t.Fatal("md5 mismatch")
	}
	run(0, "a0cli", "verify", "backup-retrieve.tar.gz.enc")

	// SIGKILL in the middle of a restore into a second node: the next start
	// says so in restore-status and node-status (the marker in the database).
	state2, addr2 := filepath.Join(work, "node2"), freeAddr(t)
	agent2 := startAgentProc(t, bin, state2, addr2)
	run(0, "a0agent", "authorize", "--state-dir", state2, "me", strings.TrimSpace(pub))
	run(0, "a0cli", "-t", addr2, "restore", "backup-retrieve.tar.gz.enc", "--detach")
	caught := false
	for i := 0; i < 400 && !caught; i++ {
		out := run(0, "a0cli", "-t", addr2, "restore-status")
		caught = strings.Contains(out, `"phase":"restoring"`)
		if !caught && !strings.Contains(out, "in progress") {
			break
		}
	}
	if caught {
		agent2.cmd.Process.Signal(syscall.SIGKILL)
		agent2.cmd.Wait()
		agent2 = startAgentProc(t, bin, state2, addr2)
		if out := run(0, "a0cli", "-t", addr2, "restore-status"); !strings.Contains(out, "Restore failed") || !strings.Contains(out, "interrupted") {
			t.Fatalf("restore-status after SIGKILL: %s", out)
		}
		if out := run(0, "a0cli", "-t", addr2, "node-status"); !strings.Contains(out, "did not finish") {
			t.Fatalf("node-status after SIGKILL mid-restore: %s", out)
		}
		run(0, "a0cli", "-t", addr2, "restore", "backup-retrieve.tar.gz.enc", "--drop")
		if out := run(0, "a0cli", "-t", addr2, "node-status"); strings.Contains(out, "did not finish") {
			t.Fatalf("marker left after a good restore: %s", out)
		}
	} else {
		t.Log("restore finished before SIGKILL could land; the kill-mid-restore check did not run")
	}
	run(ExitRefused, "a0cli", "-t", addr, "backup")
	run(0, "a0cli", "-t", addr, "backup-delete")
	run(ExitNotFound, "a0cli", "-t", addr, "backup-delete")
	run(0, "a0agent", "revoke", "--state-dir", state, "me")
	run(ExitAuth, "a0cli", "-t", addr, "ping")

	// Graceful shutdown on SIGTERM.
	agent.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- agent.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("agent exit after SIGTERM: %v\n%s", err, agent.log.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("agent did not stop on SIGTERM")
	}
	if !strings.Contains(agent.log.String(), "shutting down") {
		t.Fatalf("no shutdown log:\n%s", agent.log.String())
	}
}
