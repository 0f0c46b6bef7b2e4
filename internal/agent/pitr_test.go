package agent

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/ops/dbjob"
	"github.com/a0backup/a0/internal/pitr"
	"github.com/a0backup/a0/internal/statedir"
	"github.com/a0backup/a0/internal/store"
	"github.com/a0backup/a0/internal/webhook"
)

// TestPITRGapAlertAndMetrics: a gap in the archive (a rollback removed
// the newest archived entry while the agent was down) is posted to the
// webhook as a "pitr_gap" event with its reason, and the a0_pitr_*
// metrics report the archive: newest entry, lag, gaps, bytes.
func TestPITRGapAlertAndMetrics(t *testing.T) {
	rcv, start := pitrWebhookNode(t)
	ctx := context.Background()
	a := start()
	archive20(t, a)
	last := a.archive.State().Newest
	// What a rollback leaves: the newest archived entry is gone.
	if res, err := a.client.Database("local").Collection("oplog.rs").DeleteOne(ctx, bson.D{{Key: "ts", Value: last}}); err != nil || res.DeletedCount != 1 {
		t.Fatalf("delete %v: %v %v", last, res, err)
	}
	a.Close()

	a = start()
	ev := rcv.waitEvent(t, "pitr_gap", func(ev webhook.Event) bool { return ev.Event == "pitr_gap" })
	if ev.Gap == nil || !strings.HasPrefix(ev.Gap.Reason, pitr.ReasonRollback) || ev.Kind != "pitr" || ev.Node == "" {
		t.Fatalf("gap event %+v", ev)
	}
	if _, err := a.client.Database("app").Collection("c").InsertOne(ctx, bson.D{{Key: "_id", Value: 100}}); err != nil {
		t.Fatal(err)
	}
	waitArchived(t, a)
	want := map[string]func(float64) bool{
		"a0_pitr_gaps_total":                        func(v float64) bool { return v == 1 },
		"a0_pitr_archive_bytes":                     func(v float64) bool { return v > 0 },
		"a0_pitr_newest_archived_timestamp_seconds": func(v float64) bool { return v == float64(a.archive.State().Newest.T) },
		"a0_pitr_lag_seconds":                       func(v float64) bool { return v == 0 },
	}
	deadline := time.Now().Add(time.Minute)
	for {
		got := scrapePITR(t, a.MetricsAddr())
		bad := ""
		for name, ok := range want {
			if v, found := got[name]; !found || !ok(v) {
				bad += " " + name + "=" + strconv.FormatFloat(v, 'f', -1, 64)
			}
		}
		if bad == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics:%s", bad)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitArchived waits until the archive holds the server's newest entry.
func waitArchived(t *testing.T, a *Agent) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		newest := a.serverNewest(context.Background())
		if st := a.archive.State(); !newest.IsZero() && st.Newest == newest {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("archive at %+v, server at %v", a.archive.State(), newest)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var metricLine = regexp.MustCompile(`(?m)^(a0_pitr_[a-z_]+) ([0-9.e+-]+)$`)

func scrapePITR(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := map[string]float64{}
	for _, m := range metricLine.FindAllStringSubmatch(string(b), -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		out[m[1]] = v
	}
	return out
}

// TestPITRReplicaSetChangedGap: a device whose archive's owner record
// names another replica set (set as backup on a node of another set, or
// the set re-initiated) gets a gap at the agent's start, although this
// member's oplog still holds the newest archived entry: the webhook's
// pitr_gap event and pitr-status say "replica set changed", the gap
// metric counts it, and the record then names this member's set.
func TestPITRReplicaSetChangedGap(t *testing.T) {
	rcv, start := pitrWebhookNode(t)
	ctx := context.Background()
	a := start()
	archive20(t, a)
	dir := a.archive.State().Dir
	a.Close()
	mine, ok, err := pitr.ReadOwner(dir)
	if err != nil || !ok {
		t.Fatalf("owner record: %v %v", ok, err)
	}
	// What the archiver of set rsOld's member writes: the device comes
	// from there.
	if err := os.WriteFile(filepath.Join(dir, pitr.OwnerFile), []byte(`{"replica_set":"rsOld","node":"old-node","since":"2026-12-01T00:00:00Z"}`), 0o600); err != nil {
		t.Fatal(err)
	}

	a = start()
	ev := rcv.waitEvent(t, "pitr_gap", func(ev webhook.Event) bool { return ev.Event == "pitr_gap" })
	if ev.Gap == nil || !strings.HasPrefix(ev.Gap.Reason, pitr.ReasonSetChanged+": rsOld -> ") {
		t.Fatalf("gap event %+v", ev)
	}
	if _, err := a.client.Database("app").Collection("c").InsertOne(ctx, bson.D{{Key: "_id", Value: 100}}); err != nil {
		t.Fatal(err)
	}
	waitArchived(t, a)
	rep, _, err := a.pitrReport(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Gaps) != 1 || rep.Gaps[0].Reason != ev.Gap.Reason || rep.Gaps[0].To == nil {
		t.Fatalf("pitr-status gaps %+v, want the set change", rep.Gaps)
	}
	if got, ok, err := pitr.ReadOwner(dir); err != nil || !ok || got.ReplicaSet != mine.ReplicaSet {
		t.Fatalf("owner record %+v %v %v, want %+v", got, ok, err, mine.ReplicaSet)
	}
	deadline := time.Now().Add(time.Minute)
	for scrapePITR(t, a.MetricsAddr())["a0_pitr_gaps_total"] != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("a0_pitr_gaps_total %v", scrapePITR(t, a.MetricsAddr())["a0_pitr_gaps_total"])
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// pitrWebhookNode is a backup node with the archive on (1 s slices) and a
// webhook receiver: start starts (again) its agent on the same state and
// device, closed at the test's end.
func pitrWebhookNode(t *testing.T) (*receiver, func() *Agent) {
	t.Helper()
	state, dev := t.TempDir(), t.TempDir()
	st, err := statedir.Open(state)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dev, store.FolderName), 0o700)
	if err := st.SaveNode(statedir.Node{Roles: []string{statedir.RoleBackup}, Device: dev}); err != nil {
		t.Fatal(err)
	}
	id, _ := age.GenerateX25519Identity()
	rcv := newReceiver(t, nil)
	return rcv, func() *Agent {
		a, err := New(context.Background(), Config{Jobs: dbjob.Runners(), StateDir: state, Listen: "127.0.0.1:0", MetricsListen: "127.0.0.1:0",
			Recipients: []string{id.Recipient().String()}, PITR: &PITR{Slice: time.Second, Retry: 100 * time.Millisecond},
			Webhook: rcv.url, WebhookCAFile: rcv.caFile, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Close() })
		return a
	}
}

// archive20 writes 20 documents into app.c and waits until the archive
// holds them.
func archive20(t *testing.T, a *Agent) {
	t.Helper()
	coll := a.client.Database("app").Collection("c")
	for i := range 20 {
		if _, err := coll.InsertOne(context.Background(), bson.D{{Key: "_id", Value: i}}); err != nil {
			t.Fatal(err)
		}
	}
	waitArchived(t, a)
}
