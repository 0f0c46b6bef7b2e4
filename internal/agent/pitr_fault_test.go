package agent

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/crypt"
	"github.com/a0backup/a0/internal/ops"
	"github.com/a0backup/a0/internal/ops/dbjob"
	"github.com/a0backup/a0/internal/pitr"
	"github.com/a0backup/a0/internal/statedir"
	"github.com/a0backup/a0/internal/store"
	"github.com/a0backup/a0/internal/webhook"
)

// fillDevice writes a file in dir until the file system refuses (ENOSPC)
// and returns its path.
func fillDevice(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	// Then the last pages a smaller write still gets.
	for _, n := range []int{4096, 512, 1} {
		for {
			if _, err := f.Write(buf[:n]); err != nil {
				break
			}
		}
	}
	return path
}

// TestPITRDeviceFull (issue 26, fault "the device full"): the backup
// device is a small tmpfs; it fills while a writer runs. The archive's
// slice write is refused for lack of space: a gap is recorded with reason
// "device full", the webhook gets a pitr_gap event, a0_pitr_gaps_total
// counts it and pitr-status shows it (from the archiver's memory: the
// full device refuses gaps.json too), no .part is left. When space
// returns the archive resumes by itself: the gap is closed in gaps.json
// and in the next slice's authenticated header, the archive verifies as
// two windows cut at the gap, and nothing the oplog still held is lost.
func TestPITRDeviceFull(t *testing.T) {
	if os.Geteuid() != 0 {
		skipOutsideCI(t, "not root: cannot mount a small tmpfs as the backup device")
	}
	state, dev := t.TempDir(), t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", dev).CombinedOutput(); err != nil {
		skipOutsideCI(t, "mount tmpfs failed (%v: %s)", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dev).Run() })
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
	a, err := New(context.Background(), Config{Jobs: dbjob.Runners(), StateDir: state, Listen: "127.0.0.1:0", MetricsListen: "127.0.0.1:0",
		Recipients: []string{id.Recipient().String()}, PITR: &PITR{Slice: time.Second, Retry: 100 * time.Millisecond},
		Webhook: rcv.url, WebhookCAFile: rcv.caFile, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	ctx := context.Background()
	coll := a.client.Database("app").Collection("c")
	insert := func(from, n int) {
		t.Helper()
		for i := from; i < from+n; i++ {
			if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: i}, {Key: "pad", Value: strings.Repeat("x", 200)}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	insert(0, 20)
	waitArchived(t, a)
	before := a.archive.State().Newest

	filler := fillDevice(t, dev)
	insert(100, 50)
	ev := rcv.waitEvent(t, "pitr_gap", func(ev webhook.Event) bool { return ev.Event == "pitr_gap" })
	if ev.Gap == nil || !strings.HasPrefix(ev.Gap.Reason, pitr.ReasonDeviceFull) || !strings.Contains(ev.Gap.Reason, "no space left on device") {
		t.Fatalf("gap event %+v", ev.Gap)
	}
	rep, running, err := a.pitrReport(ctx)
	if err != nil || !running || len(rep.Gaps) != 1 || !strings.HasPrefix(rep.Gaps[0].Reason, pitr.ReasonDeviceFull) || rep.Gaps[0].To != nil ||
		!rep.Gaps[0].From.Equal(time.Unix(int64(before.T), 0).UTC()) {
		t.Fatalf("pitr-status while the device is full: running %v, %+v, %v", running, rep, err)
	}
	if !strings.Contains(rep.Error, "no space left on device") {
		t.Fatalf("pitr-status error while the device is full: %q", rep.Error)
	}
	waitMetric(t, a, "a0_pitr_gaps_total", 1)
	if got := a.archive.State().Newest; got != before {
		t.Fatalf("the archive moved on a full device: %v, was %v", got, before)
	}

	// Space returns: the archive resumes by itself, from its last
	// durable slice.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	insert(200, 20)
	waitArchived(t, a)
	rep, _, err = a.pitrReport(ctx)
	if err != nil || len(rep.Gaps) != 1 || rep.Gaps[0].To == nil || rep.Error != "" {
		t.Fatalf("pitr-status after space returned: %+v, %v", rep, err)
	}
	dir := ops.OplogDir(dev)
	des, _ := os.ReadDir(dir)
	for _, de := range des {
		if strings.HasSuffix(de.Name(), ".part") {
			t.Errorf("left behind: %s", de.Name())
		}
	}
	unlock := crypt.Unlock{Identities: []age.Identity{id}}
	proof, err := pitr.Verify(ctx, dir, unlock)
	if err != nil || len(proof.Windows) != 2 || len(proof.Gaps) != 1 || proof.Windows[0].To != before {
		t.Fatalf("after the device was full: %+v %v", proof, err)
	}
	// Nothing lost: the oplog still held the entries the full device
	// refused, and they are archived after the gap.
	ar, err := pitr.Open(dir, unlock)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[int32]bool{}
	for _, w := range proof.Windows {
		if err := ar.Entries(ctx, w.From, w.To, func(raw bson.Raw) error {
			if ns, _ := raw.Lookup("ns").StringValueOK(); ns == "app.c" {
				if id, ok := raw.Lookup("o", "_id").Int32OK(); ok {
					ids[id] = true
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if len(ids) != 90 {
		t.Fatalf("%d inserts archived, 90 made", len(ids))
	}
	waitMetric(t, a, "a0_pitr_gaps_total", 1)
}

// waitMetric waits until the metrics endpoint reports name = want.
func waitMetric(t *testing.T, a *Agent, name string, want float64) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		got, ok := scrapePITR(t, a.MetricsAddr())[name]
		if ok && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v (found %v), want %v", name, got, ok, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
