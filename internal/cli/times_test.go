package cli

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/a0backup/a0/internal/agent"
)

// One backup shows one time for its creation, its start, everywhere: its
// name, backup-status's "created", verify's "created:" and the restore
// plan's "created" (issue 28 point 9: 07:34:09 in the name and created,
// 07:34:10 in verify and the restore). The backup is held at its start
// past a second boundary, so that a second clock read when the dump
// starts would show.
func TestBackupShowsOneCreationTime(t *testing.T) {
	h := newHolds(agent.HoldBackup)
	n := startNodeWith(t, "", "", agent.Config{Hold: h.hook})
	n.seed(30)
	op := newOperator(t).withKey(n)
	op.mustOn(n, "set-as-backup", t.TempDir())
	const pw = "Passw0rd-one-clock"
	op.env["A0_BACKUP_PASSWORD"] = pw
	op.mustOn(n, "backup")
	h.wait(t, agent.HoldBackup)
	time.Sleep(1100 * time.Millisecond)
	h.let(agent.HoldBackup)

	var st struct {
		Message   string `json:"message"`
		Arguments struct {
			Name    string    `json:"name"`
			Created time.Time `json:"created"`
		} `json:"arguments"`
	}
	if err := json.Unmarshal([]byte(op.waitStatus(n, "backup-status")), &st); err != nil || st.Message != "Backup found" {
		t.Fatalf("backup-status: %+v %v", st, err)
	}
	created := st.Arguments.Created.UTC().Truncate(time.Second)
	named, err := time.Parse("02-01-2006-15-04-05.tar.gz", st.Arguments.Name)
	if err != nil || !named.Equal(created) {
		t.Fatalf("name %s (%v) is not backup-status's created %s", st.Arguments.Name, err, created)
	}

	file := filepath.Join(t.TempDir(), "b.enc")
	op.mustOn(n, "backup-retrieve", "-o", file)
	out := op.mustOn(n, "verify", file, "--password", pw).stdout
	m := regexp.MustCompile(`created:\s+(\S+ \S+) UTC`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("verify prints no created:\n%s", out)
	}
	if v, err := time.Parse("2006-01-02 15:04:05", m[1]); err != nil || !v.Equal(created) {
		t.Fatalf("verify's created %s is not backup-status's %s", m[1], created)
	}
	plan := op.mustOn(n, "restore", file, "--password", pw, "--dry-run", "--drop", "--json").stdout
	if !strings.Contains(plan, `"created":"`+created.Format("2006-01-02T15:04:05Z")+`"`) {
		t.Fatalf("restore --dry-run's created is not %s:\n%s", created.Format(time.RFC3339), plan)
	}
}
