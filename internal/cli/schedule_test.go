package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/a0backup/a0/internal/agent"
	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/schedule"
	"github.com/a0backup/a0/internal/statedir"
	"github.com/a0backup/a0/internal/store"
)

var metricsLine = regexp.MustCompile(`metrics listening" addr=(\S+)`)

// startConfiguredAgent starts the built agent with --config cfg (its
// state dir and listen address come from the config) and waits until it
// listens; the address and the metrics address are read from its log.
func startConfiguredAgent(t *testing.T, bin, cfg string, env ...string) *proc {
	t.Helper()
	return startAgentCmd(t, bin, []string{"--config", cfg}, false, env...)
}

// TestScheduleMissedRunAfterRestart runs the built agent with a schedule
// of every 2s and "replace", encrypted to the operator's SSH key: a run
// stores a backup; the agent is killed and stays down while runs fall
// due; the next start runs once at once (reported as missed), replacing
// the stored backup. node-status (text and --json) shows the schedule, the
// last and the next run, the metrics the next run, and the backup
// retrieved opens with the operator's CLI key and nothing on the node.
func TestScheduleMissedRunAfterRestart(t *testing.T) {
	bin := buildBinaries(t)
	work := t.TempDir()
	state, dev, home := filepath.Join(work, "node"), filepath.Join(work, "dev"), filepath.Join(work, "cli")
	os.MkdirAll(filepath.Join(dev, "backup"), 0o700)
	run := func(wantCode int, name string, args ...string) string {
		t.Helper()
		code, out, errs := sh(t, bin, work, home, nil, name, args...)
		if code != wantCode {
			t.Fatalf("%s %v: exit %d, want %d\nstdout: %s\nstderr: %s", name, args, code, wantCode, out, errs)
		}
		return out
	}
	pub := strings.TrimSpace(run(0, "a0cli", "create-key"))
	run(0, "a0agent", "authorize", "--state-dir", state, "me", pub)
	run(0, "a0agent", "seed", "--state-dir", state, "--users", "30")
	st, err := statedir.Open(state)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SaveNode(statedir.Node{Roles: []string{statedir.RoleBackup}, Device: dev}); err != nil {
		t.Fatal(err)
	}
	cfgb, _ := json.Marshal(map[string]any{"state_dir": state, "listen": "127.0.0.1:0", "metrics_listen": "127.0.0.1:0",
		"recipients": []string{pub}, "schedule": map[string]string{"every": "2s"}, "replace": true})
	cfg := filepath.Join(work, "agent.json")
	os.WriteFile(cfg, cfgb, 0o600)
	if out := run(0, "a0agent", "check-config", "--config", cfg); !strings.Contains(out, "every 2s") {
		t.Fatalf("check-config: %s", out)
	}

	status := func(p *proc) api.NodeStatus {
		t.Helper()
		var ns api.NodeStatus
		if err := json.Unmarshal([]byte(run(0, "a0cli", "-t", p.addr, "node-status", "--json")), &ns); err != nil {
			t.Fatal(err)
		}
		if ns.Schedule == nil {
			t.Fatal("node-status --json has no schedule")
		}
		return ns
	}
	slot := store.Slot{Dir: filepath.Join(dev, store.FolderName), Kind: "backup"}
	p := startConfiguredAgent(t, bin, cfg)
	// A backup is stored (replacing runs keep one stored at every moment).
	var before *store.Meta
	for deadline := time.Now().Add(3 * time.Minute); before == nil; time.Sleep(100 * time.Millisecond) {
		before, _ = slot.Stored()
		if time.Now().After(deadline) {
			t.Fatalf("no backup stored in 3 minutes:\n%s", p.log.String())
		}
	}
	// Down (a crash): the last run was recorded durably before (it may be
	// one still running when killed).
	p.cmd.Process.Kill()
	p.wait()
	saved, err := schedule.LoadState(filepath.Join(state, "schedule.json"))
	if err != nil || saved.LastRun == nil {
		t.Fatalf("the last run on disk: %+v %v", saved.LastRun, err)
	}
	if before, err = slot.Stored(); err != nil {
		t.Fatal(err)
	}
	// Stay down until at least two runs fell due (every 2s after its start).
	for time.Since(saved.LastRun.Started) < 5*time.Second {
		time.Sleep(100 * time.Millisecond)
	}
	restarted := time.Now()
	hold := t.TempDir()
	p = startConfiguredAgent(t, bin, cfg, "A0_TEST_HOLD_DIR="+hold)
	p.hold = hold
	// The missed run starts at once; it is held at its start to be looked at.
	p.holdReached(t, agent.HoldBackup)
	r := status(p).Schedule.LastRun
	if r == nil || r.Outcome != "running" || !r.Started.After(restarted) || r.Missed < 1 || !r.Due.Before(restarted) {
		t.Fatalf("the run after the restart: %+v (last before: %+v)", r, saved.LastRun)
	}
	if !strings.Contains(p.log.String(), "missed while the agent was down") {
		t.Fatalf("the missed run is not logged:\n%s", p.log.String())
	}
	text := run(0, "a0cli", "-t", p.addr, "node-status")
	if !strings.Contains(text, "running [") || !strings.Contains(text, "missed while the agent was down, run once]") {
		t.Fatalf("node-status during the missed run:\n%s", text)
	}
	// One count, one meaning: the log, the record and node-status agree
	// (issue 28 point 9: the log said missed=2, node-status 1).
	logged := regexp.MustCompile(`missed while the agent was down[^\n]* missed=(\d+)`).FindStringSubmatch(p.log.String())
	if logged == nil || logged[1] != strconv.Itoa(r.Missed) || !strings.Contains(text, fmt.Sprintf("[%d run(s) missed", r.Missed)) {
		t.Fatalf("missed runs: the log says %q, the record %d, node-status:\n%s", logged, r.Missed, text)
	}
	p.holdRelease(t, agent.HoldBackupOplog) // the next hold point, let through too
	p.holdRelease(t, agent.HoldBackup)
	// It replaces the stored backup once verified: the old file goes.
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if _, err := os.Stat(slot.Path(before)); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stored backup %s was not replaced:\n%s", before.Name, p.log.String())
		}
	}
	if now, err := slot.Stored(); err != nil || !now.Verified || now.Name == before.Name {
		t.Fatalf("after the replacement: %+v %v", now, err)
	}

	text = run(0, "a0cli", "-t", p.addr, "node-status")
	for _, want := range []string{"schedule:       every 2s, encrypted to 1 recipient(s); replaces the stored backup", "last run:       ", "next run:       "} {
		if !strings.Contains(text, want) {
			t.Fatalf("node-status lacks %q:\n%s", want, text)
		}
	}
	ns := status(p)
	if ns.Schedule.NextRun == nil || !ns.Schedule.Replace || ns.Schedule.Recipients != 1 {
		t.Fatalf("node-status schedule: %+v", ns.Schedule)
	}
	m := metricsLine.FindStringSubmatch(p.log.String())
	if m == nil {
		t.Fatalf("no metrics address in the log:\n%s", p.log.String())
	}
	resp, err := http.Get("http://" + m[1] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body := new(strings.Builder)
	_, _ = copyAll(body, resp)
	if !regexp.MustCompile(`(?m)^a0_backup_next_run_timestamp_seconds \d`).MatchString(body.String()) {
		t.Fatalf("no next-run metric:\n%s", body.String())
	}

	// A new schedule starts afresh: no run is due at once, the last run
	// stays shown. (And the node is quiet for the retrieve.)
	p.signal(syscall.SIGTERM)
	cfgb, _ = json.Marshal(map[string]any{"state_dir": state, "listen": "127.0.0.1:0",
		"recipients": []string{pub}, "schedule": map[string]string{"every": "1h"}})
	os.WriteFile(cfg, cfgb, 0o600)
	restarted = time.Now()
	p = startConfiguredAgent(t, bin, cfg)
	ns = status(p)
	if ns.Schedule.Schedule != "every 1h0m0s" || ns.Schedule.NextRun == nil || ns.Schedule.NextRun.Before(restarted.Add(30*time.Minute)) ||
		ns.Schedule.LastRun == nil || ns.Schedule.LastRun.Started.After(restarted) {
		t.Fatalf("after a schedule change: %+v %+v", ns.Schedule, ns.Schedule.LastRun)
	}

	// The operator retrieves and verifies it with the CLI key (the
	// default identity); no password exists.
	run(0, "a0cli", "-t", p.addr, "backup-retrieve")
	if out := run(0, "a0cli", "verify", "backup-retrieve.tar.gz.enc"); !strings.Contains(out, "OK: every byte") || !strings.Contains(out, "auth0.users") {
		t.Fatalf("verify with the CLI key: %s", out)
	}
	other := filepath.Join(work, "other")
	sh(t, bin, work, other, nil, "a0cli", "create-key")
	if code, _, _ := sh(t, bin, work, other, nil, "a0cli", "verify", "backup-retrieve.tar.gz.enc"); code != ExitIntegrity {
		t.Fatalf("another key verified the scheduled backup: exit %d", code)
	}
}

func copyAll(w *strings.Builder, resp *http.Response) (int64, error) {
	defer resp.Body.Close()
	b := make([]byte, 32<<10)
	var n int64
	for {
		k, err := resp.Body.Read(b)
		w.Write(b[:k])
		n += int64(k)
		if err != nil {
			return n, nil
		}
	}
}
