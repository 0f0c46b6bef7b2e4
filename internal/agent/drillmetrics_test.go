package agent

import (
	"testing"
	"time"

	"github.com/a0backup/a0/internal/ops"
)

// TestDrillMetricsDuration: a0_restore_drill_duration_seconds is the last
// measured restore of a drill. A drill that measured none (skipped, or
// failed before it restored) left the gauge at 0, which the collector
// leaves out: the metric vanished from the scrape after every preempted
// drill and after a restart that followed one.
func TestDrillMetricsDuration(t *testing.T) {
	ok := &ops.DrillRun{Outcome: ops.DrillOK, Seconds: 6}
	for _, tc := range []struct {
		name string
		st   ops.DrillState
		want time.Duration
	}{
		{"ok", ops.DrillState{Last: ok, LastSuccess: ok}, 6 * time.Second},
		{"failed with a restore", ops.DrillState{Last: &ops.DrillRun{Outcome: ops.DrillFailed, Seconds: 4}, LastSuccess: ok}, 4 * time.Second},
		{"skipped after an ok", ops.DrillState{Last: &ops.DrillRun{Outcome: ops.DrillSkipped}, LastSuccess: ok}, 6 * time.Second},
		{"failed before restoring", ops.DrillState{Last: &ops.DrillRun{Outcome: ops.DrillFailed}, LastSuccess: ok}, 6 * time.Second},
		{"none yet", ops.DrillState{Last: &ops.DrillRun{Outcome: ops.DrillFailed}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := drillMetrics(tc.st).Duration; got != tc.want {
				t.Fatalf("duration %v, want %v", got, tc.want)
			}
		})
	}
}
