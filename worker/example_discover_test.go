package worker_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/broker/embedded"
	"github.com/jetpool/jetpool/executor"
	"github.com/jetpool/jetpool/task"
	"github.com/jetpool/jetpool/worker"
)

// A producer can tell whether any worker online serves a kind before it
// waits on that kind's futures: tasks of a kind no worker serves stay queued
// until one comes.
func ExampleServedKinds() {
	srv, err := embedded.Start(embedded.Config{})
	if err != nil {
		panic(err)
	}
	defer srv.Shutdown()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	wc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		panic(err)
	}
	defer wc.Close()
	square := task.New[int, int]("square")
	reg := task.NewRegistry()
	task.Handle(reg, square, func(ctx context.Context, n int) (int, error) { return n * n, nil })
	w, err := worker.New(wc, reg, worker.Config{Concurrency: 2, Logger: quiet})
	if err != nil {
		panic(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- w.Run(ctx) }()

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
	f, err := executor.Submit(wait, ex, square, 3)
	if err != nil {
		panic(err)
	}
	fmt.Println(f.Result(wait)) // the worker is up and registered by now

	kinds, err := worker.ServedKinds(wait, pc, broker.DefaultPool)
	if err != nil {
		panic(err)
	}
	fmt.Println(kinds["square"], "worker serves square")
	fmt.Println(kinds["nosuch"], "workers serve nosuch")
	ex.Shutdown(wait, true, false)
	stop()
	<-served
	// Output:
	// 9 <nil>
	// 1 worker serves square
	// 0 workers serve nosuch
}
