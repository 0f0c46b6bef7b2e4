package agentcmd

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// TestReadOnlyCommandsRefuseANonStateDir (issue 25.14): keys, fingerprint
// and revoke on a mistyped --state-dir fail (exit 1) saying it is not a
// state directory, and create nothing there: no directory, no secrets.
func TestReadOnlyCommandsRefuseANonStateDir(t *testing.T) {
	for _, args := range [][]string{{"keys"}, {"fingerprint"}, {"revoke", "me"}} {
		t.Run(args[0], func(t *testing.T) {
			base := t.TempDir()
			typo := filepath.Join(base, "stat-dir")
			var out, errb bytes.Buffer
			argv := append([]string{args[0], "--state-dir", typo}, args[1:]...)
			if code := Main(context.Background(), argv, &out, &errb); code != 1 {
				t.Fatalf("exit %d, want 1; stderr %s", code, errb.String())
			}
			if !strings.Contains(errb.String(), "not an a0agent state directory") {
				t.Fatalf("stderr does not say why: %s", errb.String())
			}
			if _, err := os.Stat(typo); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("%s was created (%v)", typo, err)
			}
		})
	}
}

// TestAuthorizePrivateKeyNotEchoed (issue 25.16): `a0agent authorize
// --state-dir DIR NAME "$(cat id_a0)"` exits 1 naming the mistake, with no
// line of the key on stdout or stderr (the flag parser used to quote the
// whole argument), and authorizes nothing.
func TestAuthorizePrivateKeyNotEchoed(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKey(priv, "me@laptop")
	if err != nil {
		t.Fatal(err)
	}
	key := string(pem.EncodeToMemory(block))
	state := t.TempDir()
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"authorize", "--state-dir", state, "me", key}, &out, &errb); code != 1 {
		t.Fatalf("exit %d, want 1; stderr %s", code, errb.String())
	}
	if !strings.Contains(errb.String(), "this is a private key; give the .pub line") {
		t.Fatalf("stderr does not name the mistake: %s", errb.String())
	}
	for _, line := range strings.Split(key, "\n") {
		if len(line) > 8 && !strings.HasPrefix(line, "-----") && strings.Contains(out.String()+errb.String(), line) {
			t.Fatalf("the output quotes the key:\n%s%s", out.String(), errb.String())
		}
	}
	if b, _ := os.ReadFile(filepath.Join(state, "authorized_keys")); len(b) != 0 {
		t.Fatalf("authorized_keys holds %q", b)
	}
}
