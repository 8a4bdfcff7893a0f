package processpool_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jetpool/jetpool/executor/processpool"
	"github.com/jetpool/jetpool/internal/bench"
)

// BenchmarkProcessPoolScaling maps b.N tasks that sleep 10ms over 4 worker
// processes of 16 slots, in chunks of one and of two, and reports the time
// against the ideal b.N*10ms/64 (-benchtime 32000x: 5s of ideal time).
func BenchmarkProcessPoolScaling(b *testing.B) {
	const procs, slots = 4, 16
	for _, chunk := range []int{1, 2} {
		b.Run(fmt.Sprintf("chunksize=%d", chunk), func(b *testing.B) {
			ctx := context.Background()
			p, err := processpool.New(ctx, procs, processpool.Concurrency(slots))
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
