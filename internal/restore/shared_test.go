package restore

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMissingSharedSkipsOutsideCI runs the tests that read real-server
// fixtures from subtests in a child process whose ../shared is missing:
// outside CI they skip, saying why; with CI=true they fail, saying why;
// never "panic(nil) or runtime.Goexit", which a fixture looked up with the
// parent's t from a subtest gave (issue 28, point 10).
func TestMissingSharedSkipsOutsideCI(t *testing.T) {
	if os.Getenv("A0_SHARED_CHILD") != "" {
		t.Skip("child process")
	}
	missing := filepath.Join(t.TempDir(), "no-shared")
	for _, tc := range []struct {
		ci   string
		ok   bool
		want string
	}{
		{"", true, "--- SKIP: TestReplayRealCommandEntries"},
		{"true", false, "oracle missing in CI"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestReplayRealCommandEntries$", "-test.v", "-test.count=1")
		var env []string
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "CI=") && !strings.HasPrefix(kv, "A0_SHARED=") {
				env = append(env, kv)
			}
		}
		cmd.Env = append(env, "A0_SHARED="+missing, "CI="+tc.ci, "A0_SHARED_CHILD=1")
		out, err := cmd.CombinedOutput()
		if (err == nil) != tc.ok || !strings.Contains(string(out), tc.want) || strings.Contains(string(out), "Goexit") {
			t.Errorf("CI=%q: %v, want success %v and %q\n%s", tc.ci, err, tc.ok, tc.want, out)
		}
	}
}
