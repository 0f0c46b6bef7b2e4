package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/store"
)

// TestSetAsBackupRefusesSystemAndStatePaths (issue 25 point 9): a system
// path, the state directory, its secrets and a directory holding it are
// refused with device_invalid naming the device, and no backup folder is
// made there; a folder taken with force keeps, across a restart, the files
// named like backups that a0 did not write.
func TestSetAsBackupRefusesSystemAndStatePaths(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	n := startSecNodeCfg(t, Config{StateDir: state})
	ops := newKey(t)
	n.authorize(t, "ops", ops)
	cert := goodCert(t, ops)
	c := httpClient(&cert)
	shm, err := os.MkdirTemp("/dev/shm", "a0-device-test-")
	if err != nil {
		t.Skipf("no /dev/shm: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(shm) })
	for _, dev := range []string{"/etc", shm, state, filepath.Join(state, "secrets"), filepath.Dir(state)} {
		t.Run(dev, func(t *testing.T) {
			existed := false
			if _, err := os.Stat(filepath.Join(dev, store.FolderName)); err == nil {
				existed = true
			}
			r := do(c, "POST", n.url(api.PathSetAsBackup), strings.NewReader(`{"device":"`+dev+`","force":true}`), nil)
			if _, err := os.Stat(filepath.Join(dev, store.FolderName)); err == nil && !existed {
				// The old code made it (in /etc too): take it away first.
				os.Remove(filepath.Join(dev, store.FolderName))
				t.Errorf("a backup folder was made in %s", dev)
			}
			if r.status != 400 {
				t.Fatalf("set-as-backup %s: %d %s", dev, r.status, r.body)
			}
			if e := apiError(t, r); e.Code != api.CodeDeviceInvalid || !strings.Contains(e.Message, dev) {
				t.Fatalf("set-as-backup %s: %d %s", dev, r.status, r.body)
			}
		})
	}

	t.Run("force and a restart keep files a0 did not write", func(t *testing.T) {
		dev := t.TempDir()
		folder := filepath.Join(dev, store.FolderName)
		os.Mkdir(folder, 0o700)
		theirs := map[string]string{
			"notes.enc":                            "someone's encrypted notes",
			"01-02-2026-03-04-05.tar.gz.enc":       "not an a0 backup",
			".02-02-2026-03-04-05.tar.gz.enc.part": "not an a0 part either",
			"sensitive-keys.enc":                   "someone's keys",
		}
		// A .work of theirs, beside a spool a0's backup left.
		os.Mkdir(filepath.Join(folder, ".work"), 0o700)
		theirs[".work/notes.txt"] = "their notes"
		for name, body := range theirs {
			os.WriteFile(filepath.Join(folder, name), []byte(body), 0o600)
		}
		spool := filepath.Join(folder, ".work", ".a0-spool-123.bson")
		os.WriteFile(spool, []byte("a spool a killed backup left"), 0o600)
		if r := do(c, "POST", n.url(api.PathSetAsBackup), strings.NewReader(`{"device":"`+dev+`","force":true}`), nil); r.status != 200 {
			t.Fatalf("set-as-backup force: %d %s", r.status, r.body)
		}
		n.a.Close()
		// The restart cleans what interrupted backups left.
		again := startSecNodeCfg(t, Config{StateDir: state})
		for name, body := range theirs {
			if got, err := os.ReadFile(filepath.Join(folder, name)); err != nil || string(got) != body {
				t.Errorf("%s removed or changed by the restart: %v", name, err)
			}
		}
		if _, err := os.Stat(spool); err == nil {
			t.Error("the restart left the spool a0's backup left")
		}
		if strings.Contains(again.log.String(), "removed partial backup file") {
			t.Errorf("the restart removed a file: %s", again.log.String())
		}
	})
}
