package cli

import (
	"archive/tar"
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"github.com/a0backup/a0/internal/agent"
	"github.com/a0backup/a0/internal/manifest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// decryptTar decrypts an a0 file and returns its tar entries by name (test
// data is small).
func decryptTar(t *testing.T, path, password string) (map[string][]byte, map[string]int64) {
	t.Helper()
	files, modes := map[string][]byte{}, map[string]int64{}
	for _, e := range readEntries(t, path, password) {
		files[e.hdr.Name], modes[e.hdr.Name] = e.data, e.hdr.Mode
	}
	return files, modes
}

func TestSensitiveCycle(t *testing.T) {
	n, op, _ := backupNode(t, 200)
	const pw, sensPW = "Passw0rd-data", "0therPassw0rd"

	r := op.mustOn(n, "backup-sensitive", "--password", sensPW)
	if r.stdout != "Backup in progress.\n" {
		t.Fatalf("backup-sensitive printed %q", r.stdout)
	}
	line := op.waitStatus(n, "backup-sensitive-status")
	st := decodeStatus(t, line)
	if st.Message != "Backup found" {
		t.Fatalf("sensitive status: %+v\n%s", st, n.log.String())
	}
	// Read back before it is called found, as an ordinary backup.
	if !strings.Contains(line, `"verified":true`) {
		t.Fatalf("sensitive backup found but not verified: %s", line)
	}
	// Both slots at once.
	op.mustOn(n, "backup", "--password", pw)
	if bst := decodeStatus(t, op.waitStatus(n, "backup-status")); bst.Message != "Backup found" {
		t.Fatalf("backup status: %+v\n%s", bst, n.log.String())
	}
	if st2 := decodeStatus(t, op.mustOn(n, "backup-sensitive-status").stdout); st2.Arguments.Name != st.Arguments.Name {
		t.Fatalf("ordinary backup touched the sensitive slot: %+v", st2)
	}

	op.mustOn(n, "backup-sensitive-retrieve")
	sensFile := filepath.Join(op.dir, "backup-sensitive-retrieve.tar.gz.enc")
	body := readFile(t, sensFile)
	if sum := md5.Sum(body); hex.EncodeToString(sum[:]) != st.Arguments.MD5 {
		t.Fatal("sensitive md5 mismatch")
	}
	// Both passwords in the environment, as docs/recovery.md sets them:
	// verify opens the sensitive file with its own.
	op.env["A0_BACKUP_PASSWORD"], op.env["A0_BACKUP_SENSITIVE_PASSWORD"] = pw, sensPW
	if r := op.run("verify", sensFile); r.code != 0 {
		t.Fatalf("verify of the sensitive file with both variables set: exit %d %s", r.code, r.stderr)
	}
	delete(op.env, "A0_BACKUP_PASSWORD")
	delete(op.env, "A0_BACKUP_SENSITIVE_PASSWORD")
	files, modes := decryptTar(t, sensFile, sensPW)
	want := []string{"state/secrets/data-encryption.key", "state/secrets/token-signing.pem", "state/secrets/tls.key", "state/secrets/tls.crt", "state/authorized_keys", "manifest.json"}
	for _, w := range want {
		if _, ok := files[w]; !ok {
			t.Errorf("sensitive backup lacks %s (has %v)", w, keysOf(files))
		}
	}
	for name, mode := range modes {
		if name == "manifest.json" {
			continue
		}
		onDisk, err := os.Stat(filepath.Join(n.state, strings.TrimPrefix(name, "state/")))
		if err != nil {
			t.Fatal(err)
		}
		if int64(onDisk.Mode().Perm()) != mode {
			t.Errorf("%s: mode %o in archive, %o on disk", name, mode, onDisk.Mode().Perm())
		}
	}
	for name, b := range files {
		if name == "manifest.json" || strings.HasSuffix(name, "tls.crt") || strings.HasSuffix(name, "authorized_keys") {
			continue
		}
		onDisk := readFile(t, filepath.Join(n.state, strings.TrimPrefix(name, "state/")))
		if !bytes.Equal(onDisk, b) {
			t.Errorf("%s differs from the node's file", name)
		}
	}

	t.Run("ordinary backup holds none of the secrets", func(t *testing.T) {
		op.mustOn(n, "backup-retrieve")
		ordinary, _ := decryptTar(t, filepath.Join(op.dir, "backup-retrieve.tar.gz.enc"), pw)
		var all bytes.Buffer
		for _, b := range ordinary {
			all.Write(b)
		}
		for name, secret := range files {
			if name == "manifest.json" {
				continue
			}
			// Search for the secret's distinctive bytes: the whole file and
			// each of its lines long enough to be unique.
			if bytes.Contains(all.Bytes(), secret) {
				t.Errorf("ordinary backup contains %s", name)
			}
			for _, line := range bytes.Split(secret, []byte("\n")) {
				if len(line) >= 32 && bytes.Contains(all.Bytes(), line) {
					t.Errorf("ordinary backup contains a line of %s", name)
				}
			}
		}
	})

	t.Run("same password warns", func(t *testing.T) {
		op.mustOn(n, "backup-sensitive-delete")
		r := op.mustOn(n, "backup-sensitive", "--password", pw)
		if !strings.Contains(r.stderr, "warning") || r.stdout != "Backup in progress.\n" {
			t.Fatalf("no warning for a shared password: %+v", r)
		}
		op.waitStatus(n, "backup-sensitive-status")
	})

	t.Run("verify lists the files", func(t *testing.T) {
		op.env["A0_BACKUP_PASSWORD"] = sensPW
		r := op.run("verify", sensFile)
		if r.code != 0 || !strings.Contains(r.stdout, "state/secrets/tls.key") || !strings.Contains(r.stdout, "kind:         sensitive") {
			t.Fatalf("verify: %+v", r)
		}
	})

	t.Run("restore-sensitive puts the files back", func(t *testing.T) {
		keyPath := filepath.Join(n.state, "secrets", "data-encryption.key")
		orig := readFile(t, keyPath)
		os.WriteFile(keyPath, []byte("changed\n"), 0o644)
		r := op.on(n, "restore-sensitive", sensFile, "--password", sensPW)
		if r.code != ExitUsage || !strings.Contains(r.stdout, "REPLACES") {
			t.Fatalf("restore-sensitive without --yes off a terminal: %+v", r)
		}
		if string(readFile(t, keyPath)) != "changed\n" {
			t.Fatal("unconfirmed restore changed a file")
		}
		op.mustOn(n, "restore-sensitive", sensFile, "--password", sensPW, "--yes")
		if !bytes.Equal(readFile(t, keyPath), orig) {
			t.Fatal("data key not restored")
		}
		if st, _ := os.Stat(keyPath); st.Mode().Perm() != 0o600 {
			t.Fatalf("restored mode %v", st.Mode().Perm())
		}
		if r := op.on(n, "restore-sensitive", sensFile, "--password", "wrong-password", "--yes"); r.code != ExitIntegrity {
			t.Fatalf("wrong password: %+v", r)
		}
	})
}

func TestSensitiveRefusedWithoutRole(t *testing.T) {
	n := startNode(t, "", "")
	op := newOperator(t).withKey(n)
	r := op.on(n, "backup-sensitive", "--password", "0therPassw0rd")
	if r.code != ExitRefused || !strings.Contains(r.stderr, "set-as-backup") {
		t.Fatalf("%+v", r)
	}
}

func keysOf(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestSensitiveExtraPaths: files an operator declares sensitive in the
// agent's config go into the sensitive backup (with their mode) and come
// back to where they were.
func TestSensitiveExtraPaths(t *testing.T) {
	extra := filepath.Join(t.TempDir(), "license.key")
	os.WriteFile(extra, []byte("operator secret\n"), 0o640)
	n := startNodeWith(t, "", "", agent.Config{SensitivePaths: []string{extra}})
	op := newOperator(t).withKey(n)
	op.mustOn(n, "set-as-backup", t.TempDir())
	op.mustOn(n, "backup-sensitive", "--password", "0therPassw0rd", "--wait")
	op.mustOn(n, "backup-sensitive-retrieve")
	file := filepath.Join(op.dir, "backup-sensitive-retrieve.tar.gz.enc")
	files, modes := decryptTar(t, file, "0therPassw0rd")
	name := "extra/0-license.key"
	if string(files[name]) != "operator secret\n" || modes[name] != 0o640 {
		t.Fatalf("extra file in the archive: %q mode %o (entries %v)", files[name], modes[name], keysOf(files))
	}
	os.Remove(extra)
	op.mustOn(n, "restore-sensitive", file, "--password", "0therPassw0rd", "--yes")
	if b, err := os.ReadFile(extra); err != nil || string(b) != "operator secret\n" {
		t.Fatalf("extra file not restored: %q %v", b, err)
	}
}

// TestRestoreSensitiveWritesOnlySensitivePaths: an authentic sensitive
// backup whose manifest names other files (anywhere on the node, or other
// files of the state directory) is refused and writes nothing.
func TestRestoreSensitiveWritesOnlySensitivePaths(t *testing.T) {
	n, op, _ := backupNode(t, 10)
	const pw = "0therPassw0rd"
	op.mustOn(n, "backup-sensitive", "--password", pw, "--wait")
	op.mustOn(n, "backup-sensitive-retrieve")
	base := readEntries(t, filepath.Join(op.dir, "backup-sensitive-retrieve.tar.gz.enc"), pw)
	outside := filepath.Join(t.TempDir(), "cron-job")
	for _, tc := range []struct{ name, path, origin string }{
		{"file outside the node's configuration", "extra/9-cron-job", outside},
		{"other file of the state directory", "state/node.json", filepath.Join(n.state, "node.json")},
		{"traversal in the archive path", "extra/../../x", outside},
	} {
		t.Run(tc.name, func(t *testing.T) {
			payload := []byte("* * * * * root true\n")
			sum := sha256.Sum256(payload)
			var entries []tarEntry
			for _, e := range base {
				if e.hdr.Name != "manifest.json" {
					entries = append(entries, e)
					continue
				}
				var m manifest.Manifest
				if err := json.Unmarshal(e.data, &m); err != nil {
					t.Fatal(err)
				}
				m.Files = append(m.Files, manifest.File{Path: tc.path, Origin: tc.origin, Mode: 0o600, Size: int64(len(payload)), SHA256: hex.EncodeToString(sum[:])})
				b, _ := m.Encode()
				name := tc.path
				if strings.Contains(name, "..") {
					name = "extra/9-x" // the tar reader refuses ".."; the manifest still names it
				}
				entries = append(entries, tarEntry{hdr: tar.Header{Name: name, Mode: 0o600, Size: int64(len(payload)), Typeflag: tar.TypeReg}, data: payload})
				e.data = b
				e.hdr.Size = int64(len(b))
				entries = append(entries, e)
			}
			p := filepath.Join(op.dir, "evil-"+strings.ReplaceAll(tc.name, " ", "-")+".enc")
			sealEntries(t, p, pw, entries)
			before, _ := os.ReadFile(filepath.Join(n.state, "node.json"))
			// Change a real secret the backup holds (the data key, read
			// only at start): a restore that wrote the files it accepts
			// before refusing the rest would put the old one back.
			secret := filepath.Join(n.state, "secrets", "data-encryption.key")
			orig := readFile(t, secret)
			changed := append([]byte("changed by the test "), orig...)
			if err := os.WriteFile(secret, changed, 0o600); err != nil {
				t.Fatal(err)
			}
			defer os.WriteFile(secret, orig, 0o600)
			r := op.on(n, "restore-sensitive", p, "--password", pw, "--yes")
			if r.code != ExitIntegrity {
				t.Fatalf("exit %d: %s %s", r.code, r.stdout, r.stderr)
			}
			if got := readFile(t, secret); !bytes.Equal(got, changed) {
				t.Fatal("a refused restore-sensitive wrote the node's data key")
			}
			if _, err := os.Stat(outside); err == nil {
				t.Fatal("wrote outside the node's sensitive configuration")
			}
			if after, _ := os.ReadFile(filepath.Join(n.state, "node.json")); !bytes.Equal(before, after) {
				t.Fatal("node.json changed")
			}
		})
	}
}
