package cli

import (
	"strings"
	"testing"
)

// TestOplogFindRefusesBadRanges: a --since after --until is a usage error
// (exit 2) named as such, before the node is contacted (the port here has
// no node): before, the node searched an empty range and the CLI printed
// "no destructive operation found", exit 0, an all-clear for a typo.
func TestOplogFindRefusesBadRanges(t *testing.T) {
	op := newOperator(t)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"since after until", []string{"--since", "2026-12-06T20:00:00Z", "--until", "2026-12-06T18:00:00Z"}, "nothing lies between"},
		{"since not RFC 3339", []string{"--since", "yesterday"}, "RFC 3339"},
		{"unknown op", []string{"--op", "truncate"}, "truncate"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := op.run(append([]string{"-t", "127.0.0.1", "-p", "11999", "oplog-find"}, c.args...)...)
			if r.code != ExitUsage || !strings.Contains(r.stderr, c.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d naming %q", r.code, r.stderr, ExitUsage, c.want)
			}
		})
	}
}
