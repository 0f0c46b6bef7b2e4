package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
)

// newKeyLine returns a fresh authorized_keys line and its public key.
func newKeyLine(t *testing.T, priv crypto.Signer, comment string) (string, crypto.PublicKey) {
	t.Helper()
	if priv == nil {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		priv = k
	}
	p, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return authorizedLine(p, comment), priv.Public()
}

func TestAuthorizedAddListRemoveLookup(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "authorized_keys")
	a := OpenAuthorized(path)
	if l, err := a.List(); err != nil || len(l) != 0 {
		t.Fatalf("List of missing file = %v, %v", l, err)
	}
	l1, k1 := newKeyLine(t, nil, "alice@laptop")
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	l2, k2 := newKeyLine(t, rk, "")
	if _, ok := a.Lookup(k1); ok {
		t.Fatal("Lookup on a missing file authorized a key")
	}
	if err := a.Add("alice", l1); err != nil {
		t.Fatal(err)
	}
	if err := a.Add("ops@site-2", l2); err != nil {
		t.Fatal(err)
	}
	assertMode(t, path, 0o600)

	got, err := a.List()
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{Name: "alice", Type: "ssh-ed25519", Fingerprint: KeyFingerprint(k1), Comment: "alice@laptop"},
		{Name: "ops@site-2", Type: "ssh-rsa", Fingerprint: KeyFingerprint(k2)},
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("List = %+v, want %+v", got, want)
	}
	for _, tc := range []struct {
		pub  crypto.PublicKey
		name string
	}{{k1, "alice"}, {k2, "ops@site-2"}} {
		if n, ok := a.Lookup(tc.pub); !ok || n != tc.name {
			t.Fatalf("Lookup = %q, %v; want %q", n, ok, tc.name)
		}
	}

	if err := a.Add("alice", l2); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("Add same name: %v, want ErrDuplicate", err)
	}
	if err := a.Add("bob", l1); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("Add same key under a new name: %v, want ErrDuplicate", err)
	}
	if err := a.Remove("carol"); !errors.Is(err, ErrUnknownName) {
		t.Fatalf("Remove unknown: %v, want ErrUnknownName", err)
	}
	if err := a.Remove("alice"); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.Lookup(k1); ok {
		t.Fatal("removed key still authorized")
	}
	if n, ok := a.Lookup(k2); !ok || n != "ops@site-2" {
		t.Fatal("Remove dropped the wrong key")
	}
	if got, _ := a.List(); len(got) != 1 || got[0].Name != "ops@site-2" {
		t.Fatalf("List after Remove = %+v", got)
	}
}

// TestAuthorizedSeesOtherProcess: a second Authorized on the same file stands
// for `a0agent authorize/revoke` run while the agent serves requests.
func TestAuthorizedSeesOtherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "authorized_keys")
	agent := OpenAuthorized(path)
	admin := OpenAuthorized(path)
	l1, k1 := newKeyLine(t, nil, "c")
	l2, k2 := newKeyLine(t, nil, "c") // same length: the rewritten file has the same size

	if _, ok := agent.Lookup(k1); ok {
		t.Fatal("authorized before Add")
	}
	steps := []struct {
		do     func() error
		k1, k2 bool
	}{
		{func() error { return admin.Add("op", l1) }, true, false},
		{func() error { return admin.Remove("op") }, false, false},
		{func() error { return admin.Add("op", l2) }, false, true},
		// Same name, same size, possibly same mtime tick and a reused inode:
		// only the content tells the difference.
		{func() error {
			if err := admin.Remove("op"); err != nil {
				return err
			}
			return admin.Add("op", l1)
		}, true, false},
	}
	for i, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if _, ok := agent.Lookup(k1); ok != s.k1 {
			t.Fatalf("step %d: Lookup(k1) = %v, want %v", i, ok, s.k1)
		}
		if _, ok := agent.Lookup(k2); ok != s.k2 {
			t.Fatalf("step %d: Lookup(k2) = %v, want %v", i, ok, s.k2)
		}
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, ok := agent.Lookup(k1); ok {
		t.Fatal("key still authorized after the file was deleted")
	}
}

func TestAuthorizedConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "authorized_keys")
	a := OpenAuthorized(path)
	other := OpenAuthorized(path)
	const n = 8
	lines := make([]string, n)
	pubs := make([]crypto.PublicKey, n)
	for i := range lines {
		lines[i], pubs[i] = newKeyLine(t, nil, "")
	}
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(2)
		go func(i int) {
			defer wg.Done()
			if err := other.Add("k"+string(rune('a'+i)), lines[i]); err != nil {
				t.Error(err)
			}
		}(i)
		go func(i int) {
			defer wg.Done()
			a.Lookup(pubs[i])
		}(i)
	}
	wg.Wait()
	for i, p := range pubs {
		if _, ok := a.Lookup(p); !ok {
			t.Fatalf("key %d lost by concurrent Adds", i)
		}
	}
}

func TestAuthorizedRefusesInvalid(t *testing.T) {
	path := filepath.Join(t.TempDir(), "authorized_keys")
	a := OpenAuthorized(path)
	good, _ := newKeyLine(t, nil, "x")
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecLine, _ := newKeyLine(t, ek, "")
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	smallLine, _ := newKeyLine(t, small, "")
	for _, tc := range []struct {
		name, line string
		want       error
	}{
		{"", good, ErrInvalidName},
		{"has space", good, ErrInvalidName},
		{"a/b", good, ErrInvalidName},
		{"ünïcode", good, ErrInvalidName},
		{strings.Repeat("n", 65), good, ErrInvalidName},
		{"ok", "", ErrInvalidKey},
		{"ok", "garbage", ErrInvalidKey},
		{"ok", "ssh-ed25519 AAAAnotbase64!!", ErrInvalidKey},
		{"ok", `command="/bin/sh" ` + good, ErrInvalidKey},
		{"ok", good + "\n" + good, ErrInvalidKey},
		{"ok", ecLine, ErrKeyType},
		{"ok", smallLine, ErrKeyType},
	} {
		t.Run(tc.name+"/"+firstWord(tc.line), func(t *testing.T) {
			if err := a.Add(tc.name, tc.line); !errors.Is(err, tc.want) {
				t.Fatalf("Add: %v, want %v", err, tc.want)
			}
		})
	}
	if err := a.Add(strings.Repeat("n", 64), good); err != nil {
		t.Fatalf("64-character name refused: %v", err)
	}
}

func TestAuthorizedCorruptLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "authorized_keys")
	l1, k1 := newKeyLine(t, nil, "")
	data := "# comment\nbroken ssh-ed25519 AAAAB\nop " + l1 + "\n"
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	a := OpenAuthorized(path)
	if n, ok := a.Lookup(k1); !ok || n != "op" {
		t.Fatal("a corrupt line must not hide the good ones from Lookup")
	}
	if _, err := a.List(); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("List must report the corrupt line: %v", err)
	}
	l2, _ := newKeyLine(t, nil, "")
	if err := a.Add("new", l2); err == nil {
		t.Fatal("Add must not rewrite (and drop) a corrupt line")
	}
}

func firstWord(s string) string {
	if f := strings.Fields(s); len(f) > 0 {
		return f[0]
	}
	return "empty"
}

// TestAuthorizedRacyRewrite: an in-place rewrite of the same size within one
// timestamp tick leaves inode, size and mtime unchanged; Lookup must still
// see it (a revoke must never be missed).
func TestAuthorizedRacyRewrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "authorized_keys")
	l1, k1 := newKeyLine(t, nil, "c")
	l2, k2 := newKeyLine(t, nil, "c")
	if err := os.WriteFile(path, []byte("op "+l1+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := OpenAuthorized(path)
	if _, ok := a.Lookup(k1); !ok {
		t.Fatal("k1 not authorized")
	}
	fi, _ := os.Stat(path)
	if err := os.WriteFile(path, []byte("op "+l2+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if fi2, _ := os.Stat(path); !statOf(fi).same(statOf(fi2)) {
		t.Fatal("test setup: stamps differ, the racy path is not exercised")
	}
	if _, ok := a.Lookup(k1); ok {
		t.Fatal("revoked key still authorized after a same-stamp rewrite")
	}
	if _, ok := a.Lookup(k2); !ok {
		t.Fatal("new key not seen after a same-stamp rewrite")
	}
}

func statOf(fi os.FileInfo) fileStamp {
	return fileStamp{exists: true, ino: inode(fi), size: fi.Size(), mtime: fi.ModTime(), mode: fi.Mode().Perm()}
}

func TestAuthorizedRefusesWritableByOthers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "authorized_keys")
	a := OpenAuthorized(path)
	l1, k1 := newKeyLine(t, nil, "evil\x1b[2Jcomment\ttab")
	if err := a.Add("op", l1); err != nil {
		t.Fatal(err)
	}
	if got, _ := a.List(); len(got) != 1 || got[0].Comment != "evil [2Jcomment tab" {
		t.Fatalf("comment not sanitised: %+v", got)
	}
	if _, ok := a.Lookup(k1); !ok {
		t.Fatal("not authorized at 0600")
	}
	if err := os.Chmod(path, 0o664); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.Lookup(k1); ok {
		t.Fatal("a group-writable authorized_keys must authorize nobody")
	}
	var pe *PermissionError
	if _, err := a.List(); !errors.As(err, &pe) {
		t.Fatalf("List: %v, want *PermissionError", err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.Lookup(k1); !ok {
		t.Fatal("world-readable (not writable) file should still work")
	}
}

// TestAuthorizePrivateKeyRefused (issue 25.16): a private key given where
// the public key line is wanted is refused with ErrPrivateKey, which names
// the mistake and quotes no line of the key, in every form: OpenSSH,
// PKCS#8, PKCS#1 RSA, SEC 1 EC, an age identity; the arguments check
// finds it among a command's arguments.
func TestAuthorizePrivateKeyRefused(t *testing.T) {
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	rsaPriv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecPriv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	openssh, err := ssh.MarshalPrivateKey(edPriv, "me@laptop")
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(edPriv)
	sec1, _ := x509.MarshalECPrivateKey(ecPriv)
	forms := map[string]string{
		"openssh": string(pem.EncodeToMemory(openssh)),
		"pkcs8":   string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})),
		"pkcs1":   string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaPriv)})),
		"sec1":    string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})),
		"age":     "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ",
	}
	auth := OpenAuthorized(filepath.Join(t.TempDir(), "authorized_keys"))
	for name, key := range forms {
		t.Run(name, func(t *testing.T) {
			err := auth.Add("me", key)
			if !errors.Is(err, ErrPrivateKey) || !errors.Is(err, ErrInvalidKey) || !strings.Contains(err.Error(), "this is a private key; give the .pub line") {
				t.Fatalf("Add: %v, want ErrPrivateKey", err)
			}
			for _, line := range strings.Split(key, "\n") {
				if len(line) > 8 && !strings.HasPrefix(line, "-----") && strings.Contains(err.Error(), line) {
					t.Fatalf("the error quotes the key: %v", err)
				}
			}
			if err := RefusePrivateKeyArgs([]string{"--state-dir", "/x", "me", key}); !errors.Is(err, ErrPrivateKey) {
				t.Fatalf("RefusePrivateKeyArgs: %v", err)
			}
		})
	}
	pub, _ := ssh.NewPublicKey(edPriv.Public())
	if err := RefusePrivateKeyArgs([]string{"me", string(ssh.MarshalAuthorizedKey(pub))}); err != nil {
		t.Fatalf("a public key line is not a private key: %v", err)
	}
}

// TestAuthorizedChecksOwnerAndDirectory (issue 25.8): a 0600 authorized
// keys file authorizes nobody when its directory is writable by group or
// others (another user could rename a file of his over it) or when
// another user owns it; List says why. Put right, it authorizes again.
func TestAuthorizedChecksOwnerAndDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	path := filepath.Join(dir, "authorized_keys")
	a := OpenAuthorized(path)
	line, key := newKeyLine(t, nil, "op")
	if err := a.Add("op", line); err != nil {
		t.Fatal(err)
	}
	refused := func(t *testing.T, want string) {
		t.Helper()
		if _, ok := a.Lookup(key); ok {
			t.Fatal("authorized")
		}
		var ue *UntrustedError
		if _, err := a.List(); !errors.As(err, &ue) || !strings.Contains(err.Error(), want) {
			t.Fatalf("List: %v, want an *UntrustedError saying %q", err, want)
		}
	}
	t.Run("directory writable by others", func(t *testing.T) {
		for _, mode := range []os.FileMode{0o777, 0o770, 0o702} {
			if err := os.Chmod(dir, mode); err != nil {
				t.Fatal(err)
			}
			refused(t, "writable by group or others")
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if _, ok := a.Lookup(key); !ok {
			t.Fatal("not authorized in a 0755 directory")
		}
	})
	t.Run("file owned by another user", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("chown to another user needs root")
		}
		if err := os.Chown(path, 4242, 4242); err != nil {
			t.Fatal(err)
		}
		refused(t, "owned by uid 4242")
		if err := os.Chown(dir, 4242, 4242); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(path, 0, 0); err != nil {
			t.Fatal(err)
		}
		refused(t, "directory "+dir+" is owned by uid 4242")
		if err := os.Chown(dir, 0, 0); err != nil {
			t.Fatal(err)
		}
		if _, ok := a.Lookup(key); !ok {
			t.Fatal("not authorized once owned by the agent's user again")
		}
	})
}
