package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadmeInstallBuildsBothBinaries runs the README's build line as
// written (its bin/ in a temporary directory), from the module's root, and
// runs what it built: the two binaries every later command calls (issue
// 28 point 9: the README never said how to get them).
func TestReadmeInstallBuildsBothBinaries(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries: skipped with -short")
	}
	readme, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "<!-- install -->\n```bash\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("README.md has no install block")
	}
	var build []string
	for _, line := range strings.Split(block, "\n") {
		cmd, _, _ := strings.Cut(line, "#")
		if f := strings.Fields(cmd); len(f) > 2 && f[0] == "go" && f[1] == "build" {
			build = f
		}
	}
	if build == nil {
		t.Fatalf("no go build line in the README's install block:\n%s", block)
	}
	bin := t.TempDir()
	for i, a := range build {
		if a == "bin/" {
			build[i] = bin + "/"
		}
	}
	cmd := exec.Command(build[0], build[1:]...)
	cmd.Dir = filepath.Dir(readmePath)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", build, err, out)
	}
	for _, name := range []string{"a0agent", "a0cli"} {
		out, err := exec.Command(filepath.Join(bin, name), "version").CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), name+" ") {
			t.Fatalf("%s version after the README's build: %v %q", name, err, out)
		}
	}
	if !strings.Contains(block, "PATH") {
		t.Fatalf("the install block does not say how to put them on PATH:\n%s", block)
	}
}
