package cmdline

import (
	"slices"
	"testing"
)

func TestNear(t *testing.T) {
	names := []string{"backup", "backups", "backup-status", "restore", "restore-status"}
	for _, tc := range []struct {
		typed string
		want  []string
	}{
		{"backup-stauts", []string{"backup-status"}},
		{"restor", []string{"restore", "restore-status"}},
		{"bakup", []string{"backup", "backups"}},
		{"frobnicate", nil},
	} {
		t.Run(tc.typed, func(t *testing.T) {
			if got := Near(tc.typed, names); !slices.Equal(got, tc.want) {
				t.Errorf("Near(%q) = %v, want %v", tc.typed, got, tc.want)
			}
		})
	}
}

func TestDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{{"wiat", "wait", 2}, {"wait", "wait", 0}, {"", "abc", 3}, {"kitten", "sitting", 3}} {
		if got := Distance(tc.a, tc.b); got != tc.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
