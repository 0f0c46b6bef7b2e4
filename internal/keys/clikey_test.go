package keys

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func TestCreateLoadShowDelete(t *testing.T) {
	for _, tc := range []struct {
		typ      KeyType
		prefix   string
		wantBits int // rsa only
	}{
		{"", "ssh-ed25519 ", 0},
		{Ed25519, "ssh-ed25519 ", 0},
		{RSA, "ssh-rsa ", 3072},
	} {
		t.Run(string(tc.typ), func(t *testing.T) {
			home := filepath.Join(t.TempDir(), "a0home")
			line, err := Create(home, tc.typ, false)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(line, tc.prefix) || !strings.HasSuffix(line, " a0cli@"+hostname()) {
				t.Fatalf("public line %q", line)
			}
			assertMode(t, home, 0o700)
			assertMode(t, filepath.Join(home, PrivateKeyFile), 0o600)
			pemData, _ := os.ReadFile(filepath.Join(home, PrivateKeyFile))
			if b, _ := pem.Decode(pemData); b == nil || b.Type != "OPENSSH PRIVATE KEY" {
				t.Fatalf("private key is not an OpenSSH PEM block")
			}
			pubData, _ := os.ReadFile(filepath.Join(home, PublicKeyFile))
			if string(pubData) != line+"\n" {
				t.Fatalf("id_a0.pub = %q, want %q", pubData, line)
			}

			signer, err := Load(home)
			if err != nil {
				t.Fatal(err)
			}
			parsed, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
			if err != nil {
				t.Fatal(err)
			}
			if KeyFingerprint(signer.Public()) != ssh.FingerprintSHA256(parsed) {
				t.Fatal("loaded key does not match the printed public key")
			}
			if tc.wantBits != 0 {
				if got := signer.(*rsa.PrivateKey).N.BitLen(); got != tc.wantBits {
					t.Fatalf("rsa bits %d, want %d", got, tc.wantBits)
				}
			}
			if shown, err := PublicLine(home); err != nil || shown != line {
				t.Fatalf("PublicLine = %q, %v; want %q", shown, err, line)
			}
			interopSSHKeygen(t, home, line)

			if _, err := Create(home, tc.typ, false); !errors.Is(err, ErrKeyExists) {
				t.Fatalf("second Create without force: %v, want ErrKeyExists", err)
			}
			line2, err := Create(home, tc.typ, true)
			if err != nil || line2 == line {
				t.Fatalf("Create with force: %v (same key: %v)", err, line2 == line)
			}
			if shown, _ := PublicLine(home); shown != line2 {
				t.Fatalf("after force PublicLine = %q, want %q", shown, line2)
			}

			if err := Delete(home); err != nil {
				t.Fatal(err)
			}
			if _, err := Load(home); !errors.Is(err, ErrNoKey) || !strings.Contains(err.Error(), "a0cli create-key") {
				t.Fatalf("Load after Delete: %v", err)
			}
			if err := Delete(home); !errors.Is(err, ErrNoKey) {
				t.Fatalf("second Delete: %v, want ErrNoKey", err)
			}
			if _, err := PublicLine(home); !errors.Is(err, ErrNoKey) {
				t.Fatalf("PublicLine after Delete: %v", err)
			}
		})
	}
}

// interopSSHKeygen proves the files are real OpenSSH keys, when ssh-keygen
// is installed.
func interopSSHKeygen(t *testing.T, home, line string) {
	t.Helper()
	bin, err := exec.LookPath("ssh-keygen")
	if err != nil {
		return
	}
	out, err := exec.Command(bin, "-y", "-f", filepath.Join(home, PrivateKeyFile)).Output()
	if err != nil {
		t.Fatalf("ssh-keygen -y: %v", err)
	}
	f := strings.Fields(line)
	if got := strings.Fields(string(out)); len(got) < 2 || got[0] != f[0] || got[1] != f[1] {
		t.Fatalf("ssh-keygen -y = %q, want %q", out, line)
	}
	out, err = exec.Command(bin, "-l", "-f", filepath.Join(home, PublicKeyFile)).Output()
	if err != nil {
		t.Fatalf("ssh-keygen -l: %v", err)
	}
	parsed, _, _, _, _ := ssh.ParseAuthorizedKey([]byte(line))
	fp := KeyFingerprint(parsed.(ssh.CryptoPublicKey).CryptoPublicKey())
	if !strings.Contains(string(out), fp) {
		t.Fatalf("ssh-keygen -l = %q, want fingerprint %s", out, fp)
	}
}

func TestLoadRefusesLoosePermissions(t *testing.T) {
	home := t.TempDir()
	if _, err := Create(home, Ed25519, false); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(home, PrivateKeyFile)
	for _, tc := range []struct {
		mode os.FileMode
		ok   bool
	}{
		{0o644, false}, {0o640, false}, {0o604, false}, {0o620, false}, {0o602, false},
		{0o600, true}, {0o400, true},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			_, err := Load(home)
			if tc.ok {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				return
			}
			var pe *PermissionError
			if !errors.As(err, &pe) {
				t.Fatalf("Load with mode %v: %v, want *PermissionError", tc.mode, err)
			}
			if pe.Path != path || pe.Mode != tc.mode || !strings.Contains(err.Error(), "chmod 600") {
				t.Fatalf("PermissionError %+v: %v", pe, err)
			}
			if _, err := PublicLine(home); !errors.As(err, &pe) {
				t.Fatalf("PublicLine must refuse too: %v", err)
			}
		})
	}
}

func TestCreateRefusesUnknownType(t *testing.T) {
	home := t.TempDir()
	if _, err := Create(home, "dsa", false); !errors.Is(err, ErrKeyType) {
		t.Fatalf("Create dsa: %v, want ErrKeyType", err)
	}
	if _, err := os.Stat(filepath.Join(home, PrivateKeyFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a refused Create must not write a key")
	}
}

func TestLoadRefusesOtherKeyTypes(t *testing.T) {
	home := t.TempDir()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	block, err := ssh.MarshalPrivateKey(k, "x")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, PrivateKeyFile), pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(home); !errors.Is(err, ErrKeyType) {
		t.Fatalf("Load ecdsa: %v, want ErrKeyType", err)
	}
}

func TestDefaultHome(t *testing.T) {
	t.Setenv("A0CLI_HOME", "/some/where")
	if h, err := DefaultHome(); err != nil || h != "/some/where" {
		t.Fatalf("DefaultHome with A0CLI_HOME = %q, %v", h, err)
	}
	t.Setenv("A0CLI_HOME", "")
	t.Setenv("HOME", "/home/op")
	if h, err := DefaultHome(); err != nil || h != "/home/op/.a0cli" {
		t.Fatalf("DefaultHome = %q, %v", h, err)
	}
}

func assertMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != want {
		t.Fatalf("%s mode %v, want %v", path, fi.Mode().Perm(), want)
	}
}
