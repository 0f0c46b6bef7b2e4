package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/agent"
)

// tmpfsDevice mounts a tmpfs of size (mount's size= option) on a new
// temporary directory, a small backup device that fills for real, and
// unmounts it when the test ends. It needs root: the test skips without
// it (outside CI; under CI it fails).
func tmpfsDevice(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOutsideCI(t, "not root: cannot mount a small tmpfs as the backup device")
	}
	dev := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dev).CombinedOutput(); err != nil {
		skipOutsideCI(t, "mount tmpfs failed (%v: %s)", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dev).CombinedOutput(); err != nil {
			t.Logf("umount %s: %v %s", dev, err, out)
		}
	})
	return dev
}

// TestFaultSpaceUnderestimate (issue 27): the POST answers its 202 on the
// database size the agent last read, with no scan; data written since
// makes that an underestimate, which the job's own measurement beside the
// dump catches: the backup stops with the free-space rule's error and
// leaves nothing that looks valid. The estimate that proves the device too
// small is still refused before the 202 (TestFaultDeviceFull).
func TestFaultSpaceUnderestimate(t *testing.T) {
	dev := tmpfsDevice(t, "48m")
	n := startNodeWith(t, "", "", agent.Config{})
	n.seed(200)
	op := newOperator(t).withKey(n)
	op.mustOn(n, "set-as-backup", dev)
	var ns struct {
		DatabaseBytes int64 `json:"database_bytes"`
	}
	if err := json.Unmarshal([]byte(op.mustOn(n, "node-status", "--json").stdout), &ns); err != nil || ns.DatabaseBytes == 0 {
		t.Fatalf("node-status: %+v %v", ns, err)
	}
	// Grow the data well past what the agent read: 8 MB more.
	pad := strings.Repeat("x", 4000)
	docs := make([]any, 2000)
	for i := range docs {
		docs[i] = bson.D{{Key: "i", Value: i}, {Key: "pad", Value: pad}}
	}
	if _, err := n.client().Database("grown").Collection("after_status").InsertMany(context.Background(), docs); err != nil {
		t.Fatal(err)
	}
	// Room for twice the estimate, not for twice the data.
	fill(t, dev, 2*ns.DatabaseBytes+1<<20)
	defer os.Remove(filepath.Join(dev, "filler"))

	op.env["A0_BACKUP_PASSWORD"] = "Passw0rd-underestimate"
	// --wait follows the job: the POST answered 202 (the refusal before it
	// prints no "backup failed:"), then the job failed by the rule, with
	// the refusal's exit code.
	r := op.on(n, "backup", "--wait")
	if r.code != ExitRefused || !strings.Contains(r.stderr, "backup failed: not enough free space") {
		t.Fatalf("want the job stopped by the free-space rule, exit %d: %+v", ExitRefused, r)
	}
	st := decodeStatus(t, op.waitStatus(n, "backup-status"))
	if st.Message != "Backup failed" || !strings.Contains(st.Arguments.Error, "not enough free space") ||
		!strings.Contains(st.Arguments.Error, "twice the database's data size") {
		t.Fatalf("status %+v, want Backup failed by the free-space rule\n%s", st, n.log.String())
	}
	ents, _ := os.ReadDir(filepath.Join(dev, "backup"))
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".enc") || strings.HasSuffix(e.Name(), ".part") || e.Name() == ".work" {
			t.Errorf("left behind: %s", e.Name())
		}
	}
	// The job's measurement is now the agent's estimate: the next POST
	// is refused before its 202, with the rule's exit code.
	if r := op.on(n, "backup"); r.code != ExitRefused || !strings.Contains(r.stderr, "not enough free space") {
		t.Fatalf("the next backup must be refused before starting: %+v", r)
	}
}
