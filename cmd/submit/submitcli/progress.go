package submitcli

import (
	"fmt"
	"strings"
	"sync"
	"time"
)

// progress draws a one-line bar on stderr: done, failed, rate and ETA. It
// redraws at most ten times a second and only when enabled (stderr is a
// terminal), so piped output stays clean. With inputs from standard input
// the total is unknown until the input ends: until then it shows what is
// done and the rate, and from then on the bar and the ETA as well.
type progress struct {
	io      IO
	enabled bool

	mu       sync.Mutex
	total    int // 0: unknown
	done     int
	failed   int
	start    time.Time
	lastDraw time.Time
	drawn    bool
	later    *time.Timer // a draw put off by redrawEvery
	finished bool
}

func newProgress(io IO, total int, enabled bool) *progress {
	return &progress{io: io, total: total, enabled: enabled, start: time.Now()}
}

// setTotal says how many results there will be, once the input has ended.
func (p *progress) setTotal(n int) {
	if !p.enabled {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total = n
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
	now := time.Now()
	if since := now.Sub(p.lastDraw); since >= redrawEvery || p.done == p.total {
		p.lastDraw = now
		p.draw(now)
	} else if p.later == nil {
		// The last count of a burst is drawn too, if late.
		p.later = time.AfterFunc(redrawEvery-since, p.redraw)
	}
}

// redrawEvery is the shortest time between two draws.
const redrawEvery = 100 * time.Millisecond

// redraw draws the counts as they are, unless finish came first.
func (p *progress) redraw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.later = nil
	if p.finished {
		return
	}
	p.lastDraw = time.Now()
	p.draw(p.lastDraw)
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
		line = fmt.Sprintf("%d done  failed %d  %.0f/s  (input still open)", p.done, p.failed, rate)
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
	p.finished = true
	if p.later != nil {
		p.later.Stop()
		p.later = nil
	}
	if p.drawn {
		p.draw(time.Now())
		fmt.Fprintln(p.io.Err)
		p.drawn = false
	}
}
