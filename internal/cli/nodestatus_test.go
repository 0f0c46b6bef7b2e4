package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/a0backup/a0/internal/agent"
	"github.com/a0backup/a0/internal/api"
)

// node-status answers from the agent's cache of the database size, never
// waiting for dbStats (issue 28 point 4: 5.6-10 s on a 333 MB database,
// 34.7 s during a restore): with the background read held, it still
// answers, says the size is being measured, and once the read is let go
// shows the size.
func TestNodeStatusAnswersWhileSizeReadHeld(t *testing.T) {
	h := newHolds(agent.HoldDatabaseSize)
	n := startNodeWith(t, "", "", agent.Config{Hold: h.hook})
	n.seed(50)
	op := newOperator(t).withKey(n)

	// The first node-status starts the read, which is held: it answers
	// all the same.
	r := op.mustOn(n, "node-status")
	h.wait(t, agent.HoldDatabaseSize)
	if !strings.Contains(r.stdout, "data size being measured") {
		t.Fatalf("node-status with the size read held:\n%s", r.stdout)
	}
	var st api.NodeStatus
	if err := json.Unmarshal([]byte(op.mustOn(n, "node-status", "--json").stdout), &st); err != nil {
		t.Fatal(err)
	}
	if st.DatabaseBytesRead != nil || st.DatabaseBytes != 0 || st.DatabaseBytesRefreshSeconds == 0 {
		t.Fatalf("node-status --json with the size read held: %+v", st)
	}

	h.let(agent.HoldDatabaseSize)
	for {
		r = op.mustOn(n, "node-status")
		if strings.Contains(r.stdout, " of data") {
			break
		}
		if !strings.Contains(r.stdout, "being measured") {
			t.Fatalf("node-status after the read was let go:\n%s", r.stdout)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if strings.Contains(r.stdout, "measured ") && strings.Contains(r.stdout, " ago") {
		t.Fatalf("a fresh size is shown with an age:\n%s", r.stdout)
	}
}

// The database line shows the size's age only when it is older than the
// refresh period, and says when none was measured yet; an old agent's
// answer (no refresh period) prints as before.
func TestNodeStatusDatabaseLine(t *testing.T) {
	at := time.Now()
	for _, tc := range []struct {
		name string
		st   api.NodeStatus
		want string
	}{
		{"old agent", api.NodeStatus{Database: "embedded", ServerVersion: "7.0.77", DatabaseBytes: 2048},
			"embedded 7.0.77, 2.0 kB of data"},
		{"fresh", api.NodeStatus{Database: "embedded", ServerVersion: "7.0.77", DatabaseBytes: 2048,
			DatabaseBytesRead: &at, DatabaseBytesAgeSeconds: 12, DatabaseBytesRefreshSeconds: 30},
			"embedded 7.0.77, 2.0 kB of data"},
		{"stale", api.NodeStatus{Database: "embedded", ServerVersion: "7.0.77", DatabaseBytes: 2048,
			DatabaseBytesRead: &at, DatabaseBytesAgeSeconds: 200, DatabaseBytesRefreshSeconds: 30},
			"embedded 7.0.77, 2.0 kB of data (measured 3m20s ago)"},
		{"failed", api.NodeStatus{Database: "mongodb", DatabaseBytes: 2048,
			DatabaseBytesRead: &at, DatabaseBytesAgeSeconds: 200, DatabaseBytesRefreshSeconds: 30, DatabaseBytesError: "timeout"},
			"mongodb, 2.0 kB of data (measured 3m20s ago); the last measurement failed: timeout"},
		{"never", api.NodeStatus{Database: "embedded", ServerVersion: "7.0.77", DatabaseBytesRefreshSeconds: 30},
			"embedded 7.0.77, data size being measured (ask again in a few seconds)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := databaseLine(tc.st); got != tc.want {
				t.Fatalf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}
