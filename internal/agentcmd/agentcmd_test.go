package agentcmd

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/a0backup/a0/internal/statedir"
)

func TestSeedBeforeStart(t *testing.T) {
	state := t.TempDir()
	var out bytes.Buffer
	if err := RunSeed(context.Background(), SeedOptions{StateDir: state, Users: 50}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "auth0.users") || !strings.Contains(out.String(), "50") {
		t.Fatalf("seed output: %s", out.String())
	}
	if _, err := os.Stat(filepath.Join(state, "db")); err != nil {
		t.Fatalf("no embedded database: %v", err)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"no state dir", []string{}, 2},
		{"unknown command", []string{"--state-dir", t.TempDir(), "frobnicate"}, 2},
		{"authorize missing key", []string{"authorize", "--state-dir", t.TempDir(), "name"}, 2},
		{"authorize bad key", []string{"authorize", "--state-dir", t.TempDir(), "name", "ssh-ed25519 nope"}, 1},
		{"revoke unknown", []string{"revoke", "--state-dir", t.TempDir(), "nobody"}, 1},
		{"version", []string{"version"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := Main(context.Background(), tc.args, &out, &errb); code != tc.code {
				t.Fatalf("exit %d, want %d; stderr %s", code, tc.code, errb.String())
			}
		})
	}
}

func TestConfigFileFlagsWin(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "a0.json")
	os.WriteFile(cfg, []byte(`{"state_dir":"/from/file","listen":":1","sensitive_paths":["/etc/x"]}`), 0o600)
	o := RunOptions{Config: cfg, Listen: ":2"}
	if err := o.fill(); err != nil {
		t.Fatal(err)
	}
	if o.StateDir != "/from/file" || o.Listen != ":2" || len(o.SensitivePaths) != 1 {
		t.Fatalf("%+v", o)
	}
	os.WriteFile(cfg, []byte(`{"state_dir":"x","bogus":1}`), 0o600)
	if err := (&RunOptions{Config: cfg}).fill(); err == nil {
		t.Fatal("unknown config field accepted")
	}
}

// TestSeedNeverRunsASecondServer (issue 25.6): seed on a state directory
// whose lock another process holds (a running agent) and whose embedded
// database does not answer refuses, naming the holder, and starts no
// server of its own on the agent's SQLite files.
func TestSeedNeverRunsASecondServer(t *testing.T) {
	state := t.TempDir()
	lock, err := statedir.TakeLock(state)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Release()
	var out bytes.Buffer
	err = RunSeed(context.Background(), SeedOptions{StateDir: state, Users: 5}, &out)
	var held *statedir.LockedError
	if !errors.As(err, &held) || held.PID != os.Getpid() {
		t.Fatalf("seed with the state directory held: %v, want a LockedError naming pid %d", err, os.Getpid())
	}
	if ents, _ := os.ReadDir(filepath.Join(state, "db")); len(ents) > 0 {
		t.Fatalf("seed wrote the database files %v while another process held the state directory", ents)
	}
}
