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
	// unit, when set, makes a bar of counted items (files, collections,
	// oplog entries), not bytes: "3/8 collections".
	unit string
	// The last drawing's figures (complete draws them full), or the
	// status text of a bar without figures.
	lastTotal int64
	lastExtra string
	text      string
	// doneExtra, when set, replaces the extra text when the bar is drawn
	// complete (the counts of the last poll are stale then).
	doneExtra string
	// completing: complete is drawing; the rate is then left out (the
	// jump to the total is no rate) for the phase's time.
	completing bool
}

// setItems gives the next update the documents done and their total.
func (b *bar) setItems(done, total int64) { b.items, b.itemsTotal = done, total }

func newBar(env *Env, label string) *bar {
	now := time.Now()
	return &bar{w: env.Stderr, on: env.Interactive, label: label, start: now, still: now}
}

// amount is n in the bar's unit: bytes, or a count.
func (b *bar) amount(n int64) string {
	if b.unit != "" {
		return fmt.Sprint(n)
	}
	return human(n)
}

// status draws a phase without figures: its text and, after a second, the
// time it has taken so far ("backup starting: ... 3s").
func (b *bar) status(text string) { b.drawStatus(text, false) }

func (b *bar) drawStatus(text string, done bool) {
	if !b.on {
		return
	}
	b.text, b.lastTotal = text, 0
	now := time.Now()
	if !done && b.drawn && now.Sub(b.last) < 200*time.Millisecond {
		return
	}
	b.last, b.drawn = now, true
	line := b.label + ": " + text
	el := now.Sub(b.start).Round(time.Second)
	switch {
	case done && el >= time.Second:
		line += ": done in " + el.String()
	case done:
		line += ": done"
	case el >= time.Second:
		line += " " + el.String()
	}
	fmt.Fprintf(b.w, "\r\033[K%s", line)
}

// complete draws the bar as its phase ended: full, or its status marked
// done. The caller knows the phase is over (the next one started).
func (b *bar) complete() {
	switch {
	case !b.on || !b.drawn:
	case b.lastTotal > 0:
		extra := b.lastExtra
		if b.doneExtra != "" {
			extra = b.doneExtra
		}
		b.completing = true
		b.update(b.lastTotal, b.lastTotal, extra)
		b.completing = false
	case b.text != "":
		b.drawStatus(b.text, true)
	}
}

// update draws done of total bytes (total <= 0: unknown) with extra text.
func (b *bar) update(done, total int64, extra string) {
	if !b.on {
		return
	}
	b.lastTotal, b.lastExtra, b.text = total, extra, ""
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
	line := fmt.Sprintf("%s %s", b.label, b.amount(done))
	if total > 0 {
		frac := float64(done) / float64(total)
		if frac > 1 {
			frac = 1
		}
		const width = 24
		fill := int(frac * width)
		line = fmt.Sprintf("%s [%s%s] %3.0f%% %s/%s", b.label, strings.Repeat("=", fill), strings.Repeat(" ", width-fill), frac*100, b.amount(done), b.amount(total))
		if b.unit != "" {
			line += " " + b.unit
		}
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
	switch {
	case b.completing:
		if el := now.Sub(b.start); el >= time.Second {
			line += " in " + el.Round(time.Second).String()
		}
	case rate > 0 && b.unit == "":
		line += fmt.Sprintf(" %s/s", human(int64(rate)))
	case rate > 0:
		line += fmt.Sprintf(" %.1f %s/s", rate, b.unit)
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

// phases draws one bar line per phase of a job as it happens: when the job
// enters a new phase, the last one's bar is drawn complete and ended, and
// the new one starts with its own figures, unit and rate (issue 28 point
// 6: a restore sat at "0/8 collections" for its whole run, then at 100%
// while its indexes were built).
type phases struct {
	env   *Env
	label string
	name  string
	b     *bar
}

func newPhases(env *Env, label string) *phases { return &phases{env: env, label: label} }

// enter returns the bar of phase name (unit "" for bytes, else what is
// counted), starting it unless it is the current one.
func (p *phases) enter(name, unit string) *bar {
	if p.b != nil && p.name == name {
		return p.b
	}
	if p.b != nil {
		p.b.complete()
		p.b.finish()
	}
	p.name = name
	p.b = newBar(p.env, p.label+" "+name)
	p.b.unit = unit
	return p.b
}

// done draws the current phase complete and ends its line: the job ended
// well.
func (p *phases) done() {
	if p.b != nil {
		p.b.complete()
	}
	p.finish()
}

// finish ends the current line as it stands (the job failed or the wait
// was cut short).
func (p *phases) finish() {
	if p.b != nil {
		p.b.finish()
		p.b = nil
	}
}
