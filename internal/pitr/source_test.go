package pitr

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/a0backup/a0/internal/embedded"
)

// commandLog records the commands a client sends, as "name" or, for a
// find, "find" plus its filter's keys.
type commandLog struct {
	mu   sync.Mutex
	cmds []string
}

func (l *commandLog) started(_ context.Context, e *event.CommandStartedEvent) {
	c := e.CommandName
	if c == "find" {
		var keys []string
		if f, err := e.Command.LookupErr("filter"); err == nil {
			if d, ok := f.DocumentOK(); ok {
				els, _ := d.Elements()
				for _, el := range els {
					keys = append(keys, el.Key())
				}
			}
		}
		c += "{" + strings.Join(keys, ",") + "}"
	}
	l.mu.Lock()
	l.cmds = append(l.cmds, c)
	l.mu.Unlock()
}

func (l *commandLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.cmds
	l.cmds = nil
	return out
}

// TestMongoSourcePollsFerretDB (issue 26's RPO on an external FerretDB):
// a MongoSource left to itself finds out that the server is FerretDB and
// polls; a poll of an unchanged oplog sends a count and a read of the
// oldest entry only (no read of the entries, no getMore: FerretDB answers
// those by reading its whole oplog, over and over for an awaitData
// cursor), a poll after a write sends one find of the entries, and
// neither grows with the oplog's size. Every entry is returned once.
func TestMongoSourcePollsFerretDB(t *testing.T) {
	ctx := context.Background()
	srv, err := embedded.Start(ctx, embedded.Config{Dir: t.TempDir(), Oplog: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	log := &commandLog{}
	c, err := mongo.Connect(options.Client().ApplyURI(srv.URI()).SetMonitor(&event.CommandMonitor{Started: log.started}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect(context.Background()) })

	src := NewMongoSource(c)
	src.Await = time.Millisecond
	tail, err := src.Tail(ctx, bson.Timestamp{})
	if err != nil {
		t.Fatal(err)
	}
	defer tail.Close(ctx)
	got := map[bson.Timestamp]int{}
	// drain returns what the next polls return until one returns nothing.
	drain := func() int {
		t.Helper()
		n := 0
		for {
			raw, err := tail.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if raw == nil {
				return n
			}
			ts, _ := entryTS(raw)
			got[ts]++
			n++
		}
	}
	// idle is what the polls of an oplog nobody writes to send.
	idle := func() []string {
		t.Helper()
		drain()
		log.take()
		for range 3 {
			if n := drain(); n != 0 {
				t.Fatalf("an idle poll returned %d entries", n)
			}
		}
		return log.take()
	}

	write(t, c, 0, 30)
	drain()
	small := idle()
	want := strings.Repeat("collStats find{} ", 3)
	if s := strings.Join(small, " ") + " "; s != want {
		t.Fatalf("idle polls sent %q, want %q (no read of the entries)", s, want)
	}
	write(t, c, 30, 600)
	drain()
	if large := idle(); fmt.Sprint(large) != fmt.Sprint(small) {
		t.Fatalf("idle polls of a larger oplog sent %q, of a small one %q", large, small)
	}

	// One write: one find of the entries reads it, whatever the size.
	write(t, c, 630, 1)
	log.take()
	for drain() == 0 {
	}
	reads := 0
	for _, cmd := range log.take() {
		if strings.HasPrefix(cmd, "find{ts}") || cmd == "getMore" {
			reads++
		}
	}
	if reads != 1 {
		t.Fatalf("a poll after one write sent %d reads of the entries, want 1", reads)
	}

	cur, err := c.Database("local").Collection("oplog.rs").Find(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	var all []bson.Raw
	if err := cur.All(ctx, &all); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(all) {
		t.Fatalf("the tail returned %d entries, the oplog holds %d", len(got), len(all))
	}
	for _, e := range all {
		ts, _ := entryTS(e)
		if got[ts] != 1 {
			t.Fatalf("entry %v returned %d times", ts, got[ts])
		}
	}
}

// TestArchiverEveryEntryOnceOnFerretDB: the archive of a MongoSource left
// to find out the server by itself (as the agent and a0bench run it for an
// external FerretDB) holds the server's oplog, every entry once.
func TestArchiverEveryEntryOnceOnFerretDB(t *testing.T) {
	r := newRig(t, embedded.Config{})
	run := r.start(t, func(cfg *Config) {
		src := NewMongoSource(r.client)
		src.Await = 100 * time.Millisecond
		cfg.Source = src
	})
	write(t, r.client, 0, 300)
	r.waitArchived(t, run)
	run.stop(t)
	p, got := r.archiveEntries(t)
	sameEntries(t, got, r.serverEntries(t))
	if len(p.Windows) != 1 || len(p.Gaps) != 0 {
		t.Fatalf("proof %+v: want one window, no gap", p)
	}
}
