package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// TestRestoreReportNamesSkipped: the text report names every oplog entry
// not replayed by reason and namespace (issue 24), before the totals line.
func TestRestoreReportNamesSkipped(t *testing.T) {
	var out bytes.Buffer
	raw, _ := json.Marshal(map[string]any{"report": map[string]any{
		"ok": true, "oplog_applied": 3, "oplog_replay": "applyOps",
		"oplog_skipped": map[string]int64{"namespace-not-restored": 2, "users-and-roles-not-requested": 1},
		"oplog_skipped_namespaces": map[string]map[string]int64{
			"namespace-not-restored":        {"admin.system.version": 1, "config.system.sessions": 1},
			"users-and-roles-not-requested": {"admin.system.users": 1},
		},
	}})
	printRestoreResult(&Env{Stdout: &out}, raw)
	want := "oplog not replayed, namespace-not-restored: admin.system.version 1, config.system.sessions 1\n" +
		"oplog not replayed, users-and-roles-not-requested: admin.system.users 1\n" +
		"oplog: 3 entries replayed (applyOps); not replayed: namespace-not-restored 2, users-and-roles-not-requested 1\n"
	if !strings.HasSuffix(out.String(), want) {
		t.Fatalf("got\n%s\nwant suffix\n%s", out.String(), want)
	}
}
