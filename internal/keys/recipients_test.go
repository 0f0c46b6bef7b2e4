package keys

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/a0backup/a0/internal/crypt"
)

// sealTo encrypts plain to rs and returns the file.
func sealTo(t *testing.T, plain []byte, rs ...Recipient) []byte {
	t.Helper()
	var ar []age.Recipient
	for _, r := range rs {
		ar = append(ar, r.Recipient)
	}
	var buf bytes.Buffer
	w, err := crypt.NewSealedWriter(&buf, crypt.Seal{Recipients: ar}, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(plain)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func opens(f []byte, ids ...age.Identity) error {
	r, err := crypt.Open(bytes.NewReader(f), crypt.Unlock{Identities: ids})
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, r)
	return err
}

// The CLI keys of two operators (one ed25519, one RSA), authorized on a node
// by name, are the recipients of a backup; each CLI key opens it, a third
// key does not.
func TestAuthorizedRecipientsAndCLIIdentities(t *testing.T) {
	dir := t.TempDir()
	homes := map[string]string{"alice": filepath.Join(dir, "alice"), "bob": filepath.Join(dir, "bob"), "eve": filepath.Join(dir, "eve")}
	a := OpenAuthorized(filepath.Join(dir, "state", "authorized_keys"))
	for name, typ := range map[string]KeyType{"alice": Ed25519, "bob": RSA, "eve": Ed25519} {
		line, err := Create(homes[name], typ, false)
		if err != nil {
			t.Fatal(err)
		}
		if name != "eve" {
			if err := a.Add(name, line); err != nil {
				t.Fatal(err)
			}
		}
	}
	all, err := a.Recipients(nil, true)
	if err != nil || len(all) != 2 {
		t.Fatalf("all: %v %v", all, err)
	}
	for _, r := range all {
		if r.Name == "" || !strings.HasPrefix(r.ID, "ssh-") || !strings.Contains(r.ID, "SHA256:") {
			t.Fatalf("recipient %+v", r)
		}
	}
	f := sealTo(t, []byte("secret data"), all...)
	for _, name := range []string{"alice", "bob"} {
		id, err := CLIIdentity(homes[name])
		if err != nil {
			t.Fatal(err)
		}
		if err := opens(f, id); err != nil {
			t.Fatalf("%s's CLI key: %v", name, err)
		}
		// The same key, read as an identity file.
		ids, err := LoadIdentities(filepath.Join(homes[name], PrivateKeyFile))
		if err != nil || len(ids) != 1 {
			t.Fatalf("LoadIdentities: %v", err)
		}
		if err := opens(f, ids...); err != nil {
			t.Fatalf("%s's identity file: %v", name, err)
		}
	}
	eve, _ := CLIIdentity(homes["eve"])
	if err := opens(f, eve); !errors.Is(err, crypt.ErrWrongKey) {
		t.Fatalf("eve: %v", err)
	}

	one, err := a.Recipients([]string{"bob"}, false)
	if err != nil || len(one) != 1 || one[0].Name != "bob" || !strings.HasPrefix(one[0].ID, "ssh-rsa ") {
		t.Fatalf("bob: %+v %v", one, err)
	}
	if _, err := a.Recipients([]string{"alice", "mallory"}, false); !errors.Is(err, ErrUnknownName) || !strings.Contains(err.Error(), "mallory") {
		t.Fatalf("unknown name: %v", err)
	}
	empty := OpenAuthorized(filepath.Join(dir, "none", "authorized_keys"))
	if _, err := empty.Recipients(nil, true); !errors.Is(err, ErrUnknownName) {
		t.Fatalf("--to-all with no keys: %v", err)
	}
}

func TestParseRecipientAndAgeIdentity(t *testing.T) {
	x, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	r, err := ParseRecipient(x.Recipient().String())
	if err != nil || r.ID != x.Recipient().String() {
		t.Fatalf("age1: %+v %v", r, err)
	}
	f := sealTo(t, []byte("x"), r)
	path := filepath.Join(t.TempDir(), "age.key")
	os.WriteFile(path, []byte("# created by age-keygen\n"+x.String()+"\n"), 0o600)
	ids, err := LoadIdentities(path)
	if err != nil || len(ids) != 1 {
		t.Fatalf("age identity file: %v", err)
	}
	if err := opens(f, ids...); err != nil {
		t.Fatal(err)
	}

	os.Chmod(path, 0o644)
	var pe *PermissionError
	if _, err := LoadIdentities(path); !errors.As(err, &pe) {
		t.Fatalf("a world-readable identity: %v", err)
	}
	if _, err := LoadIdentities(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing: %v", err)
	}
	junk := filepath.Join(t.TempDir(), "junk")
	os.WriteFile(junk, []byte("AGE-SECRET-KEY-1NOTAKEY\n"), 0o600)
	if _, err := LoadIdentities(junk); !errors.Is(err, ErrInvalidIdentity) || strings.Contains(err.Error(), "NOTAKEY") {
		t.Fatalf("junk identity: %v", err)
	}

	for _, bad := range []string{
		"", "age1notvalid", "ssh-dss AAAAB3NzaC1kc3MAAACBAP", x.String(), "ecdsa-sha2-nistp256 AAAA",
	} {
		_, err := ParseRecipient(bad)
		if !errors.Is(err, ErrInvalidRecipient) {
			t.Errorf("%q: %v", bad, err)
		}
		if bad != "" && err != nil && strings.Contains(err.Error(), bad) {
			t.Errorf("the error repeats the input: %v", err)
		}
	}
	line, _ := newKeyLine(t, nil, "ops")
	if r, err := ParseRecipient(line); err != nil || !strings.HasPrefix(r.ID, "ssh-ed25519 SHA256:") {
		t.Fatalf("ssh line: %+v %v", r, err)
	}
}

// TestRecipientsNeverQuoteKeyMaterial (issue 25.16): a --to value that is
// a private key (pasted by mistake), or a line of one, is refused as an
// unknown name without being quoted; a mistyped name still is.
func TestRecipientsNeverQuoteKeyMaterial(t *testing.T) {
	dir := t.TempDir()
	line, err := Create(filepath.Join(dir, "alice"), Ed25519, false)
	if err != nil {
		t.Fatal(err)
	}
	a := OpenAuthorized(filepath.Join(dir, "authorized_keys"))
	if err := a.Add("alice", line); err != nil {
		t.Fatal(err)
	}
	priv, err := os.ReadFile(filepath.Join(dir, "alice", "id_a0"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(priv)), "\n")
	for _, tc := range []struct{ name, to, says string }{
		{"the private key", string(priv), "a private key"},
		{"a line of it", lines[2], "not a key name"},
		// A base64 line without '+' or '/' matches the name pattern:
		// one key file in eight has one (the test was flaky before).
		{"a line of it without + or /", "c2gtZWQyNTUxOQAAACB0cFqpDgL4SSVoiwx2w9KCHcPe0dIrqLqRvoabojICEQAA", "not a key name"},
		{"a mistyped name", "alcie", `"alcie"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := a.Recipients([]string{tc.to}, false)
			if !errors.Is(err, ErrUnknownName) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("err = %v, want ErrUnknownName saying %q", err, tc.says)
			}
			for _, l := range lines {
				if len(l) > 8 && !strings.HasPrefix(l, "-----") && strings.Contains(err.Error(), l) {
					t.Fatalf("the error quotes the key: %v", err)
				}
			}
		})
	}
}
