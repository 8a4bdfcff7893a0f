package executor_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetpool/jetpool/broker/embedded"
	"github.com/jetpool/jetpool/executor"
	"github.com/jetpool/jetpool/task"
	"github.com/jetpool/jetpool/worker"
)

// Square is declared once and shared by producers and workers.
var Square = task.New[int, int]("square")

// Hold blocks until its input channel name is released; the examples use it
// to fill a pool.
var Hold = task.New[string, string]("hold")

func newPool(workers int) (*executor.Local, chan struct{}) {
	release := make(chan struct{})
	reg := task.NewRegistry()
	task.Handle(reg, Square, func(ctx context.Context, n int) (int, error) { return n * n, nil })
	task.Handle(reg, Hold, func(ctx context.Context, name string) (string, error) {
		<-release
		return name, nil
	})
	ex, err := executor.NewLocal(reg, executor.LocalMaxWorkers(workers))
	if err != nil {
		panic(err)
	}
	return ex, release
}

func ExampleSubmit() {
	ex, _ := newPool(4)
	defer ex.Shutdown(context.Background(), true, false)

	ctx := context.Background()
	f, err := executor.Submit(ctx, ex, Square, 7)
	if err != nil {
		panic(err)
	}
	v, err := f.Result(ctx)
	fmt.Println(v, err)
	// Output: 49 <nil>
}

func ExampleMap() {
	ex, _ := newPool(4)
	defer ex.Shutdown(context.Background(), true, false)

	ctx := context.Background()
	inputs := slices.Values([]int{1, 2, 3, 4, 5})
	for v, err := range executor.Map(ctx, ex, Square, inputs, executor.MapChunksize(2), executor.MapTimeout(time.Minute)) {
		if err != nil {
			fmt.Println("error:", err)
			break
		}
		fmt.Print(v, " ")
	}
	fmt.Println()
	// Output: 1 4 9 16 25
}

func ExampleWait() {
	ex, release := newPool(3)
	defer ex.Shutdown(context.Background(), true, false)

	ctx := context.Background()
	slow, _ := executor.Submit(ctx, ex, Hold, "slow")
	fast, _ := executor.Submit(ctx, ex, Hold, "fast")
	quick, _ := executor.Submit(ctx, ex, Square, 3)
	done, notDone := executor.Wait(ctx, []*executor.Future[int]{quick}, executor.FirstCompleted)
	fmt.Println(len(done), len(notDone))

	timeout, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	done2, notDone2 := executor.Wait(timeout, []*executor.Future[string]{slow, fast}, executor.AllCompleted)
	fmt.Println(len(done2), len(notDone2))
	close(release)
	// Output:
	// 1 0
	// 0 2
}

func ExampleAsCompleted() {
	ex, _ := newPool(4)
	defer ex.Shutdown(context.Background(), true, false)

	ctx := context.Background()
	var fs []*executor.Future[int]
	for i := 1; i <= 3; i++ {
		f, _ := executor.Submit(ctx, ex, Square, i)
		fs = append(fs, f)
	}
	sum := 0
	for f, err := range executor.AsCompleted(ctx, fs) {
		if err != nil {
			panic(err)
		}
		v, _ := f.Result(ctx)
		sum += v
	}
	fmt.Println(sum)
	// Output: 14
}

func ExampleFuture_Cancel() {
	ex, release := newPool(1)
	defer ex.Shutdown(context.Background(), true, false)

	ctx := context.Background()
	busy, _ := executor.Submit(ctx, ex, Hold, "busy") // takes the only worker
	queued, _ := executor.Submit(ctx, ex, Square, 2)
	queued.AddDoneCallback(func(f *executor.Future[int]) { fmt.Println("callback: cancelled =", f.Cancelled()) })

	fmt.Println("cancel queued:", queued.Cancel())
	_, err := queued.Result(ctx)
	fmt.Println(err)
	close(release)
	v, _ := busy.Result(ctx)
	fmt.Println(v, "cancel finished:", busy.Cancel())
	// Output:
	// callback: cancelled = true
	// cancel queued: true
	// executor: future cancelled
	// busy cancel finished: false
}

// A NATS executor publishes to a pool that workers on any host serve; here
// one worker runs in the same process, over an embedded broker.
func ExampleNewNATS() {
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
	reg := task.NewRegistry()
	task.Handle(reg, Square, func(ctx context.Context, n int) (int, error) { return n * n, nil })
	w, err := worker.New(wc, reg, worker.Config{Pool: "batch", Logger: quiet})
	if err != nil {
		panic(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- w.Run(ctx) }()
	defer func() { stop(); <-served }() // the worker drains before the broker stops

	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		panic(err)
	}
	defer nc.Close()
	ex, err := executor.NewNATS(ctx, nc, executor.NATSPool("batch"), executor.NATSLogger(quiet))
	if err != nil {
		panic(err)
	}
	defer ex.Shutdown(context.Background(), true, false)
	f, err := executor.Submit(ctx, ex, Square, 9, executor.SubmitTimeout(30*time.Second))
	if err != nil {
		panic(err)
	}
	fmt.Println(f.Result(ctx))
	// Output: 81 <nil>
}

// A local pool runs tasks on goroutines of this process, at most
// LocalMaxWorkers at once, like Python's ThreadPoolExecutor.
func ExampleNewLocal() {
	reg := task.NewRegistry()
	task.Handle(reg, Square, func(ctx context.Context, n int) (int, error) { return n * n, nil })
	ex, err := executor.NewLocal(reg, executor.LocalMaxWorkers(2))
	if err != nil {
		panic(err)
	}
	defer ex.Shutdown(context.Background(), true, false)

	f, _ := executor.Submit(context.Background(), ex, Square, 12)
	fmt.Println(f.Result(context.Background()))
	// Output: 144 <nil>
}

// Interrupt ends a running task's context; Cancel cannot stop a task once
// it runs.
func ExampleFuture_Interrupt() {
	reg := task.NewRegistry()
	started := make(chan struct{})
	wait := task.New[int, int]("wait")
	task.Handle(reg, wait, func(ctx context.Context, n int) (int, error) {
		close(started)
		<-ctx.Done()
		return 0, ctx.Err()
	})
	ex, _ := executor.NewLocal(reg, executor.LocalMaxWorkers(1))
	defer ex.Shutdown(context.Background(), true, false)

	f, _ := executor.Submit(context.Background(), ex, wait, 1)
	<-started
	fmt.Println("cancelled:", f.Cancel())
	fmt.Println("interrupted:", f.Interrupt())
	_, err := f.Result(context.Background())
	fmt.Println(errors.Is(err, context.Canceled))
	// Output:
	// cancelled: false
	// interrupted: true
	// true
}

// NATSAutoBatch gathers Submits made while the previous chunk of their kind
// is on its way into one chunk; every future keeps its own result.
func ExampleNATSAutoBatch() {
	srv, err := embedded.Start(embedded.Config{})
	if err != nil {
		panic(err)
	}
	defer srv.Shutdown()
	defer serveSquares(srv)() // a worker, as in the example of NewNATS
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()

	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		panic(err)
	}
	defer nc.Close()
	ex, err := executor.NewNATS(ctx, nc, executor.NATSAutoBatch(100), executor.NATSLogger(quiet))
	if err != nil {
		panic(err)
	}
	defer ex.Shutdown(context.Background(), true, false)
	var fs []*executor.Future[int]
	for i := range 1000 {
		f, err := executor.Submit(ctx, ex, Square, i)
		if err != nil {
			panic(err)
		}
		fs = append(fs, f)
	}
	sum := 0
	for _, f := range fs {
		v, err := f.Result(ctx)
		if err != nil {
			panic(err)
		}
		sum += v
	}
	fmt.Println(sum)
	// Output: 332833500
}

// serveSquares runs a worker serving Square on srv until the returned
// function is called, which waits for it to drain.
func serveSquares(srv *embedded.Server) (stop func()) {
	wc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		panic(err)
	}
	reg := task.NewRegistry()
	task.Handle(reg, Square, func(ctx context.Context, n int) (int, error) { return n * n, nil })
	w, err := worker.New(wc, reg, worker.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- w.Run(ctx) }()
	return func() {
		cancel()
		<-served
		wc.Close()
	}
}
