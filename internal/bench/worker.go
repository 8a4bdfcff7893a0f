package bench

import (
	"context"
	"io"
	"log/slog"

	"github.com/nats-io/nats.go"

	"github.com/jetpool/jetpool/builtin"
	"github.com/jetpool/jetpool/task"
	"github.com/jetpool/jetpool/worker"
)

// runWorker serves the built-in tasks on nc until the returned func is
// called; that func waits for the worker to drain.
func runWorker(nc *nats.Conn, concurrency int) (*worker.Worker, func(), error) {
	reg := task.NewRegistry()
	builtin.Register(reg, builtin.Config{})
	w, err := worker.New(nc, reg, worker.Config{Concurrency: concurrency, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx)
	}()
	return w, func() { cancel(); <-done }, nil
}
