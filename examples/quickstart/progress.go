package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// progress shows how far the clients are: a bar redrawn in place when
// stdout is a terminal, a plain line every second otherwise. Messages
// printed with printf appear above the bar.
type progress struct {
	w     io.Writer
	tty   bool
	total int64

	mu    sync.Mutex // serialises writes to w
	shown bool       // the bar is on screen

	done   *atomic.Int64
	height func() uint64
	start  time.Time
	quit   chan struct{}
	wg     sync.WaitGroup
}

const barWidth = 30

func newProgress(w io.Writer, total int) *progress {
	return &progress{w: w, tty: isTerminal(w), total: int64(total), quit: make(chan struct{})}
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// begin starts showing done (envelopes whose Order returned) out of the
// total, and the ledger height given by height.
func (p *progress) begin(done *atomic.Int64, height func() uint64) {
	p.done, p.height, p.start = done, height, time.Now()
	every := time.Second
	if p.tty {
		every = 100 * time.Millisecond
	}
	p.wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-p.quit:
				return
			case <-t.C:
				p.mu.Lock()
				p.draw()
				p.mu.Unlock()
			}
		}
	})
}

// stop stops the display, drawing the bar a last time.
func (p *progress) stop() {
	if p.done == nil {
		return
	}
	close(p.quit)
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		p.draw()
		fmt.Fprintln(p.w)
		p.shown = false
	}
}

// printf prints a line of its own.
func (p *progress) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shown {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
	fmt.Fprintf(p.w, format+"\n", args...)
	if p.shown {
		p.draw()
	}
}

// draw shows the current state; p.mu is held.
func (p *progress) draw() {
	done := p.done.Load()
	elapsed := time.Since(p.start)
	rate := float64(done) / elapsed.Seconds()
	pct := 100 * done / p.total
	if !p.tty {
		fmt.Fprintf(p.w, "progress: %d/%d envelopes ordered (%d%%), %.0f/s, ledger height %d\n", done, p.total, pct, rate, p.height())
		return
	}
	filled := int(barWidth * done / p.total)
	bar := strings.Repeat("█", filled) + strings.Repeat("░", barWidth-filled)
	fmt.Fprintf(p.w, "\r\x1b[K%s %3d%%  %d/%d envelopes  %.0f/s  height %d", bar, pct, done, p.total, rate, p.height())
	p.shown = true
}
