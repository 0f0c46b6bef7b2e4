package ops

import (
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/a0backup/a0/internal/api"
	"github.com/a0backup/a0/internal/archive"
	"github.com/a0backup/a0/internal/store"
)

// storeSealed stores a verified backup sealed with password in slot of device.
func storeSealed(t *testing.T, device, slot string, password string) {
	t.Helper()
	s := Slot(device, slot)
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	w, err := s.CreateSealed(BackupName(time.Now()), []byte(password), archive.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Archive().AddBytes("a.txt", 0o600, time.Now(), []byte("data")); err != nil {
		t.Fatal(err)
	}
	if _, err := w.FinishVerified(store.Meta{Created: time.Now().UTC()}, func(plain io.Reader) error { _, err := io.Copy(io.Discard, plain); return err }); err != nil {
		t.Fatal(err)
	}
}

func TestSamePasswordWarning(t *testing.T) {
	device := t.TempDir()
	storeSealed(t, device, api.SlotBackup, "password-one")
	for _, tc := range []struct {
		name, slot, password string
		warn                 bool
	}{
		{"sensitive with the backup's password", api.SlotSensitive, "password-one", true},
		{"sensitive with another password", api.SlotSensitive, "password-two", false},
		{"backup: no sensitive backup stored", api.SlotBackup, "password-one", false},
		{"no password", api.SlotSensitive, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := SamePasswordWarning(device, tc.slot, []byte(tc.password))
			if tc.warn != (got != "") {
				t.Fatalf("warning %q, want one: %v", got, tc.warn)
			}
			if tc.warn && !strings.Contains(got, "also protects the stored backup") {
				t.Fatalf("warning %q does not name the stored backup", got)
			}
		})
	}
}
