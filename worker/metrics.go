package worker

import (
	"sync/atomic"
	"time"

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
	MetricChunksReturned    = "jetpool_worker_chunks_returned_total"
	MetricChunksInFlight    = "jetpool_worker_chunks_in_flight"
	MetricStartWait         = "jetpool_worker_start_wait_seconds"
)

// Stats is a worker's load and counters: what [Worker.Stats] returns, and,
// as JSON, what its status endpoint and $SRV.STATS replies carry (see
// [Status]). All counters only grow, but InFlight.
type Stats struct {
	InFlight         int64 `json:"in_flight"`         // chunks running now
	Concurrency      int   `json:"concurrency"`       // chunks it runs at once
	ChunksStarted    int64 `json:"chunks_started"`    // chunks the producer let this worker run
	ChunksDropped    int64 `json:"chunks_dropped"`    // chunks the producer said to drop (cancelled or done)
	ChunksTerminated int64 `json:"chunks_terminated"` // malformed, expired, their producer gone, or a named chunk failed at its last delivery
	ChunksBusy       int64 `json:"-"`                 // chunks another live attempt held; not in the status
	Redelivered      int64 `json:"redelivered"`       // chunks delivered more than once
	ChunksReturned   int64 `json:"chunks_returned"`   // chunks handed back to the stream unstarted: no free slot, or draining
	TasksSucceeded   int64 `json:"tasks_succeeded"`
	TasksFailed      int64 `json:"tasks_failed"`
	TasksRetried     int64 `json:"tasks_retried"` // handler calls after the first of a task
}

// Status is the name [Stats] goes by where the worker's service reports it:
// as JSON it is the data of the status endpoint and of $SRV.STATS replies,
// which leave ChunksBusy out (so a Status decoded from them has it at 0).
type Status = Stats

// Stats returns a snapshot of the worker's load and counters. It is safe to
// call at any time, also while Run runs, and costs an atomic load per
// counter and kind.
func (w *Worker) Stats() Stats {
	s := w.metrics.stats()
	s.Concurrency = w.cfg.Concurrency
	return s
}

// metrics are a worker's counts, the one place it counts what it does:
// [Worker.Stats] sums them over the kinds and [Worker.Collector] exports
// them, so the two never disagree.
type metrics struct {
	kinds map[string]*kindMetrics // read-only after newMetrics

	// Series exported from the counts; the created time of every counter
	// is the worker's.
	series  []series
	created time.Time
	// The histograms have no counterpart in Stats. The task durations are
	// counted by the worker's chunks in durations and exported with
	// durationDesc; the start waits, one per chunk, are Prometheus'.
	durationDesc *prometheus.Desc
	startWait    *prometheus.HistogramVec
}

// kindMetrics are one kind's counts, so that counting costs an atomic add
// and no label lookup.
type kindMetrics struct {
	started, succeeded, failed, retried      atomic.Int64 // tasks
	chunksStarted, dropped, terminated, busy atomic.Int64
	redelivered, returned                    atomic.Int64
	inFlight                                 atomic.Int64
	durations                                durations
	startWait                                prometheus.Observer
}

// series is one count of every kind exported as a Prometheus series.
type series struct {
	desc  *prometheus.Desc
	typ   prometheus.ValueType
	count func(*kindMetrics) *atomic.Int64
}

func newMetrics(pool string, kinds []string) *metrics {
	pl := prometheus.Labels{"pool": pool}
	counter := func(name, help string, count func(*kindMetrics) *atomic.Int64) series {
		return series{prometheus.NewDesc(name, help, []string{"kind"}, pl), prometheus.CounterValue, count}
	}
	m := &metrics{
		kinds:   make(map[string]*kindMetrics, len(kinds)),
		created: time.Now(),
		series: []series{
			counter(MetricTasksStarted, "Tasks whose handler was called, counted once however often it was retried.",
				func(k *kindMetrics) *atomic.Int64 { return &k.started }),
			counter(MetricTasksSucceeded, "Tasks whose result was a value.",
				func(k *kindMetrics) *atomic.Int64 { return &k.succeeded }),
			counter(MetricTasksFailed, "Tasks whose result was an error, including tasks that never started (deadline passed, interrupted before their turn).",
				func(k *kindMetrics) *atomic.Int64 { return &k.failed }),
			counter(MetricTasksRetried, "Handler calls after the first of a task, for errors marked retryable.",
				func(k *kindMetrics) *atomic.Int64 { return &k.retried }),
			counter(MetricChunksStarted, "Chunks the producer let this worker run.",
				func(k *kindMetrics) *atomic.Int64 { return &k.chunksStarted }),
			counter(MetricChunksDropped, "Chunks the producer said to drop: cancelled or already done.",
				func(k *kindMetrics) *atomic.Int64 { return &k.dropped }),
			counter(MetricChunksTerminated, "Chunks terminated: malformed, expired, their producer gone, or a named chunk failed at its last delivery.",
				func(k *kindMetrics) *atomic.Int64 { return &k.terminated }),
			counter(MetricChunksRedelivered, "Chunks delivered to this worker that JetStream had delivered before.",
				func(k *kindMetrics) *atomic.Int64 { return &k.redelivered }),
			counter(MetricChunksReturned, "Chunks handed back to the stream unstarted, to be delivered again: no slot was free when they arrived, or the worker was draining.",
				func(k *kindMetrics) *atomic.Int64 { return &k.returned }),
			{
				prometheus.NewDesc(MetricChunksInFlight, "Chunks running now.", []string{"kind"}, pl), prometheus.GaugeValue,
				func(k *kindMetrics) *atomic.Int64 { return &k.inFlight },
			},
		},
		durationDesc: prometheus.NewDesc(MetricTaskDuration, "Time from a task's first handler call to its result, retries and their backoff included.",
			[]string{"kind"}, pl),
		startWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: MetricStartWait, Help: "Time from a chunk taking a slot to its producer's verdict: the start round trip, with any wait for a batched request.",
			// 100µs to about three seconds, by twos: a round trip on one host
			// takes a fraction of a millisecond; a producer that is overloaded
			// or far away shows here first.
			ConstLabels: pl, Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}, []string{"kind"}),
	}
	// Every kind's series are there up front and exported at zero, so rates
	// over them are defined from the worker's first scrape.
	for _, k := range kinds {
		m.kinds[k] = &kindMetrics{
			startWait: m.startWait.WithLabelValues(k),
		}
	}
	return m
}

// kind returns kind's counts. Only the worker's own kinds reach it: chunks
// come from their consumers.
func (m *metrics) kind(kind string) *kindMetrics { return m.kinds[kind] }

// stats sums the counts of every kind. Concurrency is left to the caller.
func (m *metrics) stats() Stats {
	var s Stats
	for _, k := range m.kinds {
		s.InFlight += k.inFlight.Load()
		s.ChunksStarted += k.chunksStarted.Load()
		s.ChunksDropped += k.dropped.Load()
		s.ChunksTerminated += k.terminated.Load()
		s.ChunksBusy += k.busy.Load()
		s.Redelivered += k.redelivered.Load()
		s.ChunksReturned += k.returned.Load()
		s.TasksSucceeded += k.succeeded.Load()
		s.TasksFailed += k.failed.Load()
		s.TasksRetried += k.retried.Load()
	}
	return s
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, s := range m.series {
		ch <- s.desc
	}
	ch <- m.durationDesc
	m.startWait.Describe(ch)
}

// Collect implements prometheus.Collector. It reads the counts as they are
// at the time, and takes no lock the worker's chunks wait on.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	for _, s := range m.series {
		for kind, k := range m.kinds {
			v := float64(s.count(k).Load())
			var metric prometheus.Metric
			var err error
			if s.typ == prometheus.CounterValue {
				metric, err = prometheus.NewConstMetricWithCreatedTimestamp(s.desc, s.typ, v, m.created, kind)
			} else {
				metric, err = prometheus.NewConstMetric(s.desc, s.typ, v, kind)
			}
			if err != nil {
				metric = prometheus.NewInvalidMetric(s.desc, err)
			}
			ch <- metric
		}
	}
	for kind, k := range m.kinds {
		metric, err := k.durations.metric(m.durationDesc, kind)
		if err != nil {
			metric = prometheus.NewInvalidMetric(m.durationDesc, err)
		}
		ch <- metric
	}
	m.startWait.Collect(ch)
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
// event; collecting takes no lock the worker's chunks wait on. The counters
// are the ones [Worker.Stats] sums.
func (w *Worker) Collector() prometheus.Collector { return w.metrics }
