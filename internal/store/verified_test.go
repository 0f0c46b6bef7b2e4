package store

import (
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/a0backup/a0/internal/archive"
	"github.com/a0backup/a0/internal/crypt"
)

func TestFinishVerified(t *testing.T) {
	pw := []byte("verified-password")
	write := func(t *testing.T, slot Slot) *Sealed {
		t.Helper()
		s, err := slot.CreateSealed("01-12-2026-21-00-00.tar.gz", pw, archive.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Archive().AddBytes("prelude.json", 0o600, time.Unix(1700000000, 0), []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		return s
	}
	t.Run("accepted", func(t *testing.T) {
		slot := Slot{Dir: t.TempDir(), Kind: "backup"}
		var seen int64
		m, err := write(t, slot).FinishVerified(Meta{}, func(plain io.Reader) error {
			ar, err := archive.NewReader(plain, archive.Limits{})
			if err != nil {
				return err
			}
			defer ar.Close()
			e, err := ar.Next()
			if err != nil {
				return err
			}
			seen = e.Size
			return nil
		})
		if err != nil || !m.Verified || m.VerifiedAt == nil || seen != 2 {
			t.Fatalf("meta %+v, err %v, entry size %d", m, err, seen)
		}
		if st, err := slot.Stored(); err != nil || !st.Verified {
			t.Fatalf("stored %+v, %v", st, err)
		}
	})
	t.Run("damaged on the disk", func(t *testing.T) {
		// A flipped bit in the final record, as a failing device makes:
		// the archive (read first) is intact, only the read-back's
		// authentication to the last byte finds it.
		slot := Slot{Dir: t.TempDir(), Kind: "backup"}
		s := write(t, slot)
		s.BeforeReadBack = func(path string) {
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Error(err)
				return
			}
			defer f.Close()
			st, _ := f.Stat()
			if _, err := f.WriteAt([]byte{0xff}, st.Size()-1); err != nil {
				t.Error(err)
			}
		}
		_, err := s.FinishVerified(Meta{}, func(io.Reader) error { return nil })
		var ve *VerifyError
		var ce *crypt.CorruptError
		if !errors.As(err, &ve) || !errors.As(err, &ce) || !strings.Contains(err.Error(), "read back: crypt: corrupt") {
			t.Fatalf("err %v, want a VerifyError wrapping crypt's *CorruptError", err)
		}
		if left, _ := os.ReadDir(slot.Dir); len(left) != 0 {
			t.Fatalf("a damaged backup left %v", left)
		}
	})
	t.Run("refused", func(t *testing.T) {
		slot := Slot{Dir: t.TempDir(), Kind: "backup"}
		bad := errors.New("bad archive")
		_, err := write(t, slot).FinishVerified(Meta{}, func(io.Reader) error { return bad })
		var ve *VerifyError
		if !errors.As(err, &ve) || !errors.Is(err, bad) {
			t.Fatalf("err %v, want a VerifyError wrapping the reason", err)
		}
		if _, err := slot.Stored(); !errors.Is(err, ErrNoBackup) {
			t.Fatalf("a refused backup is stored: %v", err)
		}
		if left, _ := os.ReadDir(slot.Dir); len(left) != 0 {
			t.Fatalf("a refused backup left %v", left)
		}
	})
	t.Run("damaged before the read-back", func(t *testing.T) {
		slot := Slot{Dir: t.TempDir(), Kind: "backup"}
		s := write(t, slot)
		var damaged string
		s.BeforeReadBack = func(path string) {
			damaged = path
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Error(err)
				return
			}
			defer f.Close()
			st, _ := f.Stat()
			b := make([]byte, 1)
			f.ReadAt(b, st.Size()/2)
			b[0] ^= 0x10
			f.WriteAt(b, st.Size()/2)
		}
		_, err := s.FinishVerified(Meta{}, func(plain io.Reader) error {
			_, err := io.Copy(io.Discard, plain)
			return err
		})
		var ve *VerifyError
		if damaged == "" || !errors.As(err, &ve) {
			t.Fatalf("hook ran on %q; err %v, want a VerifyError", damaged, err)
		}
		if left, _ := os.ReadDir(slot.Dir); len(left) != 0 {
			t.Fatalf("a damaged backup left %v", left)
		}
		// Another backup of the process does not run the hook.
		other := Slot{Dir: t.TempDir(), Kind: "backup"}
		damaged = ""
		if _, err := write(t, other).FinishVerified(Meta{}, func(io.Reader) error { return nil }); err != nil || damaged != "" {
			t.Fatalf("another backup: %v, hook ran on %q", err, damaged)
		}
	})
}
