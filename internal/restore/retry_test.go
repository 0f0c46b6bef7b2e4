package restore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	_ "modernc.org/sqlite" // the driver FerretDB uses; registered as "sqlite"

	"github.com/a0backup/a0/internal/embedded"
)

// busyServer is a real FerretDB v1.24.2 on SQLite in dir whose
// busy_timeout is short (FerretDB's default is 10 s), so that a test holding
// a database file's write lock gets its SQLITE_BUSY at once.
func busyServer(t *testing.T) (client *mongo.Client, dir string) {
	t.Helper()
	dir = t.TempDir()
	sock := filepath.Join(t.TempDir(), "s.sock")
	u := &url.URL{Scheme: "file", Path: dir + "/", RawQuery: url.Values{"_pragma": {"busy_timeout(50)"}}.Encode()}
	f, err := ferretdb.New(&ferretdb.Config{Listener: ferretdb.ListenerConfig{Unix: sock}, Handler: "sqlite", SQLiteURL: u.String(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	client, err = mongo.Connect(options.Client().ApplyURI(embedded.SocketURI(sock)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Disconnect(context.Background()) })
	for i := 0; ; i++ {
		if err = client.Ping(ctx, nil); err == nil {
			break
		}
		if i == 500 {
			t.Fatalf("server did not answer: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return client, dir
}

// holdWriteLock takes database db's SQLite write lock beside FerretDB (BEGIN
// IMMEDIATE on the file FerretDB writes) and returns its release.
func holdWriteLock(t *testing.T, dir, db string) (release func()) {
	t.Helper()
	// It waits for FerretDB's own writer to finish.
	u := &url.URL{Scheme: "file", Path: filepath.Join(dir, db+".sqlite"), RawQuery: url.Values{"_pragma": {"busy_timeout(10000)"}}.Encode()}
	sdb, err := sql.Open("sqlite", u.String())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	conn, err := sdb.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	return func() {
		if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
			t.Error(err)
		}
		conn.Close()
		sdb.Close()
	}
}

// busyReplay is the archive of the replay's retry tests: app.c of 40
// documents (ids 0-39, v "a"), then two batches of entries: the first
// deletes 0-9, updates 10-19 to "b" and inserts 100-139; the second
// (its delete of 100 is on a document of the first) deletes 100, updates
// 20-29 and inserts 200-209, both with v "phase2". want are the documents
// expected after.
func busyReplay(t *testing.T) (data []byte, want []string) {
	doc := func(i int, v string) bson.D { return bson.D{{Key: "_id", Value: int64(i)}, {Key: "v", Value: v}} }
	var docs []bson.D
	for i := range 40 {
		docs = append(docs, doc(i, "a"))
	}
	var entries []bson.Raw
	ts := uint32(1700000000)
	add := func(e bson.D) {
		e[0].Value = bson.Timestamp{T: ts, I: uint32(len(entries) + 1)}
		entries = append(entries, mustRaw(t, e))
	}
	batch := func(dels []int, upd [2]int, ins [2]int, v, newV string) {
		for _, i := range dels {
			add(opEntry(ts, "d", "app.c", bson.D{{Key: "_id", Value: int64(i)}}, nil))
		}
		for i := upd[0]; i < upd[1]; i++ {
			add(opEntry(ts, "u", "app.c", bson.D{{Key: "$v", Value: 1}, {Key: "$set", Value: doc(i, v)}}, bson.D{{Key: "_id", Value: int64(i)}}))
		}
		for i := ins[0]; i < ins[1]; i++ {
			add(opEntry(ts, "i", "app.c", doc(i, newV), nil))
		}
	}
	// One update per batch: on this server (no _id lookup index) two or
	// more would go set-based (one read, a delete and an insert: see
	// setupdate.go) and no update command would reach the server.
	batch([]int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, [2]int{10, 11}, [2]int{100, 140}, "b", "new")
	batch([]int{100}, [2]int{20, 21}, [2]int{200, 210}, "phase2", "phase2")
	add1 := func(from, to int, v string) {
		for i := from; i < to; i++ {
			want = append(want, extJSON(t, doc(i, v)))
		}
	}
	add1(10, 11, "b")
	add1(11, 20, "a")
	add1(20, 21, "phase2")
	add1(21, 40, "a")
	add1(101, 140, "new")
	add1(200, 210, "phase2")
	sort.Strings(want)
	return oplogDump([]coll{{db: "app", name: "c", docs: docs}}, entries).archive(t), want
}

// secondBatch says whether cmd is one of busyReplay's second batch.
func secondBatch(t *testing.T, cmd bson.D) bool {
	s := extJSON(t, cmd)
	return strings.Contains(s, "phase2") || cmd[0].Key == "delete" && strings.Contains(s, `"100"`)
}

func sortedDocs(t *testing.T, c *mongo.Collection) []string {
	var got []string
	for _, d := range readAll(t, c) {
		got = append(got, extJSON(t, d))
	}
	sort.Strings(got)
	return got
}

// TestReplayRetriesBusy: a real FerretDB refuses a replay command with
// SQLITE_BUSY while another connection holds the database's write lock
// (longer than its busy_timeout): the replay sends it again once the lock
// is free, and the collection ends as the oplog left it. The insert
// command's first send is made to fail after the server wrote part of it
// (the first half of its documents, sent by the test as the server
// would): the documents it wrote come back as duplicate keys on the
// second send, and become replacements by the same documents. The report
// counts the retries and does not compare the collection's count (the
// failed send's part is unknown to the replay); in the batch after the
// server said BUSY, no two replay commands are in flight at once.
func TestReplayRetriesBusy(t *testing.T) {
	ctx := context.Background()
	client, dir := busyServer(t)
	data, want := busyReplay(t)

	var (
		mu       sync.Mutex
		lockMu   sync.Mutex           // one command at the server at a time
		failed   = map[string]error{} // first send of each command kind, refused
		inFlight int
		overlap  bool
	)
	hook := func(next commander) commander {
		return func(ctx context.Context, db string, cmd bson.D) (bson.Raw, error) {
			kind := cmd[0].Key
			mu.Lock()
			inFlight++
			if inFlight > 1 && secondBatch(t, cmd) {
				overlap = true
			}
			_, done := failed[kind]
			first := !done && (kind == "insert" || kind == "update" || kind == "delete")
			if first {
				failed[kind] = nil
			}
			mu.Unlock()
			defer func() {
				mu.Lock()
				inFlight--
				mu.Unlock()
			}()
			// One command at a time reaches the server (they entered
			// the hook at once all the same: inFlight): a command sent
			// again never meets the lock held for another's first
			// send, so each first send fails once and only once.
			lockMu.Lock()
			defer lockMu.Unlock()
			if !first {
				return next(ctx, db, cmd)
			}
			if kind == "insert" {
				// The part the server wrote before it failed.
				docs := cmd[1].Value.(bson.A)
				part := bson.D{cmd[0], {Key: "documents", Value: docs[:len(docs)/2]}}
				if _, err := next(ctx, db, part); err != nil {
					t.Errorf("the first half of the insert: %v", err)
					return nil, err
				}
			}
			release := holdWriteLock(t, dir, db)
			res, err := next(ctx, db, cmd)
			release()
			mu.Lock()
			failed[kind] = err
			mu.Unlock()
			return res, err
		}
	}
	opts := Options{Drop: true, testMode: modeWrites, testCommandHook: hook, testRetryWait: time.Millisecond}
	p, err := Plan(ctx, bytes.NewReader(data), opts)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(ctx, client, bytes.NewReader(data), p, opts, &Progress{})
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"insert", "update", "delete"} {
		if err := failed[kind]; !isTransient(err) {
			t.Errorf("first %s: the server answered %v, want SQLITE_BUSY", kind, err)
		}
	}
	if rep.ServerRetries < 3 {
		t.Errorf("report: %d retries, want at least 3", rep.ServerRetries)
	}
	if len(rep.Collections) != 1 || rep.Collections[0].CountCompared || !rep.OK {
		t.Errorf("report %+v: want OK, the count of app.c not compared", rep)
	}
	if overlap {
		t.Error("two replay commands in flight in the batch after the server said BUSY")
	}
	if got := sortedDocs(t, client.Database("app").Collection("c")); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("app.c after the replay\n got %s\nwant %s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestReplayRetryBounded: a server that stays busy fails the restore after
// retryAttempts sends of one command, with ErrServerBusy; an error that is
// not transient is never sent again.
func TestReplayRetryBounded(t *testing.T) {
	for _, tc := range []struct {
		name  string
		busy  bool
		sends int
		want  error
	}{
		{name: "busy every time", busy: true, sends: retryAttempts, want: ErrServerBusy},
		{name: "not transient", sends: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			client, dir := busyServer(t)
			data, _ := busyReplay(t)
			other := mongo.CommandError{Code: codeInternalError, Message: "some other failure", Name: "InternalError"}
			var mu, lockMu sync.Mutex
			sends := 0
			hook := func(next commander) commander {
				return func(ctx context.Context, db string, cmd bson.D) (bson.Raw, error) {
					// One command at a time: only the update meets
					// the held lock.
					lockMu.Lock()
					defer lockMu.Unlock()
					if cmd[0].Key != "update" {
						return next(ctx, db, cmd)
					}
					mu.Lock()
					sends++
					mu.Unlock()
					if !tc.busy {
						return nil, other
					}
					release := holdWriteLock(t, dir, db)
					defer release()
					return next(ctx, db, cmd)
				}
			}
			opts := Options{Drop: true, testMode: modeWrites, testCommandHook: hook, testRetryWait: time.Millisecond}
			p, err := Plan(ctx, bytes.NewReader(data), opts)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Run(ctx, client, bytes.NewReader(data), p, opts, &Progress{})
			if err == nil {
				t.Fatal("restore succeeded")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
			if !tc.busy && !strings.Contains(err.Error(), other.Message) {
				t.Errorf("err = %v, want the server's", err)
			}
			if sends != tc.sends {
				t.Errorf("update sent %d times, want %d", sends, tc.sends)
			}
		})
	}
}

// TestLoadRetriesBusy: the data phase sends an insert again after
// SQLITE_BUSY, as the replay does. Its first send fails after the server
// wrote half the batch: those documents come back as duplicate keys and,
// being exactly the documents sent, count as restored, not refused.
func TestLoadRetriesBusy(t *testing.T) {
	ctx := context.Background()
	client, dir := busyServer(t)
	var docs []bson.D
	var want []string
	for i := range 50 {
		d := bson.D{{Key: "_id", Value: int64(i)}, {Key: "v", Value: fmt.Sprint(i)}}
		docs = append(docs, d)
		want = append(want, extJSON(t, d))
	}
	sort.Strings(want)
	data := dump{colls: []coll{{db: "app", name: "c", docs: docs}}}.archive(t)
	var failed error
	sends := 0
	opts := Options{Drop: true, testRetryWait: time.Millisecond,
		testInsertHook: func(ctx context.Context, coll *mongo.Collection, batch []any, send func(context.Context) error) error {
			sends++
			if sends > 1 {
				return send(ctx)
			}
			if _, err := coll.InsertMany(ctx, batch[:len(batch)/2]); err != nil {
				return err
			}
			release := holdWriteLock(t, dir, "app")
			failed = send(ctx)
			release()
			return failed
		}}
	p, err := Plan(ctx, bytes.NewReader(data), opts)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(ctx, client, bytes.NewReader(data), p, opts, &Progress{})
	if err != nil {
		t.Fatal(err)
	}
	if !isTransient(failed) {
		t.Errorf("first send: the server answered %v, want SQLITE_BUSY", failed)
	}
	if !rep.OK || rep.DocumentsFailed != 0 || rep.ServerRetries != 1 {
		t.Errorf("report %+v: want OK, nothing refused, 1 retry", rep)
	}
	if got := sortedDocs(t, client.Database("app").Collection("c")); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("app.c\n got %s\nwant %s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestReplayInsertRefusedByAnotherUniqueIndex: a replayed insert refused as
// a duplicate key by a unique index other than _id's (the target's empty
// collection already had it) fails the replay, naming the refusal. It used
// to become a replacement by _id that matched nothing: the restore ended
// OK without the document.
func TestReplayInsertRefusedByAnotherUniqueIndex(t *testing.T) {
	ctx := context.Background()
	client, _ := busyServer(t)
	c := client.Database("app").Collection("c")
	if _, err := c.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "v", Value: 1}}, Options: options.Index().SetUnique(true)}); err != nil {
		t.Fatal(err)
	}
	ts := uint32(1700000000)
	doc := func(i int, v string) bson.D { return bson.D{{Key: "_id", Value: int64(i)}, {Key: "v", Value: v}} }
	var entries []bson.Raw
	for i, e := range []bson.D{
		opEntry(ts, "i", "app.c", doc(1, "x"), nil), // in the data already: a replacement
		opEntry(ts, "i", "app.c", doc(2, "x"), nil), // refused by v_1
	} {
		e[0].Value = bson.Timestamp{T: ts, I: uint32(i + 1)}
		entries = append(entries, mustRaw(t, e))
	}
	data := oplogDump([]coll{{db: "app", name: "c", docs: []bson.D{doc(1, "x")}}}, entries).archive(t)
	opts := Options{testMode: modeWrites}
	p, err := Plan(ctx, bytes.NewReader(data), opts)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Run(ctx, client, bytes.NewReader(data), p, opts, &Progress{})
	if err == nil {
		t.Fatalf("restore succeeded; app.c holds %v", sortedDocs(t, c))
	}
	if !strings.Contains(strings.ToLower(err.Error()), "duplicate") {
		t.Fatalf("err = %v, want the duplicate key named", err)
	}
}

// TestReplaySetBasedRewriteRetried: on a target without the _id lookup
// index a batch's updates go set-based (setupdate.go): the documents are
// deleted and inserted again with their updates applied. When that insert's
// first send fails with SQLITE_BUSY after the server wrote part of it, the
// second send gets those documents back as duplicate keys: they are the
// documents sent, byte for byte, so they count as written and the replay
// goes on. (Before, the rewrite took them for documents not written back
// and failed the restore.)
func TestReplaySetBasedRewriteRetried(t *testing.T) {
	ctx := context.Background()
	client, dir := busyServer(t)
	doc := func(i int, v string) bson.D { return bson.D{{Key: "_id", Value: int64(i)}, {Key: "v", Value: v}} }
	var docs []bson.D
	for i := range 10 {
		docs = append(docs, doc(i, "a"))
	}
	ts := uint32(1700000000)
	var entries []bson.Raw
	for i := range 6 {
		e := opEntry(ts, "u", "app.c", bson.D{{Key: "$v", Value: 1}, {Key: "$set", Value: bson.D{{Key: "v", Value: "b"}}}}, bson.D{{Key: "_id", Value: int64(i)}})
		e[0].Value = bson.Timestamp{T: ts, I: uint32(i + 1)}
		entries = append(entries, mustRaw(t, e))
	}
	var want []string
	for i := range 10 {
		v := "a"
		if i < 6 {
			v = "b"
		}
		want = append(want, extJSON(t, doc(i, v)))
	}
	sort.Strings(want)
	data := oplogDump([]coll{{db: "app", name: "c", docs: docs}}, entries).archive(t)

	var mu sync.Mutex
	var inserts, updates int
	var firstErr error
	replaying := false
	hook := func(next commander) commander {
		return func(ctx context.Context, db string, cmd bson.D) (bson.Raw, error) {
			mu.Lock()
			defer mu.Unlock()
			switch cmd[0].Key {
			case "find":
				replaying = true
			case "update":
				updates++
			case "insert":
				if !replaying {
					break
				}
				inserts++
				if inserts == 1 {
					// The part the server wrote before it failed.
					all := cmd[1].Value.(bson.A)
					if _, err := next(ctx, db, bson.D{cmd[0], {Key: "documents", Value: all[:len(all)/2]}}); err != nil {
						t.Errorf("the first half of the rewrite: %v", err)
						return nil, err
					}
					release := holdWriteLock(t, dir, db)
					defer release()
					res, err := next(ctx, db, cmd)
					firstErr = err
					return res, err
				}
			}
			return next(ctx, db, cmd)
		}
	}
	opts := Options{Drop: true, testMode: modeWrites, testCommandHook: hook, testRetryWait: time.Millisecond}
	p, err := Plan(ctx, bytes.NewReader(data), opts)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(ctx, client, bytes.NewReader(data), p, opts, &Progress{})
	if err != nil {
		t.Fatal(err)
	}
	if !isTransient(firstErr) {
		t.Fatalf("the rewrite's first send: the server answered %v, want SQLITE_BUSY", firstErr)
	}
	if updates != 0 || inserts != 2 {
		t.Fatalf("%d update commands and %d rewrite inserts: want the set-based path (0 updates) sent twice", updates, inserts)
	}
	if rep.ServerRetries < 1 || !rep.OK {
		t.Errorf("report %+v: want OK with a retry", rep)
	}
	if got := sortedDocs(t, client.Database("app").Collection("c")); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("app.c after the replay\n got %s\nwant %s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
