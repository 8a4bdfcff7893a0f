package worker_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/task"
	"github.com/jetpool/jetpool/worker"
)

// A worker's metrics go to a registry of the caller's, which an HTTP server
// would then serve with promhttp.HandlerFor.
func ExampleWorker_Collector() {
	srv, err := broker.StartEmbedded(broker.EmbeddedConfig{})
	if err != nil {
		panic(err)
	}
	defer srv.Shutdown()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		panic(err)
	}
	defer nc.Close()

	reg := task.NewRegistry()
	task.Handle(reg, Square, func(ctx context.Context, n int) (int, error) { return n * n, nil })
	w, err := worker.New(nc, reg, worker.Config{ID: "w1", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		panic(err)
	}
	metrics := prometheus.NewRegistry()
	if err := metrics.Register(w.Collector()); err != nil {
		panic(err)
	}
	families, err := metrics.Gather()
	if err != nil {
		panic(err)
	}
	for _, f := range families {
		fmt.Println(f.GetName(), f.GetType())
	}
	fmt.Println(w.StatusSubject())
	// Output:
	// jetpool_worker_chunks_dropped_total COUNTER
	// jetpool_worker_chunks_in_flight GAUGE
	// jetpool_worker_chunks_redelivered_total COUNTER
	// jetpool_worker_chunks_started_total COUNTER
	// jetpool_worker_chunks_terminated_total COUNTER
	// jetpool_worker_start_wait_seconds HISTOGRAM
	// jetpool_worker_task_duration_seconds HISTOGRAM
	// jetpool_worker_tasks_failed_total COUNTER
	// jetpool_worker_tasks_retried_total COUNTER
	// jetpool_worker_tasks_started_total COUNTER
	// jetpool_worker_tasks_succeeded_total COUNTER
	// jetpool.default.worker.w1.status
}
