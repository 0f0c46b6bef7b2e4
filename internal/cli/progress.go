package cli

import (
	"fmt"
	"io"
	"strings"
	"time"
)

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
