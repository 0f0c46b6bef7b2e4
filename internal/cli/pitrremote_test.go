package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/agent"
	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/ops"
	"github.com/a0backup/a0/internal/pitr"
	"github.com/a0backup/a0/internal/remote"
	"github.com/a0backup/a0/internal/s3gw"
)

// tsBeforeOne is the oplog position just before ts.
func tsBeforeOne(ts bson.Timestamp) bson.Timestamp {
	if ts.I > 0 {
		return bson.Timestamp{T: ts.T, I: ts.I - 1}
	}
	return bson.Timestamp{T: ts.T - 1, I: ^uint32(0)}
}

func tsArg(ts bson.Timestamp) string { return fmt.Sprintf("%d,%d", ts.T, ts.I) }

// checkWindowsAccepted: every window listed is what a restore accepts: a
// dry run to its from_ts and its to_ts is accepted, one position before
// its from or after its to is refused (exit 4), unless another window
// listed holds that position.
func checkWindowsAccepted(t *testing.T, op *operator, n *testNode, ageKey string, wins []api.PITRWindow, extra ...string) {
	t.Helper()
	if len(wins) == 0 {
		t.Fatal("no window listed")
	}
	inAny := func(ts bson.Timestamp) bool {
		for _, w := range wins {
			from, to := bson.Timestamp{T: w.FromTS.T, I: w.FromTS.I}, bson.Timestamp{T: w.ToTS.T, I: w.ToTS.I}
			if !ts.Before(from) && !to.Before(ts) {
				return true
			}
			// T,4294967295 is a whole second (what --to-time S sends):
			// when a window ends inside it, the node restores to that
			// window's last entry (docs/cli.md). A window starting at
			// S+1,0 puts the point "just before it" there.
			if ts.I == math.MaxUint32 && ts.T == to.T && !ts.Before(from) {
				return true
			}
		}
		return false
	}
	dry := func(ts bson.Timestamp) result {
		return op.on(n, append([]string{"restore", "--identity", ageKey, "--drop", "--dry-run", "--to-ts", tsArg(ts)}, extra...)...)
	}
	for _, w := range wins {
		from, to := bson.Timestamp{T: w.FromTS.T, I: w.FromTS.I}, bson.Timestamp{T: w.ToTS.T, I: w.ToTS.I}
		for _, ts := range []bson.Timestamp{from, to} {
			if r := dry(ts); r.code != 0 || !strings.Contains(r.stdout, "Dry run finished") {
				t.Fatalf("window %+v lists %v, a dry run to it: exit %d\n%s\n%s", w, ts, r.code, r.stdout, r.stderr)
			}
		}
		for _, ts := range []bson.Timestamp{tsBeforeOne(from), pitr.After(to)} {
			if inAny(ts) {
				continue
			}
			if r := dry(ts); r.code != ExitRefused || !strings.Contains(r.stderr, "windows") {
				t.Fatalf("window %+v: a dry run to %v, just outside it: exit %d\n%s\n%s", w, ts, r.code, r.stdout, r.stderr)
			}
		}
	}
}

// TestRestoreToPointInTimeFromRemote: node A archives its oplog and copies
// its slices and its backup to a versitygw bucket; A then goes away, and
// node B, with the same store and no backup of its own, restores to
// random points from the copies alone (with --remote, and without it: its
// device has nothing), each equal to the state the source's own oplog
// gives at that point. The windows that pitr-status and backups list are
// exactly what restore accepts, on A (a backup taken while the archive was
// caught up included) and on B. A slice tampered with or missing in the
// bucket: exit 6 before the first write, B's database untouched.
func TestRestoreToPointInTimeFromRemote(t *testing.T) {
	gw := s3gw.Start(t, s3gw.Options{Buckets: []string{cliBucket}})
	s := newPITRSetup(t, agent.Config{PITR: &agent.PITR{Slice: time.Second, Retry: 100 * time.Millisecond},
		Remote: cliStore(t, gw), RemoteRetry: 100 * time.Millisecond}, 2626, 100)
	a, opA, devA, ageKey, rng, w := s.n, s.op, s.dev, s.ageKey, s.rng, s.w
	ctx := context.Background()
	waitPITRRunning(t, opA, a)
	wctx, stopWriter := context.WithCancel(ctx)
	writerDone := make(chan error, 1)
	go func() {
		for wctx.Err() == nil {
			if err := w.Step(ctx); err != nil {
				writerDone <- err
				return
			}
			time.Sleep(3 * time.Millisecond)
		}
		writerDone <- nil
	}()
	opA.mustOn(a, "backup", "--no-password")
	found := waitFound(t, opA, a)
	if r := opA.waitRemote(a); r.State != "copied" {
		t.Fatalf("remote copy of the base: %+v", r)
	}
	base, since := w.Ops, time.Now()
	for w.Ops < base+300 || time.Since(since) < 4*time.Second {
		time.Sleep(20 * time.Millisecond)
	}
	stopWriter()
	if err := <-writerDone; err != nil {
		t.Fatal(err)
	}
	waitPITRCaughtUp(t, opA, a)
	sub := cliStore(t, gw).(interface{ Sub(string) remote.Store }).Sub(ops.OplogDirName)
	names := waitCopied(t, sub, ops.OplogDir(devA))
	model := readOplogModel(t, a.client())
	newest := tsOf(model.Entries[len(model.Entries)-1])

	var st struct {
		Arguments struct {
			ConsistentTo *api.OplogTS `json:"consistent_to"`
		} `json:"arguments"`
	}
	if err := json.Unmarshal([]byte(opA.mustOn(a, "backup-status").stdout), &st); err != nil || st.Arguments.ConsistentTo == nil {
		t.Fatalf("backup-status has no consistent_to: %v %+v", err, st)
	}
	consistent := bson.Timestamp{T: st.Arguments.ConsistentTo.T, I: st.Arguments.ConsistentTo.I}
	var after []bson.Timestamp
	for _, e := range model.Entries {
		if tsOf(e).After(consistent) {
			after = append(after, tsOf(e))
		}
	}
	if len(after) < 100 || len(names) < 4 {
		t.Fatalf("%d entries after consistent_to %v, %d slices: the test needs more", len(after), consistent, len(names))
	}
	t.Logf("%d entries, %d after consistent_to %v, %d slices in the store", len(model.Entries), len(after), consistent, len(names))

	t.Run("on A, the windows listed are what restore accepts", func(t *testing.T) {
		wins := pitrStatusOf(t, opA, a).Arguments.Windows
		if len(wins) != 1 || wins[0].Base != found.Arguments.Name || wins[0].Remote {
			t.Fatalf("pitr-status windows: %+v", wins)
		}
		checkWindowsAccepted(t, opA, a, ageKey, wins)
		checkWindowsAccepted(t, opA, a, ageKey, wins[:1], "--remote") // the store's copy of the same
	})

	t.Run("on A, a backup taken while the archive is caught up", func(t *testing.T) {
		opA.mustOn(a, "backup-delete")
		opA.mustOn(a, "backup", "--no-password")
		waitFound(t, opA, a)
		if r := opA.waitRemote(a); r.State != "copied" {
			t.Fatalf("remote copy: %+v", r)
		}
		// The archive settles (the backup may have written entries):
		// the same windows twice, a slice length apart.
		var wins []api.PITRWindow
		for i := 0; ; i++ {
			prev := pitrStatusOf(t, opA, a).Arguments.Windows
			time.Sleep(1500 * time.Millisecond)
			if wins = pitrStatusOf(t, opA, a).Arguments.Windows; sameWindows(prev, wins) {
				break
			}
			if i == 40 {
				t.Fatalf("the windows do not settle: %+v", wins)
			}
		}
		var remoteWin bool
		for _, w := range wins {
			remoteWin = remoteWin || w.Remote
		}
		t.Logf("windows: %+v", wins)
		// The first copy's window is the store's now (the device's base
		// is the new backup): listed as remote, served without --remote.
		if !remoteWin {
			t.Fatalf("no remote window: %+v", wins)
		}
		checkWindowsAccepted(t, opA, a, ageKey, wins)
		if r := opA.mustOn(a, "pitr-status"); !strings.Contains(r.stdout, "(base remote copy ") {
			t.Fatalf("pitr-status text does not mark the remote window:\n%s", r.stdout)
		}
		var list api.Backups
		if err := json.Unmarshal([]byte(opA.mustOn(a, "backups", "--json").stdout), &list); err != nil || !sameWindows(list.PITRWindows, wins) {
			t.Fatalf("backups --json windows %+v, pitr-status %+v (%v)", list.PITRWindows, wins, err)
		}
	})

	// A goes away; B has the same store and nothing of its own.
	a.stop()
	b := startNodeWith(t, "", "", agent.Config{Remote: cliStore(t, gw), RemoteRetry: 100 * time.Millisecond})
	opB := newOperator(t).withKey(b)
	restoreB := func(args ...string) result {
		return opB.on(b, append([]string{"restore", "--identity", ageKey, "--drop"}, args...)...)
	}
	for k := range 3 {
		to := after[rng.IntN(len(after))]
		arg := []string{"--to-ts", tsArg(to), "--remote"}
		switch k {
		case 1:
			arg = []string{"--remote", "--to-ts", tsArg(to)}
		case 2:
			if to.T == newest.T {
				to.T-- // the archive cannot prove the newest second complete
			}
			if to.T > consistent.T {
				to = bson.Timestamp{T: to.T, I: ^uint32(0)}
				// Without --remote: B's device has nothing, the store serves.
				arg = []string{"--to-time", time.Unix(int64(to.T), 0).UTC().Format(time.RFC3339)}
			}
		}
		t.Run(fmt.Sprintf("B to %v", arg), func(t *testing.T) {
			r := restoreB(arg...)
			if r.code != 0 || !strings.Contains(r.stdout, "Restore finished") || !strings.Contains(r.stderr, "base remote copy "+found.Arguments.Name) {
				t.Fatalf("restore %v: exit %d\n%s\n%s\nagent log:\n%s", arg, r.code, r.stdout, r.stderr, b.log.String())
			}
			if !strings.Contains(strings.Join(arg, " "), "--remote") && !strings.Contains(r.stderr, "restoring from the remote store") {
				t.Fatalf("the CLI does not say the store serves it: %s", r.stderr)
			}
			sameCollections(t, fmt.Sprint(arg), model.At(t, to), current(t, b.client()))
		})
	}
	if left, _ := filepath.Glob(filepath.Join(b.state, "uploads", ".remote-*")); len(left) != 0 {
		t.Fatalf("downloads left on B: %v", left)
	}

	t.Run("on B, backups lists the store's windows, and they are what restore accepts", func(t *testing.T) {
		var list api.Backups
		if err := json.Unmarshal([]byte(opB.mustOn(b, "backups", "--json").stdout), &list); err != nil || len(list.PITRWindows) == 0 {
			t.Fatalf("backups --json on B: %+v (%v)", list, err)
		}
		for _, w := range list.PITRWindows {
			if !w.Remote {
				t.Fatalf("a window on B not marked remote: %+v", w)
			}
		}
		checkWindowsAccepted(t, opB, b, ageKey, list.PITRWindows, "--remote")
		if r := opB.mustOn(b, "backups"); !strings.Contains(r.stdout, "(base remote copy ") {
			t.Fatalf("backups text:\n%s", r.stdout)
		}
	})

	t.Run("a point no window serves: exit 4 naming the store's windows", func(t *testing.T) {
		before := current(t, b.client())
		r := restoreB("--to-ts", fmt.Sprintf("%d,0", newest.T+3600), "--remote")
		if r.code != ExitRefused || !strings.Contains(r.stderr, "the remote store's windows: ") {
			t.Fatalf("%+v", r)
		}
		r = restoreB("--to-ts", fmt.Sprintf("%d,0", newest.T+3600))
		if r.code != ExitRefused || !strings.Contains(r.stderr, "the remote store's windows: ") {
			t.Fatalf("%+v", r)
		}
		sameCollections(t, "after the refusals", before, current(t, b.client()))
	})

	// A slice of the store wholly after consistent_to, not the newest.
	victim := ""
	for _, name := range names[:len(names)-1] {
		if first, _, ok := pitr.ParseSliceName(name); ok && first.After(consistent) {
			victim = name
			break
		}
	}
	if victim == "" {
		t.Fatalf("no slice after consistent_to among %v", names)
	}
	key := "a0-1/" + ops.OplogDirName + "/" + victim
	orig := readFile(t, filepath.Join(ops.OplogDir(devA), victim))
	toNewest := tsArg(newest)
	put := func(b []byte) {
		t.Helper()
		if _, err := gw.Client().PutObject(ctx, cliBucket, key, bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("a slice tampered with in the bucket: exit 6 naming it, nothing written", func(t *testing.T) {
		before := current(t, b.client())
		bad := bytes.Clone(orig)
		bad[len(bad)-40] ^= 1
		put(bad)
		defer put(orig)
		r := restoreB("--to-ts", toNewest, "--remote")
		if r.code != ExitIntegrity || !strings.Contains(r.stderr, victim) || !strings.Contains(r.stderr, "nothing was written") {
			t.Fatalf("%+v\nagent log:\n%s", r, b.log.String())
		}
		sameCollections(t, "after the refusal", before, current(t, b.client()))
	})
	t.Run("a slice missing from the bucket: exit 6, nothing written", func(t *testing.T) {
		before := current(t, b.client())
		if err := gw.Client().RemoveObject(ctx, cliBucket, key, minio.RemoveObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		defer put(orig)
		r := restoreB("--to-ts", toNewest, "--remote")
		if r.code != ExitIntegrity || !strings.Contains(r.stderr, "broken at") {
			t.Fatalf("%+v", r)
		}
		sameCollections(t, "after the refusal", before, current(t, b.client()))
	})

	t.Run("two slices swapped in the bucket: exit 6, nothing written", func(t *testing.T) {
		before := current(t, b.client())
		next := ""
		for i, name := range names {
			if name == victim && i+1 < len(names) {
				next = names[i+1]
			}
		}
		nextKey := "a0-1/" + ops.OplogDirName + "/" + next
		nextOrig := readFile(t, filepath.Join(ops.OplogDir(devA), next))
		put(nextOrig)
		if _, err := gw.Client().PutObject(ctx, cliBucket, nextKey, bytes.NewReader(orig), int64(len(orig)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		defer func() {
			put(orig)
			gw.Client().PutObject(ctx, cliBucket, nextKey, bytes.NewReader(nextOrig), int64(len(nextOrig)), minio.PutObjectOptions{})
		}()
		r := restoreB("--to-ts", toNewest, "--remote")
		if r.code != ExitIntegrity || !strings.Contains(r.stderr, "broken at") {
			t.Fatalf("%+v", r)
		}
		sameCollections(t, "after the refusal", before, current(t, b.client()))
	})

	t.Run("a copy's record lying about its consistent_to: exit 6, nothing written", func(t *testing.T) {
		before := current(t, b.client())
		rec := "a0-1/" + found.Arguments.Name + ".json"
		o, err := gw.Client().GetObject(ctx, cliBucket, rec, minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		orig, err := io.ReadAll(o)
		o.Close()
		if err != nil {
			t.Fatal(err)
		}
		var rb map[string]any
		if err := json.Unmarshal(orig, &rb); err != nil {
			t.Fatal(err)
		}
		// One position later: the replay would skip an entry.
		rb["consistent_to"].(map[string]any)["i"] = float64(consistent.I + 1)
		lie, _ := json.Marshal(rb)
		putRec := func(b []byte) {
			if _, err := gw.Client().PutObject(ctx, cliBucket, rec, bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		putRec(lie)
		defer putRec(orig)
		r := restoreB("--to-ts", toNewest, "--remote")
		if r.code != ExitIntegrity {
			t.Fatalf("%+v", r)
		}
		sameCollections(t, "after the refusal", before, current(t, b.client()))
	})

	t.Run("slices a killed restore downloaded are removed at the agent's start", func(t *testing.T) {
		left := filepath.Join(b.state, "uploads", ".remote-oplog-killed")
		if err := os.MkdirAll(left, 0o700); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(left, victim), orig, 0o600)
		addr := b.addr
		b.stop()
		b = startNodeWith(t, b.state, addr, agent.Config{Remote: cliStore(t, gw), RemoteRetry: 100 * time.Millisecond})
		if _, err := os.Stat(left); !os.IsNotExist(err) {
			t.Fatalf("%s stayed: %v", left, err)
		}
	})
}

func sameWindows(a, b []api.PITRWindow) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].FromTS.T != b[i].FromTS.T || a[i].FromTS.I != b[i].FromTS.I || a[i].ToTS.T != b[i].ToTS.T ||
			a[i].ToTS.I != b[i].ToTS.I || a[i].Base != b[i].Base || a[i].Remote != b[i].Remote {
			return false
		}
	}
	return true
}

// TestRestoreRemoteFlagForms: --remote NAME keeps restoring the copy NAME
// (the word after it is its value, as before the value became optional);
// --remote alone chooses the copy with --to-time/--to-ts and is refused
// without them; a copy NAME with --to-time is refused.
func TestRestoreRemoteFlagForms(t *testing.T) {
	ctx := context.Background()
	home := t.TempDir()
	env, _, errb := helpEnv(t)
	env.Home = home
	if code := Main(ctx, []string{"create-key"}, env); code != ExitOK {
		t.Fatalf("create-key: exit %d: %s", code, errb)
	}
	const nowhere = "127.0.0.1:1"
	const name = "06-12-2026-08-00-00.tar.gz"
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		// The node is asked for the copy's header (no file is opened).
		{"--remote NAME", []string{"-t", nowhere, "restore", "--remote", name, "--drop"}, ExitConn, ""},
		{"--remote=NAME", []string{"-t", nowhere, "restore", "--remote=" + name}, ExitConn, ""},
		{"--remote alone", []string{"-t", nowhere, "restore", "--remote", "--drop"}, ExitUsage, "give the copy's name"},
		{"--remote NAME and a FILE", []string{"-t", nowhere, "restore", "--remote", name, "file.enc"}, ExitUsage, ""},
		{"--to-ts with --remote", []string{"-t", nowhere, "restore", "--to-ts", "1796551103,3", "--remote"}, ExitConn, ""},
		{"--remote before --to-time", []string{"-t", nowhere, "restore", "--remote", "--to-time", "2026-12-06T10:15:00Z"}, ExitConn, ""},
		{"--to-ts with a copy NAME", []string{"-t", nowhere, "restore", "--to-ts", "1796551103,3", "--remote", name}, ExitUsage, "no FILE, copy NAME"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, out, errb := helpEnv(t)
			env.Home = home
			if code := Main(ctx, tc.args, env); code != tc.code || !strings.Contains(errb.String(), tc.stderr) {
				t.Fatalf("a0cli %v: exit %d, want %d (%q)\nstdout: %s\nstderr: %s", tc.args, code, tc.code, tc.stderr, out, errb)
			}
		})
	}
}
