package dumpname

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

// TestEscapeAsMongodump checks names against what mongodump 100.18 wrote
// (the long name is the fixture of mongo-tools' longcollectionname test,
// whose file name a real mongodump produced).
func TestEscapeAsMongodump(t *testing.T) {
	long := "aVery" + strings.Repeat("Very", 43) + "LongCollectionNameConsistingOfExactlyTwoHundredAndFortySevenCharacters"
	for _, tc := range []struct{ name, want string }{
		{"foo", "foo"},
		{"c++ 100% a/b", "c%2B%2B+100%25+a%2Fb"},
		{"cafés", "caf%C3%A9s"},
		{"a.b.c", "a.b.c"},
		{long, long[:208] + "%24xFO0VquRn7cg3QooSZD5sglTddU"},
	} {
		if got := Escape(tc.name); got != tc.want {
			t.Errorf("Escape(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
	if len(long) != 247 {
		t.Fatalf("fixture name is %d bytes", len(long))
	}
}

// TestEscapeCutInsideEscape: the 208-byte cut falls where mongodump's does,
// also in the middle of a %XX escape, and the result is still 238 bytes.
func TestEscapeCutInsideEscape(t *testing.T) {
	for pad := 0; pad < 3; pad++ {
		name := strings.Repeat("a", 206+pad) + strings.Repeat("é", 30)
		esc := url.QueryEscape(name)
		got := Escape(name)
		if len(got) != MaxEscaped || got[:PrefixLen] != esc[:PrefixLen] || got[PrefixLen:PrefixLen+3] != "%24" {
			t.Fatalf("pad %d: %q", pad, got)
		}
		if !Hashed(got) {
			t.Fatalf("pad %d: not seen as hashed", pad)
		}
		if _, err := Unescape(got); !errors.Is(err, ErrName) {
			t.Fatalf("pad %d: Unescape of a hashed name: %v", pad, err)
		}
		if r, err := Resolve(got, name); err != nil || r != name {
			t.Fatalf("pad %d: Resolve: %q %v", pad, r, err)
		}
	}
	// 238 bytes exactly is not shortened.
	n := strings.Repeat("b", MaxEscaped)
	if Escape(n) != n {
		t.Fatal("a 238-byte name was shortened")
	}
}

func TestResolve(t *testing.T) {
	long := strings.Repeat("L", 300)
	for _, tc := range []struct {
		file, meta, want string
		ok               bool
	}{
		{"u", "", "u", true},
		{"c%2B%2B+100%25+a%2Fb", "", "c++ 100% a/b", true},
		{"c%2B%2B+100%25+a%2Fb", "c++ 100% a/b", "c++ 100% a/b", true},
		{"c++%20100%25%20a%2Fb", "c++ 100% a/b", "c++ 100% a/b", true}, // path escaping of older a0
		{"u", "system.users", "", false},
		{"system.users", "users", "", false},
		{Escape(long), long, long, true},
		{Escape(long), long + "x", "", false},
		{Escape(long)[:PrefixLen] + "%24" + strings.Repeat("A", 27), long, "", false},
		{Escape(long), "", "", false},
		{"bad%zz", "", "", false},
	} {
		got, err := Resolve(tc.file, tc.meta)
		if tc.ok != (err == nil) || got != tc.want {
			t.Errorf("Resolve(%q, %q) = %q, %v", tc.file, tc.meta, got, err)
		}
		if err != nil && !errors.Is(err, ErrName) {
			t.Errorf("Resolve(%q, %q): %v does not match ErrName", tc.file, tc.meta, err)
		}
	}
}
