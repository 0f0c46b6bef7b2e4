package cli

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMessageDuringBarGetsItsOwnLine (issue 14.6): the first-contact pin
// line, or an error, printed while a progress bar is drawn starts a line of
// its own, and the bar goes on below it.
func TestMessageDuringBarGetsItsOwnLine(t *testing.T) {
	var buf bytes.Buffer
	env := &Env{Stderr: &lineWriter{w: &buf}, Interactive: true}
	b := newBar(env, "upload")
	b.update(10, 100, "")
	env.say("a0cli: first contact with n1:10121: pinned its certificate SHA256:x in /h/known_nodes")
	b.update(100, 100, "")
	b.finish()
	env.say("a0cli: done\n")
	lines := strings.Split(buf.String(), "\n")
	if len(lines) != 5 || lines[4] != "" {
		t.Fatalf("want bar, message, bar, message: %q", buf.String())
	}
	if lines[1] != "a0cli: first contact with n1:10121: pinned its certificate SHA256:x in /h/known_nodes" || lines[3] != "a0cli: done" {
		t.Fatalf("messages not on lines of their own: %q", buf.String())
	}
	if !strings.Contains(lines[0], "10%") || !strings.Contains(lines[2], "100%") {
		t.Fatalf("bar lines: %q", buf.String())
	}
}

// lastLine is the bar as last drawn in out.
func lastLine(out string) string { return out[strings.LastIndex(out, "\r"):] }

// lastETA is the bar as last drawn in out and the ETA it shows.
func lastETA(t *testing.T, out string) (string, time.Duration) {
	t.Helper()
	line := lastLine(out)
	m := regexp.MustCompile(`ETA (\S+)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("no ETA in %q", line)
	}
	eta, err := time.ParseDuration(m[1])
	if err != nil {
		t.Fatal(err)
	}
	return line, eta
}

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
	line, eta := lastETA(t, out.String())
	// The rate since the first bytes: 500 bytes in ~0.5 s, so ~0.5 s
	// left (rounded to 0-1 s); from the bar's start it would be ~20 s.
	if eta > 2*time.Second {
		t.Fatalf("ETA %s counts the wait before the first bytes: %q", eta, line)
	}
	if !strings.Contains(line, " 50% ") {
		t.Fatalf("line %q", line)
	}
}

// TestBarRateCases: a resumed download counts only what moved in this
// run; a bar whose first update already shows bytes (one per restore
// phase) measures from that update, not from its creation a moment before.
func TestBarRateCases(t *testing.T) {
	rate := func(t *testing.T, b *bar) string {
		t.Helper()
		line := lastLine(b.w.(*bytes.Buffer).String())
		m := regexp.MustCompile(`(\d+(\.\d+)? \S+)/s`).FindStringSubmatch(line)
		if m == nil {
			return ""
		}
		return m[1]
	}
	t.Run("resumed", func(t *testing.T) {
		past := time.Now().Add(-time.Second)
		b := &bar{w: &bytes.Buffer{}, on: true, label: "retrieve", start: past, still: past, initial: 900 << 20}
		b.update(900<<20, 1000<<20, "")
		time.Sleep(250 * time.Millisecond)
		b.update(901<<20, 1000<<20, "")
		// 1 MiB in ~0.25 s: a few MB/s, not the 900 MiB resumed from.
		f := strings.Fields(rate(t, b))
		if len(f) != 2 || f[1] != "MB" {
			t.Fatalf("rate %q, want about 4 MB/s", rate(t, b))
		}
		if v, _ := strconv.ParseFloat(f[0], 64); v < 1 || v > 6 {
			t.Fatalf("rate %q, want about 4 MB/s", rate(t, b))
		}
	})
	t.Run("first update already moving", func(t *testing.T) {
		past := time.Now().Add(-time.Millisecond)
		b := &bar{w: &bytes.Buffer{}, on: true, label: "restore", start: past, still: past}
		b.update(500, 1000, "")
		if r := rate(t, b); r != "" {
			t.Fatalf("a rate %q from one update", r)
		}
		time.Sleep(250 * time.Millisecond)
		b.update(600, 1000, "")
		// 100 bytes in ~0.25 s: ~400 B/s, not 600 bytes over the time
		// since creation.
		if r := rate(t, b); !strings.HasSuffix(r, " B") {
			t.Fatalf("rate %q, want a few hundred B/s", r)
		}
		if n, _ := strconv.Atoi(strings.Fields(rate(t, b))[0]); n < 200 || n > 450 {
			t.Fatalf("rate %q, want about 400 B/s", rate(t, b))
		}
	})
}

// TestBarETAWithItems: with documents beside bytes, the ETA is the mean of
// the two ETAs (the time left lies between them).
func TestBarETAWithItems(t *testing.T) {
	out := &bytes.Buffer{}
	past := time.Now().Add(-time.Second)
	b := &bar{w: out, on: true, label: "restore", start: past, still: past}
	b.setItems(0, 1000)
	b.update(0, 1000, "")
	time.Sleep(500 * time.Millisecond)
	// A tenth of the bytes (ETA ~4.5 s) but half of the documents (~0.5 s).
	b.setItems(500, 1000)
	b.update(100, 1000, "")
	line, eta := lastETA(t, out.String())
	if eta < 2*time.Second || eta > 3*time.Second {
		t.Fatalf("ETA %s, want the mean of ~4.5 s and ~0.5 s: %q", eta, line)
	}
}
