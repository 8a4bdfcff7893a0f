package executor_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetpool/jetpool/executor"
	"github.com/jetpool/jetpool/task"
	"github.com/jetpool/jetpool/worker"
)

var counted = task.New[int, int]("counted")

// TestAutoBatchGathersSubmits: a flood of Submits goes out in far fewer
// chunks than tasks, every future gets its own value, futures cancelled
// while gathered never run, and Shutdown with wait publishes and resolves
// whatever was still gathered.
func TestAutoBatchGathersSubmits(t *testing.T) {
	_, nc := startBroker(t)
	var calls atomic.Int64
	ran := make([]atomic.Bool, 5000)
	reg := task.NewRegistry()
	task.Handle(reg, counted, func(ctx context.Context, n int) (int, error) {
		calls.Add(1)
		ran[n].Store(true)
		return -n, nil
	})
	ex, err := executor.NewNATS(t.Context(), nc, executor.NATSPoolConfig(testPool), executor.NATSAutoBatch(100))
	if err != nil {
		t.Fatal(err)
	}
	w := startWorker(t, connect(t, nc.ConnectedUrl()), reg, worker.Config{Concurrency: 4})

	const n = 5000
	fs := make([]*executor.Future[int], n)
	for i := range n {
		if fs[i], err = executor.Submit(t.Context(), ex, counted, i); err != nil {
			t.Fatal(err)
		}
		if i%10 == 5 {
			fs[i].Cancel() // some while still gathered, some after they went out
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := ex.Shutdown(ctx, true, false); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	cancelled := 0
	for i, f := range fs {
		v, err := f.Result(ctx)
		switch {
		case errors.Is(err, executor.ErrCancelled):
			cancelled++
			if ran[i].Load() {
				t.Fatalf("task %d ran although its future was cancelled", i)
			}
		case err != nil:
			t.Fatalf("task %d: %v", i, err)
		case v != -i:
			t.Fatalf("task %d = %d", i, v)
		}
	}
	if cancelled == 0 {
		t.Fatal("no Cancel succeeded")
	}
	if got := calls.Load(); got != int64(n-cancelled) {
		t.Fatalf("%d handler calls for %d uncancelled tasks", got, n-cancelled)
	}
	chunks := w.Stats().ChunksStarted + w.Stats().ChunksDropped
	t.Logf("%d tasks (%d cancelled) in %d chunks", n, cancelled, chunks)
	if chunks >= n/5 {
		t.Fatalf("%d chunks for %d Submits: not gathered", chunks, n)
	}
	if _, err := executor.Submit(t.Context(), ex, counted, 1); !errors.Is(err, executor.ErrShutdown) {
		t.Fatalf("Submit after Shutdown: %v, want ErrShutdown", err)
	}
}

func TestAutoBatchInvalid(t *testing.T) {
	_, nc := startBroker(t)
	if _, err := executor.NewNATS(t.Context(), nc, executor.NATSAutoBatch(1)); !errors.Is(err, executor.ErrInvalidOption) {
		t.Fatalf("NATSAutoBatch(1): %v, want ErrInvalidOption", err)
	}
}
