package executor_test

import (
	"context"
	"testing"

	"github.com/jetpool/jetpool/internal/bench"
)

// The NATS benchmarks run an embedded broker and an in-process worker with 64
// slots; 'submit bench' prints the same figures next to the raw ceiling.

func benchEnv(b *testing.B) *bench.Env {
	env, err := bench.StartEnv(context.Background(), 64)
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

func BenchmarkNATSSubmitResult(b *testing.B) {
	env := benchEnv(b)
	b.ResetTimer()
	f, err := bench.SubmitThroughput(context.Background(), env.Ex, b.N)
	if err != nil {
		b.Fatal(err)
	}
	report(b, f)
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
