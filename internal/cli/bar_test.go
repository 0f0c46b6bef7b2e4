package cli

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestBarRateFromFirstBytes: the wait before the first bytes (a backup's
// oplog start and listing) is not folded into the rate, so the ETA of
// the bytes left is not stretched by it.
func TestBarRateFromFirstBytes(t *testing.T) {
	var out bytes.Buffer
	past := time.Now().Add(-20 * time.Second)
	b := &bar{w: &out, on: true, label: "backup", start: past, still: past}
	b.update(0, 1000, "") // 20 s without a byte
	time.Sleep(500 * time.Millisecond)
	b.update(500, 1000, "") // then half in half a second
	line := out.String()[strings.LastIndex(out.String(), "\r"):]
	m := regexp.MustCompile(`ETA (\S+)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("no ETA in %q", line)
	}
	eta, err := time.ParseDuration(m[1])
	if err != nil {
		t.Fatal(err)
	}
	// The rate since the first bytes: 500 bytes in ~0.5 s, so ~0.5 s
	// left (rounded to 0-1 s); from the bar's start it would be ~20 s.
	if eta > 2*time.Second {
		t.Fatalf("ETA %s counts the wait before the first bytes: %q", eta, line)
	}
	if !strings.Contains(line, " 50% ") {
		t.Fatalf("line %q", line)
	}
}
