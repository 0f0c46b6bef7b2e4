package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/ops"
	"github.com/a0backup/a0/internal/remote"
	"github.com/a0backup/a0/internal/retention"
	"github.com/a0backup/a0/internal/s3gw"
)

// TestRemoteCopyUnreachableRetried: the store is down when the backup is
// verified; the local backup stays found, the copy is retried and reported
// with its error, and is copied once the store is back.
func TestRemoteCopyUnreachableRetried(t *testing.T) {
	gw := s3gw.Start(t, s3gw.Options{Buckets: []string{testBucket}})
	n := remoteAgent(t, t.TempDir(), Config{Remote: testStore(t, gw, "", gw.SecretKey), RemoteAttempts: 1000})
	gw.Stop()
	m := n.plantBackup(t, time.Now(), 1<<20)
	n.backupEnded(m, nil)
	st := n.waitState(t, m.Name, func(s api.RemoteCopyStatus) bool { return s.Attempts >= 2 })
	if st.State != api.CopyCopying || !strings.Contains(st.Error, "unreachable") {
		t.Fatalf("while the store is down: %+v", st)
	}
	node, _ := n.state.LoadNode()
	if got, err := n.slot(node, api.SlotBackup).Stored(); err != nil || got.Name != m.Name {
		t.Fatalf("the local backup is no longer found: %v", err)
	}
	gw.Restart()
	st = n.waitState(t, m.Name, copied)
	if st.Error != "" || st.Attempts < 3 {
		t.Fatalf("after the store came back: %+v", st)
	}
}

// TestRemoteCopyClearErrors: wrong credentials and a missing bucket fail
// the copy at once with a clear error; the secret is in no log, record or
// status.
func TestRemoteCopyClearErrors(t *testing.T) {
	gw := s3gw.Start(t, s3gw.Options{Buckets: []string{testBucket}})
	wrong := "WRONG-" + gw.SecretKey
	missing := testStore(t, gw, "", gw.SecretKey)
	missing, _ = remote.OpenS3(remote.Config{Endpoint: gw.Endpoint, Bucket: "no-such-bucket", AccessKeyID: gw.AccessKey,
		PathStyle: true}, remote.Secret(gw.SecretKey))
	for _, tc := range []struct {
		name string
		st   remote.Store
		want string
	}{
		{"wrong-secret", testStore(t, gw, "", wrong), "refused the credentials"},
		{"missing-bucket", missing, "bucket does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{RemoteAttempts: 1000, Remote: tc.st}
			n := remoteAgent(t, t.TempDir(), cfg)
			m := n.plantBackup(t, time.Now(), 1000)
			n.backupEnded(m, nil)
			st := n.waitState(t, m.Name, func(s api.RemoteCopyStatus) bool { return s.State == api.CopyFailed })
			if !strings.Contains(st.Error, tc.want) || st.Attempts != 1 {
				t.Fatalf("status %+v, want failed at once with %q", st, tc.want)
			}
			rec, _ := os.ReadFile(filepath.Join(n.state.Path, ops.RemoteStateFile))
			for what, s := range map[string]string{"log": n.log.String(), "record": string(rec), "status error": st.Error} {
				if strings.Contains(s, gw.SecretKey) {
					t.Fatalf("the secret is in the %s", what)
				}
			}
		})
	}
}

// TestRemoteCopyResumedAfterRestart: the connection is cut in the middle of
// the upload of a large file and the agent stops while the store is
// unreachable; the next start resumes the copy from the parts the store
// holds instead of sending the file again.
func TestRemoteCopyResumedAfterRestart(t *testing.T) {
	gw := s3gw.Start(t, s3gw.Options{Buckets: []string{testBucket}})
	const part = 5 << 20
	proxy := s3gw.NewCutProxy(t, gw.Addr, 5*part/2)
	state := t.TempDir()
	cfg := Config{Remote: testStore(t, gw, "http://"+proxy.Addr, gw.SecretKey), RemoteAttempts: 1000, RemoteRetry: time.Second}
	n := remoteAgent(t, state, cfg)
	m := n.plantBackup(t, time.Now(), 4*part+777)
	n.backupEnded(m, nil)
	n.waitState(t, m.Name, func(s api.RemoteCopyStatus) bool { return s.Attempts >= 1 && s.Error != "" })
	n.Close()
	rec, err := n.copier.LoadRecord()
	if err != nil || rec.State != api.CopyCopying || rec.Name != m.Name {
		t.Fatalf("record after the stop: %+v %v", rec, err)
	}
	proxy.Reopen(t)
	n2 := remoteAgent(t, state, cfg)
	st := n2.waitState(t, m.Name, copied)
	if st.ResumedBytes < 2*part {
		t.Fatalf("resumed %d bytes: the parts sent before the cut were sent again (%+v)", st.ResumedBytes, st)
	}
	if !strings.Contains(n2.log.String(), "resuming the remote copy") {
		t.Fatal("the restart did not say it resumes the copy")
	}
}

// TestRemoteRetention: with keep_last 2, the third copy removes the oldest
// (record first); a dry run lists without deleting; backups lists the
// rest.
func TestRemoteRetention(t *testing.T) {
	gw := s3gw.Start(t, s3gw.Options{Buckets: []string{testBucket}})
	st := testStore(t, gw, "", gw.SecretKey)
	n := remoteAgent(t, t.TempDir(), Config{Remote: st, Retention: retention.Policy{Last: 2}})
	ctx := context.Background()
	base := time.Now().Add(-72 * time.Hour).Truncate(time.Second)
	var names []string
	for i := 0; i < 3; i++ {
		m := n.plantBackup(t, base.Add(time.Duration(i)*24*time.Hour), 2000+i)
		names = append(names, m.Name)
		n.backupEnded(m, nil)
		n.waitState(t, m.Name, copied)
		n.copier.Wait()
		n.deleteLocal(t)
	}
	objs, err := st.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range objs {
		got = append(got, o.Name)
	}
	want := []string{names[1] + ".enc", names[1] + ".json", names[2] + ".enc", names[2] + ".json"}
	sort.Strings(want)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("store holds %v, want %v", got, want)
	}

	// A stricter policy in a dry run: listed, nothing deleted.
	n.cfg.Retention = retention.Policy{Last: 1}
	n.copier.Retention = n.cfg.Retention
	var res api.BackupsPrune
	if err := call(t, n.prunePost, "POST", api.PathBackupsPrune, `{"dry_run":true}`, &res); err != nil {
		t.Fatal(err)
	}
	if !res.DryRun || len(res.Decisions) != 2 || !res.Decisions[0].Keep || res.Decisions[0].Name != names[2] ||
		res.Decisions[1].Keep || res.Decisions[1].Deleted {
		t.Fatalf("dry run: %+v", res)
	}
	if objs, _ := st.List(ctx); len(objs) != 4 {
		t.Fatalf("a dry run deleted: %v", objs)
	}
	if err := call(t, n.prunePost, "POST", api.PathBackupsPrune, `{}`, &res); err != nil {
		t.Fatal(err)
	}
	if res.DryRun || !res.Decisions[1].Deleted {
		t.Fatalf("prune: %+v", res)
	}
	var list api.Backups
	if err := call(t, n.listBackups, "GET", api.PathBackups, "", &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Backups) != 1 || list.Backups[0].Name != names[2] || list.Retention != "keep last 1" {
		t.Fatalf("backups: %+v", list)
	}

	// An unfinished copy (no record) is listed with its problem, and never
	// counted by retention.
	if _, err := st.Put(ctx, "01-01-2020-00-00-00.tar.gz.enc", strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	call(t, n.listBackups, "GET", api.PathBackups, "", &list)
	if len(list.Backups) != 2 || !strings.Contains(list.Backups[0].Problem, "unfinished copy") || list.Backups[1].Problem != "" {
		t.Fatalf("backups with an unfinished copy: %+v", list)
	}
}

// TestRemoteCopyNewerBackupQueued: a backup replaced while its copy is
// still retrying ends that copy (failed: not the stored backup any more)
// and the newer one is copied next.
func TestRemoteCopyNewerBackupQueued(t *testing.T) {
	gw := s3gw.Start(t, s3gw.Options{Buckets: []string{testBucket}})
	n := remoteAgent(t, t.TempDir(), Config{Remote: testStore(t, gw, "", gw.SecretKey), RemoteAttempts: 1000})
	gw.Stop()
	old := n.plantBackup(t, time.Now().Add(-time.Hour), 1000)
	n.backupEnded(old, nil)
	n.waitState(t, old.Name, func(s api.RemoteCopyStatus) bool { return s.Attempts >= 1 && s.Error != "" })
	n.deleteLocal(t)
	newer := n.plantBackup(t, time.Now(), 2000)
	n.backupEnded(newer, nil)
	gw.Restart()
	n.waitState(t, newer.Name, copied)
	if _, err := testStore(t, gw, "", gw.SecretKey).Stat(context.Background(), old.File); err == nil {
		t.Fatal("the replaced backup was copied")
	}
}

// TestRemoteObjectLock: with object_lock_days the copies are immutable: the
// store refuses to delete them, retention keeps them until the date (and
// says why), and copying a copied backup again is no error.
func TestRemoteObjectLock(t *testing.T) {
	gw := s3gw.Start(t, s3gw.Options{LockedBuckets: []string{testBucket}})
	st, err := remote.OpenS3(remote.Config{Endpoint: gw.Endpoint, Bucket: testBucket, Prefix: "node-1", AccessKeyID: gw.AccessKey,
		PathStyle: true, ObjectLockDays: 1}, remote.Secret(gw.SecretKey))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	n := remoteAgent(t, t.TempDir(), Config{Remote: st, Retention: retention.Policy{Last: 1}})
	old := n.plantBackup(t, time.Now().Add(-48*time.Hour), 3000)
	n.backupEnded(old, nil)
	n.waitState(t, old.Name, copied)
	n.copier.Wait()
	if err := st.Delete(ctx, old.File); !errors.Is(err, remote.ErrLocked) {
		t.Fatalf("delete of a locked copy: %v, want ErrLocked", err)
	}
	rb, err := n.copier.Checked(ctx, old.Name)
	if err != nil || rb.LockedUntil == nil || rb.LockedUntil.Before(time.Now().Add(23*time.Hour)) {
		t.Fatalf("record: %+v %v", rb, err)
	}
	n.deleteLocal(t)
	newer := n.plantBackup(t, time.Now(), 4000)
	n.backupEnded(newer, nil)
	n.waitState(t, newer.Name, copied)
	n.copier.Wait()
	var res api.BackupsPrune
	if err := call(t, n.prunePost, "POST", api.PathBackupsPrune, `{}`, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Decisions) != 2 || !res.Decisions[1].Keep || res.Decisions[1].Deleted ||
		!strings.HasPrefix(strings.Join(res.Decisions[1].Reasons, ","), "object lock until ") {
		t.Fatalf("prune of a locked copy: %+v", res)
	}
	if objs, _ := st.List(ctx); len(objs) != 4 {
		t.Fatalf("store: %+v", objs)
	}
	// Copying it again: already there, nothing written (it could not be).
	n.copier.Copy(newer.Name)
	if s := n.waitState(t, newer.Name, func(s api.RemoteCopyStatus) bool { return s.State != api.CopyCopying }); s.State != api.CopyCopied {
		t.Fatalf("second copy of a locked backup: %+v", s)
	}
}
