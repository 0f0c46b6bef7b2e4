package agent

// Tests of issue 13's findings against a real agent over real mTLS: what an
// unauthenticated caller can reach before the router, and what one key
// holder can do to the others. docs/security.md names each.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/a0backup/a0/internal/api"
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
