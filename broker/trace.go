package broker

import (
	"context"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/propagation"
)

// traceContext is the W3C Trace Context propagator: traceparent and
// tracestate headers. It needs no exporter; a handler's spans join the
// producer's trace when both sides use OpenTelemetry.
var traceContext = propagation.TraceContext{}

// InjectTrace writes the span context of ctx, if any, into h as W3C
// traceparent and tracestate headers.
func InjectTrace(ctx context.Context, h nats.Header) {
	traceContext.Inject(ctx, headerCarrier(h))
}

// ExtractTrace returns ctx carrying the remote span context found in h's
// traceparent header, or ctx itself when there is none.
func ExtractTrace(ctx context.Context, h nats.Header) context.Context {
	if h.Get("traceparent") == "" {
		return ctx
	}
	return traceContext.Extract(ctx, headerCarrier(h))
}

// headerCarrier adapts NATS headers, whose keys are case-sensitive, to the
// propagator: keys are kept exactly as W3C spells them.
type headerCarrier nats.Header

func (c headerCarrier) Get(key string) string { return nats.Header(c).Get(key) }
func (c headerCarrier) Set(key, value string) { nats.Header(c).Set(key, value) }

func (c headerCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}
