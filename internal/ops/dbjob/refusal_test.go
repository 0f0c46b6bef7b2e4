package dbjob

import (
	"errors"
	"fmt"
	"testing"

	"github.com/a0backup/a0/internal/ops"
	"github.com/a0backup/a0/internal/restore"
)

// TestRefusal: the refusals found before the first write are typed
// whichever check finds them. A namespace the server cannot hold, found by
// CheckTargets (a --ns-to onto a database name FerretDB refuses), was
// returned untyped: exit 1 and no code, where Preflight's same refusal of a
// time-series collection is unsupported, exit 4.
func TestRefusal(t *testing.T) {
	plain := errors.New("connection reset")
	for _, tc := range []struct {
		name string
		err  error
		want ops.Kind
	}{
		{"non-empty", &restore.NonEmptyError{Namespaces: []string{"a.x"}}, ops.NonEmptyTarget},
		{"name not held", fmt.Errorf("check: %w", &restore.UnsupportedError{Namespace: "üni.x", Feature: "name of"}), ops.Unsupported},
		{"other", plain, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := refusal(tc.err)
			var oe *ops.Error
			switch {
			case tc.want == 0 && err != tc.err:
				t.Fatalf("refusal(%v) = %v, want it unchanged", tc.err, err)
			case tc.want != 0 && (!errors.As(err, &oe) || oe.Kind != tc.want):
				t.Fatalf("refusal(%v) = %#v, want kind %d", tc.err, err, tc.want)
			}
		})
	}
}
