package dbjob

import (
	"testing"

	"github.com/a0backup/a0/internal/dump"
	"github.com/a0backup/a0/internal/ops"
)

// TestWorkSpoolPattern: ops.CleanWorkDir removes the dump's spools by
// ops.WorkSpoolPattern, which must be the name the dump gives them.
func TestWorkSpoolPattern(t *testing.T) {
	if ops.WorkSpoolPattern != dump.SpoolPattern {
		t.Fatalf("ops.WorkSpoolPattern %q, dump.SpoolPattern %q", ops.WorkSpoolPattern, dump.SpoolPattern)
	}
}
