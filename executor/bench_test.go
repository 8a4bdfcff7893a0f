package executor_test

import (
	"context"
	"testing"

	"github.com/jetpool/jetpool/executor"
	"github.com/jetpool/jetpool/task"
)

func newBenchLocal(b *testing.B) *executor.Local {
	reg := task.NewRegistry()
	task.Handle(reg, Square, func(ctx context.Context, n int) (int, error) { return n * n, nil })
	ex, err := executor.NewLocal(reg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ex.Shutdown(context.Background(), true, false) })
	return ex
}

// BenchmarkLocalSubmitResult submits b.N trivial tasks, then collects every
// result: the workload of bench/threadpool.py.
func BenchmarkLocalSubmitResult(b *testing.B) {
	ex := newBenchLocal(b)
	ctx := context.Background()
	fs := make([]*executor.Future[int], b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		f, err := executor.Submit(ctx, ex, Square, i)
		if err != nil {
			b.Fatal(err)
		}
		fs[i] = f
	}
	for i, f := range fs {
		if v, err := f.Result(ctx); err != nil || v != i*i {
			b.Fatalf("result %d = %d, %v", i, v, err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
}

// BenchmarkLocalMap maps b.N trivial tasks in chunks of 100.
func BenchmarkLocalMap(b *testing.B) {
	ex := newBenchLocal(b)
	ctx := context.Background()
	inputs := func(yield func(int) bool) {
		for i := range b.N {
			if !yield(i) {
				return
			}
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for v, err := range executor.Map(ctx, ex, Square, inputs, executor.MapChunksize(100)) {
		if err != nil || v != n*n {
			b.Fatalf("result %d = %d, %v", n, v, err)
		}
		n++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "items/s")
}
