package store

import (
	"crypto/md5"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestSlotCycle(t *testing.T) {
	dir := t.TempDir()
	s := Slot{Dir: dir, Kind: "backup"}
	if _, err := s.Stored(); !errors.Is(err, ErrNoBackup) {
		t.Fatalf("empty slot: %v", err)
	}
	p, err := s.Create("01-02-2026-03-04-05.tar.gz")
	if err != nil {
		t.Fatal(err)
	}
	p.Write([]byte("hello"))
	// While written, nothing with the backup's name exists.
	if _, err := os.Stat(filepath.Join(dir, "01-02-2026-03-04-05.tar.gz.enc")); err == nil {
		t.Fatal("final name visible before commit")
	}
	m, err := p.Commit(Meta{Format: "a0enc1"})
	if err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum([]byte("hello"))
	if m.MD5 != hex.EncodeToString(sum[:]) || m.Size != 5 {
		t.Fatalf("meta %+v", m)
	}
	if st, _ := os.Stat(s.Path(m)); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode().Perm())
	}
	if _, err := s.Create("x.tar.gz"); !errors.Is(err, ErrExists) {
		t.Fatalf("second create: %v", err)
	}
	got, err := s.Delete()
	if err != nil || got.Name != m.Name {
		t.Fatalf("delete: %+v %v", got, err)
	}
	if _, err := s.Delete(); !errors.Is(err, ErrNoBackup) {
		t.Fatalf("delete twice: %v", err)
	}
}

func TestCleanRemovesPartialsOnly(t *testing.T) {
	dir := t.TempDir()
	b := Slot{Dir: dir, Kind: "backup"}
	sens := Slot{Dir: dir, Kind: "sensitive"}
	p, _ := sens.Create("01-02-2026-03-04-05.tar.gz")
	p.Write([]byte("x"))
	if _, err := p.Commit(Meta{}); err != nil {
		t.Fatal(err)
	}
	part, _ := b.Create("02-02-2026-03-04-05.tar.gz")
	part.Write([]byte("partial"))
	removed, err := b.Clean()
	if err != nil || len(removed) != 1 {
		t.Fatalf("clean: %v %v", removed, err)
	}
	if _, err := sens.Stored(); err != nil {
		t.Fatalf("clean of one slot touched the other: %v", err)
	}
}

func TestMetadataWithoutFileIsNoBackup(t *testing.T) {
	dir := t.TempDir()
	s := Slot{Dir: dir, Kind: "backup"}
	p, _ := s.Create("01-02-2026-03-04-05.tar.gz")
	p.Write([]byte("x"))
	m, err := p.Commit(Meta{})
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(s.Path(m))
	if _, err := s.Stored(); !errors.Is(err, ErrNoBackup) {
		t.Fatalf("stored: %v", err)
	}
	if _, err := s.Clean(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.metaPath()); err == nil {
		t.Fatal("stale metadata left by Clean")
	}
	if _, err := s.Create("02-02-2026-03-04-05.tar.gz"); err != nil {
		t.Fatalf("slot still blocked: %v", err)
	}
}
