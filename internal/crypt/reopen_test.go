package crypt

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestReopen(t *testing.T) {
	plain := randomBytes(3*chunk+17, 7)
	enc := encrypt(t, plain, nil)
	other := encrypt(t, plain, nil) // same password and data, another salt

	first := mustReader(t, enc)
	if _, err := io.Copy(io.Discard, first); err != nil {
		t.Fatalf("first pass: %v", err)
	}

	// The second pass must not derive the keys again.
	derived := 0
	saved := deriveMaster
	deriveMaster = func(pw []byte, h *HeaderInfo, salt []byte) ([]byte, error) {
		derived++
		return saved(pw, h, salt)
	}
	t.Cleanup(func() { deriveMaster = saved })

	t.Run("same file", func(t *testing.T) {
		r, err := first.Reopen(bytes.NewReader(enc))
		if err != nil {
			t.Fatalf("Reopen: %v", err)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("second pass: err %v, equal %v", err, bytes.Equal(got, plain))
		}
		if derived != 0 {
			t.Errorf("Reopen derived the keys %d times, want 0", derived)
		}
	})

	tampered := bytes.Clone(enc)
	tampered[rec(1)+5] ^= 1
	for _, tc := range []struct {
		name     string
		file     []byte
		atReopen bool
	}{
		{"another file", other, true},
		{"truncated header", enc[:headerSize-3], true},
		{"header changed", flip(offMAC, 0)(bytes.Clone(enc)), true},
		{"body tampered", tampered, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := first.Reopen(bytes.NewReader(tc.file))
			if err == nil {
				if tc.atReopen {
					t.Fatal("Reopen accepted it")
				}
				_, err = io.ReadAll(r)
			}
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want *CorruptError", err)
			}
		})
	}
}
