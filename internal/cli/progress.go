package cli

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// lineWriter is a0cli's stderr: it knows whether the last write ended its
// line, so that a message printed while a progress bar is drawn (the
// first-contact pin line, an error) starts a line of its own instead of
// running into the bar.
type lineWriter struct {
	mu      sync.Mutex
	w       io.Writer
	midLine bool
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := l.w.Write(p)
	if n > 0 {
		l.midLine = p[n-1] != '\n'
	}
	return n, err
}

// line writes s (without its line end) on a line of its own.
func (l *lineWriter) line(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.midLine {
		io.WriteString(l.w, "\n")
	}
	io.WriteString(l.w, s+"\n")
	l.midLine = false
}

// say prints msg on stderr on a line of its own, even while a progress bar
// is drawn.
func (e *Env) say(msg string) {
	msg = strings.TrimRight(msg, "\n")
	if lw, ok := e.Stderr.(*lineWriter); ok {
		lw.line(msg)
		return
	}
	fmt.Fprintln(e.Stderr, msg)
}

// bar draws a one-line progress bar on a terminal; elsewhere it stays silent
// so that logs and scripts get clean output.
type bar struct {
	w       io.Writer
	on      bool
	label   string
	start   time.Time
	last    time.Time
	drawn   bool
	initial int64
	// still is the last update at which nothing had moved yet (the
	// start until then), base the bytes done then: the rate is measured
	// from there. A bar whose first update already shows bytes moved
	// (one re-created per phase) measures from that first update.
	still  time.Time
	base   int64
	moving bool
	seen   bool
	// items of itemsTotal (a restore's documents), when set with
	// setItems, give a second ETA beside the bytes' (see update);
	// itemsBase is items at still.
	items, itemsTotal, itemsBase int64
}

// setItems gives the next update the documents done and their total.
func (b *bar) setItems(done, total int64) { b.items, b.itemsTotal = done, total }

func newBar(env *Env, label string) *bar {
	now := time.Now()
	return &bar{w: env.Stderr, on: env.Interactive, label: label, start: now, still: now}
}

// update draws done of total bytes (total <= 0: unknown) with extra text.
func (b *bar) update(done, total int64, extra string) {
	if !b.on {
		return
	}
	now := time.Now()
	if !b.moving {
		switch {
		case done <= b.initial:
			b.still, b.base, b.itemsBase = now, b.initial, b.items
		case !b.seen:
			b.still, b.base, b.itemsBase = now, done, b.items
			b.moving = true
		default:
			b.base = b.initial
			b.moving = true
		}
	}
	b.seen = true
	if b.drawn && now.Sub(b.last) < 200*time.Millisecond && (total <= 0 || done < total) {
		return
	}
	b.last, b.drawn = now, true
	// The rate is measured from the first bytes on: what comes before
	// them (a backup's oplog start and listing, a restore's plan) is a
	// fixed cost, and folding it into the rate made the ETA of a 27 s
	// backup 96% too long at a fifth (docs/BENCHMARKS.md,
	// BenchmarkBackupETA). Since the oplog's reads became cheap, what
	// follows the last read is about a second.
	el := now.Sub(b.still).Seconds()
	rate := 0.0
	if b.moving && el > 0 {
		rate = float64(done-b.base) / el
	}
	line := fmt.Sprintf("%s %s", b.label, human(done))
	if total > 0 {
		frac := float64(done) / float64(total)
		if frac > 1 {
			frac = 1
		}
		const width = 24
		fill := int(frac * width)
		line = fmt.Sprintf("%s [%s%s] %3.0f%% %s/%s", b.label, strings.Repeat("=", fill), strings.Repeat(" ", width-fill), frac*100, human(done), human(total))
		if rate > 0 && done < total {
			left := float64(total-done) / rate
			// With documents too, the ETA is the mean of the bytes' and
			// the documents' ETAs. A server's cost per insert is per
			// document plus per byte; when the archive's first
			// collections have smaller (or larger) documents than the
			// rest, one ETA is too long and the other too short, and
			// the time left lies between them (BenchmarkRestoreETA:
			// +29% and -61% alone).
			if moved := b.items - b.itemsBase; b.itemsTotal > 0 && moved > 0 && b.items < b.itemsTotal {
				left = (left + float64(b.itemsTotal-b.items)*el/float64(moved)) / 2
			}
			eta := time.Duration(left * float64(time.Second))
			line += fmt.Sprintf(" ETA %s", eta.Round(time.Second))
		}
	}
	if rate > 0 {
		line += fmt.Sprintf(" %s/s", human(int64(rate)))
	}
	if extra != "" {
		line += " " + extra
	}
	fmt.Fprintf(b.w, "\r\033[K%s", line)
}

func (b *bar) finish() {
	if b.on && b.drawn {
		fmt.Fprintln(b.w)
	}
}
