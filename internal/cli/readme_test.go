package cli

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/a0backup/a0/internal/s3gw"
)

// readmePath is resolved when the package loads: tests of the harness
// change the working directory (chdirMu) while parallel tests run.
var readmePath, _ = filepath.Abs("../../README.md")

// TestReadmeUnattendedExample runs the README's unattended example (a
// schedule, recipients, a copy to a local versitygw) as written, with the
// built binaries first on PATH and its folder in a temporary directory:
// the README's promise that it runs is checked, not assumed (issue 16).
func TestReadmeUnattendedExample(t *testing.T) {
	t.Parallel() // the only test on ports 10121 and 7070
	bin := buildBinaries(t)
	gw := s3gw.Binary(t)
	readme, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "<!-- unattended-example -->\n```bash\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("README.md has no unattended example block")
	}
	dir := t.TempDir()
	script := strings.ReplaceAll(block, "/tmp/a0demo", filepath.Join(dir, "a0demo"))
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+filepath.Dir(gw)+":"+os.Getenv("PATH"), "A0CLI_HOME="+filepath.Join(dir, "cli"))
	// Its background agent and versitygw are in the script's process
	// group, stopped with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(5 * time.Minute):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		t.Fatalf("the example did not finish:\n%s", out.String())
	}
	logs := func() string {
		a, _ := os.ReadFile(filepath.Join(dir, "a0demo", "agent.log"))
		return out.String() + "\nagent.log:\n" + string(a)
	}
	if err != nil {
		t.Fatalf("the README's unattended example failed: %v\n%s", err, logs())
	}
	for _, want := range []string{"schedule:       every 10s", "local+remote", "remote store: http://127.0.0.1:7070/a0-backups/a0-1", "total:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the example's output lacks %q:\n%s", want, logs())
		}
	}
}
