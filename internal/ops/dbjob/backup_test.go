package dbjob

import (
	"errors"
	"fmt"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/a0backup/a0/internal/dump"
	"github.com/a0backup/a0/internal/ops"
)

// TestRolledError: a backup lost to the oplog's rollover is told by
// ops.ErrOplogRolled above (the agent's metrics, which import no dump),
// while its message and the dump's error stay what they were.
func TestRolledError(t *testing.T) {
	rolled := &dump.OplogRolledError{Start: bson.Timestamp{T: 10, I: 1}}
	for _, tc := range []struct {
		name   string
		err    error
		rolled bool
	}{
		{"the dump's error", rolled, true},
		{"wrapped", fmt.Errorf("backup: %w", rolled), true},
		{"another error", errors.New("disk full"), false},
		{"none", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := rolledError(tc.err)
			if errors.Is(got, ops.ErrOplogRolled) != tc.rolled {
				t.Fatalf("errors.Is(%v, ErrOplogRolled) = %v, want %v", got, !tc.rolled, tc.rolled)
			}
			if tc.err == nil {
				if got != nil {
					t.Fatalf("rolledError(nil) = %v", got)
				}
				return
			}
			if got.Error() != tc.err.Error() {
				t.Fatalf("message changed: %q, was %q", got.Error(), tc.err.Error())
			}
			var de *dump.OplogRolledError
			if tc.rolled && (!errors.As(got, &de) || de != rolled) {
				t.Fatalf("the dump's error is lost from %v", got)
			}
		})
	}
}
