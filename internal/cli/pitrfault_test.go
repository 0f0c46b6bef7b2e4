package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/a0backup/a0/internal/agent"
	"github.com/a0backup/a0/internal/embedded"
	"github.com/a0backup/a0/internal/pitr"
	"github.com/a0backup/a0/internal/statedir"
)

// rolledOplogEntries is the embedded oplog's budget in
// TestPITRRolledPastOplogWindow: small, so that the writes made while the
// agent is down push the archive's newest entry out of it.
const rolledOplogEntries = 300

// TestPITRRolledPastOplogWindow (issue 26, fault "killed past the oplog's
// window"): the agent is down while the server writes more than its oplog
// holds (the embedded oplog capped at 300 entries, trimmed as the agent's
// own trimmer does); started again, the archive finds its newest entry
// gone from the oplog: a gap "oplog rolled past the archive" is recorded,
// pitr-status says so (JSON and text), a0_pitr_gaps_total counts it, the
// archive goes on with what the oplog holds, and a restore to a time
// inside the gap is refused (exit 4) before any write, naming the windows.
func TestPITRRolledPastOplogWindow(t *testing.T) {
	x, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	state := t.TempDir()
	sd, err := statedir.Open(state)
	if err != nil {
		t.Fatal(err)
	}
	// The oplog is created with its budget the first time the server
	// starts: a small one here (the agent keeps what it finds).
	pre, err := embedded.Start(ctx, embedded.Config{Dir: sd.DBDir(), Oplog: true, OplogEntries: rolledOplogEntries})
	if err != nil {
		t.Fatal(err)
	}
	pre.Close()
	cfg := agent.Config{Recipients: []string{x.Recipient().String()}, PITR: &agent.PITR{Slice: time.Second, Retry: 100 * time.Millisecond},
		OplogKeepEntries: rolledOplogEntries, MetricsListen: "127.0.0.1:0"}
	n := startNodeWith(t, state, "", cfg)
	op := newOperator(t).withKey(n)
	dev := t.TempDir()
	op.mustOn(n, "set-as-backup", dev)
	coll := func(c *mongo.Client) *mongo.Collection { return c.Database("app").Collection("events") }
	insert := func(c *mongo.Client, from, count int) {
		t.Helper()
		for i := from; i < from+count; i++ {
			if _, err := coll(c).InsertOne(ctx, bson.D{{Key: "_id", Value: i}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	insert(n.client(), 0, 50)
	waitPITRRunning(t, op, n)
	// The base's consistent_to lies inside the archive: after its first
	// second.
	time.Sleep(1100 * time.Millisecond)
	insert(n.client(), 50, 10)
	op.mustOn(n, "backup", "--no-password")
	found := waitFound(t, op, n)
	// Writes after the backup, in seconds after its consistent_to (an
	// idle embedded server's is a clock point, not an entry).
	time.Sleep(1100 * time.Millisecond)
	insert(n.client(), 100, 50)
	st := waitPITRCaughtUp(t, op, n)
	if len(st.Arguments.Windows) != 1 || len(st.Arguments.Gaps) != 0 {
		t.Fatalf("before the agent goes down: %+v\nbackup: %s", st.Arguments, op.mustOn(n, "backup-status").stdout)
	}
	win := st.Arguments.Windows[0]
	archived := bson.Timestamp{T: win.ToTS.T, I: win.ToTS.I}

	// The agent is down; the server is not: it writes past its oplog's
	// window.
	addr := n.addr
	n.stop()
	srv, err := embedded.Start(ctx, embedded.Config{Dir: sd.DBDir(), Oplog: true})
	if err != nil {
		t.Fatal(err)
	}
	c, err := mongo.Connect(options.Client().ApplyURI(srv.URI()))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // the lost writes start in a second of their own
	insert(c, 1000, 2*rolledOplogEntries)
	lost := oplogEntries(t, c)
	if _, err := embedded.TrimOplog(ctx, c, rolledOplogEntries); err != nil {
		t.Fatal(err)
	}
	// A time inside the gap: the newest second of which the oplog kept
	// nothing after the archived entry.
	kept := oplogEntries(t, c)
	var inGap bson.Timestamp
	for ts := range lost {
		if _, ok := kept[ts]; !ok && archived.Before(ts) && (inGap.IsZero() || inGap.Before(ts)) {
			inGap = ts
		}
	}
	if _, ok := kept[archived]; ok || inGap.IsZero() {
		t.Fatalf("the oplog did not roll past %v (%d entries kept of %d)", archived, len(kept), len(lost))
	}
	c.Disconnect(ctx)
	srv.Close()

	n = startNodeWith(t, state, addr, cfg)
	insert(n.client(), 5000, 20)
	// The archive goes on after the gap: the gap ends at its next slice.
	deadline := time.Now().Add(time.Minute)
	for {
		st = pitrStatusOf(t, op, n)
		if a := st.Arguments; a != nil && a.LagSeconds == 0 && len(a.Gaps) == 1 && a.Gaps[0].To != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pitr-status after the oplog rolled: %+v\n%s", st.Arguments, n.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	g := st.Arguments.Gaps[0]
	if !strings.HasPrefix(g.Reason, pitr.ReasonRolledOff) || !g.From.Equal(time.Unix(int64(archived.T), 0).UTC()) || g.To == nil || !g.To.After(g.From) {
		t.Fatalf("gap %+v, archive ended at %v", g, archived)
	}
	text := op.mustOn(n, "pitr-status").stdout
	if !strings.Contains(text, "GAP:") || !strings.Contains(text, pitr.ReasonRolledOff) {
		t.Fatalf("pitr-status text does not show the gap:\n%s", text)
	}
	if len(st.Arguments.Windows) != 1 || st.Arguments.Windows[0].Base != found.Arguments.Name ||
		st.Arguments.Windows[0].ToTS.T != archived.T || st.Arguments.Windows[0].ToTS.I != archived.I {
		t.Fatalf("the base's window must end at the gap: %+v", st.Arguments.Windows)
	}
	if v := scrapeMetric(t, n, "a0_pitr_gaps_total"); v != 1 {
		t.Fatalf("a0_pitr_gaps_total %v", v)
	}

	// A restore to a point in the gap is refused before any write.
	before := countEvents(t, n.client())
	ageKey := writeAgeKey(t, op, x)
	r := op.on(n, "restore", "--identity", ageKey, "--drop", "--to-ts", fmt.Sprintf("%d,%d", inGap.T, inGap.I))
	wantWin := time.Unix(int64(archived.T), 0).UTC().Format("2006-01-02")
	if r.code != ExitRefused || !strings.Contains(r.stderr, "windows") || !strings.Contains(r.stderr, wantWin) {
		t.Fatalf("restore --to-ts inside the gap: %+v", r)
	}
	if after := countEvents(t, n.client()); after != before {
		t.Fatalf("the refused restore changed the data: %d documents, %d before", after, before)
	}
	t.Logf("gap %+v; refused: %s", g, strings.TrimSpace(r.stderr))
}

func writeAgeKey(t *testing.T, op *operator, x *age.X25519Identity) string {
	t.Helper()
	path := op.dir + "/age.key"
	if err := os.WriteFile(path, []byte(x.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

var metricValue = regexp.MustCompile(`(?m)^([a-z0-9_]+) ([0-9.e+-]+)$`)

// scrapeMetric reads one metric from the node's metrics endpoint.
func scrapeMetric(t *testing.T, n *testNode, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + n.a.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, m := range metricValue.FindAllStringSubmatch(string(b), -1) {
		if m[1] == name {
			v, _ := strconv.ParseFloat(m[2], 64)
			return v
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
