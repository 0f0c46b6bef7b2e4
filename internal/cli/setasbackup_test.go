package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Issue 28.8: set-as-backup onto another device while a backup is stored
// on the current one is refused (exit 4), naming the backup, its device and
// the ways on; with force it switches and says where the backup stays.
func TestSetAsBackupKeepsTheStoredBackupReachable(t *testing.T) {
	n, op, dev := backupNode(t, 20)
	op.env["A0_BACKUP_PASSWORD"] = "Passw0rd-switch"
	op.mustOn(n, "backup", "--wait")
	st := decodeStatus(t, op.mustOn(n, "backup-status").stdout)
	if st.Message != "Backup found" {
		t.Fatalf("%+v", st)
	}
	name := st.Arguments.Name
	// The same device again: nothing is left behind, nothing to refuse.
	if r := op.on(n, "set-as-backup", dev, "force"); r.code != 0 || strings.Contains(r.stderr, "stays on the previous device") {
		t.Fatalf("the same device: %+v", r)
	}

	other := t.TempDir()
	r := op.on(n, "set-as-backup", other)
	if r.code != ExitRefused {
		t.Fatalf("exit %d, want %d: %+v", r.code, ExitRefused, r)
	}
	for _, want := range []string{name, dev, "backup-delete", "backup-retrieve", "set-as-backup " + other + " force"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("the refusal lacks %q:\n%s", want, r.stderr)
		}
	}
	if st := decodeStatus(t, op.mustOn(n, "backup-status").stdout); st.Message != "Backup found" || st.Arguments.Name != name {
		t.Fatalf("after the refusal: %+v", st)
	}
	if _, err := os.Stat(filepath.Join(other, "backup")); err == nil {
		t.Errorf("the refused device was changed: %s/backup exists", other)
	}

	r = op.on(n, "set-as-backup", other, "--force")
	if r.code != 0 || !strings.Contains(r.stdout, `"left_behind":[{`) || !strings.Contains(r.stdout, `"name":"`+name) {
		t.Fatalf("force: %+v", r)
	}
	if !strings.Contains(r.stderr, "the stored backup "+name+" stays on the previous device "+dev) {
		t.Fatalf("force does not say where the backup stays:\n%s", r.stderr)
	}
	ents, _ := filepath.Glob(filepath.Join(dev, "backup", "*"+name+"*"))
	if len(ents) == 0 {
		t.Fatalf("the backup file is gone from %s", dev)
	}
	for _, e := range ents {
		if !strings.Contains(r.stderr, e) && !strings.HasSuffix(e, ".json") {
			t.Errorf("the path %s is not named:\n%s", e, r.stderr)
		}
	}
	if r := op.mustOn(n, "backup-status"); !strings.Contains(r.stdout, "No backup found") {
		t.Fatalf("the new device: %+v", r)
	}
}
