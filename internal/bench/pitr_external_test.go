package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/a0backup/a0/internal/agent"
	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/pitr/pitrtest"
)

// TestPITRExternalServer (issue 26, the proof against an external
// server): the source is a MongoDB-wire server run as a process of its
// own (wire-server: FerretDB with local.oplog.rs), the agent is given its
// URI only (so its archive reads the oplog over the wire, pitr.MongoSource
// polling a FerretDB server, none of the embedded side channels), a writer
// inserts, updates and deletes across three collections through a backup
// and after it, and a restore through the agent to three random points
// (two exact positions, one second by --to-time) equals, document for
// document, what the server's own oplog says the collections were then.
func TestPITRExternalServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server process: skipped with -short")
	}
	ctx := context.Background()
	work := t.TempDir()
	srv, err := StartWireServer(ctx, os.Args[0], filepath.Join(work, "server"))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c, err := mongo.Connect(options.Client().ApplyURI(srv.URI))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(ctx)
	x, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	n, err := StartNodeWith(ctx, filepath.Join(work, "node"), srv.URI, NodeOptions{
		PITR: &agent.PITR{Slice: time.Second, Retry: 100 * time.Millisecond}, Recipients: []string{x.Recipient().String()}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if n.a.Embedded() != nil {
		t.Fatal("the agent runs an embedded server")
	}
	ageKey := filepath.Join(work, "age.key")
	if err := os.WriteFile(ageKey, []byte(x.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 26))
	w := pitrtest.NewWriter(c, rng)
	for range 150 {
		if err := w.Step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	status := func() api.PITRStatus {
		t.Helper()
		out, err := n.CLI(ctx, "-t", n.Addr, "pitr-status", "--json")
		if err != nil {
			t.Fatal(err)
		}
		var r struct {
			Message   string         `json:"message"`
			Arguments api.PITRStatus `json:"arguments"`
		}
		if err := json.Unmarshal([]byte(out), &r); err != nil || r.Message != api.MessagePITRRunning {
			t.Fatalf("pitr-status: %v %s", err, out)
		}
		return r.Arguments
	}
	deadline := time.Now().Add(time.Minute)
	for status().Slices == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no slice in a minute")
		}
		time.Sleep(100 * time.Millisecond)
	}

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
				time.Sleep(20 * time.Millisecond)
			}
		}
		writerDone <- nil
	}()
	time.Sleep(1100 * time.Millisecond) // the base inside the archive, past its first second
	if _, err := n.liveBackup(ctx, "", true); err != nil {
		t.Fatal(err)
	}
	base, since := w.Ops, time.Now()
	for w.Ops < base+300 || time.Since(since) < 4*time.Second {
		time.Sleep(20 * time.Millisecond)
	}
	stopWriter()
	if err := <-writerDone; err != nil {
		t.Fatal(err)
	}

	model := pitrtest.ReadModel(t, c)
	newest := model.Newest()
	var st api.PITRStatus
	deadline = time.Now().Add(time.Minute)
	for {
		st = status()
		if len(st.Windows) > 0 && !wtsOf(st).Before(newest) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the archive did not reach %v: %+v", newest, st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(st.Windows) != 1 || len(st.Gaps) != 0 {
		t.Fatalf("pitr-status: %+v", st)
	}
	consistent := bson.Timestamp{T: st.Windows[0].FromTS.T, I: st.Windows[0].FromTS.I}
	after := model.After(consistent)
	if len(after) < 100 {
		t.Fatalf("only %d entries after the base's consistent_to %v", len(after), consistent)
	}
	t.Logf("%d oplog entries, %d after consistent_to %v, %d slices", len(model.Entries), len(after), consistent, st.Slices)
	for k := range 3 {
		to := after[rng.IntN(len(after))]
		arg := []string{"--to-ts", fmt.Sprintf("%d,%d", to.T, to.I)}
		if k == 2 && to.T == newest.T {
			to.T-- // the archive cannot prove the newest second complete
		}
		if k == 2 && to.T > consistent.T {
			to = bson.Timestamp{T: to.T, I: ^uint32(0)}
			arg = []string{"--to-time", time.Unix(int64(to.T), 0).UTC().Format(time.RFC3339)}
		}
		t.Run(fmt.Sprintf("to %v", arg), func(t *testing.T) {
			out, err := n.CLI(ctx, append([]string{"-t", n.Addr, "restore", "--identity", ageKey, "--drop"}, arg...)...)
			if err != nil || !strings.Contains(out, "Restore finished") {
				t.Fatalf("restore %v: %v\n%s", arg, err, out)
			}
			pitrtest.Same(t, fmt.Sprint(arg), model.At(t, to), pitrtest.Current(t, c))
		})
	}
}

// wtsOf is the end of pitr-status's last window (zero: none).
func wtsOf(st api.PITRStatus) bson.Timestamp {
	if k := len(st.Windows); k > 0 {
		return bson.Timestamp{T: st.Windows[k-1].ToTS.T, I: st.Windows[k-1].ToTS.I}
	}
	return bson.Timestamp{}
}
