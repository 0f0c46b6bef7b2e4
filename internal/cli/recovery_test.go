package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/a0backup/a0/internal/agentcmd"
	"github.com/a0backup/a0/internal/keys"
	"github.com/a0backup/a0/internal/manifest"
	"github.com/a0backup/a0/internal/statedir"
)

// TestRestoreSensitiveIdentityNeedsConsent (issue 13 finding 4): one key
// holder with a sensitive backup, however crafted, cannot rewrite who may
// call the node (authorized_keys) or who the node is (its TLS key and
// certificate) unless the node operator consented on the node itself with
// `a0agent allow-recovery`; the other sensitive files are restored, the
// identity files are listed as skipped in the output and the job record.
// A consent serves one restore and expires.
func TestRestoreSensitiveIdentityNeedsConsent(t *testing.T) {
	n, alice, _ := backupNode(t, 5)
	const pw = "0therPassw0rd"
	alice.mustOn(n, "backup-sensitive", "--password", pw, "--wait")
	alice.mustOn(n, "backup-sensitive-retrieve")
	base := readEntries(t, filepath.Join(alice.dir, "backup-sensitive-retrieve.tar.gz.enc"), pw)

	// Mallory is authorized too, and crafts a sensitive backup whose
	// authorized_keys holds only her key, and whose data key is hers.
	mallory := newOperator(t).withKey(n)
	line, err := keys.PublicLine(mallory.home)
	if err != nil {
		t.Fatal(err)
	}
	evilKeys := []byte("mallory " + line + "\n")
	evilData := []byte("mallory's data key\n")
	entries := craftSensitive(t, base, map[string][]byte{
		"state/authorized_keys":             evilKeys,
		"state/secrets/data-encryption.key": evilData,
	})
	evil := filepath.Join(mallory.dir, "evil-sensitive.enc")
	sealEntries(t, evil, pw, entries)

	akPath := filepath.Join(n.state, "authorized_keys")
	tlsKey := filepath.Join(n.state, "secrets", "tls.key")
	dataKey := filepath.Join(n.state, "secrets", "data-encryption.key")
	akBefore, tlsBefore := readFile(t, akPath), readFile(t, tlsKey)

	t.Run("without consent the identity files are skipped and listed", func(t *testing.T) {
		r := mallory.mustOn(n, "restore-sensitive", evil, "--password", pw, "--yes")
		if !bytes.Equal(readFile(t, akPath), akBefore) || !bytes.Equal(readFile(t, tlsKey), tlsBefore) {
			t.Fatal("a key holder rewrote the node's identity without consent")
		}
		if !bytes.Equal(readFile(t, dataKey), evilData) {
			t.Fatal("the other sensitive files were not restored")
		}
		for _, p := range []string{akPath, tlsKey, filepath.Join(n.state, "secrets", "tls.crt")} {
			if !strings.Contains(r.stdout, "skipped: "+p) {
				t.Errorf("output does not list %s as skipped:\n%s", p, r.stdout)
			}
		}
		rec := readFile(t, filepath.Join(n.state, "jobs", "restore-sensitive.json"))
		if !bytes.Contains(rec, []byte(`"skipped"`)) || !bytes.Contains(rec, []byte("authorized_keys")) {
			t.Fatalf("job record does not list the skipped files: %s", rec)
		}
		alice.mustOn(n, "ping") // Alice is still authorized
	})

	st, err := statedir.Open(n.state)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("an expired consent is no consent", func(t *testing.T) {
		if _, err := st.AllowRecovery(time.Now().Add(-2*time.Hour), time.Hour); err != nil {
			t.Fatal(err)
		}
		r := mallory.mustOn(n, "restore-sensitive", evil, "--password", pw, "--yes")
		if !bytes.Equal(readFile(t, akPath), akBefore) || !strings.Contains(r.stdout, "expired") {
			t.Fatalf("expired consent used:\n%s", r.stdout)
		}
	})
	t.Run("a loose consent file is no consent", func(t *testing.T) {
		if _, err := st.AllowRecovery(time.Now(), time.Hour); err != nil {
			t.Fatal(err)
		}
		os.Chmod(st.RecoveryConsentPath(), 0o666)
		mallory.mustOn(n, "restore-sensitive", evil, "--password", pw, "--yes")
		if !bytes.Equal(readFile(t, akPath), akBefore) {
			t.Fatal("world-writable consent used")
		}
		os.Remove(st.RecoveryConsentPath())
	})

	t.Run("allow-recovery on the node: restored once, consent consumed", func(t *testing.T) {
		var out, errb bytes.Buffer
		if code := agentcmd.Main(context.Background(), []string{"allow-recovery", "--state-dir", n.state, "--for", "10m"}, &out, &errb); code != 0 {
			t.Fatalf("allow-recovery: %d %s", code, errb.String())
		}
		if fi, err := os.Stat(st.RecoveryConsentPath()); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("consent file: %v %v", fi, err)
		}
		r := mallory.mustOn(n, "restore-sensitive", evil, "--password", pw, "--yes")
		if strings.Contains(r.stdout, "skipped:") {
			t.Fatalf("skipped with consent:\n%s", r.stdout)
		}
		if !bytes.Equal(readFile(t, akPath), evilKeys) {
			t.Fatal("identity not restored with consent")
		}
		if _, err := os.Stat(st.RecoveryConsentPath()); !os.IsNotExist(err) {
			t.Fatalf("consent not consumed: %v", err)
		}
		// Single use: the next one skips again.
		os.WriteFile(akPath, akBefore, 0o600)
		r = mallory.mustOn(n, "restore-sensitive", evil, "--password", pw, "--yes")
		if !bytes.Equal(readFile(t, akPath), akBefore) || !strings.Contains(r.stdout, "skipped: "+akPath) {
			t.Fatalf("a consumed consent served again:\n%s", r.stdout)
		}
	})
	t.Run("allow-recovery refuses bad durations", func(t *testing.T) {
		for _, d := range []string{"0s", "-1h", "25h", "soon"} {
			if code := agentcmd.Main(context.Background(), []string{"allow-recovery", "--state-dir", n.state, "--for", d}, io.Discard, io.Discard); code != 2 {
				t.Errorf("--for %s: exit %d, want 2", d, code)
			}
		}
	})
}

// craftSensitive replaces the content of some entries of a sensitive
// backup and fixes its manifest, as whoever holds the password can.
func craftSensitive(t *testing.T, base []tarEntry, replace map[string][]byte) []tarEntry {
	t.Helper()
	var out []tarEntry
	for _, e := range base {
		if b, ok := replace[e.hdr.Name]; ok {
			e.data = b
			e.hdr.Size = int64(len(b))
		}
		if e.hdr.Name == manifest.Name {
			var m manifest.Manifest
			if err := json.Unmarshal(e.data, &m); err != nil {
				t.Fatal(err)
			}
			for i, f := range m.Files {
				if b, ok := replace[f.Path]; ok {
					sum := sha256.Sum256(b)
					m.Files[i].Size, m.Files[i].SHA256 = int64(len(b)), hex.EncodeToString(sum[:])
				}
			}
			b, err := m.Encode()
			if err != nil {
				t.Fatal(err)
			}
			e.data, e.hdr.Size = b, int64(len(b))
		}
		out = append(out, e)
	}
	return out
}
