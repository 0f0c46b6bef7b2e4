package pitr

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/a0backup/a0/internal/embedded"
	"github.com/a0backup/a0/internal/embedded/embeddedtest"
)

// stepClock advances by step on every reading: slices are cut by how
// often the archiver looks at the clock, not by how fast the machine is.
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

// running is an archiver in its goroutine.
type running struct {
	a      *Archiver
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	<-r.done
	if !errors.Is(r.err, context.Canceled) {
		t.Fatalf("Run: %v", r.err)
	}
}

type rig struct {
	client *mongo.Client
	dir    string
	id     *age.X25519Identity
	mu     sync.Mutex
	gaps   []Gap
	slices []Slice
}

func newRig(t *testing.T, cfg embedded.Config) *rig {
	cfg.Oplog = true
	return &rig{client: embeddedtest.Client(t, cfg), dir: t.TempDir(), id: testKey(t)}
}

func (r *rig) start(t *testing.T, mod func(*Config)) *running {
	t.Helper()
	src := NewMongoSource(r.client)
	src.Await = 100 * time.Millisecond
	src.Poll = true // FerretDB: see MongoSource.Poll
	cfg := Config{
		Source: src, Dir: r.dir, Recipients: []age.Recipient{r.id.Recipient()},
		SliceLength: time.Second, Node: "n1", ReplSet: "rs0", Retry: 20 * time.Millisecond,
		Clock: &stepClock{now: time.Unix(1_700_000_000, 0), step: 100 * time.Millisecond},
		OnGap: func(g Gap) { r.mu.Lock(); r.gaps = append(r.gaps, g); r.mu.Unlock() },
		OnSlice: func(s Slice) {
			r.mu.Lock()
			r.slices = append(r.slices, s)
			r.mu.Unlock()
		},
	}
	if mod != nil {
		mod(&cfg)
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	run := &running{a: a, cancel: cancel, done: make(chan struct{})}
	go func() { run.err = a.Run(ctx); close(run.done) }()
	t.Cleanup(func() { cancel(); <-run.done })
	return run
}

// serverEntries is the server's oplog in its order, without local.*.
func (r *rig) serverEntries(t *testing.T) []bson.Raw {
	t.Helper()
	ctx := context.Background()
	cur, err := r.client.Database("local").Collection("oplog.rs").Find(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close(ctx)
	var out []bson.Raw
	for cur.Next(ctx) {
		if archived(cur.Current) {
			out = append(out, append(bson.Raw(nil), cur.Current...))
		}
	}
	if err := cur.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// waitArchived waits until the archiver's newest slice holds the server's
// newest entry (a wait for progress, bounded so that a hang fails).
func (r *rig) waitArchived(t *testing.T, run *running) {
	t.Helper()
	all := r.serverEntries(t)
	var newest bson.Timestamp
	for _, e := range all {
		if ts, _ := entryTS(e); tsLess(newest, ts) {
			newest = ts
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for tsLess(run.a.Status().Newest, newest) {
		if time.Now().After(deadline) {
			t.Fatalf("archiver stuck at %v, server at %v (status %+v)", run.a.Status().Newest, newest, run.a.Status())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// archiveEntries verifies the archive and returns its entries in order.
func (r *rig) archiveEntries(t *testing.T) (*Proof, []bson.Raw) {
	t.Helper()
	ctx := context.Background()
	p, err := Verify(ctx, r.dir, unlockWith(r.id))
	if err != nil {
		t.Fatal(err)
	}
	a, err := Open(r.dir, unlockWith(r.id))
	if err != nil {
		t.Fatal(err)
	}
	var got []bson.Raw
	for _, w := range p.Windows {
		if err := a.Entries(ctx, w.From, w.To, func(raw bson.Raw) error {
			got = append(got, append(bson.Raw(nil), raw...))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	return p, got
}

// write runs n inserts, updates and deletes over two collections.
func write(t *testing.T, c *mongo.Client, from, n int) {
	t.Helper()
	ctx := context.Background()
	for i := from; i < from+n; i++ {
		coll := c.Database("shop").Collection([]string{"orders", "users"}[i%2])
		var err error
		switch i % 3 {
		case 0, 1:
			_, err = coll.InsertOne(ctx, bson.D{{Key: "_id", Value: i}, {Key: "n", Value: i}})
		case 2:
			_, err = coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: i - 2}}, bson.D{{Key: "$set", Value: bson.D{{Key: "n", Value: -i}}}})
			if err == nil && i%4 == 0 {
				_, err = coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: i - 1}})
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// sameEntries checks that the archive holds every entry of the server's
// oplog exactly once, byte for byte. The order is the server's ts order:
// FerretDB makes some entries visible after later ones (see
// MongoSource.Poll), and the archive holds those where they came.
func sameEntries(t *testing.T, got, want []bson.Raw) {
	t.Helper()
	got, want = byTS(got), byTS(want)
	if len(got) != len(want) {
		have := map[bson.Timestamp]int{}
		for _, g := range got {
			ts, _ := entryTS(g)
			have[ts]++
		}
		for _, w := range want {
			ts, _ := entryTS(w)
			if have[ts] != 1 {
				t.Errorf("entry %v archived %d times", ts, have[ts])
			}
		}
		t.Fatalf("archive holds %d entries, the server's oplog %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("entry %d: archive %v, server %v", i, got[i], want[i])
		}
	}
}

func TestArchiverEveryEntryOnce(t *testing.T) {
	r := newRig(t, embedded.Config{})
	run := r.start(t, nil)
	write(t, r.client, 0, 300)
	r.waitArchived(t, run)
	run.stop(t)

	p, got := r.archiveEntries(t)
	sameEntries(t, got, r.serverEntries(t))
	if len(p.Windows) != 1 || len(p.Gaps) != 0 || p.Slices < 3 {
		t.Fatalf("proof %+v: want one window, no gap, several slices", p)
	}
	if len(r.slices) != p.Slices {
		t.Fatalf("OnSlice called %d times for %d slices", len(r.slices), p.Slices)
	}
	for _, de := range mustReadDir(t, r.dir) {
		if strings.HasSuffix(de, partExt) {
			t.Fatalf("%s left behind", de)
		}
	}
}

func TestArchiverResumesAfterKill(t *testing.T) {
	r := newRig(t, embedded.Config{})
	run := r.start(t, nil)
	write(t, r.client, 0, 150)
	// Kill mid-slice: the writer keeps going while the archiver is down,
	// and the open slice is abandoned.
	writing := make(chan struct{})
	go func() { defer close(writing); write(t, r.client, 150, 150) }()
	for run.a.Status().Slices < 2 {
		time.Sleep(10 * time.Millisecond)
	}
	run.stop(t)
	before := run.a.Status().Slices
	<-writing

	run = r.start(t, nil)
	write(t, r.client, 300, 60)
	r.waitArchived(t, run)
	run.stop(t)

	p, got := r.archiveEntries(t)
	sameEntries(t, got, r.serverEntries(t))
	if len(p.Windows) != 1 || len(p.Gaps) != 0 || p.Slices <= before {
		t.Fatalf("proof %+v (had %d slices before the kill): want one window, no gap", p, before)
	}
}

func TestArchiverGapWhenOplogRolledPast(t *testing.T) {
	const budget = 60
	r := newRig(t, embedded.Config{OplogEntries: budget})
	run := r.start(t, nil)
	write(t, r.client, 0, 30)
	r.waitArchived(t, run)
	run.stop(t)
	last := run.a.Status().Newest

	// Down longer than the oplog's window.
	write(t, r.client, 30, 200)
	if _, err := embedded.TrimOplog(context.Background(), r.client, budget); err != nil {
		t.Fatal(err)
	}

	run = r.start(t, nil)
	r.waitArchived(t, run)
	run.stop(t)

	if len(r.gaps) != 1 || !strings.HasPrefix(r.gaps[0].Reason, ReasonRolledOff) || r.gaps[0].From != last {
		t.Fatalf("gaps reported %+v, want one from %v: %s", r.gaps, last, ReasonRolledOff)
	}
	p, got := r.archiveEntries(t)
	if len(p.Windows) != 2 || len(p.Gaps) != 1 || p.Windows[0].To != last {
		t.Fatalf("proof %+v: want two windows cut at %v", p, last)
	}
	if p.Gaps[0].To != p.Windows[1].From {
		t.Fatalf("gap %+v does not end where the second window starts (%v)", p.Gaps[0], p.Windows[1].From)
	}
	// The second window is everything the server still holds.
	server := r.serverEntries(t)
	sameEntries(t, got[len(got)-len(server):], server)
	// The gap is in the authenticated header of the slice after it, so
	// it survives a deleted gaps.json.
	os.Remove(r.dir + "/" + GapsFile)
	p2, err := Verify(context.Background(), r.dir, unlockWith(r.id))
	if err != nil || len(p2.Windows) != 2 {
		t.Fatalf("without gaps.json: %+v %v", p2, err)
	}
}

func TestArchiverGapOnRollback(t *testing.T) {
	r := newRig(t, embedded.Config{})
	run := r.start(t, nil)
	write(t, r.client, 0, 30)
	r.waitArchived(t, run)
	run.stop(t)
	last := run.a.Status().Newest
	// What a rollback leaves: the newest archived entry gone from the
	// oplog, older ones still there.
	res, err := r.client.Database("local").Collection("oplog.rs").DeleteOne(context.Background(), bson.D{{Key: "ts", Value: last}})
	if err != nil || res.DeletedCount != 1 {
		t.Fatalf("delete %v: %v %v", last, res, err)
	}
	write(t, r.client, 30, 20)

	run = r.start(t, nil)
	r.waitArchived(t, run)
	run.stop(t)
	if len(r.gaps) != 1 || !strings.HasPrefix(r.gaps[0].Reason, ReasonRollback) {
		t.Fatalf("gaps %+v, want one: %s", r.gaps, ReasonRollback)
	}
	if p, _ := r.archiveEntries(t); len(p.Windows) != 2 {
		t.Fatalf("proof %+v: want two windows", p)
	}
}

func TestArchiverResumesAfterWriteFailure(t *testing.T) {
	r := newRig(t, embedded.Config{})
	run := r.start(t, nil)
	write(t, r.client, 0, 30)
	r.waitArchived(t, run)
	// The device goes away (a path that cannot be written, whoever runs
	// the test), the writer goes on, the device comes back.
	aside := r.dir + ".aside"
	if err := os.Rename(r.dir, aside); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(r.dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	write(t, r.client, 30, 30)
	for run.a.Status().Err == "" {
		time.Sleep(10 * time.Millisecond)
	}
	os.Remove(r.dir)
	if err := os.Rename(aside, r.dir); err != nil {
		t.Fatal(err)
	}
	r.waitArchived(t, run)
	run.stop(t)
	p, got := r.archiveEntries(t)
	sameEntries(t, got, r.serverEntries(t))
	if len(p.Windows) != 1 || len(r.gaps) != 0 {
		t.Fatalf("proof %+v, gaps %+v: the oplog still held the entries, nothing is lost", p, r.gaps)
	}
}

func TestNewRefuses(t *testing.T) {
	id := testKey(t)
	ok := Config{Source: &MongoSource{}, Dir: "d", Recipients: []age.Recipient{id.Recipient()}}
	cases := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no recipients", func(c *Config) { c.Recipients = nil }, "no recipients"},
		{"short slice", func(c *Config) { c.SliceLength = 500 * time.Millisecond }, "outside"},
		{"long slice", func(c *Config) { c.SliceLength = 11 * time.Minute }, "outside"},
		{"no dir", func(c *Config) { c.Dir = "" }, "no archive directory"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := ok
			c.mod(&cfg)
			if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("New: %v, want %q", err, c.want)
			}
		})
	}
	if _, err := New(ok); err != nil {
		t.Fatal(err)
	}
}

func mustReadDir(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		out = append(out, de.Name())
	}
	return out
}

var _ = fmt.Sprint

func byTS(in []bson.Raw) []bson.Raw {
	out := append([]bson.Raw(nil), in...)
	sort.SliceStable(out, func(i, j int) bool {
		a, _ := entryTS(out[i])
		b, _ := entryTS(out[j])
		return tsLess(a, b)
	})
	return out
}
