package cli

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/agent"
	"github.com/a0backup/a0/internal/crypt"
	"github.com/a0backup/a0/internal/ops"
	"github.com/a0backup/a0/internal/pitr"
)

// TestRestoreRenamedUnderPITR (issue 29): `restore --ns-from auth0.users
// --ns-to rem.users --drop` of 10,000 users on a node whose PITR archive
// runs ends, as does the backup before it (the old agent's did not: every
// 5 s the archive's lag read made FerretDB decode and sort the whole
// oplog, each read outliving its timeout, until the process held
// gigabytes), the agent's heap stays far below that, rem.users equals
// the backup, and the archive goes on: it catches up with the server and
// holds every insert the restore wrote.
func TestRestoreRenamedUnderPITR(t *testing.T) {
	x, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	state, dev := t.TempDir(), t.TempDir()
	cfg := agent.Config{Recipients: []string{x.Recipient().String()}, PITR: &agent.PITR{Slice: time.Second, Retry: 100 * time.Millisecond}}
	n := startNodeWith(t, state, "", cfg)
	n.seed(10_000)
	op := newOperator(t).withKey(n)
	op.env["A0_BACKUP_PASSWORD"] = "Passw0rd-nsmem"
	op.mustOn(n, "set-as-backup", dev)
	waitPITRRunning(t, op, n)
	atBackup := snapshotDB(t, n.client(), "auth0")

	// The agent runs in this process: its heap is the process's. 10,000
	// users are about 10 MiB of BSON; the old agent passed 4 GiB (and its
	// backup never ended either). A heap past the bound stops the command
	// at once; the deadline bounds a hang, not a speed (each takes
	// seconds).
	const bound = 1 << 30
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var peak atomic.Uint64
	stop, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			if ms.HeapInuse > bound {
				cancel()
			}
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	overBound := func(what string, r result) {
		t.Helper()
		if peak.Load() > bound {
			t.Fatalf("the heap reached %d MiB during the %s (bound %d MiB): %+v", peak.Load()>>20, what, bound>>20, r)
		}
	}
	r := op.runCtx(ctx, "-t", n.addr, "backup", "--wait")
	overBound("backup", r)
	if r.code != 0 {
		t.Fatalf("backup under PITR: %+v\nagent log:\n%s", r, n.log.String())
	}
	waitFound(t, op, n)
	r = op.runCtx(ctx, "-t", n.addr, "restore", "--drop", "--ns-from", "auth0.users", "--ns-to", "rem.users")
	cancel()
	close(stop)
	<-sampled
	t.Logf("peak heap in use during the backup and the restore: %d MiB", peak.Load()>>20)
	overBound("restore", r)
	if r.code != 0 {
		t.Fatalf("restore under PITR: %+v\nagent log:\n%s", r, n.log.String())
	}
	sameSnapshot(t, "rem after the renamed restore", nsSnapshot{"users": atBackup["users"]}, snapshotDB(t, n.client(), "rem"))

	// The archive caught up with the server, and holds every insert the
	// restore wrote into rem.users, as the server's oplog does.
	waitPITRCaughtUp(t, op, n)
	want := 0
	for _, e := range oplogEntries(t, n.client()) {
		if isInsertInto(e, "rem.users") {
			want++
		}
	}
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
	got := 0
	for _, win := range proof.Windows {
		if err := ar.Entries(context.Background(), win.From, win.To, func(raw bson.Raw) error {
			if isInsertInto(raw, "rem.users") {
				got++
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if want < 10_000 || got != want {
		t.Fatalf("the archive holds %d inserts into rem.users, the server's oplog %d (the restore wrote 10000)", got, want)
	}
}

// isInsertInto reports whether an oplog entry inserts into ns.
func isInsertInto(e bson.Raw, ns string) bool {
	op, _ := e.Lookup("op").StringValueOK()
	n, _ := e.Lookup("ns").StringValueOK()
	return op == "i" && n == ns
}
