package agent

// Tests of issue 13's findings against a real agent over real mTLS: what an
// unauthenticated caller can reach before the router, and what one key
// holder can do to the others. docs/security.md names each.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/keys"
	aops "github.com/a0backup/a0/internal/ops"
	"github.com/a0backup/a0/internal/ops/dbjob"
	"github.com/a0backup/a0/internal/store"
)

func TestSecurityRefusalBeforeRouting(t *testing.T) {
	n := startSecNode(t, Timeouts{})
	ops := newKey(t)
	n.authorize(t, "ops", ops)
	opsCert := goodCert(t, ops)
	ok := httpClient(&opsCert)
	n.mustPing(t, ok)
	stranger := newKey(t)
	strangerCert := goodCert(t, stranger)

	ref := do(httpClient(nil), "GET", n.url(api.PathPing), nil, nil)
	if ref.status != http.StatusUnauthorized {
		t.Fatalf("reference refusal: %d %s", ref.status, ref.body)
	}
	for _, tc := range []struct{ name, method, path string }{
		{"double slash", "GET", "/v1//ping"},
		{"dot segment", "GET", "/v1/../v1/ping"},
		{"wrong method on a known path", "DELETE", api.PathPing},
		{"unknown path", "GET", "/nope"},
	} {
		for _, who := range []struct {
			name string
			c    *http.Client
		}{{"no certificate", httpClient(nil)}, {"unknown key", httpClient(&strangerCert)}} {
			t.Run(tc.name+", "+who.name, func(t *testing.T) {
				r := do(who.c, tc.method, n.url(tc.path), nil, nil)
				if r.err != nil || r.status != http.StatusUnauthorized || !bytes.Equal(r.body, ref.body) {
					t.Fatalf("%s %s: %d %q %v, want the 401 %q", tc.method, tc.path, r.status, r.body, r.err, ref.body)
				}
				if loc := r.header.Get("Location"); loc != "" {
					t.Fatalf("refusal redirects to %q", loc)
				}
			})
		}
	}
	t.Run("OPTIONS * unauthenticated", func(t *testing.T) {
		c := rawConn(t, n, nil)
		if _, err := c.Write([]byte("OPTIONS * HTTP/1.1\r\nHost: a0\r\nConnection: close\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body bytes.Buffer
		body.ReadFrom(resp.Body)
		if resp.StatusCode != http.StatusUnauthorized || !bytes.Equal(body.Bytes(), ref.body) {
			t.Fatalf("OPTIONS *: %d %q, want the 401", resp.StatusCode, body.Bytes())
		}
	})
	n.mustPing(t, ok)
}

// TestSecurityDeviceMetadataNamesOnlyItsBackup (issue 13 finding 10):
// whoever can write the backup device can write the slot metadata; a `file`
// naming anything but the slot's own backup file (a traversal, an absolute
// path, another slot's file, a link out of the folder) makes backup-delete
// remove nothing and retrieve serve nothing.
func TestSecurityDeviceMetadataNamesOnlyItsBackup(t *testing.T) {
	n := startSecNode(t, Timeouts{})
	ops := newKey(t)
	n.authorize(t, "ops", ops)
	cert := goodCert(t, ops)
	c := httpClient(&cert)
	dev := t.TempDir()
	if r := do(c, "POST", n.url(api.PathSetAsBackup), strings.NewReader(`{"device":"`+dev+`"}`), nil); r.status != 200 {
		t.Fatalf("set-as-backup: %d %s", r.status, r.body)
	}
	folder := filepath.Join(dev, store.FolderName)
	secret := []byte("the agent can read this, nobody should get it\n")
	victim := filepath.Join(t.TempDir(), "victim")
	os.WriteFile(victim, secret, 0o600)
	rel, err := filepath.Rel(folder, victim)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, file, backupName string
		link                   bool
	}{
		{"relative traversal", rel, "x.tar.gz", false},
		{"absolute path", victim, "x.tar.gz", false},
		{"name and file agree but traverse", "../" + filepath.Base(victim) + ".enc", "../" + filepath.Base(victim), false},
		{"another slot's file", "sensitive-x.tar.gz.enc", "x.tar.gz", false},
		{"link out of the folder", "01-02-2026-03-04-05.tar.gz.enc", "01-02-2026-03-04-05.tar.gz", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.WriteFile(filepath.Join(folder, "sensitive-x.tar.gz.enc"), secret, 0o600)
			if tc.link {
				os.Symlink(victim, filepath.Join(folder, tc.file))
			}
			meta, _ := json.Marshal(store.Meta{Name: tc.backupName, File: tc.file, Format: "a0enc1"})
			if err := os.WriteFile(filepath.Join(folder, "backup.json"), meta, 0o600); err != nil {
				t.Fatal(err)
			}
			if r := do(c, "GET", n.url(api.PathSlot+"backup/file"), nil, nil); r.status == 200 || bytes.Contains(r.body, secret) {
				t.Fatalf("retrieve served %q: %d %s", tc.file, r.status, r.body)
			}
			if r := do(c, "DELETE", n.url(api.PathSlot+"backup"), nil, nil); r.status == 200 {
				t.Fatalf("backup-delete accepted %q: %s", tc.file, r.body)
			}
			for _, p := range []string{victim, filepath.Join(folder, "sensitive-x.tar.gz.enc")} {
				if b, err := os.ReadFile(p); err != nil || !bytes.Equal(b, secret) {
					t.Fatalf("%s removed or changed through the metadata: %v", p, err)
				}
			}
			if tc.link {
				os.Remove(filepath.Join(folder, tc.file))
			}
		})
	}
	n.mustPing(t, c)
}

// startSecNodeCfg is startSecNode with more of the agent's configuration.
func startSecNodeCfg(t *testing.T, cfg Config) *secNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	buf := &lockedBuffer{}
	if cfg.StateDir == "" {
		cfg.StateDir = t.TempDir()
	}
	cfg.Listen, cfg.Logger = ln.Addr().String(), slog.New(slog.NewTextHandler(buf, nil))
	cfg.Jobs = dbjob.Runners()
	a, err := New(context.Background(), cfg)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Serve(ln) }()
	t.Cleanup(func() { a.Close(); <-done })
	return &secNode{a: a, addr: ln.Addr().String(), log: buf}
}

// TestSecurityUploadSpace (issue 13 finding 7): an upload without a
// Content-Length, and uploads running in parallel, cannot fill the node's
// state disk past the reserve. The uploads folder is a small tmpfs (root
// only, as TestFaultDeviceFull).
func TestSecurityUploadSpace(t *testing.T) {
	if os.Geteuid() != 0 {
		skipOutsideCI(t, "not root: cannot mount a small tmpfs as the uploads folder")
	}
	const reserve = 4 << 20
	n := startSecNodeCfg(t, Config{UploadReserve: reserve})
	uploads := n.a.state.UploadsDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", uploads).CombinedOutput(); err != nil {
		skipOutsideCI(t, "mount tmpfs failed (%v: %s)", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() { exec.Command("umount", "-l", uploads).Run() })
	ops := newKey(t)
	n.authorize(t, "ops", ops)
	cert := goodCert(t, ops)
	c := httpClient(&cert)

	put := func(id string, body io.Reader, length int64) reply {
		req, _ := http.NewRequest("PUT", n.url(api.PathUploads+id), body)
		req.ContentLength = length // -1: chunked, no Content-Length
		req.Header.Set(api.HeaderOffset, "0")
		resp, err := c.Do(req)
		if err != nil {
			return reply{err: err}
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return reply{status: resp.StatusCode, header: resp.Header, body: b}
	}
	t.Run("chunked upload stops at the reserve", func(t *testing.T) {
		r := put("chunked", io.LimitReader(zeros{}, 48<<20), -1)
		if e := apiError(t, r); e.Code != api.CodeInsufficientSpace {
			t.Fatalf("chunked upload of 48 MiB into 32 MiB: %d %s", r.status, r.body)
		}
		if free, err := aops.FreeBytes(uploads); err != nil || free < reserve-spaceCheckBytes {
			t.Fatalf("free space %d below the reserve %d", free, reserve)
		}
		os.Remove(filepath.Join(uploads, "chunked.upload"))
	})
	t.Run("parallel uploads share the free space", func(t *testing.T) {
		pr, pw := io.Pipe()
		first := make(chan reply, 1)
		go func() { first <- put("first", pr, 20<<20) }()
		pw.Write(make([]byte, 1<<20))
		// The first upload is running once the node has written some of it
		// (it reserved its length before).
		for i := 0; ; i++ {
			if st, err := os.Stat(filepath.Join(uploads, "first.upload")); err == nil && st.Size() > 0 {
				break
			}
			if i == 600 {
				t.Fatal("the first upload never started")
			}
			time.Sleep(50 * time.Millisecond)
		}
		r := put("second", io.LimitReader(zeros{}, 20<<20), 20<<20)
		if e := apiError(t, r); e.Code != api.CodeInsufficientSpace {
			t.Fatalf("second 20 MiB upload while a first one holds 20 of 32 MiB: %d %s", r.status, r.body)
		}
		pw.CloseWithError(errors.New("test done"))
		<-first
	})
	n.mustPing(t, c)
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestSecurityRevokeStopsTransfers (issue 13 finding 12): revoking a key
// stops a download and an upload that key is running, not only its next
// call.
func TestSecurityRevokeStopsTransfers(t *testing.T) {
	n := startSecNode(t, Timeouts{})
	ops := newKey(t)
	n.authorize(t, "ops", ops)
	cert := goodCert(t, ops)
	c := httpClient(&cert)
	c.Timeout = 0
	dev := t.TempDir()
	if r := do(c, "POST", n.url(api.PathSetAsBackup), strings.NewReader(`{"device":"`+dev+`"}`), nil); r.status != 200 {
		t.Fatalf("set-as-backup: %d %s", r.status, r.body)
	}
	folder := filepath.Join(dev, store.FolderName)
	const size = 1 << 30 // sparse: costs no disk
	f, err := os.Create(filepath.Join(folder, "x.tar.gz.enc"))
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(size)
	f.Close()
	meta, _ := json.Marshal(store.Meta{Name: "x.tar.gz", File: "x.tar.gz.enc", Size: size, Format: "a0enc1"})
	os.WriteFile(filepath.Join(folder, "backup.json"), meta, 0o600)
	waitLog := func(what string) {
		t.Helper()
		for i := 0; i < 600; i++ {
			if strings.Contains(n.log.String(), "client key revoked: stopping what it started") && strings.Contains(n.log.String(), what) {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("no revocation of the %s logged:\n%s", what, n.log.String())
	}

	t.Run("download", func(t *testing.T) {
		resp, err := c.Get(n.url(api.PathSlot + "backup/file"))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("download: %v %v", resp, err)
		}
		defer resp.Body.Close()
		if _, err := io.CopyN(io.Discard, resp.Body, 1<<20); err != nil {
			t.Fatal(err)
		}
		if err := keys.OpenAuthorized(n.a.state.AuthorizedKeysPath()).Remove("ops"); err != nil {
			t.Fatal(err)
		}
		waitLog("backup/file")
		got, _ := io.Copy(io.Discard, resp.Body)
		if got+1<<20 >= size {
			t.Fatalf("the revoked key's download went on to the end (%d bytes)", got+1<<20)
		}
	})
	t.Run("upload", func(t *testing.T) {
		n.authorize(t, "ops", ops)
		pr, pw := io.Pipe()
		done := make(chan reply, 1)
		go func() {
			req, _ := http.NewRequest("PUT", n.url(api.PathUploads+"revoked"), pr)
			req.Header.Set(api.HeaderOffset, "0")
			resp, err := c.Do(req)
			if err != nil {
				done <- reply{err: err}
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			done <- reply{status: resp.StatusCode, body: b}
		}()
		pw.Write(make([]byte, 1<<20))
		keys.OpenAuthorized(n.a.state.AuthorizedKeysPath()).Remove("ops")
		waitLog("uploads/revoked")
		// The client keeps sending; the node has stopped reading.
		go io.Copy(pw, zeros{})
		select {
		case r := <-done:
			if r.status == 200 {
				t.Fatalf("revoked key's upload accepted: %s", r.body)
			}
		case <-time.After(60 * time.Second):
			t.Fatal("revoked key's upload still running after a minute")
		}
		pw.CloseWithError(errors.New("test done"))
	})
}

// skipOutsideCI skips a test whose requirement (root, a binary) is missing,
// except under CI=true, where .ci/run installs every requirement and a skip
// would hide a check: there it fails.
func skipOutsideCI(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true: "+format, args...)
	}
	t.Skipf(format, args...)
}
