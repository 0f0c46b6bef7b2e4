package cli

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/a0backup/a0/internal/embedded"
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
	cmd.Dir = packageDir // in the module, whatever a parallel test's chdir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	builtBin = dir
	return dir
}

// packageDir is this package's directory, read when the package loads:
// harness calls change the working directory while parallel tests run.
var packageDir, _ = os.Getwd()

// proc is a0agent running as a real process.
type proc struct {
	wait func()
	cmd  *exec.Cmd
	log  *syncBuffer
	addr string
	// hold is the agent's $A0_TEST_HOLD_DIR: jobs stop at its hold points
	// until the test releases them (holdReached, holdRelease).
	hold string
}

var listenLine = regexp.MustCompile(`a0agent listening" addr=(\S+)`)

// startAgentProc starts the built agent on a port of its own choosing
// (--listen 127.0.0.1:0, read back from its log: no port is closed and
// rebound), holding its jobs at the hold points until released.
func startAgentProc(t *testing.T, bin, state string, env ...string) *proc {
	t.Helper()
	return startAgentProcAt(t, bin, state, "127.0.0.1:0", env...)
}

// startAgentProcAt is startAgentProc listening on listen: a fresh node at
// the address of one that is gone (its process has exited, so the port is
// free).
func startAgentProcAt(t *testing.T, bin, state, listen string, env ...string) *proc {
	t.Helper()
	return startAgentCmd(t, bin, []string{"--state-dir", state, "--listen", listen}, true, env...)
}

// quietAddr is a free loopback address outside the kernel's ephemeral
// port range (ip_local_port_range): a test that brings a node back at the
// same address needs its port to stay free while the node is down, and
// every other listener (port 0) and every outgoing connection takes its
// port from that range. An ephemeral port did not stay free under the
// whole suite ("address already in use" at the restart).
func quietAddr(t *testing.T) string {
	t.Helper()
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				low = n
			}
		}
	}
	if low <= 11200 {
		t.Fatalf("the ephemeral port range starts at %d: no quiet port below it", low)
	}
	for range 100 {
		// From 10200: the README's example listens on 10121.
		addr := fmt.Sprintf("127.0.0.1:%d", 10200+mrand.IntN(low-10200))
		if ln, err := net.Listen("tcp", addr); err == nil {
			ln.Close()
			return addr
		}
	}
	t.Fatal("no free port below the ephemeral range")
	return ""
}

// startAgentCmd starts the built agent with args and waits until it
// listens (the address read from its log). With hold, its jobs stop at the
// hold points ($A0_TEST_HOLD_DIR) until the test releases them.
func startAgentCmd(t *testing.T, bin string, args []string, hold bool, env ...string) *proc {
	t.Helper()
	p := &proc{log: &syncBuffer{}, hold: t.TempDir()}
	p.cmd = exec.Command(filepath.Join(bin, "a0agent"), args...)
	p.cmd.Env = os.Environ()
	if hold {
		p.cmd.Env = append(p.cmd.Env, "A0_TEST_HOLD_DIR="+p.hold)
	}
	p.cmd.Env = append(p.cmd.Env, env...)
	p.cmd.Stderr, p.cmd.Stdout = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { p.cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-exited
	})
	p.wait = func() { <-exited }
	deadline := time.Now().Add(3 * time.Minute)
	for {
		if m := listenLine.FindStringSubmatch(p.log.String()); m != nil {
			p.addr = m[1]
			return p
		}
		select {
		case <-exited:
			t.Fatalf("agent exited before listening:\n%s", p.log.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent did not start:\n%s", p.log.String())
		}
	}
}

// holdReached waits until a job of the agent is at the hold point.
func (p *proc) holdReached(t *testing.T, point string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if _, err := os.Stat(filepath.Join(p.hold, point+".reached")); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no job reached the %s hold point:\n%s", point, p.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// holdRelease lets jobs pass the hold point.
func (p *proc) holdRelease(t *testing.T, point string) {
	if err := os.WriteFile(filepath.Join(p.hold, point+".release"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
}

// signal sends sig and waits for the process to exit.
func (p *proc) signal(sig syscall.Signal) {
	p.cmd.Process.Signal(sig)
	p.wait()
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
// cycle, then kills the agent (SIGKILL) in the middle of a backup (held at
// its hold point, so the kill always lands mid-job) and checks that the next
// start reports the backup as interrupted, leaves no file that looks valid,
// and accepts a new backup; the same for a restore; and SIGTERM during a job.
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
	agent := startAgentProc(t, bin, state)
	// Seeding while the agent runs goes through the agent's own database.
	if out := run(0, "a0agent", "seed", "--state-dir", state, "--users", "300"); !strings.Contains(out, "running agent") {
		t.Fatalf("seed did not use the running agent's database: %s", out)
	}
	run(1, "a0agent", "seed", "--state-dir", state, "--users", "10")
	pub := run(0, "a0cli", "create-key")
	run(0, "a0agent", "authorize", "--state-dir", state, "me", strings.TrimSpace(pub))
	if out := run(0, "a0agent", "keys", "--state-dir", state); !strings.Contains(out, "me") || !strings.Contains(out, "SHA256:") {
		t.Fatalf("keys: %s", out)
	}
	if out := run(0, "a0cli", "-t", agent.addr, "ping"); out != "{\"message\":\"PONG\"}\n" {
		t.Fatalf("ping: %q", out)
	}
	run(0, "a0cli", "-t", agent.addr, "set-as-backup", dev)
	noValidFile := func(when string) {
		t.Helper()
		left, _ := filepath.Glob(filepath.Join(dev, "backup", "*"))
		hidden, _ := filepath.Glob(filepath.Join(dev, "backup", ".*.part"))
		if len(hidden) != 0 {
			t.Fatalf("%s: partial files left after restart: %v", when, hidden)
		}
		for _, f := range left {
			if strings.HasSuffix(f, ".enc") {
				t.Fatalf("%s: a file that looks valid was left: %s", when, f)
			}
		}
	}
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		if out := run(0, "a0cli", "-t", agent.addr, "backup"); out != "Backup in progress.\n" {
			t.Fatalf("backup: %q", out)
		}
		agent.holdReached(t, "backup")
		if out := run(0, "a0cli", "-t", agent.addr, "backup-status"); !strings.Contains(out, "Backup in progress") {
			t.Fatalf("status at the hold point: %s", out)
		}
		if part, _ := filepath.Glob(filepath.Join(dev, "backup", ".*.part")); len(part) != 1 {
			t.Fatalf("at the hold point the backup's .part file should exist: %v", part)
		}
		agent.signal(sig)
		if sig == syscall.SIGTERM && !strings.Contains(agent.log.String(), "shutting down") {
			t.Fatalf("no shutdown log after SIGTERM:\n%s", agent.log.String())
		}
		agent = startAgentProc(t, bin, state)
		out := run(0, "a0cli", "-t", agent.addr, "backup-status")
		if !strings.Contains(out, `"message":"Backup failed"`) || !strings.Contains(out, "interrupted") {
			t.Fatalf("status after %v mid-backup: %s\nagent log:\n%s", sig, out, agent.log.String())
		}
		noValidFile(sig.String())
	}

	// The next backup works, and the retrieved file matches the status md5.
	agent.holdRelease(t, "backup")
	run(0, "a0cli", "-t", agent.addr, "backup", "--wait")
	var st foundStatus
	json.Unmarshal([]byte(run(0, "a0cli", "-t", agent.addr, "backup-status")), &st)
	if st.Message != "Backup found" {
		t.Fatalf("status %+v", st)
	}
	run(0, "a0cli", "-t", agent.addr, "backup-retrieve")
	body, _ := os.ReadFile(filepath.Join(work, "backup-retrieve.tar.gz.enc"))
	if sum := md5.Sum(body); hex.EncodeToString(sum[:]) != st.Arguments.MD5 {
		t.Fatal("md5 mismatch")
	}
	run(0, "a0cli", "verify", "backup-retrieve.tar.gz.enc")

	// SIGKILL, then SIGTERM, in the middle of a restore into a second node
	// (held after the restore marker is written): the next start says so in
	// restore-status and node-status (the marker in the database).
	state2 := filepath.Join(work, "node2")
	agent2 := startAgentProc(t, bin, state2)
	run(0, "a0agent", "authorize", "--state-dir", state2, "me", strings.TrimSpace(pub))
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		run(0, "a0cli", "-t", agent2.addr, "restore", "backup-retrieve.tar.gz.enc", "--detach", "--drop")
		agent2.holdReached(t, "restore")
		agent2.signal(sig)
		agent2 = startAgentProc(t, bin, state2)
		if out := run(0, "a0cli", "-t", agent2.addr, "restore-status"); !strings.Contains(out, "Restore failed") || !strings.Contains(out, "interrupted") {
			t.Fatalf("restore-status after %v mid-restore: %s", sig, out)
		}
		if out := run(0, "a0cli", "-t", agent2.addr, "node-status"); !strings.Contains(out, "did not finish") {
			t.Fatalf("node-status after %v mid-restore: %s", sig, out)
		}
	}
	agent2.holdRelease(t, "restore")
	run(0, "a0cli", "-t", agent2.addr, "restore", "backup-retrieve.tar.gz.enc", "--drop")
	if out := run(0, "a0cli", "-t", agent2.addr, "node-status"); strings.Contains(out, "did not finish") {
		t.Fatalf("marker left after a good restore: %s", out)
	}
	run(ExitRefused, "a0cli", "-t", agent.addr, "backup")
	run(0, "a0cli", "-t", agent.addr, "backup-delete")
	run(ExitNotFound, "a0cli", "-t", agent.addr, "backup-delete")
	run(0, "a0agent", "revoke", "--state-dir", state, "me")
	run(ExitAuth, "a0cli", "-t", agent.addr, "ping")

	// Graceful shutdown on SIGTERM with no job: exit 0.
	agent.cmd.Process.Signal(syscall.SIGTERM)
	agent.wait()
	if code := agent.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("agent exit %d after SIGTERM:\n%s", code, agent.log.String())
	}
	if !strings.Contains(agent.log.String(), "shutting down") {
		t.Fatalf("no shutdown log:\n%s", agent.log.String())
	}
}

// procView is what the test, as root, reads of one process: its command
// line and its initial environment (/proc/<pid>/environ, readable by its
// owner only).
type procView struct {
	pid              int
	cmdline, environ string
	environMode      os.FileMode
}

// scanProcs reads every process's command line and environment.
func scanProcs() []procView {
	var out []procView
	ms, _ := filepath.Glob("/proc/[0-9]*")
	for _, m := range ms {
		pid, err := strconv.Atoi(filepath.Base(m))
		if err != nil {
			continue
		}
		c, err := os.ReadFile(filepath.Join(m, "cmdline"))
		if err != nil {
			continue
		}
		v := procView{pid: pid, cmdline: string(c)}
		if e, err := os.ReadFile(filepath.Join(m, "environ")); err == nil {
			v.environ = string(e)
		}
		if st, err := os.Stat(filepath.Join(m, "environ")); err == nil {
			v.environMode = st.Mode().Perm()
		}
		out = append(out, v)
	}
	return out
}

// TestBinaryPasswordsNotInProcessListings runs the built a0cli with each
// password source while the built agent holds the backup, and scans every
// process on the machine: the password is in no command line but the CLI's
// own when given there (the documented leak of --password), in no
// environment but the CLI's own when given there (readable by its owner
// only), and never in the agent's or a child's.
func TestBinaryPasswordsNotInProcessListings(t *testing.T) {
	bin := buildBinaries(t)
	work := t.TempDir()
	state, dev, home := filepath.Join(work, "node"), filepath.Join(work, "dev"), filepath.Join(work, "cli")
	os.MkdirAll(dev, 0o700)
	agent := startAgentProc(t, bin, state)
	if code, out, errs := sh(t, bin, work, home, nil, "a0agent", "seed", "--state-dir", state, "--users", "20"); code != 0 {
		t.Fatalf("seed: %s %s", out, errs)
	}
	_, pub, _ := sh(t, bin, work, home, nil, "a0cli", "create-key")
	sh(t, bin, work, home, nil, "a0agent", "authorize", "--state-dir", state, "me", strings.TrimSpace(pub))
	if code, _, errs := sh(t, bin, work, home, nil, "a0cli", "-t", agent.addr, "set-as-backup", dev); code != 0 {
		t.Fatal(errs)
	}
	for _, src := range []string{"positional", "--password", "--password-file", "A0_BACKUP_PASSWORD"} {
		t.Run(src, func(t *testing.T) {
			pw := "Zq9-proc-" + strings.Trim(src, "-_") + "-4417"
			args := []string{"-t", agent.addr, "backup", "--wait"}
			var env []string
			switch src {
			case "positional":
				args = append(args, pw)
			case "--password":
				args = append(args, "--password", pw)
			case "--password-file":
				f := filepath.Join(work, "pw")
				os.WriteFile(f, []byte(pw+"\n"), 0o600)
				args = append(args, "--password-file", f)
			default:
				env = []string{"A0_BACKUP_PASSWORD=" + pw}
			}
			cmd := exec.Command(filepath.Join(bin, "a0cli"), args...)
			cmd.Dir, cmd.Env = work, append(append(os.Environ(), "A0CLI_HOME="+home), env...)
			var out syncBuffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// The CLI waits for the backup, the backup waits at its hold
			// point: both processes hold the password while we look.
			agent.holdReached(t, "backup")
			procs := scanProcs()
			agent.holdRelease(t, "backup")
			if err := cmd.Wait(); err != nil {
				t.Fatalf("a0cli backup: %v\n%s", err, out.String())
			}
			os.Remove(filepath.Join(agent.hold, "backup.reached"))
			os.Remove(filepath.Join(agent.hold, "backup.release"))
			if code, _, errs := sh(t, bin, work, home, nil, "a0cli", "-t", agent.addr, "backup-delete"); code != 0 {
				t.Fatal(errs)
			}

			cli, agentPid := cmd.Process.Pid, agent.cmd.Process.Pid
			var sawCLI, sawAgent bool
			for _, p := range procs {
				inCmd, inEnv := strings.Contains(p.cmdline, pw), strings.Contains(p.environ, pw)
				switch p.pid {
				case cli:
					sawCLI = true
					byArgv := src == "positional" || src == "--password"
					if inCmd != byArgv {
						t.Errorf("password in the CLI's command line: %v, want %v (%q)", inCmd, byArgv, p.cmdline)
					}
					if inEnv != (src == "A0_BACKUP_PASSWORD") {
						t.Errorf("password in the CLI's environment: %v", inEnv)
					}
					if p.environMode&0o077 != 0 {
						t.Errorf("/proc/%d/environ is mode %v: others can read the CLI's environment", p.pid, p.environMode)
					}
					continue
				case agentPid:
					sawAgent = true
				}
				if inCmd || inEnv {
					t.Errorf("process %d (%q) carries the password in its command line (%v) or environment (%v)", p.pid, strings.ReplaceAll(p.cmdline, "\x00", " "), inCmd, inEnv)
				}
			}
			if !sawCLI || !sawAgent {
				t.Fatalf("the scan missed the CLI (%v) or the agent (%v): it proves nothing", sawCLI, sawAgent)
			}
		})
	}
}

// TestBinaryAgentOnAnOutsideDatabase runs the built agent against a
// database it does not embed (a FerretDB server the test starts), given by
// --mongodb-uri, --mongodb-uri-file and $A0_MONGODB_URI: seed, back up,
// verify and restore through it; the file and environment forms keep the
// URI out of the agent's command line.
func TestBinaryAgentOnAnOutsideDatabase(t *testing.T) {
	bin := buildBinaries(t)
	srv, err := embedded.Start(context.Background(), embedded.Config{Dir: t.TempDir(), Oplog: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	uri := srv.URI()
	work := t.TempDir()
	home := filepath.Join(work, "cli")
	_, pub, _ := sh(t, bin, work, home, nil, "a0cli", "create-key")
	if code, out, errs := sh(t, bin, work, home, nil, "a0agent", "seed", "--mongodb-uri", uri, "--users", "40"); code != 0 {
		t.Fatalf("seed: %s %s", out, errs)
	}
	uriFile := filepath.Join(work, "mongodb-uri")
	os.WriteFile(uriFile, []byte(uri+"\n"), 0o600)
	for i, tc := range []struct {
		name string
		args []string
		env  []string
	}{
		{"--mongodb-uri", []string{"--mongodb-uri", uri}, nil},
		{"--mongodb-uri-file", []string{"--mongodb-uri-file", uriFile}, nil},
		{"A0_MONGODB_URI", nil, []string{"A0_MONGODB_URI=" + uri}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state, dev := filepath.Join(work, fmt.Sprint("node", i)), filepath.Join(work, fmt.Sprint("dev", i))
			os.MkdirAll(dev, 0o700)
			p := &proc{log: &syncBuffer{}, hold: t.TempDir()}
			p.cmd = exec.Command(filepath.Join(bin, "a0agent"), append([]string{"--state-dir", state, "--listen", "127.0.0.1:0"}, tc.args...)...)
			p.cmd.Env = append(os.Environ(), tc.env...)
			p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
			if err := p.cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan struct{})
			go func() { p.cmd.Wait(); close(exited) }()
			t.Cleanup(func() { p.cmd.Process.Kill(); <-exited })
			for deadline := time.Now().Add(2 * time.Minute); p.addr == ""; {
				if m := listenLine.FindStringSubmatch(p.log.String()); m != nil {
					p.addr = m[1]
					break
				}
				select {
				case <-exited:
					t.Fatalf("agent exited:\n%s", p.log.String())
				case <-time.After(20 * time.Millisecond):
				}
				if time.Now().After(deadline) {
					t.Fatalf("agent did not start:\n%s", p.log.String())
				}
			}
			if !strings.Contains(p.log.String(), "database=mongodb") {
				t.Fatalf("agent does not use the outside database:\n%s", p.log.String())
			}
			if tc.args == nil || tc.args[0] != "--mongodb-uri" {
				c, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.cmd.Process.Pid))
				if strings.Contains(string(c), uri) {
					t.Fatalf("the URI is in the agent's command line: %q", c)
				}
			}
			sh(t, bin, work, home, nil, "a0agent", "authorize", "--state-dir", state, "me", strings.TrimSpace(pub))
			pwEnv := []string{"A0_BACKUP_PASSWORD=Passw0rd-outside"}
			for _, args := range [][]string{{"set-as-backup", dev}, {"backup", "--wait"}, {"backup-retrieve", "-o", fmt.Sprint("outside", i, ".enc")}} {
				if code, out, errs := sh(t, bin, work, home, pwEnv, "a0cli", append([]string{"-t", p.addr}, args...)...); code != 0 {
					t.Fatalf("%v: exit %d %s %s\n%s", args, code, out, errs, p.log.String())
				}
			}
			code, out, errs := sh(t, bin, work, home, pwEnv, "a0cli", "verify", fmt.Sprint("outside", i, ".enc"))
			if code != 0 || !strings.Contains(out, "auth0.users") || !strings.Contains(out, "point-in-time") {
				t.Fatalf("verify: exit %d\n%s%s", code, out, errs)
			}
			sh(t, bin, work, home, nil, "a0cli", "-t", p.addr, "backup-delete")
		})
	}
}

// TestMongoURIRedacted: a URI with a password that does not connect fails
// the agent's start with an error and a log that do not hold the password.
func TestMongoURIRedacted(t *testing.T) {
	t.Parallel()
	const secret = "Zq9-uri-secret-5521"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing answers there
	buf := &syncBuffer{}
	_, err = agentNew(t, "mongodb://a0user:"+secret+"@"+addr+"/?serverSelectionTimeoutMS=300&connectTimeoutMS=300", buf)
	if err == nil {
		t.Fatal("agent started on a database that does not answer")
	}
	if strings.Contains(err.Error(), secret) || strings.Contains(buf.String(), secret) {
		t.Fatalf("the URI's password is in the error or the log:\n%v\n%s", err, buf.String())
	}
	if !strings.Contains(err.Error(), "database") {
		t.Fatalf("the error does not say what failed: %v", err)
	}
}
