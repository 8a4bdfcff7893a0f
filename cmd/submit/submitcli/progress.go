package submitcli

import (
	"fmt"
	"strings"
	"sync"
	"time"
)

// progress draws a one-line bar on stderr: done, failed, rate and ETA. It
// redraws at most ten times a second and only when enabled (stderr is a
// terminal), so piped output stays clean.
type progress struct {
	io      IO
	enabled bool
	total   int // 0: unknown

	mu       sync.Mutex
	done     int
	failed   int
	start    time.Time
	lastDraw time.Time
	drawn    bool
}

func newProgress(io IO, total int, enabled bool) *progress {
	return &progress{io: io, total: total, enabled: enabled, start: time.Now()}
}

func (p *progress) add(failed bool) {
	if !p.enabled {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done++
	if failed {
		p.failed++
	}
	if now := time.Now(); now.Sub(p.lastDraw) >= 100*time.Millisecond || p.done == p.total {
		p.lastDraw = now
		p.draw(now)
	}
}

func (p *progress) draw(now time.Time) {
	elapsed := now.Sub(p.start).Seconds()
	rate := 0.0
	if elapsed > 0 {
		rate = float64(p.done) / elapsed
	}
	var line string
	if p.total > 0 {
		const width = 30
		filled := width * p.done / p.total
		eta := "?"
		if rate > 0 {
			eta = (time.Duration(float64(p.total-p.done)/rate) * time.Second).Round(time.Second).String()
		}
		line = fmt.Sprintf("[%s%s] %d/%d  failed %d  %.0f/s  ETA %s",
			strings.Repeat("#", filled), strings.Repeat(".", width-filled), p.done, p.total, p.failed, rate, eta)
	} else {
		line = fmt.Sprintf("%d done  failed %d  %.0f/s", p.done, p.failed, rate)
	}
	fmt.Fprintf(p.io.Err, "\r\033[K%s", line)
	p.drawn = true
}

// finish draws the final state and ends the line; it is safe to call twice.
func (p *progress) finish() {
	if !p.enabled {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		p.draw(time.Now())
		fmt.Fprintln(p.io.Err)
		p.drawn = false
	}
}
