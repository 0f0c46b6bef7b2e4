package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/a0backup/a0/internal/agent"
	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/client"
	"github.com/a0backup/a0/internal/crypt"
	"github.com/a0backup/a0/internal/keys"
)

// newKeyedOperator is an operator whose CLI key has the given type.
func newKeyedOperator(t *testing.T, typ string) *operator {
	t.Helper()
	op := newOperator(t)
	if r := op.run("create-key", "--type", typ); r.code != 0 {
		t.Fatalf("create-key: %+v", r)
	}
	return op
}

func waitFound(t *testing.T, op *operator, n *testNode) foundStatus {
	t.Helper()
	st := decodeStatus(t, op.waitStatus(n, "backup-status"))
	if st.Message != "Backup found" {
		t.Fatalf("status: %+v\nagent log:\n%s", st, n.log.String())
	}
	return st
}

// v2Resum fixes the unkeyed header checksum of a version 2 file, as a
// deliberate tamperer would.
func v2Resum(b []byte) []byte {
	n := 64 + int(binary.BigEndian.Uint32(b[12:16])) + 48
	s := sha256.Sum256(b[:n])
	copy(b[n:], s[:8])
	return b
}

// A backup encrypted to two operators' SSH keys (alice ed25519, bob RSA)
// opens with either CLI key and with neither other key, restores on a fresh
// node with --identity, and the node that wrote it cannot read it.
func TestBackupToSSHKeys(t *testing.T) {
	src, admin, dev := backupNode(t, 100)
	alice := newKeyedOperator(t, "ed25519")
	bob := newKeyedOperator(t, "rsa")
	eve := newKeyedOperator(t, "ed25519")
	src.authorize("alice", alice.home)
	src.authorize("bob", bob.home)

	if r := admin.on(src, "backup", "--to", "mallory"); r.code != ExitUsage || !strings.Contains(r.stderr, "mallory") {
		t.Fatalf("unknown name: %+v", r)
	}
	r := admin.mustOn(src, "backup", "--to", "alice", "--to", "bob")
	if r.stdout != "Backup in progress.\n" || !strings.Contains(r.stderr, "encrypted to alice ssh-ed25519 SHA256:") ||
		!strings.Contains(r.stderr, "encrypted to bob ssh-rsa SHA256:") {
		t.Fatalf("backup --to: %+v", r)
	}
	waitFound(t, admin, src)
	if r := admin.mustOn(src, "backup-status"); !strings.Contains(r.stdout, "a0enc-v2") {
		t.Fatalf("format: %s", r.stdout)
	}
	admin.mustOn(src, "backup-retrieve")
	file := filepath.Join(admin.dir, "backup-retrieve.tar.gz.enc")
	data := readFile(t, file)
	if crypt.Version(data) != 2 {
		t.Fatalf("version %d", crypt.Version(data))
	}

	t.Run("either key opens it", func(t *testing.T) {
		for name, op := range map[string]*operator{"alice": alice, "bob": bob} {
			r := op.run("verify", file)
			if r.code != 0 || !strings.Contains(r.stdout, "OK: every byte") || !strings.Contains(r.stdout, "opens with: ssh-ed25519") ||
				!strings.Contains(r.stdout, "opens with: ssh-rsa") {
				t.Fatalf("%s verify: %+v", name, r)
			}
			out := filepath.Join(op.dir, "plain.tar.gz")
			if r := op.run("decrypt", file, "-o", out); r.code != 0 {
				t.Fatalf("%s decrypt: %+v", name, r)
			}
			if b := readFile(t, out); len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
				t.Fatalf("%s: decrypted file is not gzip", name)
			}
		}
	})

	t.Run("neither key opens it, with the exit code of a wrong password", func(t *testing.T) {
		for name, op := range map[string]*operator{"eve": eve, "admin": admin} {
			r := op.run("verify", file)
			if r.code != ExitIntegrity || !strings.Contains(r.stderr, "none of the given keys opens this file") {
				t.Fatalf("%s: %+v", name, r)
			}
			if r := op.run("decrypt", file, "-o", filepath.Join(op.dir, "x.tar.gz")); r.code != ExitIntegrity {
				t.Fatalf("%s decrypt: %+v", name, r)
			}
			if _, err := os.Stat(filepath.Join(op.dir, "x.tar.gz")); err == nil {
				t.Fatalf("%s: decrypt left an output file", name)
			}
		}
		if r := eve.run("verify", file, "--password", "Passw0rd-nope"); r.code != ExitIntegrity || !strings.Contains(r.stderr, "no password") {
			t.Fatalf("password on a keys-only file: %+v", r)
		}
	})

	t.Run("--identity names the key file", func(t *testing.T) {
		id := filepath.Join(eve.dir, "alice.key")
		os.WriteFile(id, readFile(t, filepath.Join(alice.home, keys.PrivateKeyFile)), 0o600)
		if r := eve.run("verify", file, "--identity", id); r.code != 0 {
			t.Fatalf("%+v", r)
		}
		os.Chmod(id, 0o644)
		if r := eve.run("verify", file, "--identity", id); r.code != ExitAuth || !strings.Contains(r.stderr, "chmod 600") {
			t.Fatalf("group-readable identity: %+v", r)
		}
		if r := eve.run("verify", file, "--identity", filepath.Join(eve.dir, "missing")); r.code != ExitNotFound {
			t.Fatalf("missing identity: %+v", r)
		}
	})

	t.Run("tampered stanzas and header are refused as damaged", func(t *testing.T) {
		l := int(binary.BigEndian.Uint32(data[12:16]))
		for name, mut := range map[string]func([]byte) []byte{
			"flipped stanza byte":          func(b []byte) []byte { b[70] ^= 1; return b },
			"rsa stanza, checksum fixed":   func(b []byte) []byte { b[64+l-10] ^= 4; return v2Resum(b) },
			"header mac, checksum fixed":   func(b []byte) []byte { b[64+l+20] ^= 1; return v2Resum(b) },
			"stanza count, checksum fixed": func(b []byte) []byte { b[65] = 7; return v2Resum(b) },
		} {
			bad := filepath.Join(alice.dir, "bad.enc")
			os.WriteFile(bad, mut(bytes.Clone(data)), 0o600)
			r := alice.run("verify", bad)
			if r.code != ExitIntegrity || !strings.Contains(r.stderr, "corrupt") {
				t.Fatalf("%s: %+v", name, r)
			}
		}
	})

	t.Run("restore --identity on a fresh node", func(t *testing.T) {
		dst := startNode(t, "", "")
		dst.authorize("eve", eve.home)
		id := filepath.Join(eve.dir, "bob.key")
		os.WriteFile(id, readFile(t, filepath.Join(bob.home, keys.PrivateKeyFile)), 0o600)
		r := eve.mustOn(dst, "restore", file, "--identity", id)
		if !strings.Contains(r.stdout, "Restore finished") {
			t.Fatalf("%+v", r)
		}
		for _, ns := range []string{"auth0.users"} {
			sameCollection(t, src.client(), dst.client(), ns)
		}
		// Without a key that opens it, the fresh node is never asked.
		if r := eve.on(dst, "restore", file, "--drop"); r.code != ExitIntegrity {
			t.Fatalf("restore with eve's own key: %+v", r)
		}
		assertNothingOpens(t, data, alice, dst.state, dst.log.String())
	})

	t.Run("the node writes it but cannot read it", func(t *testing.T) {
		c, err := client.New(admin.home, src.addr, nil)
		if err != nil {
			t.Fatal(err)
		}
		// A restore request with no file key is refused before any job.
		err = c.JSON(context.Background(), http.MethodPost, api.PathRestore, api.RestoreRequest{DryRun: true}, nil)
		if api.CodeOf(err) != api.CodeBadRequest {
			t.Fatalf("restore without a key: %v", err)
		}
		// A password does not open it: the node has only the file.
		if r := admin.on(src, "restore", "--password", "Passw0rd-guess", "--dry-run"); r.code != ExitIntegrity ||
			!strings.Contains(r.stderr, "encrypted to public keys") {
			t.Fatalf("restore with a password: %+v", r)
		}
		// A wrong file key is refused as a wrong key.
		err = c.JSON(context.Background(), http.MethodPost, api.PathRestore, api.RestoreRequest{DryRun: true, FileKey: make([]byte, 16)}, nil)
		if err != nil {
			t.Fatalf("restore with a wrong file key not started: %v", err)
		}
		if r := admin.on(src, "restore-status", "--wait"); r.code != ExitIntegrity || !strings.Contains(r.stderr, "does not open this backup") {
			t.Fatalf("wrong file key: %+v", r)
		}
		// alice restores the stored backup: her CLI fetches its header,
		// unwraps the file key with her key and sends only that.
		r := alice.mustOn(src, "restore", "--drop")
		if !strings.Contains(r.stdout, "Restore finished") {
			t.Fatalf("%+v", r)
		}
		assertNothingOpens(t, data, alice, src.state, src.log.String())
		assertNothingOpens(t, data, alice, dev, "")
	})
}

// assertNothingOpens checks that no file under dir (nor the log) holds a
// key that opens the backup f: no private key there is one of its
// recipients, and its file key (found with the recipients' keys in the test,
// never on the node) is stored nowhere, raw, hex or base64.
func assertNothingOpens(t *testing.T, f []byte, recipient *operator, dir, log string) {
	t.Helper()
	var forms [][]byte
	for _, home := range []string{recipient.home} {
		id, err := keys.CLIIdentity(home)
		if err != nil {
			continue
		}
		fk, err := crypt.UnwrapFileKey(bytes.NewReader(f), crypt.Unlock{Identities: []age.Identity{id}})
		if err == nil {
			forms = [][]byte{fk, []byte(hex.EncodeToString(fk)), []byte(base64.StdEncoding.EncodeToString(fk)),
				[]byte(base64.RawStdEncoding.EncodeToString(fk)), []byte(base64.RawURLEncoding.EncodeToString(fk))}
			break
		}
	}
	if forms == nil {
		t.Fatal("no test identity opens the backup")
	}
	for _, form := range forms {
		if strings.Contains(log, string(form)) {
			t.Fatal("the agent log holds the file key")
		}
	}
	scanned := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		scanned++
		for _, form := range forms {
			if bytes.Contains(b, form) {
				t.Errorf("%s holds the file key", path)
			}
		}
		if ids, err := keys.LoadIdentities(path); err == nil {
			if _, err := crypt.Open(bytes.NewReader(f), crypt.Unlock{Identities: ids}); !errors.Is(err, crypt.ErrWrongKey) {
				t.Errorf("%s is a key that opens the backup (or fails oddly: %v)", path, err)
			}
		}
		return nil
	})
	if err != nil || scanned == 0 {
		t.Fatalf("walk %s: %v, %d files", dir, err, scanned)
	}
}

// Config recipients (an age1 key and an SSH key) serve a backup with no
// password; a password and --to together make a file that opens with either.
func TestBackupToConfigRecipients(t *testing.T) {
	x, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	alice := newKeyedOperator(t, "ed25519")
	line, err := keys.PublicLine(alice.home)
	if err != nil {
		t.Fatal(err)
	}
	n := startNodeWith(t, "", "", agent.Config{Recipients: []string{x.Recipient().String(), line}})
	n.seed(50)
	admin := newOperator(t).withKey(n)
	n.authorize("alice", alice.home)
	admin.mustOn(n, "set-as-backup", t.TempDir())
	ageKey := filepath.Join(admin.dir, "age.key")
	os.WriteFile(ageKey, []byte(x.String()+"\n"), 0o600)

	if r := admin.on(n, "backup", "--no-password", "--password", "Passw0rd-both"); r.code != ExitUsage {
		t.Fatalf("--no-password with a password: %+v", r)
	}
	r := admin.mustOn(n, "backup", "--no-password")
	if !strings.Contains(r.stderr, "encrypted to (agent config) age1") || !strings.Contains(r.stderr, "encrypted to (agent config) ssh-ed25519") {
		t.Fatalf("%+v", r)
	}
	waitFound(t, admin, n)
	admin.mustOn(n, "backup-retrieve")
	file := filepath.Join(admin.dir, "backup-retrieve.tar.gz.enc")
	if r := admin.run("verify", file, "--identity", ageKey); r.code != 0 || !strings.Contains(r.stdout, "opens with: X25519") {
		t.Fatalf("age identity: %+v", r)
	}
	if r := alice.run("verify", file); r.code != 0 {
		t.Fatalf("alice: %+v", r)
	}
	if r := admin.run("verify", file); r.code != ExitIntegrity {
		t.Fatalf("admin's key is no recipient: %+v", r)
	}
	admin.mustOn(n, "backup-delete")

	// Password and a named key: the config's recipients are not added.
	r = admin.mustOn(n, "backup", "--password", "Passw0rd-and-keys", "--to", "alice")
	if strings.Contains(r.stderr, "agent config") || !strings.Contains(r.stderr, "encrypted to alice") {
		t.Fatalf("%+v", r)
	}
	waitFound(t, admin, n)
	os.Remove(file)
	admin.mustOn(n, "backup-retrieve")
	if r := admin.run("verify", file, "--password", "Passw0rd-and-keys"); r.code != 0 || !strings.Contains(r.stdout, "opens with: password") {
		t.Fatalf("with the password: %+v", r)
	}
	if r := alice.run("verify", file); r.code != 0 {
		t.Fatalf("with alice's key: %+v", r)
	}
	if r := admin.run("verify", file, "--identity", ageKey); r.code != ExitIntegrity {
		t.Fatalf("the config's age key was added: %+v", r)
	}
	// The node opens the password stanza itself, as for a v1 backup.
	if r := admin.mustOn(n, "restore", "--password", "Passw0rd-and-keys", "--dry-run", "--drop"); !strings.Contains(r.stdout, "would restore") {
		t.Fatalf("dry run with the password: %+v", r)
	}
	_ = io.Discard
}
