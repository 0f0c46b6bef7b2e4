package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/a0backup/a0/internal/agent"
	"github.com/a0backup/a0/internal/embedded"
	"github.com/a0backup/a0/internal/manifest"
	"github.com/a0backup/a0/internal/restore"
)

// The namespaces the writer of TestPointInTime changes: one updated in
// place, one with inserts and deletes, one append-only. A restore that mixes
// moments (each collection copied at a different time, no replay) shows in
// at least one of them.
var writerNamespaces = []string{"auth0.users", "auth0.sessions", "logs.logs"}

// The source: a small seeded appliance, whose collections the writer
// changes, and a bulk collection nobody writes to that makes the dump take
// several seconds (FerretDB reads small documents at 1.5-3 MB/s). The
// seeded users stay few because FerretDB updates and deletes by _id cost a
// scan of the collection: with many users the writer would crawl.
const (
	pitUsers       = 1000
	pitBulkDocs    = 30000
	pitBulkNS      = "archive.events"
	pitBulkPayload = 300
)

func seedBulk(t *testing.T, c *mongo.Client) {
	t.Helper()
	db, coll := splitNS(pitBulkNS)
	pad := strings.Repeat("x", pitBulkPayload)
	docs := make([]any, 0, 5000)
	for i := 0; i < pitBulkDocs; i++ {
		docs = append(docs, bson.D{{Key: "_id", Value: int64(i)}, {Key: "kind", Value: "event"}, {Key: "pad", Value: pad}})
		if len(docs) == cap(docs) {
			if _, err := c.Database(db).Collection(coll).InsertMany(context.Background(), docs); err != nil {
				t.Fatal(err)
			}
			docs = docs[:0]
		}
	}
}

// resetOplog empties the oplog (drop, create), as a trim of the oplog
// would: the seed's entries are not what the test is about, and on
// FerretDB every backup reads the whole oplog once.
func resetOplog(t *testing.T, c *mongo.Client) {
	t.Helper()
	if err := c.Database("local").Collection("oplog.rs").Drop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := embedded.EnsureOplog(context.Background(), c); err != nil {
		t.Fatal(err)
	}
}

// write is one write of the writer, logged when the server acknowledged it.
type write struct {
	op   string // i, u, d as in the oplog
	ns   string
	id   bson.RawValue
	done time.Time // wall clock after the acknowledgement
	// Filled from the oplog after the run.
	ts    bson.Timestamp
	entry bson.Raw
}

// writer makes one write at a time, for as long as ctx lives: updates of
// auth0.users, inserts and deletes of auth0.sessions, inserts into
// logs.logs. It is one goroutine on purpose: FerretDB assigns the oplog ts
// and inserts the entry after the write, so concurrent writers can land
// entries out of ts order; one writer keeps ts order = write order.
type writer struct {
	c        *mongo.Client
	users    []bson.RawValue
	sessions []bson.RawValue
	log      []write
	err      error
	// n counts the writes done, for a test to wait on.
	n atomic.Int64
}

// waitWrites waits until the writer has done at least k writes (or failed).
func (w *writer) waitWrites(t *testing.T, k int64) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); w.n.Load() < k; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the writer did %d writes in 2 minutes, want %d", w.n.Load(), k)
		}
	}
}

func newWriter(t *testing.T, c *mongo.Client) *writer {
	t.Helper()
	return &writer{c: c, users: ids(t, c, "auth0.users"), sessions: ids(t, c, "auth0.sessions")}
}

func ids(t *testing.T, c *mongo.Client, ns string) []bson.RawValue {
	t.Helper()
	db, coll := splitNS(ns)
	cur, err := c.Database(db).Collection(coll).Find(context.Background(), bson.D{}, options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		t.Fatal(err)
	}
	var out []bson.RawValue
	for cur.Next(context.Background()) {
		out = append(out, cloneValue(cur.Current.Lookup("_id")))
	}
	if err := cur.Err(); err != nil || len(out) == 0 {
		t.Fatalf("%s: %d ids, %v", ns, len(out), err)
	}
	return out
}

func cloneValue(v bson.RawValue) bson.RawValue {
	v.Value = append([]byte(nil), v.Value...)
	return v
}

func (w *writer) run(ctx context.Context) {
	r := rand.New(rand.NewPCG(7, 11))
	users := w.c.Database("auth0").Collection("users")
	sessions := w.c.Database("auth0").Collection("sessions")
	logs := w.c.Database("logs").Collection("logs")
	// The writes use their own context: one cut by ctx could be applied on
	// the server and missing from the log.
	wctx := context.Background()
	for i := 0; ctx.Err() == nil; i++ {
		var (
			wr  write
			err error
		)
		switch i % 4 {
		case 0:
			id := w.users[r.IntN(len(w.users))]
			wr = write{op: "u", ns: "auth0.users", id: id}
			var res *mongo.UpdateResult
			res, err = users.UpdateOne(wctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$set", Value: bson.D{
				{Key: "a0_writes", Value: int64(i)}, {Key: "last_login", Value: time.Now().UTC().Truncate(time.Millisecond)}}}})
			if err == nil && res.ModifiedCount != 1 {
				err = fmt.Errorf("update %v modified %d", id, res.ModifiedCount)
			}
		case 1:
			id := bson.NewObjectID()
			wr = write{op: "i", ns: "auth0.sessions", id: bson.RawValue{Type: bson.TypeObjectID, Value: id[:]}}
			_, err = sessions.InsertOne(wctx, bson.D{{Key: "_id", Value: id}, {Key: "user_id", Value: w.users[r.IntN(len(w.users))]},
				{Key: "n", Value: int64(i)}, {Key: "created_at", Value: time.Now().UTC().Truncate(time.Millisecond)}})
			if err == nil {
				w.sessions = append(w.sessions, wr.id)
			}
		case 2:
			k := r.IntN(len(w.sessions))
			id := w.sessions[k]
			wr = write{op: "d", ns: "auth0.sessions", id: id}
			var res *mongo.DeleteResult
			res, err = sessions.DeleteOne(wctx, bson.D{{Key: "_id", Value: id}})
			if err == nil && res.DeletedCount != 1 {
				err = fmt.Errorf("delete %v deleted %d", id, res.DeletedCount)
			}
			w.sessions[k] = w.sessions[len(w.sessions)-1]
			w.sessions = w.sessions[:len(w.sessions)-1]
		case 3:
			id := bson.NewObjectID()
			wr = write{op: "i", ns: "logs.logs", id: bson.RawValue{Type: bson.TypeObjectID, Value: id[:]}}
			_, err = logs.InsertOne(wctx, bson.D{{Key: "_id", Value: id}, {Key: "type", Value: "s"},
				{Key: "n", Value: int64(i)}, {Key: "date", Value: time.Now().UTC().Truncate(time.Millisecond)}})
		}
		if err != nil {
			w.err = fmt.Errorf("write %d (%s %s): %w", i, wr.op, wr.ns, err)
			return
		}
		wr.done = time.Now()
		w.log = append(w.log, wr)
		w.n.Add(1)
		time.Sleep(time.Millisecond) // a steady rate, not a saturating one
	}
}

// mapOplog gives every logged write its oplog entry: the entries after
// from, in the oplog's order, must be exactly the writer's writes, in the
// writer's order, with increasing ts.
func mapOplog(t *testing.T, c *mongo.Client, from bson.Timestamp, log []write) {
	t.Helper()
	ctx := context.Background()
	cur, err := c.Database("local").Collection("oplog.rs").Find(ctx, bson.D{{Key: "ts", Value: bson.D{{Key: "$gt", Value: from}}}},
		options.Find().SetSort(bson.D{{Key: "$natural", Value: 1}}))
	if err != nil {
		t.Fatal(err)
	}
	var entries []bson.Raw
	for cur.Next(ctx) {
		// Not writes: FerretDB's logging of its own oplog trims, and the
		// no-op entry the oplog is created with.
		if ns := cur.Current.Lookup("ns").StringValue(); strings.HasPrefix(ns, "local.") || cur.Current.Lookup("op").StringValue() == "n" {
			continue
		}
		entries = append(entries, append(bson.Raw(nil), cur.Current...))
	}
	if err := cur.Err(); err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(log) {
		t.Fatalf("the oplog holds %d entries after %v, the writer made %d writes", len(entries), from, len(log))
	}
	var prev bson.Timestamp
	for k, e := range entries {
		w := &log[k]
		op, ns := e.Lookup("op").StringValue(), e.Lookup("ns").StringValue()
		idDoc := "o"
		if op == "u" {
			idDoc = "o2"
		}
		id := e.Lookup(idDoc, "_id")
		if op != w.op || ns != w.ns || !id.Equal(w.id) {
			t.Fatalf("oplog entry %d is %s %s %v, write %d was %s %s %v", k, op, ns, id, k, w.op, w.ns, w.id)
		}
		tt, ii := e.Lookup("ts").Timestamp()
		w.ts, w.entry = bson.Timestamp{T: tt, I: ii}, e
		if k > 0 && !prev.Before(w.ts) {
			t.Fatalf("oplog entry %d: ts %v not after %v", k, w.ts, prev)
		}
		prev = w.ts
		if wall := e.Lookup("wall").Time(); wall.After(w.done) {
			t.Fatalf("write %d: oplog wall %v after its acknowledgement %v", k, wall, w.done)
		}
	}
}

// docs reads a collection as _id (raw bytes) -> document.
func docs(t *testing.T, c *mongo.Client, ns string) map[string]bson.Raw {
	t.Helper()
	db, coll := splitNS(ns)
	cur, err := c.Database(db).Collection(coll).Find(context.Background(), bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bson.Raw{}
	for cur.Next(context.Background()) {
		out[idKey(cur.Current.Lookup("_id"))] = append(bson.Raw(nil), cur.Current...)
	}
	if err := cur.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func idKey(v bson.RawValue) string { return string(rune(v.Type)) + string(v.Value) }

// stateAt applies the writes with ts <= to, in order, to a snapshot taken
// before the first write: the source as it was at `to`.
func stateAt(before map[string]map[string]bson.Raw, log []write, to bson.Timestamp) map[string]map[string]bson.Raw {
	out := map[string]map[string]bson.Raw{}
	for ns, m := range before {
		out[ns] = map[string]bson.Raw{}
		for k, d := range m {
			out[ns][k] = d
		}
	}
	for _, w := range log {
		if to.Before(w.ts) {
			continue
		}
		switch w.op {
		case "i":
			out[w.ns][idKey(w.id)] = w.entry.Lookup("o").Document()
		case "u": // FerretDB logs the whole new document: {$v: 1, $set: doc}
			out[w.ns][idKey(w.id)] = w.entry.Lookup("o", "$set").Document()
		case "d":
			delete(out[w.ns], idKey(w.id))
		}
	}
	return out
}

// diffState lists the documents of c that differ from want, naming the
// writes on each and whether they were before or after `to`.
func diffState(t *testing.T, c *mongo.Client, want map[string]map[string]bson.Raw, log []write, to bson.Timestamp) []string {
	t.Helper()
	var out []string
	for _, ns := range writerNamespaces {
		got := docs(t, c, ns)
		keys := map[string]bool{}
		for k := range got {
			keys[k] = true
		}
		for k := range want[ns] {
			keys[k] = true
		}
		for k := range keys {
			g, w := got[k], want[ns][k]
			if bytes.Equal(g, w) {
				continue
			}
			var why []string
			for i, wr := range log {
				if wr.ns == ns && idKey(wr.id) == k {
					side := "before"
					if to.Before(wr.ts) {
						side = "AFTER"
					}
					why = append(why, fmt.Sprintf("write %d %s ts %d.%d %s consistent_to", i, wr.op, wr.ts.T, wr.ts.I, side))
				}
			}
			out = append(out, fmt.Sprintf("%s %x: restored %v, expected %v (%s)", ns, k, g != nil, w != nil, strings.Join(why, "; ")))
		}
	}
	sort.Strings(out)
	return out
}

func verifyManifest(t *testing.T, op *operator, file string) *manifest.Manifest {
	t.Helper()
	r := op.run("verify", file, "--json")
	var v VerifyResult
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &v) != nil || v.Manifest == nil {
		t.Fatalf("verify --json: %+v", r)
	}
	return v.Manifest
}

// TestPointInTime: a writer inserts, updates and deletes for the whole
// backup; the restore equals the source at consistent_to, document for
// document: every write at or before it, none after it. The same archive
// restored without oplog replay does not, which shows the check can fail.
func TestPointInTime(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds and backs up several MB on FerretDB")
	}
	ctx := context.Background()
	// The dump is held once it has its oplog start, until the writer has
	// written into every collection: writes during the dump, whatever the
	// machine's speed.
	h := newHolds(agent.HoldBackupOplog)
	src := startNodeWith(t, "", "", agent.Config{Hold: h.hook})
	src.seed(pitUsers)
	op := newOperator(t).withKey(src)
	op.mustOn(src, "set-as-backup", t.TempDir())
	const pw = "Passw0rd-pit"
	op.env["A0_BACKUP_PASSWORD"] = pw
	seedBulk(t, src.client())
	resetOplog(t, src.client())

	// The source before the first write, and the oplog position then.
	before := map[string]map[string]bson.Raw{}
	for _, ns := range writerNamespaces {
		before[ns] = docs(t, src.client(), ns)
	}
	from := bson.Timestamp{} // the oplog is empty: every entry is the writer's

	w := newWriter(t, src.client())
	wctx, stopWriter := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); w.run(wctx) }()
	stop := sync.OnceFunc(func() { stopWriter(); wg.Wait() })
	defer stop()

	// Writes before the backup's oplog start, during the dump (200 in a
	// row: 50 of each kind), and after it ends.
	w.waitWrites(t, 20)
	// On FerretDB the oplog start is the server clock's second minus one
	// (docs/consistency.md): writes of the last two seconds can be after
	// it. The backup starts two clock seconds after the 20th write, so
	// that some writes are before its start however fast the backup
	// request is (the writer keeps writing meanwhile).
	first := time.Now()
	time.Sleep(time.Until(time.Unix(first.Unix()+2, 0).Add(100 * time.Millisecond)))
	op.mustOn(src, "backup")
	h.wait(t, agent.HoldBackupOplog)
	w.waitWrites(t, w.n.Load()+200)
	h.let(agent.HoldBackupOplog)
	st := decodeStatus(t, op.waitStatus(src, "backup-status"))
	w.waitWrites(t, w.n.Load()+20)
	stop()
	if w.err != nil {
		t.Fatal(w.err)
	}
	if st.Message != "Backup found" || st.Arguments.Consistency != manifest.ConsistencyPointInTime {
		t.Fatalf("%+v\n%s", st, src.log.String())
	}
	mapOplog(t, src.client(), from, w.log)

	op.mustOn(src, "backup-retrieve")
	file := filepath.Join(op.dir, "backup-retrieve.tar.gz.enc")
	m := verifyManifest(t, op, file)
	if m.Consistency != manifest.ConsistencyPointInTime || m.ConsistentTo == nil || m.OplogStart == nil {
		t.Fatalf("manifest: %+v", m)
	}
	start := bson.Timestamp{T: m.OplogStart.T, I: m.OplogStart.I}
	to := bson.Timestamp{T: m.ConsistentTo.T, I: m.ConsistentTo.I}

	// The writes must straddle the backup: before it, during the dump in
	// every collection, and after consistent_to.
	var pre, during, post int
	duringNS := map[string]int{}
	for _, wr := range w.log {
		switch {
		case !start.Before(wr.ts):
			pre++
		case !to.Before(wr.ts):
			during++
			duringNS[wr.ns+" "+wr.op]++
		default:
			post++
		}
	}
	t.Logf("dump %v, %d writes: %d before oplog_start, %d during the dump, %d after consistent_to %d.%d (%s); %d oplog entries captured",
		m.Finished.Sub(m.Started).Round(time.Millisecond), len(w.log), pre, during, post, to.T, to.I,
		m.ConsistentTo.Wall.Format(time.RFC3339Nano), m.OplogEntries)
	if pre == 0 || post == 0 || during < 100 || len(duringNS) != 4 {
		t.Fatalf("the writes do not straddle the backup: %d before, %d during %v, %d after", pre, during, duringNS, post)
	}
	want := stateAt(before, w.log, to)

	t.Run("restore equals the source at consistent_to", func(t *testing.T) {
		dst := startNode(t, "", "")
		dst.authorize("ops", op.home)
		if r := op.mustOn(dst, "restore", file); !strings.Contains(r.stdout, "Restore finished") {
			t.Fatalf("%+v", r)
		}
		if d := diffState(t, dst.client(), want, w.log, to); len(d) > 0 {
			t.Fatalf("%d documents differ from the source at consistent_to %d.%d:\n%s", len(d), to.T, to.I, strings.Join(d[:min(len(d), 20)], "\n"))
		}
		// The collections nobody wrote to are as in the source.
		nss := userNamespaces(t, src.client())
		if got := userNamespaces(t, dst.client()); strings.Join(got, ",") != strings.Join(nss, ",") {
			t.Fatalf("namespaces %v, want %v", got, nss)
		}
		for _, ns := range nss {
			if !contains(writerNamespaces, ns) {
				sameCollection(t, src.client(), dst.client(), ns)
			}
		}
	})

	t.Run("without oplog replay the same check fails", func(t *testing.T) {
		plain := filepath.Join(op.dir, "plain.tar.gz")
		if r := op.run("decrypt", file, "-o", plain); r.code != 0 {
			t.Fatalf("%+v", r)
		}
		dst := startNode(t, "", "")
		opts := restore.Options{NoOplogReplay: true}
		f, err := os.Open(plain)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		p, err := restore.Plan(ctx, f, opts)
		if err != nil {
			t.Fatal(err)
		}
		f.Seek(0, 0)
		if _, err := restore.Run(ctx, dst.client(), f, p, opts, nil); err != nil {
			t.Fatal(err)
		}
		d := diffState(t, dst.client(), want, w.log, to)
		if len(d) == 0 {
			t.Fatal("a restore without oplog replay matches the source at consistent_to: the test cannot tell a mixed-moment copy")
		}
		t.Logf("without replay %d documents differ, e.g. %s", len(d), d[0])
	})
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestBackupOplogRolled: the oplog loses the backup's start position while
// the dump runs (here it is dropped and recreated, which is what a rollover
// does to the start entry); the backup fails and backup-status says why
// and how large the oplog must be.
func TestBackupOplogRolled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// The dump is held once it has its oplog start: the oplog changes
	// there, mid-job, however fast the machine.
	h := newHolds(agent.HoldBackupOplog)
	src := startNodeWith(t, "", "", agent.Config{Hold: h.hook})
	src.seed(300)
	op := newOperator(t).withKey(src)
	op.mustOn(src, "set-as-backup", t.TempDir())
	op.env["A0_BACKUP_PASSWORD"] = "Passw0rd-rolled"
	op.mustOn(src, "backup")
	h.wait(t, agent.HoldBackupOplog)
	c := src.client()
	if err := c.Database("local").Collection("oplog.rs").Drop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := embedded.EnsureOplog(ctx, c); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		if _, err := c.Database("logs").Collection("logs").InsertOne(ctx, bson.D{{Key: "rolled", Value: i}}); err != nil {
			t.Fatal(err)
		}
	}
	h.let(agent.HoldBackupOplog)
	st := decodeStatus(t, op.waitStatus(src, "backup-status"))
	if st.Message != "Backup failed" {
		t.Fatalf("status %+v, want Backup failed\n%s", st, src.log.String())
	}
	for _, want := range []string{"oplog rolled over during the dump", "cannot be point-in-time", "the oplog needs at least"} {
		if !strings.Contains(st.Arguments.Error, want) {
			t.Errorf("error %q lacks %q", st.Arguments.Error, want)
		}
	}
	t.Logf("backup-status error: %s", st.Arguments.Error)
	if r := op.on(src, "backup-retrieve"); r.code != ExitNotFound {
		t.Errorf("a failed backup left something to retrieve: %+v", r)
	}
}

// TestBackupStandalone: a server without an oplog (a standalone mongod) is
// backed up with consistency "none", said by backup-status and the
// manifest, and restores.
func TestBackupStandalone(t *testing.T) {
	ctx := context.Background()
	src, op, _ := backupNode(t, 300)
	op.env["A0_BACKUP_PASSWORD"] = "Passw0rd-standalone"
	// The agent creates the oplog on its embedded server at start: drop it.
	if err := src.client().Database("local").Collection("oplog.rs").Drop(ctx); err != nil {
		t.Fatal(err)
	}
	op.mustOn(src, "backup")
	line := op.waitStatus(src, "backup-status")
	st := decodeStatus(t, line)
	if st.Message != "Backup found" || st.Arguments.Consistency != manifest.ConsistencyNone || !strings.Contains(line, `"consistency":"none"`) {
		t.Fatalf("%s\n%s", line, src.log.String())
	}
	op.mustOn(src, "backup-retrieve")
	file := filepath.Join(op.dir, "backup-retrieve.tar.gz.enc")
	m := verifyManifest(t, op, file)
	if m.Consistency != manifest.ConsistencyNone || m.ConsistentTo != nil || m.OplogStart != nil || m.OplogEntries != 0 {
		t.Fatalf("manifest: consistency %q start %v to %v entries %d", m.Consistency, m.OplogStart, m.ConsistentTo, m.OplogEntries)
	}
	if r := op.run("verify", file); r.code != 0 || !strings.Contains(r.stdout, "none") {
		t.Fatalf("%+v", r)
	}
	dst := startNode(t, "", "")
	dst.authorize("ops", op.home)
	op.mustOn(dst, "restore", file)
	for _, ns := range userNamespaces(t, src.client()) {
		sameCollection(t, src.client(), dst.client(), ns)
	}
}
