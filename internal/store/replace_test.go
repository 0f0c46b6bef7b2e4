package store

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/a0backup/a0/internal/archive"
	"github.com/a0backup/a0/internal/crypt"
)

// A replacing backup takes the slot only once it is verified; until then,
// and when it fails, the stored one stays whole.
func TestCreateSealedReplacing(t *testing.T) {
	seal := crypt.Seal{Password: []byte("replace-password")}
	slot := Slot{Dir: t.TempDir(), Kind: "backup"}
	write := func(t *testing.T, name string) *Sealed {
		t.Helper()
		s, err := slot.CreateSealedReplacing(name, seal, archive.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Archive().AddBytes("prelude.json", 0o600, time.Unix(1700000000, 0), []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		return s
	}
	ok := func(io.Reader) error { return nil }
	if _, err := write(t, "01-12-2026-01-00-00.tar.gz").FinishVerified(Meta{}, ok); err != nil {
		t.Fatal(err)
	}
	// The same name as the stored one is refused before anything is written.
	if _, err := slot.CreateSealedReplacing("01-12-2026-01-00-00.tar.gz", seal, archive.Options{}); !errors.Is(err, ErrExists) {
		t.Fatalf("same name: %v", err)
	}
	// A plain Create still refuses a slot that holds a backup.
	if _, err := slot.Create("01-12-2026-03-00-00.tar.gz"); !errors.Is(err, ErrExists) {
		t.Fatalf("create: %v", err)
	}

	s := write(t, "01-12-2026-02-00-00.tar.gz")
	if m, err := slot.Stored(); err != nil || m.Name != "01-12-2026-01-00-00.tar.gz" {
		t.Fatalf("while the new one is written: %+v %v", m, err)
	}
	if _, err := s.FinishVerified(Meta{}, func(io.Reader) error { return errors.New("bad") }); err == nil {
		t.Fatal("a refused backup replaced the stored one")
	}
	m, err := slot.Stored()
	if err != nil || m.Name != "01-12-2026-01-00-00.tar.gz" {
		t.Fatalf("after a failed replacement: %+v %v", m, err)
	}
	if s.Replaced() != nil {
		t.Fatal("a failed replacement says it replaced")
	}

	s = write(t, "01-12-2026-02-00-01.tar.gz")
	nm, err := s.FinishVerified(Meta{}, ok)
	if err != nil {
		t.Fatal(err)
	}
	if r := s.Replaced(); r == nil || r.Name != m.Name {
		t.Fatalf("replaced %+v", r)
	}
	if got, err := slot.Stored(); err != nil || got.Name != nm.Name || !got.Verified {
		t.Fatalf("after the replacement: %+v %v", got, err)
	}
	entries, _ := os.ReadDir(slot.Dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != 2 || names[0] != "01-12-2026-02-00-01.tar.gz.enc" || names[1] != "backup.json" {
		t.Fatalf("files left: %v", names)
	}
	if _, err := os.Stat(filepath.Join(slot.Dir, m.File)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the old file is still there: %v", err)
	}
}
