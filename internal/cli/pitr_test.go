package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/a0backup/a0/internal/agent"
	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/crypt"
	"github.com/a0backup/a0/internal/ops"
	"github.com/a0backup/a0/internal/pitr"
	"github.com/a0backup/a0/internal/remote"
	"github.com/a0backup/a0/internal/s3gw"
)

type pitrReply struct {
	Message   string          `json:"message"`
	Arguments *api.PITRStatus `json:"arguments"`
}

func pitrStatusOf(t *testing.T, op *operator, n *testNode) pitrReply {
	t.Helper()
	r := op.mustOn(n, "pitr-status", "--json")
	var out pitrReply
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("pitr-status --json: %v\n%s", err, r.stdout)
	}
	return out
}

// archiveWriter writes inserts, updates and deletes until stopped.
type archiveWriter struct {
	stop chan struct{}
	done chan struct{}
	n    atomic.Int64
	err  error
}

func startArchiveWriter(c *mongo.Client, from int) *archiveWriter {
	w := &archiveWriter{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		ctx := context.Background()
		coll := c.Database("app").Collection("events")
		for i := from; ; i++ {
			select {
			case <-w.stop:
				return
			default:
			}
			var err error
			switch i % 3 {
			case 0, 1:
				_, err = coll.InsertOne(ctx, bson.D{{Key: "_id", Value: i}, {Key: "v", Value: i}})
			case 2:
				_, err = coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: i - 2}}, bson.D{{Key: "$set", Value: bson.D{{Key: "v", Value: -i}}}})
				if err == nil && i%4 == 0 {
					_, err = coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: i - 1}})
				}
			}
			if err != nil {
				w.err = err
				return
			}
			w.n.Add(1)
			time.Sleep(2 * time.Millisecond)
		}
	}()
	return w
}

func (w *archiveWriter) halt(t *testing.T) {
	t.Helper()
	close(w.stop)
	<-w.done
	if w.err != nil {
		t.Fatal(w.err)
	}
}

// oplogEntries is the server's oplog without local.*, keyed by ts.
func oplogEntries(t *testing.T, c *mongo.Client) map[bson.Timestamp]bson.Raw {
	t.Helper()
	ctx := context.Background()
	cur, err := c.Database("local").Collection("oplog.rs").Find(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close(ctx)
	out := map[bson.Timestamp]bson.Raw{}
	for cur.Next(ctx) {
		if ns, _ := cur.Current.Lookup("ns").StringValueOK(); strings.HasPrefix(ns, "local.") {
			continue
		}
		t1, i1, _ := cur.Current.Lookup("ts").TimestampOK()
		out[bson.Timestamp{T: t1, I: i1}] = append(bson.Raw(nil), cur.Current...)
	}
	return out
}

// waitPITRCaughtUp waits until pitr-status's lag is 0 and the newest
// archived entry is the server's newest.
func waitPITRCaughtUp(t *testing.T, op *operator, n *testNode) pitrReply {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	var newest bson.Timestamp
	var newestEntry bson.Raw
	for {
		st := pitrStatusOf(t, op, n)
		if st.Arguments != nil && st.Arguments.LagSeconds == 0 && st.Arguments.Slices > 0 {
			for ts, e := range oplogEntries(t, n.client()) {
				if ts.T > newest.T || ts.T == newest.T && ts.I > newest.I {
					newest, newestEntry = ts, e
				}
			}
			if len(st.Arguments.Windows) == 0 {
				return st
			}
			if to := st.Arguments.Windows[len(st.Arguments.Windows)-1].ToTS; to.T == newest.T && to.I == newest.I {
				return st
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the archive did not catch up: %+v\nserver newest %v: %v\nlog:\n%s", st.Arguments, newest, newestEntry, n.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestPITRAgent: a real agent with "pitr" archives the embedded server's
// oplog on its backup device while a writer runs: beside a backup (held
// mid-job: the archive moves on, the one-job rule does not apply to it),
// across a restart of the agent (no gap, one window), and pitr-status
// says what can be restored from the backup, as JSON and as text. Every
// entry of the server's oplog is in the archive exactly once, authentic
// and chained. set-as-backup on another device moves the archive there.
func TestPITRAgent(t *testing.T) {
	x, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	h := newHolds(agent.HoldBackup)
	state := t.TempDir()
	cfg := agent.Config{Recipients: []string{x.Recipient().String()}, PITR: &agent.PITR{Slice: time.Second, Retry: 100 * time.Millisecond},
		Hold: h.hook}
	n := startNodeWith(t, state, "", cfg)
	admin := newOperator(t).withKey(n)

	if st := pitrStatusOf(t, admin, n); st.Message != api.MessagePITRStopped {
		t.Fatalf("without a device: %+v", st)
	}
	if r := startNode(t, "", ""); true {
		if st := pitrStatusOf(t, newOperator(t).withKey(r), r); st.Message != api.MessagePITRNotConfigured || st.Arguments != nil {
			t.Fatalf("without pitr: %+v", st)
		}
	}

	dev := t.TempDir()
	admin.mustOn(n, "set-as-backup", dev)
	w := startArchiveWriter(n.client(), 0)
	waitPITRRunning(t, admin, n)

	// A backup held mid-job: the archive goes on.
	admin.mustOn(n, "backup", "--no-password")
	h.wait(t, agent.HoldBackup)
	before := pitrStatusOf(t, admin, n).Arguments.Newest
	deadline := time.Now().Add(time.Minute)
	for {
		st := pitrStatusOf(t, admin, n)
		if st.Message == api.MessagePITRRunning && st.Arguments.Newest != nil && before != nil && st.Arguments.Newest.After(*before) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the archive did not move while a backup ran: %+v (before %v)", st.Arguments, before)
		}
		time.Sleep(100 * time.Millisecond)
	}
	h.let(agent.HoldBackup)
	found := waitFound(t, admin, n)

	// A restart: the archive resumes where its last durable slice ended.
	w.halt(t)
	addr := n.addr
	n.stop()
	n = startNodeWith(t, state, addr, cfg)
	w = startArchiveWriter(n.client(), 1_000_000)
	time.Sleep(1500 * time.Millisecond) // writes while it runs again
	w.halt(t)
	st := waitPITRCaughtUp(t, admin, n)
	if st.Message != api.MessagePITRRunning || len(st.Arguments.Windows) != 1 || len(st.Arguments.Gaps) != 0 {
		t.Fatalf("pitr-status: %+v", st.Arguments)
	}
	win := st.Arguments.Windows[0]
	if win.Base != found.Arguments.Name || !win.From.Before(win.To) || st.Arguments.Bytes <= 0 || st.Arguments.Dir != ops.OplogDir(dev) {
		t.Fatalf("window %+v for backup %s: %+v", win, found.Arguments.Name, st.Arguments)
	}
	text := admin.mustOn(n, "pitr-status").stdout
	want := fmt.Sprintf("restorable: %s (base %s) .. %s UTC, lag 0s", win.From.Format("2006-01-02 15:04:05"), win.Base, win.To.Format("2006-01-02 15:04:05"))
	if !strings.HasPrefix(text, "PITR running\n"+want+"\n") {
		t.Fatalf("text form:\n%s\nwant it to start with\n%s", text, want)
	}

	// The agent's own archive serves a restore to a point (pitr-restore's
	// restore --to-ts): to the window's end, after the writer stopped,
	// every collection as it is now.
	ageKey := filepath.Join(admin.dir, "age.key")
	os.WriteFile(ageKey, []byte(x.String()+"\n"), 0o600)
	docsBefore := countEvents(t, n.client())
	r := admin.on(n, "restore", "--identity", ageKey, "--drop", "--to-ts", fmt.Sprintf("%d,%d", win.ToTS.T, win.ToTS.I))
	if r.code != 0 {
		t.Fatalf("restore --to-ts through the agent's archive: %+v", r)
	}
	if after := countEvents(t, n.client()); after != docsBefore {
		t.Fatalf("after restore --to-ts the window's end: %d documents, %d before", after, docsBefore)
	}
	// The restore's own writes are oplog entries too: archived as well.
	waitPITRCaughtUp(t, admin, n)

	// Every entry once, byte for byte.
	n.stop()
	dir := ops.OplogDir(dev)
	unlock := crypt.Unlock{Identities: []age.Identity{x}}
	proof, err := pitr.Verify(context.Background(), dir, unlock)
	if err != nil {
		t.Fatal(err)
	}
	ar, err := pitr.Open(dir, unlock)
	if err != nil {
		t.Fatal(err)
	}
	got := map[bson.Timestamp]int{}
	var mismatch []string
	n = startNodeWith(t, state, addr, cfg)
	want2 := oplogEntries(t, n.client())
	for _, win := range proof.Windows {
		if err := ar.Entries(context.Background(), win.From, win.To, func(raw bson.Raw) error {
			t1, i1, _ := raw.Lookup("ts").TimestampOK()
			ts := bson.Timestamp{T: t1, I: i1}
			got[ts]++
			if !bytes.Equal(raw, want2[ts]) {
				mismatch = append(mismatch, fmt.Sprintf("%d.%d", ts.T, ts.I))
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	for ts := range want2 {
		if got[ts] != 1 {
			t.Errorf("entry %d.%d archived %d times", ts.T, ts.I, got[ts])
		}
	}
	if len(got) != len(want2) || len(mismatch) > 0 || w.n.Load() < 10 {
		t.Fatalf("archive %d entries, server %d, %d differ, %d writes", len(got), len(want2), len(mismatch), w.n.Load())
	}

	t.Logf("%d entries archived once in %d slices; window %+v; text:\n%s", len(got), proof.Slices, win, text)
	// Another device: the archive moves.
	dev2 := t.TempDir()
	admin.mustOn(n, "set-as-backup", dev2, "force") // the backup stays on the first device
	if st := pitrStatusOf(t, admin, n); st.Arguments.Dir != ops.OplogDir(dev2) {
		t.Fatalf("after set-as-backup %s: %+v", dev2, st.Arguments)
	}
	if _, err := filepath.Abs(dev2); err != nil {
		t.Fatal(err)
	}
}

func waitPITRRunning(t *testing.T, op *operator, n *testNode) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		st := pitrStatusOf(t, op, n)
		if st.Message == api.MessagePITRRunning && st.Arguments.Slices > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pitr-status: %+v\nagent log:\n%s", st, n.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var _ sync.Mutex

// TestPITRRemoteCopy: with a remote store, the slices are copied to
// <prefix>/oplog/ as they close; while the store is unreachable they wait
// on the device (the archive goes on), and once it is back every one
// arrives, also across a restart of the agent. The copies alone verify
// as one unbroken chain, byte for byte the device's slices; `backups`
// does not mistake them for backups.
func TestPITRRemoteCopy(t *testing.T) {
	x, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	gw := s3gw.Start(t, s3gw.Options{Buckets: []string{cliBucket}})
	state := t.TempDir()
	cfg := agent.Config{Recipients: []string{x.Recipient().String()}, PITR: &agent.PITR{Slice: time.Second, Retry: 100 * time.Millisecond},
		Remote: cliStore(t, gw), RemoteRetry: 100 * time.Millisecond}
	n := startNodeWith(t, state, "", cfg)
	admin := newOperator(t).withKey(n)
	dev := t.TempDir()
	admin.mustOn(n, "set-as-backup", dev)
	dir := ops.OplogDir(dev)
	sub := cliStore(t, gw).(interface{ Sub(string) remote.Store }).Sub(ops.OplogDirName)

	w := startArchiveWriter(n.client(), 0)
	waitPITRRunning(t, admin, n)
	waitCopied(t, sub, dir)

	// The store goes away: slices keep closing on the device.
	gw.Stop()
	before := localSlices(t, dir)
	deadline := time.Now().Add(time.Minute)
	for len(localSlices(t, dir)) < len(before)+3 {
		if time.Now().After(deadline) {
			t.Fatal("no new slice while the store was away")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// pitr-status says they wait.
	for {
		st := pitrStatusOf(t, admin, n)
		if r := st.Arguments.Remote; r != nil && r.Pending > 0 && r.Error != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pitr-status while the store is away: %+v", st.Arguments.Remote)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// And the agent restarts before the store is back.
	w.halt(t)
	addr := n.addr
	n.stop()
	gw.Restart()
	n = startNodeWith(t, state, addr, cfg)
	w = startArchiveWriter(n.client(), 1_000_000)
	time.Sleep(1500 * time.Millisecond)
	w.halt(t)
	waitPITRCaughtUp(t, admin, n)
	names := waitCopied(t, sub, dir)
	if r := pitrStatusOf(t, admin, n).Arguments.Remote; r == nil || r.Location != sub.Location() {
		t.Fatalf("pitr-status remote: %+v", r)
	}
	// The owner record (the replica set, in clear text) goes with them.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		rc, err := sub.Get(context.Background(), pitr.OwnerFile, 0)
		if err == nil {
			b, _ := io.ReadAll(rc)
			rc.Close()
			if bytes.Equal(b, readFile(t, filepath.Join(dir, pitr.OwnerFile))) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not copied to the store: %v", pitr.OwnerFile, err)
		}
	}

	// The copies alone: downloaded, they verify as one window.
	down := t.TempDir()
	for _, name := range names {
		rc, err := sub.Get(context.Background(), name, 0)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, readFile(t, filepath.Join(dir, name))) {
			t.Fatalf("remote %s differs from the device's", name)
		}
		os.WriteFile(filepath.Join(down, name), b, 0o600)
	}
	proof, err := pitr.Verify(context.Background(), down, crypt.Unlock{Identities: []age.Identity{x}})
	if err != nil || len(proof.Windows) != 1 || proof.Slices != len(names) {
		t.Fatalf("the remote copies: %+v %v", proof, err)
	}
	// A backup is a base: the device keeps slices back to it and no
	// further, and `backups prune` does the same in the store.
	if len(proof.Windows) != 1 {
		t.Fatal("no window")
	}
	admin.mustOn(n, "backup", "--no-password")
	found := waitFound(t, admin, n)
	if r := admin.waitRemote(n); r.State != "copied" {
		t.Fatalf("remote copy of the backup: %+v", r)
	}
	st := pitrStatusOf(t, admin, n)
	if len(st.Arguments.Windows) != 1 || st.Arguments.Windows[0].Base != found.Arguments.Name {
		t.Fatalf("pitr-status after the backup: %+v", st.Arguments)
	}
	base := st.Arguments.Windows[0].FromTS
	// Every slice but the newest (the chain resumes from it) ends at or
	// after the base.
	kept := localSlices(t, dir)
	for _, name := range kept[:len(kept)-1] {
		if _, last, _ := pitr.ParseSliceName(name); last.T < base.T || last.T == base.T && last.I < base.I {
			t.Fatalf("the device kept %s, older than the base at %d.%d", name, base.T, base.I)
		}
	}
	if len(localSlices(t, dir)) >= len(names) {
		t.Fatalf("nothing pruned on the device: %d slices, %d before", len(localSlices(t, dir)), len(names))
	}
	var pr api.BackupsPrune
	if err := json.Unmarshal([]byte(admin.mustOn(n, "backups", "prune", "--json").stdout), &pr); err != nil || pr.PITR == nil ||
		len(pr.PITR.RemovedRemote) == 0 || pr.PITR.Before == nil || pr.PITR.Before.T != base.T {
		t.Fatalf("backups prune: %+v %v", pr.PITR, err)
	}
	objs, err := sub.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var remoteNames []string
	for _, o := range objs {
		if _, _, ok := pitr.ParseSliceName(o.Name); ok {
			remoteNames = append(remoteNames, o.Name)
		}
	}
	for _, name := range remoteNames[:len(remoteNames)-1] {
		if _, last, _ := pitr.ParseSliceName(name); last.T < base.T || last.T == base.T && last.I < base.I {
			t.Fatalf("the store kept %s, older than the base", name)
		}
	}
	r := admin.mustOn(n, "backups")
	if !strings.Contains(r.stdout, "pitr window: ") || !strings.Contains(r.stdout, "(base "+found.Arguments.Name+")") {
		t.Fatalf("backups does not show the window:\n%s", r.stdout)
	}
	r = admin.mustOn(n, "backups", "--json")
	var list api.Backups
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list.Backups) != 1 || len(list.PITRWindows) != 1 {
		t.Fatalf("backups --json lists %+v (%v)", list, err)
	}
}

func localSlices(t *testing.T, dir string) []string {
	t.Helper()
	ar, err := pitr.Open(dir, crypt.Unlock{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range ar.Slices {
		out = append(out, s.Name)
	}
	return out
}

// waitCopied waits until the store holds every local slice (same size) and
// returns their names.
func waitCopied(t *testing.T, st remote.Store, dir string) []string {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		local := localSlices(t, dir)
		objs, err := st.List(context.Background())
		have := map[string]bool{}
		for _, o := range objs {
			have[o.Name] = true
		}
		missing := 0
		for _, name := range local {
			if !have[name] {
				missing++
			}
		}
		if err == nil && missing == 0 && len(local) > 0 {
			return local
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d slices not in the store (%v)", missing, len(local), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestBinaryPITRKilledMidSlice: the built a0agent with "pitr" is killed
// (SIGKILL) while a writer runs and slices are open, twice; started again,
// it resumes from its last durable slice and the archive holds every entry
// of the server's oplog exactly once, in one window.
func TestBinaryPITRKilledMidSlice(t *testing.T) {
	bin := buildBinaries(t)
	x, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	state, dev, home := filepath.Join(work, "node"), filepath.Join(work, "dev"), filepath.Join(work, "cli")
	os.MkdirAll(dev, 0o700)
	os.MkdirAll(state, 0o700)
	cfgPath := filepath.Join(work, "agent.json")
	b, _ := json.Marshal(map[string]any{"state_dir": state, "recipients": []string{x.Recipient().String()}, "pitr": map[string]string{"slice": "1s"}})
	os.WriteFile(cfgPath, b, 0o600)
	addr := quietAddr(t)
	start := func() *proc { return startAgentCmd(t, bin, []string{"--config", cfgPath, "--listen", addr}, false) }
	run := func(name string, args ...string) string {
		t.Helper()
		code, out, errs := sh(t, bin, work, home, nil, name, args...)
		if code != 0 {
			t.Fatalf("%s %v: exit %d\n%s%s", name, args, code, out, errs)
		}
		return out
	}
	p := start()
	pub := run("a0cli", "create-key")
	run("a0agent", "authorize", "--state-dir", state, "me", strings.TrimSpace(pub))
	run("a0cli", "-t", addr, "set-as-backup", dev)
	connect := func() *mongo.Client {
		t.Helper()
		uri, err := os.ReadFile(filepath.Join(state, "embedded.uri"))
		if err != nil {
			t.Fatal(err)
		}
		c, err := mongo.Connect(options.Client().ApplyURI(strings.TrimSpace(string(uri))))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	dir := ops.OplogDir(dev)
	for round := range 2 {
		c := connect()
		w := startArchiveWriter(c, round*1_000_000)
		// Let slices close, then kill it with one open (the writer never
		// pauses long enough for a slice to stay empty).
		deadline := time.Now().Add(time.Minute)
		for n0 := len(localSlices(t, dir)); len(localSlices(t, dir)) < n0+3; {
			if time.Now().After(deadline) {
				t.Fatalf("no slice:\n%s", p.log.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
		p.signal(syscall.SIGKILL)
		close(w.stop)
		<-w.done // its last write may fail: the server is gone
		c.Disconnect(context.Background())
		p = start()
	}
	c := connect()
	defer c.Disconnect(context.Background())
	want := oplogEntries(t, c)
	var newest bson.Timestamp
	for ts := range want {
		if ts.T > newest.T || ts.T == newest.T && ts.I > newest.I {
			newest = ts
		}
	}
	deadline := time.Now().Add(time.Minute)
	for {
		sl := localSlices(t, dir)
		if len(sl) > 0 {
			if _, last, _ := pitr.ParseSliceName(sl[len(sl)-1]); last == newest {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the archive did not reach %v:\n%s", newest, p.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	unlock := crypt.Unlock{Identities: []age.Identity{x}}
	proof, err := pitr.Verify(context.Background(), dir, unlock)
	if err != nil || len(proof.Windows) != 1 || len(proof.Gaps) != 0 {
		t.Fatalf("proof %+v %v", proof, err)
	}
	ar, err := pitr.Open(dir, unlock)
	if err != nil {
		t.Fatal(err)
	}
	got := map[bson.Timestamp]int{}
	if err := ar.Entries(context.Background(), proof.Windows[0].From, proof.Windows[0].To, func(raw bson.Raw) error {
		t1, i1, _ := raw.Lookup("ts").TimestampOK()
		ts := bson.Timestamp{T: t1, I: i1}
		got[ts]++
		if !bytes.Equal(raw, want[ts]) {
			return fmt.Errorf("entry %v differs from the server's", ts)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for ts := range want {
		if got[ts] != 1 {
			t.Errorf("entry %d.%d archived %d times", ts.T, ts.I, got[ts])
		}
	}
	if len(got) != len(want) {
		t.Fatalf("archive %d entries, server %d", len(got), len(want))
	}
	t.Logf("%d entries once across two kills, %d slices", len(got), proof.Slices)
}

func countEvents(t *testing.T, c *mongo.Client) int64 {
	t.Helper()
	n, err := c.Database("app").Collection("events").CountDocuments(context.Background(), bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
