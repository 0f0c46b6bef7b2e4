package cli

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// stateSnapshot lists every file of a state directory but the embedded
// database's own (the running server writes them) with its size and
// modification time.
func stateSnapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() && rel == "db" {
			return filepath.SkipDir
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		out[rel] = strconv.FormatInt(fi.Size(), 10) + " " + fi.ModTime().String()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSecondAgentOnTheStateDir (issue 25.6): a second a0agent started on
// the state directory of a running one exits non-zero naming the first's
// PID, and touches nothing: every file of the state directory (job
// records, uploads, embedded.uri, secrets) is as it was, and the first
// agent still runs.
func TestSecondAgentOnTheStateDir(t *testing.T) {
	bin := buildBinaries(t)
	state := t.TempDir()
	first := startAgentProc(t, bin, state)
	// A partial upload and a job record, as a running job leaves them.
	if err := os.WriteFile(filepath.Join(state, "uploads", "u1.upload"), []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := stateSnapshot(t, state)
	if _, ok := before["embedded.uri"]; !ok {
		t.Fatalf("the first agent wrote no embedded.uri: %v", before)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	second := exec.CommandContext(ctx, filepath.Join(bin, "a0agent"), "--state-dir", state, "--listen", "127.0.0.1:0")
	out, err := second.CombinedOutput()
	var ee *exec.ExitError
	if ctx.Err() != nil || !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("second agent: %v (context %v), want a non-zero exit:\n%s", err, ctx.Err(), out)
	}
	if pid := strconv.Itoa(first.cmd.Process.Pid); !strings.Contains(string(out), "pid "+pid) {
		t.Fatalf("second agent's error does not name pid %s:\n%s", pid, out)
	}
	after := stateSnapshot(t, state)
	for name, v := range before {
		if after[name] != v {
			t.Errorf("%s changed: %q -> %q", name, v, after[name])
		}
	}
	for name := range after {
		if _, ok := before[name]; !ok {
			t.Errorf("%s appeared", name)
		}
	}
	if err := first.cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the first agent is gone (%v):\n%s", err, first.log.String())
	}
}
