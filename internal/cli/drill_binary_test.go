package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/a0backup/a0/internal/agent"
	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/statedir"
)

// TestDrillKilledAndNextStart runs the built agent with "drill" every 2s,
// the drill's key made as docs/operations.md says (a0cli create-key under
// its own A0CLI_HOME, its public key among the recipients). A drill of the
// stored backup is held once its throwaway server's directory exists, and
// the agent is killed (SIGKILL) there: the directory stays; the next start
// removes it, reports the drill as failed (interrupted), and the next
// drill passes: node-status shows `drill: ok at ...`, `backups` predicts
// the restore time from it, and, after a restore, from the restore.
func TestDrillKilledAndNextStart(t *testing.T) {
	bin := buildBinaries(t)
	work := t.TempDir()
	state, dev, home, drillHome := filepath.Join(work, "node"), filepath.Join(work, "dev"), filepath.Join(work, "cli"), filepath.Join(work, "drillkey")
	os.MkdirAll(filepath.Join(dev, "backup"), 0o700)
	runAs := func(home string, wantCode int, name string, args ...string) string {
		t.Helper()
		code, out, errs := sh(t, bin, work, home, nil, name, args...)
		if code != wantCode {
			t.Fatalf("%s %v: exit %d, want %d\nstdout: %s\nstderr: %s", name, args, code, wantCode, out, errs)
		}
		return out
	}
	run := func(wantCode int, name string, args ...string) string {
		t.Helper()
		return runAs(home, wantCode, name, args...)
	}
	pub := strings.TrimSpace(run(0, "a0cli", "create-key"))
	drillPub := strings.TrimSpace(runAs(drillHome, 0, "a0cli", "create-key"))
	run(0, "a0agent", "authorize", "--state-dir", state, "me", pub)
	run(0, "a0agent", "seed", "--state-dir", state, "--users", "30")
	st, err := statedir.Open(state)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SaveNode(statedir.Node{Roles: []string{statedir.RoleBackup}, Device: dev}); err != nil {
		t.Fatal(err)
	}
	identity := filepath.Join(drillHome, "id_a0")
	cfgb, _ := json.Marshal(map[string]any{"state_dir": state, "listen": "127.0.0.1:0", "recipients": []string{pub, drillPub},
		"drill": map[string]string{"every": "2s", "identity": identity}})
	cfg := filepath.Join(work, "agent.json")
	os.WriteFile(cfg, cfgb, 0o600)
	if out := run(0, "a0agent", "check-config", "--config", cfg); !strings.Contains(out, "drill:       every 2s") {
		t.Fatalf("check-config: %s", out)
	}
	status := func(p *proc) *api.DrillStatus {
		t.Helper()
		var ns api.NodeStatus
		if err := json.Unmarshal([]byte(run(0, "a0cli", "-t", p.addr, "node-status", "--json")), &ns); err != nil {
			t.Fatal(err)
		}
		if ns.Drill == nil {
			t.Fatal("node-status --json has no drill")
		}
		return ns.Drill
	}

	hold := t.TempDir()
	os.WriteFile(filepath.Join(hold, agent.HoldDrill+".hold"), nil, 0o600)
	// The backup's hold point holds by default: not this test's.
	os.WriteFile(filepath.Join(hold, agent.HoldBackup+".release"), nil, 0o600)
	p := startConfiguredAgent(t, bin, cfg, "A0_TEST_HOLD_DIR="+hold)
	p.hold = hold
	run(0, "a0cli", "-t", p.addr, "backup", "--no-password", "--wait")
	p.holdReached(t, agent.HoldDrill)
	dirs, _ := filepath.Glob(filepath.Join(dev, "backup", ".drill", "a0-drill-*"))
	if len(dirs) != 1 {
		t.Fatalf("a held drill's directories: %v", dirs)
	}
	if d := status(p); d.Last == nil || d.Last.Outcome != "running" || d.Last.Backup == "" {
		t.Fatalf("node-status during the drill: %+v", d.Last)
	}
	p.cmd.Process.Kill()
	p.wait()
	if _, err := os.Stat(dirs[0]); err != nil {
		t.Fatalf("the killed drill's directory: %v", err)
	}

	p = startConfiguredAgent(t, bin, cfg)
	if _, err := os.Stat(dirs[0]); !os.IsNotExist(err) {
		t.Fatalf("the killed drill's directory after the restart: %v\n%s", err, p.log.String())
	}
	if !strings.Contains(p.log.String(), "removed the directory of an interrupted restore drill") {
		t.Errorf("the removal is not logged:\n%s", p.log.String())
	}
	var d *api.DrillStatus
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if d = status(p); d.Last != nil && d.Last.Outcome == "ok" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no drill passed in 3 minutes: %+v\n%s", d.Last, p.log.String())
		}
	}
	if d.Failures != 1 || d.LastSuccess == nil || d.Last.Seconds <= 0 {
		t.Fatalf("drill status: %+v (last %+v)", d, d.Last)
	}
	if text := run(0, "a0cli", "-t", p.addr, "node-status"); !strings.Contains(text, "drill:          ok at ") {
		t.Fatalf("node-status:\n%s", text)
	}
	if text := run(0, "a0cli", "-t", p.addr, "backups"); !strings.Contains(text, "restore ≈ ") || !strings.Contains(text, "predicted from the drill of "+d.Last.Backup) {
		t.Fatalf("backups:\n%s", text)
	}
	// A drill asked for now, followed to its end.
	if out := run(0, "a0cli", "-t", p.addr, "drill", "--wait"); !strings.HasPrefix(out, "drill:          ok at ") {
		t.Fatalf("drill --wait: %q", out)
	}
	// A restore of the stored backup (the operator's key opens it; the
	// drills give way to it) measures the rate the next prediction uses.
	run(0, "a0cli", "-t", p.addr, "restore", "--drop")
	if text := run(0, "a0cli", "-t", p.addr, "backups"); !strings.Contains(text, "predicted from the restore of "+d.Last.Backup) {
		t.Fatalf("backups after a restore:\n%s", text)
	}
	var list api.Backups
	if err := json.Unmarshal([]byte(run(0, "a0cli", "-t", p.addr, "backups", "--json")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Backups) != 1 || list.Backups[0].RestorePrediction == nil || list.Backups[0].RestorePrediction.From != "restore" ||
		list.Backups[0].RestorePrediction.Seconds <= 0 {
		t.Fatalf("backups --json: %+v", list.Backups)
	}
	if dirs, _ := filepath.Glob(filepath.Join(dev, "backup", ".drill", "a0-drill-*")); len(dirs) > 1 {
		t.Fatalf("drill directories left: %v", dirs)
	}
}
