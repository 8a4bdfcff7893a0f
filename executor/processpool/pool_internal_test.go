package processpool

import (
	"testing"
	"time"
)

func TestRestartDelay(t *testing.T) {
	const ms = time.Millisecond
	cases := []struct {
		prev, ran, want time.Duration
	}{
		{0, ms, 100 * ms},
		{0, time.Hour, 100 * ms},
		{100 * ms, ms, 200 * ms},
		{200 * ms, ms, 400 * ms},
		{3200 * ms, ms, 6400 * ms},
		{6400 * ms, ms, 10 * time.Second},
		{10 * time.Second, ms, 10 * time.Second},
		{10 * time.Second, stableRun - ms, 10 * time.Second},
		{10 * time.Second, stableRun, 100 * ms},
	}
	for _, c := range cases {
		if got := restartDelay(c.prev, c.ran); got != c.want {
			t.Errorf("restartDelay(%v, %v) = %v, want %v", c.prev, c.ran, got, c.want)
		}
	}
}
