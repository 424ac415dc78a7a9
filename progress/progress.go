// Package progress draws a one-line progress bar with rate and ETA on a terminal (or plain
// periodic lines when the writer is not a terminal, so logs stay readable).
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Bar tracks progress towards a known total of items.
type Bar struct {
	w       io.Writer
	label   string
	total   int
	done    int
	start   time.Time
	last    time.Time
	tty     bool
	printed bool
}

// New starts a bar labelled label for total items, drawn on w.
func New(w io.Writer, label string, total int) *Bar {
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	now := time.Now()
	return &Bar{w: w, label: label, total: total, start: now, last: now, tty: tty}
}

// Add records n more items done and redraws (at most 5 times a second; every 10 s off a tty).
func (b *Bar) Add(n int, status string) {
	b.done += n
	now := time.Now()
	every := 200 * time.Millisecond
	if !b.tty {
		every = 10 * time.Second
	}
	if now.Sub(b.last) < every || (!b.tty && b.done >= b.total) {
		return
	}
	b.last = now
	b.draw(status, false)
}

// Done draws the final state and ends the line.
func (b *Bar) Done(status string) { b.draw(status, true) }

func (b *Bar) draw(status string, final bool) {
	el := time.Since(b.start).Seconds()
	rate := 0.0
	if el > 0 {
		rate = float64(b.done) / el
	}
	eta := "?"
	if rate > 0 && b.total > b.done {
		eta = (time.Duration(float64(b.total-b.done)/rate) * time.Second).Round(time.Second).String()
	} else if b.done >= b.total {
		eta = "0s"
	}
	frac := 1.0
	if b.total > 0 {
		frac = float64(b.done) / float64(b.total)
	}
	const width = 24
	fill := int(frac * width)
	if fill > width {
		fill = width
	}
	bar := strings.Repeat("=", fill) + strings.Repeat(" ", width-fill)
	line := fmt.Sprintf("%s [%s] %d/%d %.0f/s ETA %s %s", b.label, bar, b.done, b.total, rate, eta, status)
	if b.tty {
		fmt.Fprintf(b.w, "\r\033[K%s", line)
		if final {
			fmt.Fprintln(b.w)
		}
		return
	}
	if final || b.done < b.total || !b.printed {
		fmt.Fprintln(b.w, line)
		b.printed = true
	}
}
