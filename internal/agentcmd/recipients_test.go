package agentcmd

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/a0backup/a0/internal/keys"
)

func TestConfigRecipients(t *testing.T) {
	x, _ := age.GenerateX25519Identity()
	home := t.TempDir()
	line, err := keys.Create(home, keys.Ed25519, false)
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "a0.json")
	os.WriteFile(cfg, []byte(`{"state_dir":"/s","recipients":["`+line+`","`+x.Recipient().String()+`"]}`), 0o600)
	o := RunOptions{Config: cfg}
	if err := o.fill(); err != nil {
		t.Fatal(err)
	}
	if len(o.Recipients) != 2 || o.Recipients[0] != line {
		t.Fatalf("recipients %q", o.Recipients)
	}
	// A private key pasted by mistake is refused, and not repeated.
	os.WriteFile(cfg, []byte(`{"state_dir":"/s","recipients":["`+line+`","`+x.String()+`"]}`), 0o600)
	err = (&RunOptions{Config: cfg}).fill()
	if !errors.Is(err, keys.ErrInvalidRecipient) || !strings.Contains(err.Error(), "recipients[1]") || strings.Contains(err.Error(), x.String()) {
		t.Fatalf("bad recipient: %v", err)
	}
}

func TestConfigMetricsListen(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "a0.json")
	os.WriteFile(cfg, []byte(`{"state_dir":"/s","metrics_listen":"127.0.0.1:10122"}`), 0o600)
	o := RunOptions{Config: cfg}
	if err := o.fill(); err != nil || o.MetricsListen != "127.0.0.1:10122" {
		t.Fatalf("%v %q", err, o.MetricsListen)
	}
	os.WriteFile(cfg, []byte(`{"state_dir":"/s","metrics_listen":"10122"}`), 0o600)
	if err := (&RunOptions{Config: cfg}).fill(); err == nil || !strings.Contains(err.Error(), "HOST:PORT") {
		t.Fatalf("bad address: %v", err)
	}
}
