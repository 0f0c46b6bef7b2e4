package cli

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/a0backup/a0/internal/keys"
)

// TestVerifyRecipientsOfAFileYouCannotOpen: verify lists whom a file is
// encrypted to even when none of the keys given opens it (then exits 6,
// the code of a wrong key), and names each ssh key in the SHA256:
// fingerprint form `a0agent keys` shows, in full for this workstation's
// CLI key (issue 28, point 12).
func TestVerifyRecipientsOfAFileYouCannotOpen(t *testing.T) {
	src, admin, _ := backupNode(t, 20)
	alice := newKeyedOperator(t, "ed25519")
	eve := newKeyedOperator(t, "ed25519")
	src.authorize("alice", alice.home)
	admin.mustOn(src, "backup", "--to", "alice")
	waitFound(t, admin, src)
	admin.mustOn(src, "backup-retrieve")
	file := filepath.Join(admin.dir, "backup-retrieve.tar.gz.enc")

	line, err := keys.PublicLine(alice.home)
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	fp := ssh.FingerprintSHA256(pub) // what `a0agent keys` shows for alice
	tag := sshTag(pub)

	r := eve.run("verify", file)
	wantLine := "  opens with: ssh-ed25519 " + tag + " (key " + fp[:len("SHA256:")+5] + "...)\n"
	if r.code != ExitIntegrity || !strings.Contains(r.stderr, "none of the given keys opens this file") ||
		!strings.Contains(r.stdout, "NOT OPENED: none of the keys given opens "+file) || !strings.Contains(r.stdout, wantLine) {
		t.Fatalf("verify by another key: exit %d, want %d and %q\nstdout: %sstderr: %s", r.code, ExitIntegrity, wantLine, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "a0agent keys") {
		t.Errorf("the hint does not say where to find the fingerprints: %s", r.stderr)
	}

	r = eve.run("verify", "--json", file)
	var res VerifyResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("verify --json: %v: %q", err, r.stdout)
	}
	if r.code != ExitIntegrity || res.Authentic || len(res.RecipientKeys) != 1 || res.Error == "" {
		t.Fatalf("verify --json: exit %d, %+v", r.code, res)
	}
	if k := res.RecipientKeys[0]; k.Type != "ssh-ed25519" || k.Tag != tag || !strings.HasPrefix(fp, k.FingerprintPrefix) || k.Fingerprint != "" {
		t.Fatalf("recipient %+v, want a prefix of %s", k, fp)
	}

	r = alice.run("verify", file)
	if want := "  opens with: ssh-ed25519 " + tag + " (key " + fp + ", this workstation's CLI key)\n"; r.code != 0 || !strings.Contains(r.stdout, want) {
		t.Fatalf("verify by the recipient: want %q\n%+v", want, r)
	}
}
