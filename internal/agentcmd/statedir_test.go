package agentcmd

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadOnlyCommandsRefuseANonStateDir (issue 25.14): keys, fingerprint
// and revoke on a mistyped --state-dir fail (exit 1) saying it is not a
// state directory, and create nothing there: no directory, no secrets.
func TestReadOnlyCommandsRefuseANonStateDir(t *testing.T) {
	for _, args := range [][]string{{"keys"}, {"fingerprint"}, {"revoke", "me"}} {
		t.Run(args[0], func(t *testing.T) {
			base := t.TempDir()
			typo := filepath.Join(base, "stat-dir")
			var out, errb bytes.Buffer
			argv := append([]string{args[0], "--state-dir", typo}, args[1:]...)
			if code := Main(context.Background(), argv, &out, &errb); code != 1 {
				t.Fatalf("exit %d, want 1; stderr %s", code, errb.String())
			}
			if !strings.Contains(errb.String(), "not an a0agent state directory") {
				t.Fatalf("stderr does not say why: %s", errb.String())
			}
			if _, err := os.Stat(typo); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("%s was created (%v)", typo, err)
			}
		})
	}
}
