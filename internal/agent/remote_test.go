package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/ops"
	"github.com/a0backup/a0/internal/ops/dbjob"
	"github.com/a0backup/a0/internal/remote"
	"github.com/a0backup/a0/internal/s3gw"
	"github.com/a0backup/a0/internal/sampledata"
	"github.com/a0backup/a0/internal/statedir"
	"github.com/a0backup/a0/internal/store"
)

const testBucket = "a0-copies"

func testStore(t *testing.T, gw *s3gw.Server, endpoint, secret string) *remote.S3 {
	t.Helper()
	if endpoint == "" {
		endpoint = gw.Endpoint
	}
	st, err := remote.OpenS3(remote.Config{Endpoint: endpoint, Bucket: testBucket, Prefix: "node-1", AccessKeyID: gw.AccessKey,
		CAFile: gw.CAFile, PathStyle: true, PartSize: 5 << 20}, remote.Secret(secret))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

type remoteNode struct {
	*Agent
	log *lockedBuffer
	dev string
}

func remoteAgent(t *testing.T, state string, cfg Config) *remoteNode {
	t.Helper()
	buf := &lockedBuffer{}
	cfg.StateDir, cfg.Listen, cfg.MetricsListen = state, "127.0.0.1:0", "127.0.0.1:0"
	cfg.Logger, cfg.Jobs = slog.New(slog.NewTextHandler(buf, nil)), dbjob.Runners()
	if cfg.RemoteRetry == 0 {
		cfg.RemoteRetry = 100 * time.Millisecond
	}
	a, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	n, _ := a.state.LoadNode()
	if n.Device == "" {
		n.Roles, n.Device = append(n.Roles, statedir.RoleBackup), t.TempDir()
		os.MkdirAll(filepath.Join(n.Device, store.FolderName), 0o700)
		if err := a.state.SaveNode(n); err != nil {
			t.Fatal(err)
		}
	}
	return &remoteNode{Agent: a, log: buf, dev: n.Device}
}

// plantBackup stores a verified file of size random bytes in the slot, as
// a finished backup leaves it (the copy treats the file as opaque).
func (n *remoteNode) plantBackup(t *testing.T, created time.Time, size int) *store.Meta {
	t.Helper()
	node, _ := n.state.LoadNode()
	p, err := n.slot(node, api.SlotBackup).Create(ops.BackupName(created))
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, size)
	rand.Read(b)
	p.Write(b)
	now := time.Now().UTC()
	m, err := p.Commit(store.Meta{Created: created.UTC(), Format: FormatName, Verified: true, VerifiedAt: &now})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (n *remoteNode) deleteLocal(t *testing.T) {
	node, _ := n.state.LoadNode()
	if _, err := n.slot(node, api.SlotBackup).Delete(); err != nil {
		t.Fatal(err)
	}
}

// waitState waits for the remote record of name to satisfy ok.
func (n *remoteNode) waitState(t *testing.T, name string, ok func(api.RemoteCopyStatus) bool) api.RemoteCopyStatus {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		if st := n.copier.Status(name); st != nil && ok(*st) {
			return *st
		}
		if time.Now().After(deadline) {
			t.Fatalf("remote state of %s: %+v after 3 minutes", name, n.copier.Status(name))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitCopyEnded waits for the running copy loop, if any, to end.
func (n *remoteNode) waitCopyEnded(t *testing.T) {
	t.Helper()
	done := make(chan struct{})
	go func() { n.copier.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Minute):
		t.Fatal("the remote copy loop still runs after 3 minutes")
	}
}

func copied(s api.RemoteCopyStatus) bool { return s.State == api.CopyCopied }

// call runs a handler as the router would, and decodes its JSON answer.
func call(t *testing.T, h handlerFunc, method, path, body string, out any) error {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	w := httptest.NewRecorder()
	if err := h(w, r); err != nil {
		return err
	}
	if out != nil {
		if err := json.Unmarshal(w.Body.Bytes(), out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, w.Body)
		}
	}
	return nil
}

func getObject(t *testing.T, gw *s3gw.Server, key string) []byte {
	t.Helper()
	o, err := gw.Client().GetObject(context.Background(), testBucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	b, err := io.ReadAll(o)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	return b
}

// TestRemoteCopyAfterBackup: a real backup of the embedded database is
// copied over TLS once verified; the store holds the same bytes and a
// record; backup-status, backups and the metrics say so; a restore reads
// it back from the store; a copy changed in the store is refused.
func TestRemoteCopyAfterBackup(t *testing.T) {
	gw := s3gw.Start(t, s3gw.Options{TLS: true, Buckets: []string{testBucket}})
	n := remoteAgent(t, t.TempDir(), Config{Remote: testStore(t, gw, "", gw.SecretKey)})
	ctx := context.Background()
	if _, err := sampledata.Seed(ctx, n.client, sampledata.Options{Users: 40}); err != nil {
		t.Fatal(err)
	}
	startTestBackup(t, n.Agent)
	if err := n.jobs.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	node, _ := n.state.LoadNode()
	m, err := n.slot(node, api.SlotBackup).Stored()
	if err != nil {
		t.Fatal(err)
	}
	st := n.waitState(t, m.Name, copied)
	// "copied" is visible before the copy loop has written its record's
	// file and the metrics and ended: on a busy machine the checks below
	// ran before those. Wait for the loop's end, not for time.
	n.waitCopyEnded(t)
	if st.CopiedAt == nil || st.Location != "https://"+gw.Addr+"/"+testBucket+"/node-1" {
		t.Fatalf("status %+v", st)
	}
	local, _ := os.ReadFile(n.slot(node, api.SlotBackup).Path(m))
	if got := getObject(t, gw, "node-1/"+m.File); !bytes.Equal(got, local) {
		t.Fatalf("the store holds %d bytes, the local backup has %d", len(got), len(local))
	}
	var rb api.RemoteBackup
	if err := json.Unmarshal(getObject(t, gw, "node-1/"+m.Name+".json"), &rb); err != nil {
		t.Fatal(err)
	}
	if rb.SHA256 != m.SHA256 || rb.MD5 != m.MD5 || rb.Size != m.Size || rb.Format != m.Format || !rb.Verified ||
		rb.Documents != m.Documents || rb.Collections != m.Collections || rb.ETag == "" {
		t.Fatalf("record %+v, local %+v", rb, m)
	}

	// backup-status: "remote" beside the original's fields.
	var status struct {
		Message   string
		Arguments struct {
			Name   string
			Remote *api.RemoteCopyStatus
		}
	}
	r := httptest.NewRequest("GET", api.PathSlot+"backup/status", nil)
	r.SetPathValue("slot", "backup")
	w := httptest.NewRecorder()
	if err := n.slotStatus(w, r); err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(w.Body.Bytes(), &status)
	if status.Message != "Backup found" || status.Arguments.Remote == nil || status.Arguments.Remote.State != "copied" {
		t.Fatalf("backup-status: %s", w.Body)
	}
	if sc := scrape(t, n.MetricsAddr()); sc[`a0_remote_copy_state{state="copied"}`] != 1 || sc[`a0_remote_copy_state{state="failed"}`] != 0 ||
		sc["a0_remote_last_copy_timestamp_seconds"] < float64(time.Now().Add(-time.Hour).Unix()) {
		t.Fatalf("metrics: %v", sc)
	}

	// backups: one entry, local and remote.
	var list api.Backups
	if err := call(t, n.listBackups, "GET", api.PathBackups, "", &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Backups) != 1 || strings.Join(list.Backups[0].Where, ",") != "local,remote" || list.Backups[0].SHA256 != m.SHA256 {
		t.Fatalf("backups: %+v", list)
	}

	// Restore from the store: drop what the seed wrote, restore --remote.
	coll := n.client.Database("auth0").Collection("users")
	want, _ := coll.CountDocuments(ctx, bson.D{})
	if _, err := coll.DeleteMany(ctx, bson.D{}); err != nil {
		t.Fatal(err)
	}
	n.deleteLocal(t) // the store alone holds it now
	src, err := n.restoreSource(api.RestoreRequest{Remote: m.Name}, []byte("Passw0rd-metrics"))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.jobs.Start(n.ctx, kindRestore, n.restoreJob(src, ops.RestoreOptions{Drop: true, SpoolDir: n.state.SpoolDir()})); err != nil {
		t.Fatal(err)
	}
	if err := n.jobs.Wait(ctx); err != nil {
		t.Fatalf("restore --remote: %v", err)
	}
	if got, _ := coll.CountDocuments(ctx, bson.D{}); got != want || want == 0 {
		t.Fatalf("restored %d users, the backup holds %d", got, want)
	}
	if left, _ := filepath.Glob(filepath.Join(n.state.UploadsDir(), ".remote-*")); len(left) != 0 {
		t.Fatalf("the downloaded copy stayed on the node: %v", left)
	}

	// The copy changed in the store: refused before a byte is restored,
	// whether changed under the S3 API (same size and ETag, other bytes:
	// the download's sha256 differs from the record) or through it (a
	// new ETag: refused before the download).
	key := "node-1/" + m.File
	flipped := bytes.Clone(local)
	flipped[len(flipped)/2] ^= 1
	if err := os.WriteFile(filepath.Join(gw.Root, testBucket, key), flipped, 0o644); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "fetched")
	if _, err := n.copier.Fetch(ctx, m.Name, dst); apiCode(err) != api.CodeIntegrity {
		t.Fatalf("changed under the API: %v, want an integrity error", err)
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Fatalf("the refused download stayed: %v", err)
	}
	// The object grows between the check of its size and the download (a
	// bucket changed at that moment, or a store that sends more than it
	// says): refused, having read no more than the record's size and one
	// byte (the free-space check counted only the record's size).
	os.WriteFile(filepath.Join(gw.Root, testBucket, key), local, 0o644)
	grown := &growOnGet{Store: n.copier.Remote, name: m.File, path: filepath.Join(gw.Root, testBucket, key), data: append(bytes.Clone(local), make([]byte, 8<<20)...)}
	n.copier.Remote = grown
	if _, err := n.copier.Fetch(ctx, m.Name, dst); apiCode(err) != api.CodeIntegrity {
		t.Fatalf("grown after its check: %v, want an integrity error", err)
	}
	if grown.read > int64(len(local))+1 {
		t.Fatalf("the download read %d bytes of a copy recorded with %d", grown.read, len(local))
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Fatalf("the refused download stayed: %v", err)
	}
	n.copier.Remote = grown.Store
	if _, err := gw.Client().PutObject(ctx, testBucket, key, bytes.NewReader(flipped), int64(len(flipped)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.checkedCopy(ctx, m.Name); apiCode(err) != api.CodeIntegrity {
		t.Fatalf("changed through the API: %v, want an integrity error", err)
	}
}

func apiCode(err error) api.Code {
	if ae := toAPIError(err); ae != nil {
		return ae.Code
	}
	return ""
}

// growOnGet is the real store whose object grows (data written in the
// gateway's directory) between the copier's Stat and its Get, and which
// counts what the caller reads of that Get.
type growOnGet struct {
	remote.Store
	name string // the object that grows (its record is read as stored)
	path string
	data []byte
	read int64
}

func (g *growOnGet) Get(ctx context.Context, name string, off int64) (io.ReadCloser, error) {
	if name != g.name {
		return g.Store.Get(ctx, name, off)
	}
	if err := os.WriteFile(g.path, g.data, 0o644); err != nil {
		return nil, err
	}
	rc, err := g.Store.Get(ctx, name, off)
	if err != nil {
		return nil, err
	}
	return &countingReadCloser{rc, &g.read}, nil
}

type countingReadCloser struct {
	io.ReadCloser
	n *int64
}

func (c *countingReadCloser) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	*c.n += int64(n)
	return n, err
}
