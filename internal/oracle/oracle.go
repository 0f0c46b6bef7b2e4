package oracle

import (
	"os"
	"path/filepath"
	"testing"
)

// Version is the mongo-tools release the oracles come from.
const Version = "mongo-tools-100.18.0"

// SharedDir returns the shared folder: $A0_SHARED when set, else the folder
// "shared" beside the module root (the directory holding go.mod). It returns
// "" when neither exists.
func SharedDir() string {
	if d := os.Getenv("A0_SHARED"); d != "" {
		return d
	}
	return sharedDir
}

// sharedDir is found when the package loads, from the test's own package
// directory: tests that change the working directory while others run in
// parallel must not move it.
var sharedDir = findShared()

func findShared() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(filepath.Dir(dir), "shared")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// Tool returns the path of a stock tool ("mongodump", "mongorestore",
// "bsondump"), or fails (CI) / skips (elsewhere) the test when it is missing.
func Tool(t testing.TB, name string) string {
	t.Helper()
	return need(t, filepath.Join(SharedDir(), "tools", Version, name))
}

// Fixture returns the path of a file or folder under the real-server
// fixtures, or fails (CI) / skips (elsewhere) the test when it is missing.
func Fixture(t testing.TB, rel ...string) string {
	t.Helper()
	return need(t, filepath.Join(append([]string{SharedDir(), "fixtures", Version}, rel...)...))
}

func need(t testing.TB, path string) string {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("oracle missing in CI: %v (CI must have ../shared beside its clone)", err)
		}
		t.Skipf("oracle missing: %v (set A0_SHARED or put ../shared beside the checkout)", err)
	}
	return path
}
