package worker_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/jetpool/jetpool/broker/embedded"
	"github.com/jetpool/jetpool/executor"
	"github.com/jetpool/jetpool/task"
	"github.com/jetpool/jetpool/worker"
)

// A worker serves a pool until its context ends, then drains: it takes no
// more chunks and finishes the ones it runs. A producer anywhere on the
// same NATS submits to the pool.
func ExampleWorker_Run() {
	srv, err := embedded.Start(embedded.Config{})
	if err != nil {
		panic(err)
	}
	defer srv.Shutdown()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	// The worker, as cmd/worker runs it.
	wc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		panic(err)
	}
	defer wc.Close()
	reg := task.NewRegistry()
	task.Handle(reg, Square, func(ctx context.Context, n int) (int, error) { return n * n, nil })
	w, err := worker.New(wc, reg, worker.Config{Concurrency: 4, Logger: quiet})
	if err != nil {
		panic(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- w.Run(ctx) }()

	// The producer.
	pc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		panic(err)
	}
	defer pc.Close()
	ex, err := executor.NewNATS(context.Background(), pc, executor.NATSLogger(quiet))
	if err != nil {
		panic(err)
	}
	wait, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f, err := executor.Submit(wait, ex, Square, 12)
	if err != nil {
		panic(err)
	}
	fmt.Println(f.Result(wait))
	ex.Shutdown(wait, true, false)

	stop()
	fmt.Println("drained:", <-served)
	// Output:
	// 144 <nil>
	// drained: <nil>
}

// A worker's metrics go to a registry of the caller's, which an HTTP server
// would then serve with promhttp.HandlerFor.
func ExampleWorker_Collector() {
	srv, err := embedded.Start(embedded.Config{})
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
	// jetpool_worker_chunks_returned_total COUNTER
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

// A program that runs a process pool serves as its own worker processes:
// ServeIfChild, called first thing in main, serves the registry in a
// process the pool started and exits it, and returns at once otherwise.
func ExampleServeIfChild() {
	reg := task.NewRegistry()
	task.Handle(reg, task.New[int, int]("square"), func(ctx context.Context, n int) (int, error) { return n * n, nil })
	worker.ServeIfChild(reg) // first thing in main

	// Only the parent gets here: start the pool, submit, shut down.
	fmt.Println("a worker process:", worker.IsChild())
	// Output: a worker process: false
}
