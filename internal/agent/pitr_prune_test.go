package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/crypt"
	"github.com/a0backup/a0/internal/ops"
	"github.com/a0backup/a0/internal/ops/dbjob"
	"github.com/a0backup/a0/internal/pitr"
	"github.com/a0backup/a0/internal/s3gw"
	"github.com/a0backup/a0/internal/statedir"
	"github.com/a0backup/a0/internal/store"
)

// pitrRemoteNode is a backup node with the archive on (1 s slices) and
// a remote store: its slices are copied to <prefix>/oplog/.
func pitrRemoteNode(t *testing.T, gw *s3gw.Server) (*Agent, string) {
	t.Helper()
	return pitrNode(t, time.Second, Config{Remote: testStore(t, gw, "", gw.SecretKey), RemoteRetry: 100 * time.Millisecond})
}

// pitrNode is a backup node with the archive on (slices of slice), cfg
// giving the rest; it returns the agent and its device.
func pitrNode(t *testing.T, slice time.Duration, cfg Config) (*Agent, string) {
	t.Helper()
	state, dev := t.TempDir(), t.TempDir()
	st, err := statedir.Open(state)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dev, store.FolderName), 0o700)
	if err := st.SaveNode(statedir.Node{Roles: []string{statedir.RoleBackup}, Device: dev}); err != nil {
		t.Fatal(err)
	}
	id, _ := age.GenerateX25519Identity()
	cfg.Jobs, cfg.StateDir, cfg.Listen = dbjob.Runners(), state, "127.0.0.1:0"
	cfg.Recipients, cfg.PITR = []string{id.Recipient().String()}, &PITR{Slice: slice, Retry: 100 * time.Millisecond}
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a, dev
}

// deviceSlices lists the device's archive.
func deviceSlices(t *testing.T, dev string) []pitr.Slice {
	t.Helper()
	ar, err := pitr.Open(ops.OplogDir(dev), crypt.Unlock{})
	if err != nil {
		t.Fatal(err)
	}
	return ar.Slices
}

// insertArchived inserts n documents into app.c from _id from and waits
// until the archive holds them (a slice closed after them).
func insertArchived(t *testing.T, a *Agent, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if _, err := a.client.Database("app").Collection("c").InsertOne(context.Background(), bson.D{{Key: "_id", Value: i}}); err != nil {
			t.Fatal(err)
		}
	}
	waitArchived(t, a)
}

// TestPITRPruneKeepsSlicesTheStoreLacks: while the store is unreachable
// the slices closed meanwhile wait on the device; a backup then (its
// prune) must not remove them, though the new base no longer needs them
// on the device: the store's archive does, and the device holds the only
// copy. Once the store is back, every one of them arrives. (Before, the
// prune removed them: the store's archive kept a hole for good, which a
// remote restore to a time inside it did not even notice.)
func TestPITRPruneKeepsSlicesTheStoreLacks(t *testing.T) {
	gw := s3gw.Start(t, s3gw.Options{Buckets: []string{testBucket}})
	a, dev := pitrRemoteNode(t, gw)
	ctx := context.Background()
	insertArchived(t, a, 0, 10)
	waitHeld := func() {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			all := true
			for _, s := range deviceSlices(t, dev) {
				all = all && a.sliceCopier.Holds(s)
			}
			if all {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the store does not hold every slice: %+v", a.sliceCopier.State())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitHeld()

	gw.Stop()
	insertArchived(t, a, 10, 10)
	insertArchived(t, a, 20, 10)
	var lacking []string
	for _, s := range deviceSlices(t, dev) {
		if !a.sliceCopier.Holds(s) {
			lacking = append(lacking, s.Name)
		}
	}
	if len(lacking) < 2 {
		t.Fatalf("want at least two slices the store lacks, got %v", lacking)
	}

	// A new base at the archive's newest entry: on the device, every
	// older slice is no longer needed.
	plantBase(t, a, a.archive.State().Newest)
	res, err := a.prunePITR(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Before == nil {
		t.Fatalf("the prune found no base: %+v", res)
	}
	left := map[string]bool{}
	for _, s := range deviceSlices(t, dev) {
		left[s.Name] = true
	}
	for _, n := range lacking {
		if !left[n] {
			t.Fatalf("the prune removed %s, which the store lacks (removed %v)", n, res.Removed)
		}
	}

	gw.Restart()
	waitHeld()
	objs, err := a.sliceCopier.Remote.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	inStore := map[string]bool{}
	for _, o := range objs {
		inStore[o.Name] = true
	}
	for _, n := range lacking {
		if !inStore[n] {
			t.Fatalf("%s never reached the store", n)
		}
	}
}

// plantBase stores a backup in the slot as a finished one leaves it, with
// consistent_to at; the prune reads nothing else of it.
func plantBase(t *testing.T, a *Agent, at bson.Timestamp) *store.Meta {
	t.Helper()
	node, _ := a.state.LoadNode()
	if _, err := a.slot(node, api.SlotBackup).Delete(); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Logf("delete the stored backup: %v", err)
	}
	p, err := a.slot(node, api.SlotBackup).Create(ops.BackupName(time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	p.Write([]byte("base"))
	now := time.Now().UTC()
	m, err := p.Commit(store.Meta{Created: now, Format: FormatName, Verified: true, VerifiedAt: &now,
		ConsistentTo: &store.Position{T: at.T, I: at.I}})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestPITRPruneOnceTheArchiveReachesTheBase: a backup ends before the
// slice holding its consistent_to closes (here a 5 s slice); the device
// has no other base (its one stored backup was replaced). The prune at
// the backup's end finds no base inside the archive; the slices older
// than the base go once the archive reaches it, not never (before, the
// device's archive grew without end on a node without a remote store).
func TestPITRPruneOnceTheArchiveReachesTheBase(t *testing.T) {
	a, dev := pitrNode(t, 5*time.Second, Config{})
	insertArchived(t, a, 0, 10)
	insertArchived(t, a, 10, 10)
	old := deviceSlices(t, dev)
	if len(old) < 2 {
		t.Fatalf("want at least two slices before the base, got %d", len(old))
	}
	// A write opens a slice; the base is consistent to it, and the
	// backup ends while that slice is open (5 s).
	if _, err := a.client.Database("app").Collection("c").InsertOne(context.Background(), bson.D{{Key: "_id", Value: 100}}); err != nil {
		t.Fatal(err)
	}
	base := a.serverNewest(context.Background())
	a.backupEnded(plantBase(t, a, base), nil)

	deadline := time.Now().Add(time.Minute)
	for {
		var before []string
		for _, s := range deviceSlices(t, dev) {
			if s.Last.T < base.T || s.Last.T == base.T && s.Last.I < base.I {
				before = append(before, s.Name)
			}
		}
		if len(before) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("slices older than the base %v are still on the device: %v (archive %+v)", base, before, a.archive.State())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestBackupsPruneWithoutStore: on a node with the archive and no remote
// store, backups prune prunes the device's slices (--dry-run lists them
// and removes none), as docs/operations.md says it does on any node;
// before, it was refused (exit 4, "this node has no remote store").
func TestBackupsPruneWithoutStore(t *testing.T) {
	a, dev := pitrNode(t, time.Second, Config{})
	insertArchived(t, a, 0, 10)
	insertArchived(t, a, 10, 10)
	before := deviceSlices(t, dev)
	plantBase(t, a, a.archive.State().Newest)
	var res api.BackupsPrune
	if err := call(t, a.prunePost, "POST", api.PathBackupsPrune, `{"dry_run":true}`, &res); err != nil {
		t.Fatal(err)
	}
	if !res.DryRun || res.PITR == nil || len(res.PITR.Removed) == 0 || len(deviceSlices(t, dev)) != len(before) {
		t.Fatalf("dry run: %+v %+v, %d slices left of %d", res, res.PITR, len(deviceSlices(t, dev)), len(before))
	}
	would := res.PITR.Removed
	res = api.BackupsPrune{}
	if err := call(t, a.prunePost, "POST", api.PathBackupsPrune, `{}`, &res); err != nil {
		t.Fatal(err)
	}
	if res.PITR == nil || strings.Join(res.PITR.Removed, " ") != strings.Join(would, " ") || len(deviceSlices(t, dev)) != len(before)-len(would) {
		t.Fatalf("prune: %+v, want %v removed; %d slices left of %d", res.PITR, would, len(deviceSlices(t, dev)), len(before))
	}
}
