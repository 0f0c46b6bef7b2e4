package drill

import (
	"errors"
	"strings"
	"testing"
)

// TestCheckRoom: a restore test needs RoomFactor times the data free where
// it works. Without the check, a directory too small was found part way,
// by the throwaway server ("database or disk is full"), and reported as a
// backup that did not restore (exit 6).
func TestCheckRoom(t *testing.T) {
	for _, tc := range []struct {
		name       string
		free, data int64
		refused    bool
	}{
		{"room", 5000, 1000, false},
		{"data alone fits, not the server's files", 4999, 1000, true},
		{"empty backup", 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := room("/x", tc.free, tc.data)
			var nr *NoRoomError
			if got := errors.As(err, &nr); got != tc.refused {
				t.Fatalf("room(free %d, data %d) = %v, refused %v", tc.free, tc.data, err, tc.refused)
			}
			if tc.refused && (nr.Need != RoomFactor*tc.data || !strings.Contains(err.Error(), "--restore-test-dir")) {
				t.Fatalf("refusal %+v: %v", nr, err)
			}
		})
	}
	t.Run("real file system", func(t *testing.T) {
		dir := t.TempDir()
		if err := CheckRoom(dir, 1); err != nil {
			t.Fatalf("1 byte of data: %v", err)
		}
		var nr *NoRoomError
		if err := CheckRoom(dir, 1<<58); !errors.As(err, &nr) || nr.Dir != dir {
			t.Fatalf("2^58 bytes of data: %v, want a NoRoomError for %s", err, dir)
		}
		if err := CheckRoom(dir+"/missing", 1); err == nil || errors.As(err, &nr) {
			t.Fatalf("a missing directory: %v, want the statfs error", err)
		}
	})
}
