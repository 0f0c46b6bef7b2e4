package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/a0backup/a0/internal/agent"
)

// logs shows the operator why a job failed, from the workstation (issue
// 28 point 14): the failed backup's records and its error, selected by
// --job and --level, as text and as JSON lines; and the passwords given
// to the jobs are in none of it.
func TestLogsShowWhyAJobFailed(t *testing.T) {
	h := newHolds(agent.HoldBackup)
	n := startNodeWith(t, "", "", agent.Config{Hold: h.hook})
	n.seed(50)
	op := newOperator(t).withKey(n)
	dev := t.TempDir()
	op.mustOn(n, "set-as-backup", dev)
	const pw = "Passw0rd-logs-S3cret"
	op.env["A0_BACKUP_PASSWORD"] = pw

	// The backup is held with its .part file written; its folder is then
	// replaced by a file, so that the backup fails.
	op.mustOn(n, "backup")
	h.wait(t, agent.HoldBackup)
	folder := filepath.Join(dev, "backup")
	if err := os.RemoveAll(folder); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(folder, []byte("not a folder"), 0o600); err != nil {
		t.Fatal(err)
	}
	h.let(agent.HoldBackup)
	// backup-status cannot read the folder: the log is how to follow.
	var failed string
	for !strings.Contains(failed, "job failed") {
		time.Sleep(20 * time.Millisecond)
		failed = op.mustOn(n, "logs", "--job", "backup", "--level", "error").stdout
	}
	lines := strings.Split(strings.TrimSpace(failed), "\n")
	last := lines[len(lines)-1]
	if !strings.Contains(last, "ERROR") || !strings.Contains(last, "job failed") || !strings.Contains(last, "kind=backup") ||
		!strings.Contains(last, "err=") || !strings.Contains(last, " job=backup@") {
		t.Fatalf("logs --job backup --level error: the job's failure is not its last line:\n%s", failed)
	}
	all := op.mustOn(n, "logs").stdout
	if !strings.Contains(all, "a0agent listening") || !strings.Contains(all, "backup running") {
		t.Fatalf("logs: the agent's start and the backup are missing:\n%s", all)
	}
	// --job selects: the agent's start was no job's.
	if strings.Contains(op.mustOn(n, "logs", "--job", "backup").stdout, "a0agent listening") {
		t.Fatal("logs --job backup shows a record logged outside the job")
	}

	js := op.mustOn(n, "logs", "--json", "--job", "backup", "--level", "error").stdout
	var recs []map[string]string
	for _, l := range strings.Split(strings.TrimSpace(js), "\n") {
		var m map[string]string
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("logs --json: not a JSON line: %q: %v", l, err)
		}
		recs = append(recs, m)
	}
	end := recs[len(recs)-1]
	if end["msg"] != "job failed" || end["level"] != "ERROR" || end["kind"] != "backup" || end["err"] == "" || !strings.HasPrefix(end["job"], "backup@") {
		t.Fatalf("logs --json: last record %v", end)
	}
	if _, err := time.Parse(time.RFC3339Nano, end["time"]); err != nil {
		t.Fatalf("logs --json: time %q: %v", end["time"], err)
	}

	// A backup that works, retrieved and restored with the password: the
	// password is in no record.
	if err := os.Remove(folder); err != nil {
		t.Fatal(err)
	}
	op.mustOn(n, "backup", "--wait")
	file := filepath.Join(t.TempDir(), "b.enc")
	op.mustOn(n, "backup-retrieve", "-o", file)
	op.mustOn(n, "restore", file, "--drop", "--password", pw)
	for _, args := range [][]string{{"logs", "--tail", "0"}, {"logs", "--tail", "0", "--json"}, {"logs", "--level", "debug", "--tail", "0"}} {
		out := op.mustOn(n, args...).stdout
		if strings.Contains(out, pw) {
			t.Fatalf("%v shows the backup password:\n%s", args, out)
		}
		if !strings.Contains(out, "job done") {
			t.Fatalf("%v: no job done:\n%s", args, out)
		}
	}
}

// The options are checked before the node is asked.
func TestLogsBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    LogsOptions
		want string
	}{
		{"level", LogsOptions{Level: "loud"}, "--level: unknown level"},
		{"since", LogsOptions{Since: "yesterday"}, "--since: want a duration"},
		{"tail", LogsOptions{Tail: -1}, "--tail: want a count"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := logsRequest(tc.o, time.Now())
			if code, _ := exitCode(err); err == nil || code != ExitUsage || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v (exit %d), want exit %d and %q", err, code, ExitUsage, tc.want)
			}
		})
	}
	now := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	r, err := logsRequest(LogsOptions{Since: "90m", Level: "WARN"}, now)
	if err != nil || !r.Since.Equal(now.Add(-90*time.Minute)) || r.Level != "warn" {
		t.Fatalf("got %+v %v", r, err)
	}
}
