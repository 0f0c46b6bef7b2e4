package dbjob

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/a0backup/a0/internal/crypt"
	"github.com/a0backup/a0/internal/ops"
	"github.com/a0backup/a0/internal/store"
)

// TestRunDrillWrongKey: a stored backup the drill's key does not open (one
// made with a password, which is not encrypted to "recipients", or to
// other keys) fails the drill as wrong_key, saying that the drill's key is
// the one that does not open it: no file key was sent by anyone (the
// restore's wording), and the operator must know what to change.
func TestRunDrillWrongKey(t *testing.T) {
	drillID, _ := age.GenerateX25519Identity()
	other, _ := age.GenerateX25519Identity()
	for _, tc := range []struct {
		name string
		seal crypt.Seal
	}{
		{"password", crypt.Seal{Password: []byte("Passw0rd-drill")}},
		{"other keys", crypt.Seal{Recipients: []age.Recipient{other.Recipient()}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			w, err := crypt.NewSealedWriter(&b, tc.seal, nil)
			if err != nil {
				t.Fatal(err)
			}
			w.Write([]byte("not read: the key is refused first"))
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "b.tar.gz.enc")
			if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
				t.Fatal(err)
			}
			parent := filepath.Join(t.TempDir(), ".drill")
			_, err = RunDrill(context.Background(), &ops.Drill{Path: path, Meta: &store.Meta{Name: "b.tar.gz"},
				Identities: []age.Identity{drillID}, Parent: parent})
			var oe *ops.Error
			if !errors.As(err, &oe) || oe.Kind != ops.WrongKey {
				t.Fatalf("drill: %v, want a wrong_key error", err)
			}
			if msg := err.Error(); strings.Contains(msg, "sent") || !strings.Contains(msg, "drill's key") || !strings.Contains(msg, "recipients") {
				t.Fatalf("drill's wrong key error: %q", msg)
			}
		})
	}
}
