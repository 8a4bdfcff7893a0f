package executor_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jetpool/jetpool/executor"
	"github.com/jetpool/jetpool/internal/bench"
)

// The NATS benchmarks run an embedded broker and an in-process worker with 256
// slots; 'submit bench' prints the same figures next to the raw ceiling.

func benchEnv(b *testing.B) *bench.Env {
	env, err := bench.StartEnv(context.Background(), 256)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(env.Close)
	return env
}

func report(b *testing.B, figs ...bench.Figure) {
	for _, f := range figs {
		b.ReportMetric(f.Value, f.Unit)
	}
}

// BenchmarkNATSSubmitResult also reports the messages per task each side
// received and sent.
func BenchmarkNATSSubmitResult(b *testing.B) {
	env := benchEnv(b)
	p0, w0 := env.Messages()
	b.ResetTimer()
	f, err := bench.SubmitThroughput(context.Background(), env.Ex, b.N)
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	report(b, f)
	p, w := env.Messages()
	perTask := func(after, before uint64) float64 { return float64(after-before) / float64(b.N) }
	b.ReportMetric(perTask(p.InMsgs, p0.InMsgs), "producer-in/task")
	b.ReportMetric(perTask(p.OutMsgs, p0.OutMsgs), "producer-out/task")
	b.ReportMetric(perTask(w.InMsgs, w0.InMsgs), "worker-in/task")
	b.ReportMetric(perTask(w.OutMsgs, w0.OutMsgs), "worker-out/task")
}

func BenchmarkNATSMapChunk1000(b *testing.B) {
	env := benchEnv(b)
	b.ResetTimer()
	f, err := bench.MapThroughput(context.Background(), env.Ex, b.N, 1000)
	if err != nil {
		b.Fatal(err)
	}
	report(b, f)
}

func BenchmarkNATSLatency(b *testing.B) {
	env := benchEnv(b)
	b.ResetTimer()
	figs, err := bench.Latency(context.Background(), env.Ex, b.N)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(figs[0].Value, "p50-µs")
	b.ReportMetric(figs[1].Value, "p99-µs")
}

func BenchmarkRawCeiling(b *testing.B) {
	env := benchEnv(b)
	b.ResetTimer()
	figs, err := bench.RawCeiling(context.Background(), env.Srv.ClientURL(), b.N, 100)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(figs[0].Value, "tasks/s")
}

// BenchmarkRawBatchCeiling is BenchmarkRawCeiling with 1000 items a
// message: the limit of a Map at chunksize 1000 (b.N items in all).
func BenchmarkRawBatchCeiling(b *testing.B) {
	env := benchEnv(b)
	b.ResetTimer()
	f, err := bench.RawBatchCeiling(context.Background(), env.Srv.ClientURL(), max(b.N, 1000), 1000)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(f.Value, "items/s")
}

// BenchmarkNATSMapMemory maps b.N ints streamed from an iter.Seq in chunks
// of 1000 and reports the process's peak resident memory meanwhile (run it
// with -benchtime 10000000x for the figure in BENCHMARKS.md).
func BenchmarkNATSMapMemory(b *testing.B) {
	env := benchEnv(b)
	b.ResetTimer()
	f, err := bench.MapMemory(context.Background(), env.Ex, b.N, 1000)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(f.Value, "peak-RSS-MB")
}

// BenchmarkJobSubmitResult is BenchmarkNATSSubmitResult on a named job.
func BenchmarkJobSubmitResult(b *testing.B) {
	env := benchEnv(b)
	b.ResetTimer()
	f, err := bench.JobSubmitThroughput(context.Background(), env.Ex, b.N)
	if err != nil {
		b.Fatal(err)
	}
	report(b, f)
}

// BenchmarkJobMapChunk1000 is BenchmarkNATSMapChunk1000 on a named job.
func BenchmarkJobMapChunk1000(b *testing.B) {
	env := benchEnv(b)
	b.ResetTimer()
	f, err := bench.JobMapThroughput(context.Background(), env.Ex, b.N, 1000)
	if err != nil {
		b.Fatal(err)
	}
	report(b, f)
}

// BenchmarkJobResume resumes a named Map of 1,000,000 ints in chunks of
// 1000 that is 90% done, whatever b.N (run it with -benchtime 1x), and
// reports the time to its first stored and first new result and the tasks
// run again.
func BenchmarkJobResume(b *testing.B) {
	env := benchEnv(b)
	b.ResetTimer()
	figs, err := bench.JobResume(context.Background(), env, 1_000_000, 900_000, 1000)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(figs[0].Value, "first-stored-ms")
	b.ReportMetric(figs[1].Value, "first-new-ms")
	b.ReportMetric(figs[2].Value, "all-ms")
	b.ReportMetric(figs[3].Value, "rerun-tasks")
}

// BenchmarkNATSMapCurves measures how Map's cost grows, each point a
// sub-benchmark that maps its own number of items once per b.N, on a pool
// of its own (run it with -benchtime 1x for curves from one run): against
// the items mapped (chunks of 1000), against the chunk size, against the
// in-process workers sharing the pool (256 slots in all), and with 1, 4 and
// 16 producers mapping 1,000,000 items between them at once on one pool,
// each reporting the aggregate and the slowest and fastest producer's rate.
func BenchmarkNATSMapCurves(b *testing.B) {
	ctx := context.Background()
	mapped := func(b *testing.B, env *bench.Env, n, chunk int) {
		b.ResetTimer()
		start := time.Now()
		for range b.N {
			if _, err := bench.MapThroughput(ctx, env.Ex, n, chunk); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*n)/time.Since(start).Seconds(), "items/s")
	}
	for _, n := range []int{1e4, 1e5, 1e6, 1e7} {
		b.Run(fmt.Sprintf("items=%d", n), func(b *testing.B) { mapped(b, benchEnv(b), n, 1000) })
	}
	for _, chunk := range []int{1, 10, 100, 1000, 10000} {
		n := min(20_000*chunk, 1_000_000)
		b.Run(fmt.Sprintf("chunk=%d", chunk), func(b *testing.B) { mapped(b, benchEnv(b), n, chunk) })
	}
	for _, workers := range []int{1, 2, 4, 8} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			env, err := bench.StartEnv(ctx, 256/workers)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(env.Close)
			for range workers - 1 {
				if err := env.AddWorker(256 / workers); err != nil {
					b.Fatal(err)
				}
			}
			mapped(b, env, 1_000_000, 1000)
		})
	}
	for _, producers := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("producers=%d", producers), func(b *testing.B) {
			env := benchEnv(b)
			exs := []*executor.NATS{env.Ex}
			for range producers - 1 {
				ex, err := env.NewExecutor(ctx)
				if err != nil {
					b.Fatal(err)
				}
				exs = append(exs, ex)
			}
			n := 1_000_000 / producers
			b.ResetTimer()
			start := time.Now()
			slowest, fastest := math.Inf(1), 0.0
			for range b.N {
				rates := make([]float64, producers)
				errs := make([]error, producers)
				var wg sync.WaitGroup
				for i, ex := range exs {
					wg.Go(func() {
						f, err := bench.MapThroughput(ctx, ex, n, 1000)
						rates[i], errs[i] = f.Value, err
					})
				}
				wg.Wait()
				if err := errors.Join(errs...); err != nil {
					b.Fatal(err)
				}
				slowest, fastest = min(slowest, slices.Min(rates)), max(fastest, slices.Max(rates))
			}
			b.ReportMetric(float64(b.N*n*producers)/time.Since(start).Seconds(), "items/s")
			b.ReportMetric(slowest, "slowest-producer-items/s")
			b.ReportMetric(fastest, "fastest-producer-items/s")
		})
	}
}
