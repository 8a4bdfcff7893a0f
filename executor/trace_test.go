package executor_test

import (
	"context"
	"slices"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/jetpool/jetpool/executor"
	"github.com/jetpool/jetpool/task"
	"github.com/jetpool/jetpool/worker"
)

var traced = task.New[int, string]("traced")

// TestTraceContextReachesHandler: the span context of Submit's and Map's ctx
// arrives in the handler's ctx on the worker, as a remote parent, so spans a
// handler starts join the producer's trace.
func TestTraceContextReachesHandler(t *testing.T) {
	_, nc := startBroker(t)
	reg := task.NewRegistry()
	task.Handle(reg, traced, func(ctx context.Context, _ int) (string, error) {
		sc := trace.SpanContextFromContext(ctx)
		if !sc.IsValid() || !sc.IsRemote() {
			return "", nil
		}
		return sc.TraceID().String() + "/" + sc.SpanID().String(), nil
	})
	ex := newNATS(t, nc)
	startWorker(t, connect(t, nc.ConnectedUrl()), reg, worker.Config{})

	tid, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	sid, _ := trace.SpanIDFromHex("b7ad6b7169203331")
	ctx := trace.ContextWithSpanContext(t.Context(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled,
	}))
	want := tid.String() + "/" + sid.String()

	f, err := executor.Submit(ctx, ex, traced, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := f.Result(t.Context()); err != nil || got != want {
		t.Fatalf("Submit: handler saw %q, %v; want %q", got, err, want)
	}
	for got, err := range executor.Map(ctx, ex, traced, slices.Values([]int{1, 2, 3}), executor.MapChunksize(2)) {
		if err != nil || got != want {
			t.Fatalf("Map: handler saw %q, %v; want %q", got, err, want)
		}
	}
	untraced, err := executor.Submit(t.Context(), ex, traced, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := untraced.Result(t.Context()); err != nil || got != "" {
		t.Fatalf("without a span: handler saw %q, %v; want no span context", got, err)
	}
}

// TestTraceContextOfGatheredSubmits: a chunk gathered by NATSAutoBatch
// carries its first Submit's span, even when that Submit's ctx has ended
// before the chunk goes out.
func TestTraceContextOfGatheredSubmits(t *testing.T) {
	_, nc := startBroker(t)
	reg := task.NewRegistry()
	task.Handle(reg, traced, func(ctx context.Context, _ int) (string, error) {
		return trace.SpanContextFromContext(ctx).TraceID().String(), nil
	})
	ex := newNATS(t, nc, executor.NATSAutoBatch(16))
	startWorker(t, connect(t, nc.ConnectedUrl()), reg, worker.Config{})

	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	var fs []*executor.Future[string]
	for i := range 200 {
		ctx, cancel := context.WithCancel(trace.ContextWithSpanContext(t.Context(),
			trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})))
		f, err := executor.Submit(ctx, ex, traced, i)
		cancel() // the Submit is done; its ctx ends before its chunk may go
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, f)
	}
	for i, f := range fs {
		if got, err := f.Result(t.Context()); err != nil || got != tid.String() {
			t.Fatalf("task %d: handler saw trace %q, %v; want %s", i, got, err, tid)
		}
	}
}
