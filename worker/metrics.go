package worker

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metric names of a worker's [Worker.Collector]. Every series carries the
// labels pool (a constant per worker) and kind.
const (
	MetricTasksStarted      = "jetpool_worker_tasks_started_total"
	MetricTasksSucceeded    = "jetpool_worker_tasks_succeeded_total"
	MetricTasksFailed       = "jetpool_worker_tasks_failed_total"
	MetricTasksRetried      = "jetpool_worker_tasks_retried_total"
	MetricTaskDuration      = "jetpool_worker_task_duration_seconds"
	MetricChunksStarted     = "jetpool_worker_chunks_started_total"
	MetricChunksDropped     = "jetpool_worker_chunks_dropped_total"
	MetricChunksTerminated  = "jetpool_worker_chunks_terminated_total"
	MetricChunksRedelivered = "jetpool_worker_chunks_redelivered_total"
	MetricChunksInFlight    = "jetpool_worker_chunks_in_flight"
	MetricStartWait         = "jetpool_worker_start_wait_seconds"
)

// metrics are a worker's Prometheus instruments. They are created
// unregistered with the worker; [Worker.Collector] exposes them.
type metrics struct {
	vecs  []prometheus.Collector
	kinds map[string]*kindMetrics // read-only after newMetrics
}

// kindMetrics are one kind's series, resolved once so that counting costs an
// atomic add and no label lookup.
type kindMetrics struct {
	started, succeeded, failed, retried prometheus.Counter
	duration                            prometheus.Observer
	chunksStarted, dropped, terminated  prometheus.Counter
	redelivered                         prometheus.Counter
	inFlight                            prometheus.Gauge
	startWait                           prometheus.Observer
}

func newMetrics(pool string, kinds []string) *metrics {
	pl := prometheus.Labels{"pool": pool}
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: pl}, []string{"kind"})
	}
	started := counter(MetricTasksStarted, "Tasks whose handler was called, counted once however often it was retried.")
	succeeded := counter(MetricTasksSucceeded, "Tasks whose result was a value.")
	failed := counter(MetricTasksFailed, "Tasks whose result was an error, including tasks that never started (deadline passed, interrupted before their turn).")
	retried := counter(MetricTasksRetried, "Handler calls after the first of a task, for errors marked retryable.")
	chunksStarted := counter(MetricChunksStarted, "Chunks the producer let this worker run.")
	dropped := counter(MetricChunksDropped, "Chunks the producer said to drop: cancelled or already done.")
	terminated := counter(MetricChunksTerminated, "Chunks terminated: malformed, expired, or their producer gone.")
	redelivered := counter(MetricChunksRedelivered, "Chunks delivered to this worker that JetStream had delivered before.")
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: MetricTaskDuration, Help: "Time from a task's first handler call to its result, retries and their backoff included.",
		// A millisecond to about four minutes, by fours: tasks range from a
		// multiplication to a download.
		ConstLabels: pl, Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
	}, []string{"kind"})
	startWait := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: MetricStartWait, Help: "Time from a chunk taking a slot to its producer's verdict: the start round trip, with any wait for a batched request.",
		// 100µs to about three seconds, by twos: a round trip on one host
		// takes a fraction of a millisecond; a producer that is overloaded
		// or far away shows here first.
		ConstLabels: pl, Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	}, []string{"kind"})
	inFlight := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: MetricChunksInFlight, Help: "Chunks running now.", ConstLabels: pl,
	}, []string{"kind"})

	m := &metrics{
		vecs:  []prometheus.Collector{started, succeeded, failed, retried, duration, chunksStarted, dropped, terminated, redelivered, inFlight, startWait},
		kinds: make(map[string]*kindMetrics, len(kinds)),
	}
	// Resolving every kind's series up front also exports them at zero, so
	// rates over them are defined from the worker's first scrape.
	for _, k := range kinds {
		m.kinds[k] = &kindMetrics{
			started:       started.WithLabelValues(k),
			succeeded:     succeeded.WithLabelValues(k),
			failed:        failed.WithLabelValues(k),
			retried:       retried.WithLabelValues(k),
			duration:      duration.WithLabelValues(k),
			chunksStarted: chunksStarted.WithLabelValues(k),
			dropped:       dropped.WithLabelValues(k),
			terminated:    terminated.WithLabelValues(k),
			redelivered:   redelivered.WithLabelValues(k),
			inFlight:      inFlight.WithLabelValues(k),
			startWait:     startWait.WithLabelValues(k),
		}
	}
	return m
}

// kind returns kind's series. Only the worker's own kinds reach it: chunks
// come from their consumers.
func (m *metrics) kind(kind string) *kindMetrics { return m.kinds[kind] }

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.vecs {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.vecs {
		c.Collect(ch)
	}
}

// Collector returns the worker's Prometheus metrics, to be registered with a
// registry of the caller's choosing (the worker registers nothing itself, so
// workers in one process never collide in a global registry):
//
//	reg := prometheus.NewRegistry()
//	if err := reg.Register(w.Collector()); err != nil { ... }
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// The series are named by the Metric* constants and labelled pool and kind;
// every kind the worker serves is exported from the start, at zero. Two
// workers of the same pool need separate registries, as their series would
// have the same labels. Counting is always on and costs an atomic add per
// event; collecting takes no lock the worker's chunks wait on.
func (w *Worker) Collector() prometheus.Collector { return w.metrics }
