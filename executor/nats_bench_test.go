package executor_test

import (
	"context"
	"fmt"
	"testing"

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

// BenchmarkProcessPoolScaling maps b.N tasks that sleep 10ms over 4 worker
// processes of 16 slots, in chunks of one and of two, and reports the time
// against the ideal b.N*10ms/64 (-benchtime 32000x: 5s of ideal time).
func BenchmarkProcessPoolScaling(b *testing.B) {
	const procs, slots = 4, 16
	for _, chunk := range []int{1, 2} {
		b.Run(fmt.Sprintf("chunksize=%d", chunk), func(b *testing.B) {
			ctx := context.Background()
			p, err := executor.NewProcessPool(ctx, procs, executor.ProcessConcurrency(slots))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { p.Shutdown(context.Background(), true, true) })
			b.ResetTimer()
			figs, err := bench.Scaling(ctx, p, Nap, b.N, chunk, procs, slots)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(figs[1].Value, "%-of-ideal")
		})
	}
}
