package statedir

import (
	"errors"
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

// TestOpenExistingMakesNothing (issue 25.14): a missing directory, an
// empty one and one that only looks like a state directory are refused and
// left as they were; a directory Open made is opened.
func TestOpenExistingMakesNothing(t *testing.T) {
	base := t.TempDir()
	empty := filepath.Join(base, "empty")
	if err := os.Mkdir(empty, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{filepath.Join(base, "typo"), empty} {
		if _, err := OpenExisting(dir); !errors.Is(err, ErrNotStateDir) {
			t.Fatalf("OpenExisting(%s) = %v, want ErrNotStateDir", dir, err)
		}
	}
	if _, err := os.Stat(filepath.Join(base, "typo")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the mistyped directory was made: %v", err)
	}
	if ents, _ := os.ReadDir(empty); len(ents) != 0 {
		t.Fatalf("the empty directory now holds %v", ents)
	}
	real := filepath.Join(base, "state")
	if _, err := Open(real); err != nil {
		t.Fatal(err)
	}
	if d, err := OpenExisting(real); err != nil || d.Path != real {
		t.Fatalf("OpenExisting of a state directory: %v, %v", d, err)
	}
}
