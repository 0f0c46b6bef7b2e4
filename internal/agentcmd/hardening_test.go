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

// TestReadOnlyCommandsRefuseANonStateDir (issue 25.14): keys, fingerprint,
// revoke and allow-recovery (whose consent would go where no agent reads it) on a mistyped --state-dir fail (exit 1) saying it is not a
// state directory, and create nothing there: no directory, no secrets.
func TestReadOnlyCommandsRefuseANonStateDir(t *testing.T) {
	for _, args := range [][]string{{"keys"}, {"fingerprint"}, {"revoke", "me"}, {"allow-recovery"}} {
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

// TestConfigFileModes (issue 25.10): check-config reports, and the agent
// refuses to start with, a config file others can write, one others can
// read when it holds a secret (webhook URL, MongoDB password), and an S3
// secret file others can read; each says the chmod to run and quotes no
// secret. A readable config without secrets stays fine.
func TestConfigFileModes(t *testing.T) {
	state := t.TempDir()
	secret := filepath.Join(t.TempDir(), "s3.secret")
	if err := os.WriteFile(secret, []byte("Sup3r-s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	remote := map[string]any{"endpoint": "https://s3.example:9000", "bucket": "b", "access_key_id": "AK", "secret_access_key_file": secret}
	for _, tc := range []struct {
		name       string
		cfg        map[string]any
		mode       os.FileMode
		secretMode os.FileMode
		want       string // "" for no mode problem
	}{
		{"0666 config with a webhook token", map[string]any{"state_dir": state, "webhook": "https://hooks.example/T0KEN-s3cr3t"}, 0o666, 0o600, "is writable by group or others"},
		{"0644 config with a webhook token", map[string]any{"state_dir": state, "webhook": "https://hooks.example/T0KEN-s3cr3t"}, 0o644, 0o600, "holds a secret"},
		{"0640 config with a MongoDB password", map[string]any{"state_dir": state, "mongodb_uri": "mongodb://u:pa55@db:27017/?directConnection=true"}, 0o640, 0o600, "holds a secret"},
		{"0620 config without secrets", map[string]any{"state_dir": state}, 0o620, 0o600, "is writable by group or others"},
		{"0644 S3 secret file", map[string]any{"state_dir": state, "remote": remote}, 0o600, 0o644, "secret_access_key_file " + secret + " is accessible by group or others"},
		{"0644 config without secrets", map[string]any{"state_dir": state}, 0o644, 0o600, ""},
		{"0644 config with a MongoDB URI without a password", map[string]any{"state_dir": state, "mongodb_uri": "mongodb://db:27017/?directConnection=true"}, 0o644, 0o600, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := writeConfig(t, tc.cfg)
			if err := os.Chmod(cfg, tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(secret, tc.secretMode); err != nil {
				t.Fatal(err)
			}
			var out, errb bytes.Buffer
			code := Main(context.Background(), []string{"check-config", "--config", cfg}, &out, &errb)
			all := out.String() + errb.String()
			if strings.Contains(all, "s3cr3t") || strings.Contains(all, "pa55") {
				t.Fatalf("a secret is quoted:\n%s", all)
			}
			if tc.want == "" {
				if code != 0 || strings.Contains(all, "chmod") {
					t.Fatalf("exit %d, want ok:\n%s", code, all)
				}
				return
			}
			if code == 0 || !strings.Contains(errb.String(), tc.want) || !strings.Contains(errb.String(), "chmod 600") {
				t.Fatalf("check-config: exit %d, want a problem saying %q:\n%s", code, tc.want, all)
			}
			// The agent refuses to start with it, before it touches the state directory.
			errb.Reset()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if code := Main(ctx, []string{"--config", cfg, "--listen", "127.0.0.1:0"}, &out, &errb); code == 0 || !strings.Contains(errb.String(), tc.want) {
				t.Fatalf("agent start: exit %d, want a refusal saying %q:\n%s", code, tc.want, errb.String())
			}
		})
	}
}

// TestMongoURIFileModes (issue 25.10): the agent refuses a --mongodb-uri-file
// that group or others can write, or others read when it holds a password,
// saying the chmod to run and quoting no password, before it touches the
// state directory; a readable one without a password stays fine, and so
// does the 0640 one docs/operations.md recommends (group the agent's).
func TestMongoURIFileModes(t *testing.T) {
	for _, tc := range []struct {
		name string
		uri  string
		mode os.FileMode
		want string // "" for no mode problem
	}{
		{"0644 with a password", "mongodb://u:pa55@127.0.0.1:1/?directConnection=true", 0o644, "holds a password and is readable by others"},
		{"0604 with a password", "mongodb://u:pa55@127.0.0.1:1/?directConnection=true", 0o604, "holds a password and is readable by others"},
		{"0640 with a password (the documented group read)", "mongodb://u:pa55@127.0.0.1:1/?directConnection=true", 0o640, ""},
		{"0666 without a password", "mongodb://127.0.0.1:1/?directConnection=true", 0o666, "is writable by group or others"},
		{"0644 without a password", "mongodb://127.0.0.1:1/?directConnection=true", 0o644, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := filepath.Join(t.TempDir(), "state")
			f := filepath.Join(t.TempDir(), "mongodb-uri")
			if err := os.WriteFile(f, []byte(tc.uri+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(f, tc.mode); err != nil {
				t.Fatal(err)
			}
			o := RunOptions{StateDir: state, MongoURIFile: f}
			err := o.fill()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("fill: %v, want ok", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "chmod 600 "+f) {
				t.Fatalf("fill: %v, want a refusal saying %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "pa55") {
				t.Fatalf("the password is quoted: %v", err)
			}
			if _, err := os.Stat(state); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the state directory was made (%v)", err)
			}
		})
	}
}

// TestConfigDirectoryWritableByOthers (issue 25.10, as 25.8 for
// authorized_keys): a 0600 config in a directory others can write (another
// user could rename a config of theirs over it, choosing the recipients
// and the remote store) is reported by check-config and refused at start;
// in a sticky directory (/tmp's 1777) or a private one it is fine.
func TestConfigDirectoryWritableByOthers(t *testing.T) {
	state := t.TempDir()
	for _, tc := range []struct {
		name string
		mode os.FileMode
		want string
	}{
		{"0777 directory", 0o777, "in a directory group or others can write"},
		{"0775 directory", 0o775, "in a directory group or others can write"},
		{"1777 directory (sticky)", 0o777 | os.ModeSticky, ""},
		{"0755 directory", 0o755, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := writeConfig(t, map[string]any{"state_dir": state})
			if err := os.Chmod(filepath.Dir(cfg), tc.mode); err != nil {
				t.Fatal(err)
			}
			defer os.Chmod(filepath.Dir(cfg), 0o700)
			var out, errb bytes.Buffer
			code := Main(context.Background(), []string{"check-config", "--config", cfg}, &out, &errb)
			if tc.want == "" {
				if code != 0 {
					t.Fatalf("exit %d, want ok:\n%s%s", code, out.String(), errb.String())
				}
				return
			}
			if code == 0 || !strings.Contains(errb.String(), tc.want) {
				t.Fatalf("check-config: exit %d, want a problem saying %q:\n%s", code, tc.want, errb.String())
			}
			errb.Reset()
			if code := Main(context.Background(), []string{"--config", cfg, "--listen", "127.0.0.1:0"}, &out, &errb); code == 0 || !strings.Contains(errb.String(), tc.want) {
				t.Fatalf("agent start: exit %d, want a refusal saying %q:\n%s", code, tc.want, errb.String())
			}
		})
	}
}
