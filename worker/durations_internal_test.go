package worker

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestDurationsExportAsPrometheusWould: tallies added to a durations
// histogram export the buckets, count and sum a Prometheus histogram with
// the same bounds shows for the same observations, a duration equal to a
// bound counted in that bound's bucket.
func TestDurationsExportAsPrometheusWould(t *testing.T) {
	took := []time.Duration{500 * time.Microsecond, time.Millisecond, 1500 * time.Microsecond, 2 * time.Second, 300 * time.Second}
	var h durations
	var a, b durationTally
	for i, d := range took {
		if i%2 == 0 {
			a.observe(d)
		} else {
			b.observe(d)
		}
	}
	a.addTo(&h)
	b.addTo(&h)
	if a != (durationTally{}) {
		t.Errorf("a tally is %+v after addTo, want it cleared", a)
	}
	bounds := make([]float64, len(durationBounds))
	for i, d := range durationBounds {
		bounds[i] = d.Seconds()
	}
	want := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "x", Buckets: bounds})
	for _, d := range took {
		want.Observe(d.Seconds())
	}
	var got, exp dto.Metric
	m, err := h.metric(prometheus.NewDesc("x", "", []string{"kind"}, nil), "k")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Write(&got); err != nil {
		t.Fatal(err)
	}
	if err := want.Write(&exp); err != nil {
		t.Fatal(err)
	}
	g, e := got.GetHistogram(), exp.GetHistogram()
	if g.GetSampleCount() != e.GetSampleCount() || g.GetSampleSum() != e.GetSampleSum() {
		t.Errorf("count %d sum %v, want %d %v", g.GetSampleCount(), g.GetSampleSum(), e.GetSampleCount(), e.GetSampleSum())
	}
	if len(g.GetBucket()) != len(e.GetBucket()) {
		t.Fatalf("%d buckets, want %d", len(g.GetBucket()), len(e.GetBucket()))
	}
	for i, eb := range e.GetBucket() {
		gb := g.GetBucket()[i]
		if gb.GetUpperBound() != eb.GetUpperBound() || gb.GetCumulativeCount() != eb.GetCumulativeCount() {
			t.Errorf("bucket %d: le %v count %d, want le %v count %d", i, gb.GetUpperBound(), gb.GetCumulativeCount(), eb.GetUpperBound(), eb.GetCumulativeCount())
		}
	}
}
