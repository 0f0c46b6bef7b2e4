package store

import (
	"crypto/md5"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
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
	part.Write([]byte("\x89a0enc\r\npartial")) // a0 writes its magic first (Clean checks it)
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

// TestCleanKeepsFilesA0DidNotWrite (issue 25 point 9): a folder given to
// set-as-backup with force may hold files named as a0 names its own; Clean
// removes only those that are a0's by their bytes too (the magic, or a
// part cut before it reached the disk), never a link.
func TestCleanKeepsFilesA0DidNotWrite(t *testing.T) {
	dir := t.TempDir()
	b := Slot{Dir: dir, Kind: "backup"}
	foreign := map[string][]byte{
		"notes.enc":                            []byte("someone's encrypted notes"),
		"01-02-2026-03-04-05.tar.gz.enc":       []byte("not an a0 file at all"),
		".02-02-2026-03-04-05.tar.gz.enc.part": []byte("a0enc is not the magic"),
		"x.enc.part":                           []byte("\x89a0"), // a prefix of the magic, but not a part name a0 gives
	}
	for n, body := range foreign {
		if err := os.WriteFile(filepath.Join(dir, n), body, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	target := filepath.Join(t.TempDir(), "target")
	os.WriteFile(target, []byte("\x89a0enc\r\nlinked"), 0o600)
	os.Symlink(target, filepath.Join(dir, "linked.enc"))
	own := map[string][]byte{
		".03-02-2026-03-04-05.tar.gz.enc.part": nil,                               // created, nothing flushed
		".04-02-2026-03-04-05.tar.gz.enc.part": []byte("\x89a0e"),                 // cut inside the magic
		"05-02-2026-03-04-05.tar.gz.enc":       []byte("\x89a0enc\r\n an orphan"), // metadata gone
	}
	for n, body := range own {
		if err := os.WriteFile(filepath.Join(dir, n), body, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := b.Clean()
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != len(own) {
		t.Errorf("removed %v, want the %d files a0 wrote", removed, len(own))
	}
	for n, body := range foreign {
		if got, err := os.ReadFile(filepath.Join(dir, n)); err != nil || string(got) != string(body) {
			t.Errorf("%s, which a0 did not write, removed or changed: %v", n, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(dir, "linked.enc")); err != nil {
		t.Errorf("a link named as a backup removed: %v", err)
	}
}

func TestCheckDevice(t *testing.T) {
	state := t.TempDir()
	os.MkdirAll(filepath.Join(state, "secrets"), 0o700)
	link := filepath.Join(t.TempDir(), "etc")
	os.Symlink("/etc", link)
	ok := t.TempDir()
	for _, tc := range []struct {
		device string
		ok     bool
	}{
		{"/", false}, {"/etc", false}, {"/etc/a0", false}, {"/dev/shm", false}, {"/proc/self", false},
		{"/sys", false}, {"/run/user", false}, {"/boot", false}, {"/usr/local/backups", false},
		{"/bin", false}, {"/sbin", false}, {"/lib", false}, {"/lib64/x", false}, {"/var/run", false},
		{"/var", false}, {"/var/lib", false}, {"/tmp", false},
		{state, false}, {filepath.Join(state, "secrets"), false}, {filepath.Join(state, "db", "new"), false},
		{filepath.Dir(state), false}, {link, false}, {filepath.Join(link, "ssl"), false},
		{ok, true}, {filepath.Join(ok, "not-yet"), true}, {"/mnt/backups", true}, {"/srv/a0", true}, {"/var/lib/a0-backups", true},
		{"/library", true}, {"/etcetera", true},
	} {
		t.Run(tc.device, func(t *testing.T) {
			err := CheckDevice(tc.device, state)
			var de *DeviceError
			switch {
			case tc.ok && err != nil:
				t.Fatalf("refused: %v", err)
			case !tc.ok && !errors.As(err, &de):
				t.Fatalf("accepted (%v)", err)
			case !tc.ok && !strings.Contains(err.Error(), tc.device):
				t.Fatalf("the error does not name the device: %v", err)
			}
		})
	}
}
