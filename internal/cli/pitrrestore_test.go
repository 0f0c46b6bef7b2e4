package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
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
	"github.com/a0backup/a0/internal/pitr/pitrtest"
)

// stepClock advances by step at every reading: the archiver cuts slices by
// how often it looks at the clock, so a test gets many slices quickly.
type stepClock struct {
	mu   sync.Mutex
	now  time.Time
	step time.Duration
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(c.step)
	return c.now
}

// The writer and the independent oplog model are pitrtest's (the external
// server's proof, in internal/bench, runs the same).
var (
	readOplogModel  = pitrtest.ReadModel
	tsOf            = pitrtest.TS
	current         = pitrtest.Current
	sameCollections = pitrtest.Same
)

// A restore to three random points in time, under a writer of inserts,
// updates and deletes across three collections, equals document for
// document what the source's own oplog says the collections were then;
// a point no window serves, and a tampered or missing slice, are refused
// before the first write.
func TestRestoreToPointInTime(t *testing.T) {
	s := newPITRSetup(t, agent.Config{}, 26, 150)
	x, n, op, dev, ageKey, rng, w := s.x, s.n, s.op, s.dev, s.ageKey, s.rng, s.w
	ctx := context.Background()

	// The archiver, as the agent runs it, on the node's device.
	src := pitr.NewMongoSource(n.client())
	src.Await, src.Poll = 50*time.Millisecond, true
	arch, err := pitr.New(pitr.Config{Source: src, Dir: ops.OplogDir(dev), Recipients: []age.Recipient{x.Recipient()},
		SliceLength: time.Second, Node: "n1", Retry: 20 * time.Millisecond,
		Clock: &stepClock{now: time.Unix(1_800_000_000, 0), step: 100 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	actx, stopArch := context.WithCancel(ctx)
	archDone := make(chan error, 1)
	go func() { archDone <- arch.Run(actx) }()
	defer func() { stopArch(); <-archDone }()

	// The writer goes on through the backup and after it.
	wctx, stopWriter := context.WithCancel(ctx)
	writerDone := make(chan error, 1)
	go func() {
		for wctx.Err() == nil {
			if err := w.Step(ctx); err != nil {
				writerDone <- err
				return
			}
			if w.Ops%25 == 0 {
				time.Sleep(20 * time.Millisecond) // let the clock of the slices turn
			}
		}
		writerDone <- nil
	}()
	r := op.mustOn(n, "backup", "--no-password")
	_ = r
	waitFound(t, op, n)
	// Enough writes after the backup, over several seconds (an oplog
	// ts counts seconds: --to-time needs more than one).
	base, since := w.Ops, time.Now()
	for w.Ops < base+300 || time.Since(since) < 4*time.Second {
		time.Sleep(20 * time.Millisecond)
	}
	stopWriter()
	if err := <-writerDone; err != nil {
		t.Fatal(err)
	}

	model := readOplogModel(t, n.client())
	newest := tsOf(model.Entries[len(model.Entries)-1])
	deadline := time.Now().Add(2 * time.Minute)
	for arch.Status().Newest.Before(newest) {
		if time.Now().After(deadline) {
			t.Fatalf("the archive did not reach %v in 2 minutes: %+v", newest, arch.Status())
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopArch()
	if err := <-archDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("archiver: %v", err)
	}
	archDone <- nil

	var st struct {
		Arguments struct {
			Name         string `json:"name"`
			ConsistentTo *struct {
				T uint32 `json:"t"`
				I uint32 `json:"i"`
			} `json:"consistent_to"`
		} `json:"arguments"`
	}
	if err := json.Unmarshal([]byte(op.mustOn(n, "backup-status").stdout), &st); err != nil || st.Arguments.ConsistentTo == nil {
		t.Fatalf("backup-status has no consistent_to: %v %+v", err, st)
	}
	consistent := bson.Timestamp{T: st.Arguments.ConsistentTo.T, I: st.Arguments.ConsistentTo.I}
	var after []bson.Timestamp
	for _, e := range model.Entries {
		if tsOf(e).After(consistent) {
			after = append(after, tsOf(e))
		}
	}
	if len(after) < 100 {
		t.Fatalf("only %d entries after the backup's consistent_to", len(after))
	}
	slices, _ := os.ReadDir(ops.OplogDir(dev))
	t.Logf("%d oplog entries, %d after consistent_to %v, %d files in the archive", len(model.Entries), len(after), consistent, len(slices))

	restoreTo := func(t *testing.T, args ...string) result {
		t.Helper()
		return op.on(n, append([]string{"restore", "--identity", ageKey, "--drop"}, args...)...)
	}
	// Three random points after the base: two exact positions, one by
	// time (every entry of that second).
	for k := range 3 {
		to := after[rng.IntN(len(after))]
		arg := []string{"--to-ts", fmt.Sprintf("%d,%d", to.T, to.I)}
		if k == 2 && to.T == newest.T {
			// The archive cannot prove the newest second complete.
			to.T--
		}
		if k == 2 && to.T > consistent.T {
			to = bson.Timestamp{T: to.T, I: ^uint32(0)}
			arg = []string{"--to-time", time.Unix(int64(to.T), 0).UTC().Format(time.RFC3339)}
		}
		t.Run(fmt.Sprintf("to %v", arg), func(t *testing.T) {
			r := restoreTo(t, arg...)
			if r.code != 0 {
				t.Fatalf("restore %v: exit %d\n%s\n%s\nagent log:\n%s", arg, r.code, r.stdout, r.stderr, n.log.String())
			}
			if !strings.Contains(r.stderr, "oplog slices") || !strings.Contains(r.stdout, "Restore finished") {
				t.Fatalf("restore %v: %+v", arg, r)
			}
			sameCollections(t, fmt.Sprint(arg), model.At(t, to), current(t, n.client()))
		})
	}

	// pitr-status shows a window ending at its last entry's second: a
	// --to-time of that second restores every entry of it the archive
	// holds (it was refused, exit 4, as ending inside the second).
	t.Run("--to-time at the window's last second", func(t *testing.T) {
		arg := time.Unix(int64(newest.T), 0).UTC().Format(time.RFC3339)
		r := restoreTo(t, "--to-time", arg)
		if r.code != 0 {
			t.Fatalf("restore --to-time %s: exit %d\n%s\n%s", arg, r.code, r.stdout, r.stderr)
		}
		if !strings.Contains(r.stderr, "the archive ends inside") || !strings.Contains(r.stderr, fmt.Sprintf("restoring to %s", tsText(api.OplogTS{T: newest.T, I: newest.I}))) {
			t.Fatalf("restore --to-time %s does not say it restores to the window's end %v: %s", arg, newest, r.stderr)
		}
		sameCollections(t, "--to-time "+arg, model.At(t, newest), current(t, n.client()))
	})

	t.Run("no slice key in the agent's log, state directory or device", func(t *testing.T) {
		des, _ := os.ReadDir(ops.OplogDir(dev))
		var keys [][]byte
		for _, de := range des {
			f, err := os.Open(filepath.Join(ops.OplogDir(dev), de.Name()))
			if err != nil || !strings.HasSuffix(de.Name(), pitr.SliceExt) {
				continue
			}
			k, err := crypt.UnwrapFileKey(f, crypt.Unlock{Identities: []age.Identity{x}})
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, k)
		}
		log := n.log.String()
		for _, k := range keys {
			for _, form := range []string{base64.StdEncoding.EncodeToString(k), hex.EncodeToString(k)} {
				if strings.Contains(log, form) {
					t.Fatalf("a slice key is in the agent log")
				}
			}
		}
		for _, root := range []string{n.state, dev} {
			filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return nil
				}
				b, _ := os.ReadFile(path)
				for _, k := range keys {
					if bytes.Contains(b, k) || bytes.Contains(b, []byte(base64.StdEncoding.EncodeToString(k))) {
						t.Errorf("a slice key is in %s", path)
					}
				}
				return nil
			})
		}
	})

	t.Run("a point no window serves is refused, naming the windows", func(t *testing.T) {
		before := current(t, n.client())
		past := bson.Timestamp{T: newest.T + 3600}
		r := restoreTo(t, "--to-ts", fmt.Sprintf("%d,0", past.T))
		if r.code != ExitRefused || !strings.Contains(r.stderr, "windows") || !strings.Contains(r.stderr, "..") {
			t.Fatalf("%+v", r)
		}
		if !strings.Contains(n.log.String(), "path=/v1/pitr/plan status=409") {
			t.Fatalf("the refusal is not a 409:\n%s", n.log.String())
		}
		r = restoreTo(t, "--to-ts", fmt.Sprintf("%d,%d", consistent.T, 0))
		if consistent.I > 0 && (r.code != ExitRefused || !strings.Contains(r.stderr, "consistent to")) {
			t.Fatalf("before the base: %+v", r)
		}
		sameCollections(t, "after the refusals", before, current(t, n.client()))
	})

	// The slices a restore to the newest entry reads, by name.
	names := func() []string {
		des, _ := os.ReadDir(ops.OplogDir(dev))
		var out []string
		for _, de := range des {
			if strings.HasSuffix(de.Name(), pitr.SliceExt) {
				out = append(out, de.Name())
			}
		}
		return out
	}
	all := names()
	if len(all) < 4 {
		t.Fatalf("only %d slices: the test needs several", len(all))
	}
	// A slice wholly after consistent_to, not the newest.
	victim := ""
	for _, name := range all[:len(all)-1] {
		if first, _, ok := pitr.ParseSliceName(name); ok && first.After(consistent) {
			victim = name
			break
		}
	}
	if victim == "" {
		t.Fatalf("no slice after consistent_to among %v", all)
	}
	path := filepath.Join(ops.OplogDir(dev), victim)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	toNewest := fmt.Sprintf("%d,%d", newest.T, newest.I)

	t.Run("a tampered slice: exit 6 naming it, nothing written", func(t *testing.T) {
		before := current(t, n.client())
		bad := append([]byte(nil), orig...)
		bad[len(bad)-40] ^= 1
		if err := os.WriteFile(path, bad, 0o600); err != nil {
			t.Fatal(err)
		}
		defer os.WriteFile(path, orig, 0o600)
		r := restoreTo(t, "--to-ts", toNewest)
		if r.code != ExitIntegrity || !strings.Contains(r.stderr, victim) {
			t.Fatalf("%+v", r)
		}
		sameCollections(t, "after the refusal", before, current(t, n.client()))
	})

	t.Run("a missing slice: exit 6 naming the one that no longer chains", func(t *testing.T) {
		before := current(t, n.client())
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		defer os.WriteFile(path, orig, 0o600)
		next := ""
		for i, name := range all {
			if name == victim {
				next = all[i+1]
			}
		}
		r := restoreTo(t, "--to-ts", toNewest)
		if r.code != ExitIntegrity || !strings.Contains(r.stderr, next) || !strings.Contains(r.stderr, "missing, reordered or replaced") {
			t.Fatalf("%+v", r)
		}
		sameCollections(t, "after the refusal", before, current(t, n.client()))
	})

	t.Run("dry run writes nothing and says what it would replay", func(t *testing.T) {
		before := current(t, n.client())
		r := restoreTo(t, "--to-ts", toNewest, "--dry-run", "--json")
		if r.code != 0 || !strings.Contains(r.stdout, `"archive_entries"`) {
			t.Fatalf("%+v", r)
		}
		sameCollections(t, "after the dry run", before, current(t, n.client()))
	})

	t.Run("verify --oplog proves the downloaded archive and refuses a broken one, naming the slice", func(t *testing.T) {
		op.mustOn(n, "backup-retrieve")
		baseFile := filepath.Join(op.dir, "backup-retrieve.tar.gz.enc")
		dl := filepath.Join(t.TempDir(), "oplog")
		copyDir := func() {
			os.RemoveAll(dl)
			os.MkdirAll(dl, 0o700)
			for _, name := range all {
				b, err := os.ReadFile(filepath.Join(ops.OplogDir(dev), name))
				if err != nil {
					t.Fatal(err)
				}
				os.WriteFile(filepath.Join(dl, name), b, 0o600)
			}
		}
		copyDir()
		r := op.run("verify", "--oplog", dl, baseFile, "--identity", ageKey)
		if r.code != 0 || !strings.Contains(r.stdout, fmt.Sprintf("OK: %d oplog slices", len(all))) ||
			!strings.Contains(r.stdout, "window: ") || !strings.Contains(r.stdout, "restorable: "+baseFile) {
			t.Fatalf("%+v", r)
		}
		if r := op.run("verify", "--oplog", dl, "--identity", ageKey, "--json"); r.code != 0 || !strings.Contains(r.stdout, `"authentic":true`) {
			t.Fatalf("--json: %+v", r)
		}
		if r := op.run("verify", "--oplog", dl); r.code != ExitUsage && r.code != ExitIntegrity {
			t.Fatalf("without the identity: %+v", r)
		}
		i := len(all) / 2
		cases := []struct {
			name   string
			break_ func()
			want   string
		}{
			{"tampered", func() {
				p := filepath.Join(dl, all[i])
				b, _ := os.ReadFile(p)
				b[len(b)/2] ^= 0x10
				os.WriteFile(p, b, 0o600)
			}, all[i]},
			{"missing", func() { os.Remove(filepath.Join(dl, all[i])) }, all[i+1]},
			{"reordered", func() {
				a, b := filepath.Join(dl, all[i]), filepath.Join(dl, all[i+1])
				os.Rename(a, a+".x")
				os.Rename(b, a)
				os.Rename(a+".x", b)
			}, all[i]},
		}
		for _, c := range cases {
			copyDir()
			c.break_()
			r := op.run("verify", "--oplog", dl, "--identity", ageKey)
			if r.code != ExitIntegrity || !strings.Contains(r.stderr, c.want) {
				t.Errorf("%s: want exit 6 naming %s: %+v", c.name, c.want, r)
			}
		}
	})

	t.Run("oplog-find lists the destructive operations of the archive and the live oplog, with the --to-ts before each", func(t *testing.T) {
		trash := n.client().Database("trash")
		var docs []any
		for i := range 50 {
			docs = append(docs, bson.D{{Key: "_id", Value: i}})
		}
		if _, err := trash.Collection("burst").InsertMany(ctx, docs); err != nil {
			t.Fatal(err)
		}
		if _, err := trash.Collection("junk").InsertOne(ctx, bson.D{{Key: "_id", Value: 1}}); err != nil {
			t.Fatal(err)
		}
		arch2, err := pitr.New(pitr.Config{Source: src, Dir: ops.OplogDir(dev), Recipients: []age.Recipient{x.Recipient()},
			SliceLength: time.Second, Node: "n1", Retry: 20 * time.Millisecond,
			Clock: &stepClock{now: time.Unix(1_800_100_000, 0), step: 100 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		actx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- arch2.Run(actx) }()
		defer func() { stop(); <-done }()
		if _, err := trash.Collection("burst").DeleteMany(ctx, bson.D{}); err != nil {
			t.Fatal(err)
		}
		last := newestEntry(t, n.client())
		deadline := time.Now().Add(2 * time.Minute)
		for arch2.Status().Newest.Before(last) {
			if time.Now().After(deadline) {
				t.Fatalf("the archive did not reach %v: %+v", last, arch2.Status())
			}
			time.Sleep(50 * time.Millisecond)
		}
		stop()
		<-done
		done <- nil
		// Newer than the archive: found in the live oplog. (FerretDB
		// logs no drop or rename in its oplog: deletes only here; the
		// other operations are pitr.Find's tests, on MongoDB's entries.)
		if _, err := trash.Collection("junk").DeleteOne(ctx, bson.D{{Key: "_id", Value: 1}}); err != nil {
			t.Fatal(err)
		}
		r := op.mustOn(n, "oplog-find", "--identity", ageKey, "--ns", "trash.*", "--json")
		var out api.OplogFindReply
		if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
			t.Fatalf("%v: %s", err, r.stdout)
		}
		got := map[string]api.OplogFinding{}
		for _, f := range out.Findings {
			got[f.Op+" "+f.NS+" "+f.Source] = f
		}
		del, ok := got["delete trash.burst archive"]
		if !ok || del.Count != 50 {
			t.Fatalf("no burst of 50 deletes from the archive: %+v", out)
		}
		if del.ToTS != (api.OplogTS{T: del.TS.T, I: del.TS.I - 1}) && del.TS.I > 0 {
			t.Fatalf("to_ts %+v is not just before %+v", del.ToTS, del.TS)
		}
		if live, ok := got["delete trash.junk oplog"]; !ok || live.Count != 1 || out.Live == 0 {
			t.Fatalf("no delete of trash.junk from the live oplog: %+v", out)
		}
		for _, f := range out.Findings {
			if !strings.HasPrefix(f.NS, "trash.") {
				t.Fatalf("--ns trash.* found %+v", f)
			}
		}
		text := op.mustOn(n, "oplog-find", "--identity", ageKey, "--op", "delete", "--ns", "trash.burst")
		want := "delete x50"
		if !strings.Contains(text.stdout, want) || strings.Contains(text.stdout, "trash.junk") ||
			!strings.Contains(text.stdout, fmt.Sprintf("restore to just before: --to-ts %d,%d", del.ToTS.T, del.ToTS.I)) {
			t.Fatalf("text: %+v", text)
		}
		if r := op.mustOn(n, "oplog-find", "--identity", ageKey, "--op", "drop,rename", "--ns", "trash.*"); !strings.Contains(r.stdout, "no destructive operation found") {
			t.Fatalf("--op drop,rename: %+v", r)
		}
		if r := op.on(n, "oplog-find", "--op", "truncate"); r.code != ExitUsage || !strings.Contains(r.stderr, "truncate") {
			t.Fatalf("unknown op: %+v", r)
		}
	})
}

// newestEntry is the newest entry of the server's oplog.
func newestEntry(t *testing.T, c *mongo.Client) bson.Timestamp {
	t.Helper()
	ctx := context.Background()
	cur, err := c.Database("local").Collection("oplog.rs").Find(ctx, bson.D{}, options.Find().SetProjection(bson.D{{Key: "ts", Value: 1}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close(ctx)
	var newest bson.Timestamp
	for cur.Next(ctx) {
		if ts := tsOf(cur.Current); ts.After(newest) {
			newest = ts
		}
	}
	return newest
}

func TestParseToTS(t *testing.T) {
	for _, tc := range []struct {
		time, ts string
		want     api.OplogTS
		usage    bool
	}{
		{ts: "1796551103,3", want: api.OplogTS{T: 1796551103, I: 3}},
		{ts: " 1796551103 , 0 ", want: api.OplogTS{T: 1796551103}},
		{time: "2026-12-06T10:15:00Z", want: api.OplogTS{T: 1796552100, I: ^uint32(0)}},
		{time: "2026-12-06T11:15:00+01:00", want: api.OplogTS{T: 1796552100, I: ^uint32(0)}},
		{time: "2026-12-06 10:15", usage: true},
		{ts: "1796551103", usage: true},
		{ts: "0,1", usage: true},
		{ts: "1796551103,-1", usage: true},
		{ts: "99999999999,1", usage: true},
		{time: "2026-12-06T10:15:00Z", ts: "1,1", usage: true},
	} {
		t.Run(tc.time+"|"+tc.ts, func(t *testing.T) {
			got, err := parseToTS(tc.time, tc.ts)
			var ue *UsageError
			if tc.usage != errors.As(err, &ue) || (!tc.usage && got != tc.want) {
				t.Fatalf("got %+v, %v; want %+v (usage error %v)", got, err, tc.want, tc.usage)
			}
		})
	}
}

func TestCheckKeysFit(t *testing.T) {
	if err := checkKeysFit(10_000); err != nil {
		t.Fatalf("10,000 slices: %v", err)
	}
	var re *RefusedError
	if err := checkKeysFit(20_000); !errors.As(err, &re) || !strings.Contains(err.Error(), "20000 oplog slices") {
		t.Fatalf("20,000 slices: %v", err)
	}
}
