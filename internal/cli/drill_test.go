package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/a0backup/a0/internal/api"
)

// node-status's drill lines and backups' prediction (issue 29): what an
// operator reads, for each outcome.
func TestDrillLines(t *testing.T) {
	at := time.Date(2026, 12, 6, 4, 0, 42, 0, time.UTC)
	next := at.Add(168 * time.Hour)
	ok := &api.DrillRun{Started: at.Add(-42 * time.Second), Finished: &at, Outcome: "ok", Backup: "06-12-2026-02-30-00.tar.gz", Seconds: 41.6}
	timed := &api.DrillRun{Started: at.Add(-60 * time.Second), Finished: &at, Outcome: "ok", Backup: "06-12-2026-02-30-00.tar.gz", Seconds: 41.6,
		CompareSeconds: 9.2, TotalSeconds: 60, CollectionsNotHeld: 1, DocumentsNotHeld: 3,
		Note: "1 collection(s) the embedded server cannot hold, not compared (3 documents it refuses: a field name with '.' or a leading '$', a Decimal128...): shop.orders"}
	failed := &api.DrillRun{Started: at, Finished: &at, Outcome: "failed", Reason: "the restored data differs from the backup's manifest: auth0.users: content digest differs"}
	for _, tc := range []struct {
		name string
		st   api.DrillStatus
		want []string
		not  []string
	}{
		{"none yet", api.DrillStatus{Schedule: "every 168h0m0s", NextRun: &next},
			[]string{"drill:          none yet (every 168h0m0s)", "next drill:     2026-12-13T04:00:42Z"}, []string{"last ok drill"}},
		{"ok", api.DrillStatus{Schedule: "every 168h0m0s", Last: ok, LastSuccess: ok},
			[]string{"drill:          ok at 2026-12-06T04:00:42Z, 42 s (06-12-2026-02-30-00.tar.gz)"}, []string{"last ok drill", "FAILED"}},
		// The restore's time first (the drill's measure), then the rest.
		{"ok, timed, a collection not held", api.DrillStatus{Schedule: "every 168h0m0s", Last: timed, LastSuccess: timed},
			[]string{"drill:          ok at 2026-12-06T04:00:42Z, 42 s (06-12-2026-02-30-00.tar.gz); restore 42 s, compare 9 s, 1 min 0 s in all; 1 collection(s) the embedded server cannot hold",
				"(3 documents it refuses", "shop.orders"}, nil},
		{"failed after ok", api.DrillStatus{Schedule: "every 168h0m0s", Last: failed, LastSuccess: ok, Failures: 1},
			[]string{"drill:          FAILED at 2026-12-06T04:00:42Z: the restored data differs", "auth0.users: content digest differs",
				"last ok drill:  ok at 2026-12-06T04:00:42Z, 42 s"}, nil},
		{"failed, never ok", api.DrillStatus{Schedule: "every 168h0m0s", Last: failed, Failures: 1},
			[]string{"drill:          FAILED at", "last ok drill:  none yet"}, nil},
		{"skipped", api.DrillStatus{Schedule: "every 168h0m0s", Last: &api.DrillRun{Started: at, Finished: &at, Outcome: "skipped", Reason: "a job started: the drill gave way and runs again after it (a backup job)"}},
			[]string{"drill:          skipped at 2026-12-06T04:00:42Z: a job started"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			printDrill(&b, &tc.st)
			for _, w := range tc.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("lacks %q:\n%s", w, b.String())
				}
			}
			for _, w := range tc.not {
				if strings.Contains(b.String(), w) {
					t.Errorf("has %q:\n%s", w, b.String())
				}
			}
		})
	}
	for _, tc := range []struct {
		name string
		p    api.RestorePrediction
		want string
	}{
		{"drill", api.RestorePrediction{Seconds: 423.4, From: "drill", At: at, Backup: "06-12-2026-02-30-00.tar.gz", BytesPerSecond: 12e6},
			"restore ≈ 7 min 3 s (predicted from the drill of 06-12-2026-02-30-00.tar.gz at 2026-12-06T04:00:42Z, 12.0 MB/s)"},
		// A restore of an uploaded file: the node knows no name for it.
		{"uploaded file", api.RestorePrediction{Seconds: 12, From: "restore", At: at, BytesPerSecond: 12e6},
			"restore ≈ 12 s (predicted from the restore of an uploaded file at 2026-12-06T04:00:42Z, 12.0 MB/s)"},
		{"under a second", api.RestorePrediction{Seconds: 0.2, From: "drill", At: at, Backup: "b.tar.gz", BytesPerSecond: 12e6},
			"restore ≈ 1 s (predicted from the drill of b.tar.gz at 2026-12-06T04:00:42Z, 12.0 MB/s)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := predictionText(&tc.p); got != tc.want {
				t.Errorf("prediction:\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}
