package worker

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// durationBounds are the upper bounds of the task duration histogram's
// buckets: a millisecond to about four minutes, by fours, since tasks range
// from a multiplication to a download.
var durationBounds = func() [10]time.Duration {
	var b [10]time.Duration
	d := time.Millisecond
	for i := range b {
		b[i] = d
		d *= 4
	}
	return b
}()

// durations is one kind's task duration histogram. A chunk's run counts its
// items in a tally of its own and adds it here when it sends their results,
// so that a chunk of a thousand trivial tasks makes a few atomic adds, not
// a thousand Prometheus observations contended by every slot.
type durations struct {
	counts [len(durationBounds) + 1]atomic.Uint64 // the last: above every bound
	sum    atomic.Int64                           // nanoseconds
}

// durationTally is a chunk's share of a durations histogram, not yet added.
type durationTally struct {
	counts [len(durationBounds) + 1]uint64
	sum    time.Duration
}

// observe counts one task that took d.
func (t *durationTally) observe(d time.Duration) {
	i := 0
	for i < len(durationBounds) && d > durationBounds[i] {
		i++
	}
	t.counts[i]++
	t.sum += d
}

// addTo moves t's counts into h and clears t.
func (t *durationTally) addTo(h *durations) {
	if *t == (durationTally{}) {
		return
	}
	for i, c := range t.counts {
		if c != 0 {
			h.counts[i].Add(c)
		}
	}
	h.sum.Add(int64(t.sum))
	*t = durationTally{}
}

// metric returns h as a Prometheus histogram of seconds for kind.
func (h *durations) metric(desc *prometheus.Desc, kind string) (prometheus.Metric, error) {
	buckets := make(map[float64]uint64, len(durationBounds))
	var n uint64
	for i, bound := range durationBounds {
		n += h.counts[i].Load()
		buckets[bound.Seconds()] = n
	}
	n += h.counts[len(durationBounds)].Load()
	return prometheus.NewConstHistogram(desc, n, time.Duration(h.sum.Load()).Seconds(), buckets, kind)
}
