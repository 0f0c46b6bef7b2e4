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
}

func newBar(env *Env, label string) *bar {
	return &bar{w: env.Stderr, on: env.Interactive, label: label, start: time.Now()}
}

// update draws done of total bytes (total <= 0: unknown) with extra text.
func (b *bar) update(done, total int64, extra string) {
	if !b.on {
		return
	}
	now := time.Now()
	if b.drawn && now.Sub(b.last) < 200*time.Millisecond && (total <= 0 || done < total) {
		return
	}
	b.last, b.drawn = now, true
	// The rate is over the whole job, waits before the first byte
	// included: a backup's oplog phases come before and after its reads,
	// and a rate from the first byte on measured further from the real
	// end (docs/BENCHMARKS.md, BenchmarkBackupETA).
	el := now.Sub(b.start).Seconds()
	rate := 0.0
	if el > 0 {
		rate = float64(done-b.initial) / el
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
			eta := time.Duration(float64(total-done)/rate) * time.Second
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
