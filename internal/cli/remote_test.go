package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/a0backup/a0/internal/agent"
	"github.com/a0backup/a0/internal/api"
	aops "github.com/a0backup/a0/internal/ops"
	"github.com/a0backup/a0/internal/remote"
	"github.com/a0backup/a0/internal/s3gw"
	"github.com/a0backup/a0/internal/statedir"
	"github.com/a0backup/a0/internal/store"
)

const cliBucket = "a0-offsite"

func cliStore(t *testing.T, gw *s3gw.Server) remote.Store {
	t.Helper()
	st, err := remote.OpenS3(remote.Config{Endpoint: gw.Endpoint, Bucket: cliBucket, Prefix: "a0-1", AccessKeyID: gw.AccessKey,
		CAFile: gw.CAFile, PathStyle: true, PartSize: 5 << 20}, remote.Secret(gw.SecretKey))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// waitRemote polls backup-status until its "remote" state is not copying.
func (o *operator) waitRemote(n *testNode) api.RemoteCopyStatus {
	o.t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		var st struct {
			Arguments struct {
				Remote *api.RemoteCopyStatus `json:"remote"`
			} `json:"arguments"`
		}
		json.Unmarshal([]byte(o.mustOn(n, "backup-status").stdout), &st)
		if r := st.Arguments.Remote; r != nil && r.State != "copying" {
			return *r
		}
		time.Sleep(100 * time.Millisecond)
	}
	o.t.Fatal("the remote copy did not end in 3 minutes")
	return api.RemoteCopyStatus{}
}

// TestRemoteThroughCLI: a backup is copied over TLS after it is verified;
// backup-status, backups, backup-copy, backup-retrieve --remote (then
// verify) and restore --remote work as a user would run them; a copy
// changed in the bucket is refused by retrieve, restore and verify.
func TestRemoteThroughCLI(t *testing.T) {
	gw := s3gw.Start(t, s3gw.Options{TLS: true, Buckets: []string{cliBucket}})
	n := startNodeWith(t, "", "", agent.Config{Remote: cliStore(t, gw), RemoteRetry: 100 * time.Millisecond})
	n.seed(80)
	op := newOperator(t).withKey(n)
	op.env["A0_BACKUP_PASSWORD"] = "Passw0rd-remote"
	op.mustOn(n, "set-as-backup", t.TempDir())
	op.mustOn(n, "backup", "--wait")
	st := decodeStatus(t, op.mustOn(n, "backup-status").stdout)
	name := st.Arguments.Name
	if r := op.waitRemote(n); r.State != "copied" || r.CopiedAt == nil {
		t.Fatalf("remote after the backup: %+v", r)
	}
	if r := op.mustOn(n, "backup-status"); !strings.Contains(r.stderr, "remote copy: copied to https://"+gw.Addr) ||
		strings.Count(r.stdout, "\n") != 1 {
		t.Fatalf("backup-status text line: %q / %q", r.stdout, r.stderr)
	}

	// backups: text and JSON.
	r := op.mustOn(n, "backups")
	if !strings.Contains(r.stdout, name) || !strings.Contains(r.stdout, "local+remote") ||
		!strings.Contains(r.stdout, "remote store: https://"+gw.Addr+"/"+cliBucket+"/a0-1 (retention: keep all)") {
		t.Fatalf("backups:\n%s", r.stdout)
	}
	var list api.Backups
	if err := json.Unmarshal([]byte(op.mustOn(n, "backups", "--json").stdout), &list); err != nil || len(list.Backups) != 1 ||
		list.Backups[0].SHA256 != st.Arguments.SHA256 || !list.Backups[0].Verified {
		t.Fatalf("backups --json: %+v %v", list, err)
	}

	// backup-copy copies again (same bytes, same result).
	op.mustOn(n, "backup-copy", "--wait")
	if r := op.waitRemote(n); r.State != "copied" {
		t.Fatalf("after backup-copy: %+v", r)
	}

	// Retrieve through the node, then verify offline.
	r = op.mustOn(n, "backup-retrieve", "--remote", name)
	if !strings.Contains(r.stdout, "match the remote copy's record") {
		t.Fatalf("retrieve --remote: %s", r.stdout)
	}
	got := filepath.Join(op.dir, name+".enc")
	if sha, _ := fileSHA256(got); sha != st.Arguments.SHA256 {
		t.Fatalf("retrieved sha256 %s, backup %s", sha, st.Arguments.SHA256)
	}
	op.mustOn(n, "verify", got)

	// Restore from the store (the local backup deleted: only the store has it).
	op.mustOn(n, "backup-delete")
	r = op.mustOn(n, "restore", "--remote", name, "--drop")
	if !strings.Contains(r.stdout, "Restore finished") {
		t.Fatalf("restore --remote: %s", r.stdout)
	}

	// A missing name: not found (exit 5).
	if r := op.on(n, "backup-retrieve", "--remote", "01-01-2020-00-00-00.tar.gz"); r.code != ExitNotFound {
		t.Fatalf("missing copy: %+v", r)
	}

	// Change the copy in the bucket: retrieve, restore and verify refuse it.
	key := "a0-1/" + name + ".enc"
	orig := readFile(t, got)
	bad := bytes.Clone(orig)
	bad[len(bad)/3] ^= 0x40
	if _, err := gw.Client().PutObject(context.Background(), cliBucket, key, bytes.NewReader(bad), int64(len(bad)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if r := op.on(n, "backup-retrieve", "--remote", name, "-o", "changed.enc"); r.code != ExitIntegrity || !strings.Contains(r.stderr, "changed in the remote store") {
		t.Fatalf("retrieve of a changed copy: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(op.dir, "changed.enc")); err == nil {
		t.Fatal("a refused retrieve left a file")
	}
	if r := op.on(n, "restore", "--remote", name, "--drop"); r.code != ExitIntegrity {
		t.Fatalf("restore of a changed copy: %+v", r)
	}
	direct := filepath.Join(op.dir, "direct.enc")
	os.WriteFile(direct, bad, 0o600)
	if r := op.on(n, "verify", direct); r.code != ExitIntegrity {
		t.Fatalf("verify of a changed copy: %+v", r)
	}
	// Changed under the S3 API (same size and ETag): the download's
	// checksums differ from the record.
	gw.Client().PutObject(context.Background(), cliBucket, key, bytes.NewReader(orig), int64(len(orig)), minio.PutObjectOptions{})
	// The record is made to match the object's ETag, whatever its parts.
	var rb api.RemoteBackup
	o, _ := gw.Client().GetObject(context.Background(), cliBucket, "a0-1/"+name+".json", minio.GetObjectOptions{})
	b, _ := io.ReadAll(o)
	json.Unmarshal(b, &rb)
	info, _ := gw.Client().StatObject(context.Background(), cliBucket, key, minio.StatObjectOptions{})
	rb.ETag = strings.Trim(info.ETag, `"`)
	nb, _ := json.Marshal(rb)
	gw.Client().PutObject(context.Background(), cliBucket, "a0-1/"+name+".json", bytes.NewReader(nb), int64(len(nb)), minio.PutObjectOptions{})
	if err := os.WriteFile(filepath.Join(gw.Root, cliBucket, key), bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := op.on(n, "backup-retrieve", "--remote", name, "-o", "under.enc"); r.code != ExitIntegrity || !strings.Contains(r.stderr, "does not match the remote copy's record checksums") {
		t.Fatalf("retrieve of a copy changed under the API: %+v", r)
	}
	if r := op.on(n, "restore", "--remote", name, "--drop"); r.code != ExitIntegrity {
		t.Fatalf("restore of a copy changed under the API: %+v", r)
	}
}

// TestRemoteNotConfigured: without "remote" the commands say so and exit 4.
func TestRemoteNotConfigured(t *testing.T) {
	n := startNode(t, "", "")
	op := newOperator(t).withKey(n)
	op.mustOn(n, "set-as-backup", t.TempDir())
	for _, args := range [][]string{{"backup-copy"}, {"backups", "prune"}, {"backup-retrieve", "--remote", "01-01-2020-00-00-00.tar.gz"}} {
		if r := op.on(n, args...); r.code != ExitRefused || !strings.Contains(r.stderr, "no remote store") {
			t.Fatalf("%v: %+v", args, r)
		}
	}
	if r := op.mustOn(n, "backups"); !strings.Contains(r.stdout, "remote store: none configured") {
		t.Fatalf("backups: %s", r.stdout)
	}
}

// TestRemoteCopyKilledAgentResumes runs the built agent with "remote" in
// its config and the secret in $A0_REMOTE_SECRET_ACCESS_KEY: the upload of
// a large backup is cut, the agent is killed (SIGKILL) while it retries,
// and the next start resumes the upload from the parts the store holds.
// The secret is in no log, status, listing or process argument.
func TestRemoteCopyKilledAgentResumes(t *testing.T) {
	bin := buildBinaries(t)
	gw := s3gw.Start(t, s3gw.Options{Buckets: []string{cliBucket}})
	const part = 5 << 20
	proxy := s3gw.NewCutProxy(t, gw.Addr, 5*part/2)
	work := t.TempDir()
	state, dev := filepath.Join(work, "node"), filepath.Join(work, "dev")
	os.MkdirAll(filepath.Join(dev, store.FolderName), 0o700)
	cfg := filepath.Join(work, "a0agent.json")
	c := map[string]any{"remote": map[string]any{"endpoint": "http://" + proxy.Addr, "bucket": cliBucket, "prefix": "a0-1",
		"region": "us-east-1", "access_key_id": gw.AccessKey, "path_style": true, "part_size": part}}
	b, _ := json.Marshal(c)
	os.WriteFile(cfg, b, 0o600)
	secretEnv := remote.SecretEnv + "=" + gw.SecretKey

	// A verified backup of 4.x parts in the slot, as a finished backup
	// leaves it (the copy treats the file as opaque).
	st, err := statedir.Open(state)
	if err != nil {
		t.Fatal(err)
	}
	st.SaveNode(statedir.Node{Roles: []string{statedir.RoleBackup}, Device: dev})
	slot := store.Slot{Dir: filepath.Join(dev, store.FolderName), Kind: api.SlotBackup}
	p, err := slot.Create("02-12-2026-00-00-00.tar.gz")
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 4*part+4321)
	rand.Read(data)
	p.Write(data)
	now := time.Now().UTC()
	m, err := p.Commit(store.Meta{Created: now, Format: agent.FormatName, Verified: true, VerifiedAt: &now})
	if err != nil {
		t.Fatal(err)
	}

	a := startAgentProcArgs(t, bin, state, []string{"--config", cfg}, secretEnv)
	home := filepath.Join(work, "cli")
	sh(t, bin, work, home, nil, "a0cli", "create-key")
	_, line, _ := sh(t, bin, work, home, nil, "a0cli", "show-key")
	sh(t, bin, work, "", nil, "a0agent", "authorize", "--state-dir", state, "ops", strings.TrimSpace(line))
	if code, out, errs := sh(t, bin, work, home, nil, "a0cli", "-t", a.addr, "backup-copy"); code != 0 || !strings.Contains(out, "Copy in progress.") {
		t.Fatalf("backup-copy: %d %s %s", code, out, errs)
	}
	// Wait for the cut and a failed retry, then kill the agent.
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(a.log.String(), "remote copy failed") {
		if time.Now().After(deadline) {
			t.Fatalf("the cut upload did not fail:\n%s", a.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if proxy.Sent() < 2*part {
		t.Fatalf("only %d bytes went out before the cut", proxy.Sent())
	}
	a.signal(syscall.SIGKILL)
	logs := a.log.String()

	proxy.Reopen(t)
	a2 := startAgentProcArgs(t, bin, state, []string{"--config", cfg}, secretEnv)
	var status string
	deadline = time.Now().Add(3 * time.Minute)
	for {
		_, status, _ = sh(t, bin, work, home, nil, "a0cli", "-t", a2.addr, "backup-status")
		if strings.Contains(status, `"state":"copied"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not copied after the restart: %s\n%s", status, a2.log.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	var s struct {
		Arguments struct {
			Remote api.RemoteCopyStatus `json:"remote"`
		} `json:"arguments"`
	}
	json.Unmarshal([]byte(status), &s)
	if s.Arguments.Remote.ResumedBytes < 2*part {
		t.Fatalf("resumed %d bytes after the restart: the upload started over (%s)", s.Arguments.Remote.ResumedBytes, status)
	}
	o, err := gw.Client().GetObject(context.Background(), cliBucket, "a0-1/"+m.File, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := io.ReadAll(o)
	if !bytes.Equal(stored, data) {
		t.Fatal("the resumed copy differs from the backup")
	}
	_, listing, _ := sh(t, bin, work, home, nil, "a0cli", "-t", a2.addr, "backups", "--json")
	for what, text := range map[string]string{"first log": logs, "second log": a2.log.String(), "status": status, "listing": listing,
		"record": string(readFile(t, filepath.Join(state, "remote.json"))), "argv": strings.Join(a2.cmd.Args, " ")} {
		if strings.Contains(text, gw.SecretKey) {
			t.Fatalf("the secret access key is in the %s", what)
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", a2.cmd.Process.Pid)); err == nil && bytes.Contains(b, []byte(gw.SecretKey)) {
		t.Fatal("the secret is in the process listing")
	}
}

// startAgentProcArgs is startAgentProc with more agent arguments (--config).
func startAgentProcArgs(t *testing.T, bin, state string, args []string, env ...string) *proc {
	t.Helper()
	return startAgentCmd(t, bin, append([]string{"--state-dir", state, "--listen", "127.0.0.1:0"}, args...), true, env...)
}

// TestRemoteSwappedCopyRefused (issue 25 point 1): with the bucket's keys,
// the older backup's file is put under the newer backup's name and the
// record rewritten to match. The record's checksums agree, so
// backup-retrieve --remote downloads it, but says the record proves only
// that the download is intact; `verify --expect-name` and
// `restore --remote NAME` read the name from the authenticated manifest and
// refuse it (exit 6, naming both) before the first write: the data stays
// the newer backup's. The same swap of the stored backup on the device is
// refused by a restore of the stored backup.
func TestRemoteSwappedCopyRefused(t *testing.T) {
	gw := s3gw.Start(t, s3gw.Options{TLS: true, Buckets: []string{cliBucket}})
	n := startNodeWith(t, "", "", agent.Config{Remote: cliStore(t, gw), RemoteRetry: 100 * time.Millisecond})
	n.seed(20)
	op := newOperator(t).withKey(n)
	op.env["A0_BACKUP_PASSWORD"] = "Passw0rd-swapped"
	dev := t.TempDir()
	op.mustOn(n, "set-as-backup", dev)
	ctx := context.Background()
	marker := n.client().Database("swap").Collection("marker")
	setVersion := func(v int) {
		if _, err := marker.ReplaceOne(ctx, map[string]any{"_id": "v"}, map[string]any{"_id": "v", "v": v}, options.Replace().SetUpsert(true)); err != nil {
			t.Fatal(err)
		}
	}
	version := func() int {
		var d struct{ V int }
		if err := marker.FindOne(ctx, map[string]any{"_id": "v"}).Decode(&d); err != nil {
			t.Fatal(err)
		}
		return d.V
	}

	setVersion(1)
	op.mustOn(n, "backup", "--wait")
	older := decodeStatus(t, op.mustOn(n, "backup-status").stdout).Arguments.Name
	if r := op.waitRemote(n); r.State != "copied" {
		t.Fatalf("first copy: %+v", r)
	}
	op.mustOn(n, "backup-delete")
	// A backup's name is its start to the second: the next one needs
	// another second.
	for time.Now().UTC().Format("02-01-2006-15-04-05")+".tar.gz" == older {
		time.Sleep(50 * time.Millisecond)
	}
	setVersion(2)
	op.mustOn(n, "backup", "--wait")
	newer := decodeStatus(t, op.mustOn(n, "backup-status").stdout).Arguments.Name
	if r := op.waitRemote(n); r.State != "copied" || newer == older {
		t.Fatalf("second copy %s (first %s): %+v", newer, older, r)
	}

	// The swap, with the bucket's keys only.
	mc := gw.Client()
	obj, err := mc.GetObject(ctx, cliBucket, "a0-1/"+older+".enc", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	olderBytes, err := io.ReadAll(obj)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mc.PutObject(ctx, cliBucket, "a0-1/"+newer+".enc", bytes.NewReader(olderBytes), int64(len(olderBytes)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	obj, err = mc.GetObject(ctx, cliBucket, "a0-1/"+older+".json", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var rb api.RemoteBackup
	if b, err := io.ReadAll(obj); err != nil || json.Unmarshal(b, &rb) != nil {
		t.Fatalf("read the older record: %v", err)
	}
	info, err := mc.StatObject(ctx, cliBucket, "a0-1/"+newer+".enc", minio.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rb.Name, rb.File, rb.ETag = newer, newer+".enc", strings.Trim(info.ETag, `"`)
	nb, _ := json.Marshal(rb)
	if _, err := mc.PutObject(ctx, cliBucket, "a0-1/"+newer+".json", bytes.NewReader(nb), int64(len(nb)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}

	t.Run("retrieve says what the record proves", func(t *testing.T) {
		r := op.mustOn(n, "backup-retrieve", "--remote", newer, "-o", "swapped.enc")
		if !strings.Contains(r.stdout, "match the remote copy's record") ||
			!strings.Contains(r.stderr, "not that it is backup "+newer) || !strings.Contains(r.stderr, "verify swapped.enc --expect-name "+newer) {
			t.Fatalf("retrieve --remote of a swapped copy: %+v", r)
		}
		if r := op.mustOn(n, "verify", "swapped.enc"); !strings.Contains(r.stdout, "name:         "+older+"\n") {
			t.Fatalf("verify does not name the backup from its manifest:\n%s", r.stdout)
		}
		r = op.on(n, "verify", "swapped.enc", "--expect-name", newer)
		if r.code != ExitIntegrity || !strings.Contains(r.stderr, newer) || !strings.Contains(r.stderr, older) {
			t.Fatalf("verify --expect-name %s of %s: %+v", newer, older, r)
		}
		op.mustOn(n, "verify", "swapped.enc", "--expect-name", older)
	})
	t.Run("restore --remote refuses it before the first write", func(t *testing.T) {
		r := op.on(n, "restore", "--remote", newer, "--drop")
		if r.code != ExitIntegrity || !strings.Contains(r.stderr, newer) || !strings.Contains(r.stderr, older) {
			t.Fatalf("restore --remote %s of the swapped copy: %+v", newer, r)
		}
		if v := version(); v != 2 {
			t.Fatalf("the database holds version %d after the refused restore, want 2 (the newer backup's)", v)
		}
		if m, _ := aops.Marker(ctx, n.client()); m != nil {
			t.Fatalf("a restore marker was written: %v", m)
		}
	})
	t.Run("restore of a swapped stored backup is refused", func(t *testing.T) {
		stored := filepath.Join(dev, store.FolderName, newer+".enc")
		if err := os.WriteFile(stored, olderBytes, 0o600); err != nil {
			t.Fatal(err)
		}
		r := op.on(n, "restore", "--drop")
		if r.code != ExitIntegrity || !strings.Contains(r.stderr, newer) || !strings.Contains(r.stderr, older) {
			t.Fatalf("restore of the swapped stored backup: %+v", r)
		}
		if v := version(); v != 2 {
			t.Fatalf("the database holds version %d after the refused restore, want 2", v)
		}
	})
}
