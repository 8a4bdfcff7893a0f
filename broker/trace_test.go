package broker

import (
	"testing"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/trace"
)

func TestTraceContextCrossesHeaders(t *testing.T) {
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})
	ctx := trace.ContextWithSpanContext(t.Context(), sc)

	h := nats.Header{}
	InjectTrace(ctx, h)
	if got, want := h.Get("traceparent"), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"; got != want {
		t.Fatalf("traceparent = %q, want %q", got, want)
	}
	got := trace.SpanContextFromContext(ExtractTrace(t.Context(), h))
	if !got.IsRemote() || got.TraceID() != tid || got.SpanID() != sid || !got.IsSampled() {
		t.Fatalf("extracted %+v, want trace %v span %v, remote and sampled", got, tid, sid)
	}
}

func TestNoTraceContextLeavesContextAlone(t *testing.T) {
	h := nats.Header{}
	InjectTrace(t.Context(), h)
	if len(h) != 0 {
		t.Fatalf("headers %v written without a span", h)
	}
	ctx := t.Context()
	if ExtractTrace(ctx, h) != ctx {
		t.Fatal("ExtractTrace replaced a context with no traceparent")
	}
}
