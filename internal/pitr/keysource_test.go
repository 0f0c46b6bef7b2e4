package pitr

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/embedded"
)

// keyRig is a rig whose archiver reads the embedded server by key.
func newKeyRig(t *testing.T) (*rig, *embedded.Server) {
	t.Helper()
	ctx := context.Background()
	srv, err := embedded.Start(ctx, embedded.Config{Dir: t.TempDir(), Oplog: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	c, err := srv.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect(context.Background()) })
	return &rig{client: c, dir: t.TempDir(), id: testKey(t)}, srv
}

func (r *rig) startKeys(t *testing.T, srv *embedded.Server, settle time.Duration) *running {
	t.Helper()
	reader, err := srv.NewOplogReader(context.Background(), r.client)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reader.Close(context.Background()) })
	return r.start(t, func(cfg *Config) {
		ms := NewMongoSource(r.client)
		ms.Await = 50 * time.Millisecond
		cfg.Source = &KeySource{MongoSource: ms, Keys: reader, Settle: settle, Batch: 100}
	})
}

// TestKeySourceEveryEntryOnceAcrossRestarts: concurrent writers of
// inserts, updates and deletes (so that entries become visible out of key
// order) while the archiver reads by key and is stopped mid-slice and
// started again several times: the archive holds every entry of the
// server's oplog exactly once, its chain is whole, and each restart
// resumed from the recorded position.
func TestKeySourceEveryEntryOnceAcrossRestarts(t *testing.T) {
	r, srv := newKeyRig(t)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			write(t, r.client, w*100_000, 400)
		}()
	}
	for range 4 {
		run := r.startKeys(t, srv, time.Minute)
		// Let it archive some slices, then stop it with a slice open.
		deadline := time.Now().Add(time.Minute)
		start := run.a.Status().Slices
		for run.a.Status().Slices < start+2 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		run.stop(t)
	}
	wg.Wait()
	run := r.startKeys(t, srv, time.Minute)
	r.waitArchived(t, run)
	// The late sweep runs once the reader is caught up: wait for a slice
	// after the writers stopped to close, then stop.
	n := run.a.Status().Slices
	write(t, r.client, 900_000, 3)
	r.waitArchived(t, run)
	for run.a.Status().Slices <= n {
		time.Sleep(10 * time.Millisecond)
	}
	run.stop(t)

	p, got := r.archiveEntries(t)
	sameEntries(t, got, r.serverEntries(t))
	if len(p.Windows) != 1 || len(p.Gaps) != 0 {
		t.Fatalf("proof %+v: want one window, no gap", p)
	}
	if _, err := os.Stat(filepath.Join(r.dir, PositionFile)); err != nil {
		t.Fatalf("no position recorded: %v", err)
	}
}

// TestKeySourceLateEntry: an entry whose key is below keys already
// delivered (it became visible late) is delivered once, by the sweep,
// also after a restart from a recorded position.
func TestKeySourceLateEntry(t *testing.T) {
	ctx := context.Background()
	kr := &memKeys{}
	src := &KeySource{MongoSource: &MongoSource{Await: time.Millisecond}, Keys: kr, Settle: time.Hour,
		Now: func() time.Time { return time.Unix(100, 0) }} // keys are tiny: the watermark stays at 0
	tail, err := src.Tail(ctx, bson.Timestamp{})
	if err != nil {
		t.Fatal(err)
	}
	next := func(tl Tail) []int {
		t.Helper()
		var out []int
		for {
			raw, err := tl.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if raw == nil {
				return out
			}
			out = append(out, int(raw.Lookup("n").Int32()))
		}
	}
	kr.add(10, 1)
	kr.add(30, 3)
	if got := fmt.Sprint(next(tail)); got != "[1 3]" {
		t.Fatalf("first read %s", got)
	}
	kr.add(20, 2) // late: below 30
	kr.add(40, 4)
	if got := fmt.Sprint(next(tail)); got != "[4 2]" {
		t.Fatalf("second read %s, want the new entry then the late one", got)
	}
	pos := tail.(PositionedTail).Position()
	kr.add(25, 5) // late again, after the position was taken
	resumed, err := src.TailAt(ctx, bson.Timestamp{}, pos)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(next(resumed)); got != "[5]" {
		t.Fatalf("after resume %s, want only the late entry", got)
	}
	if _, err := src.TailAt(ctx, bson.Timestamp{}, []byte(`{"w":1,"seen":"AA=="}`)); err == nil {
		t.Fatal("a position with a zero delta was accepted")
	}
}

// memKeys is a KeyReader over a map, for the ordering rules alone (the
// real one is exercised above).
type memKeys struct{ rows map[int64]bson.Raw }

func (m *memKeys) add(key int64, n int32) {
	if m.rows == nil {
		m.rows = map[int64]bson.Raw{}
	}
	raw, _ := bson.Marshal(bson.D{{Key: "ts", Value: bson.Timestamp{T: uint32(key)}}, {Key: "n", Value: n}})
	m.rows[key] = raw
}

func (m *memKeys) sorted(keep func(int64) bool) []int64 {
	var ks []int64
	for k := range m.rows {
		if keep(k) {
			ks = append(ks, k)
		}
	}
	for i := range ks {
		for j := i + 1; j < len(ks); j++ {
			if ks[j] < ks[i] {
				ks[i], ks[j] = ks[j], ks[i]
			}
		}
	}
	return ks
}

func (m *memKeys) Read(_ context.Context, after int64, limit int, fn func(int64, bson.Raw) error) error {
	ks := m.sorted(func(k int64) bool { return k > after })
	for i, k := range ks {
		if i == limit {
			break
		}
		if err := fn(k, m.rows[k]); err != nil {
			return err
		}
	}
	return nil
}

func (m *memKeys) Keys(_ context.Context, after, upto int64) ([]int64, error) {
	return m.sorted(func(k int64) bool { return k > after && k <= upto }), nil
}

func (m *memKeys) ReadKeys(_ context.Context, keys []int64, fn func(int64, bson.Raw) error) error {
	for _, k := range keys {
		if raw, ok := m.rows[k]; ok {
			if err := fn(k, raw); err != nil {
				return err
			}
		}
	}
	return nil
}
