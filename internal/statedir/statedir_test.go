package statedir

import (
	"os"
	"path/filepath"
	"testing"
)

func TestOpenCreatesSecretsOnce(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	d, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	files, err := d.SensitiveFiles(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 {
		t.Fatalf("sensitive files = %v, want the data key and the signing key", files)
	}
	before := map[string][]byte{}
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", f, st.Mode().Perm())
		}
		before[f], _ = os.ReadFile(f)
	}
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	for f, b := range before {
		after, _ := os.ReadFile(f)
		if string(after) != string(b) {
			t.Errorf("%s changed on second open", f)
		}
	}
}

func TestNodeRoundTrip(t *testing.T) {
	d, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	n, err := d.LoadNode()
	if err != nil || n.HasRole(RoleBackup) {
		t.Fatalf("fresh node: %+v, %v", n, err)
	}
	if err := d.SaveNode(Node{Roles: []string{RoleBackup}, Device: "/x"}); err != nil {
		t.Fatal(err)
	}
	n, err = d.LoadNode()
	if err != nil || !n.HasRole(RoleBackup) || n.Device != "/x" {
		t.Fatalf("reloaded: %+v, %v", n, err)
	}
}
