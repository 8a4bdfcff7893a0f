package executor

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// coalescer gathers single-task batches per kind and deadline while the
// previous chunk of the same kind and deadline waits for its PubAck.
type coalescer struct {
	n   *NATS
	max int

	// gate is held shared by every add and flush, and exclusively by close,
	// so that once close returns nothing is being published any more and
	// every gathered call has gone out.
	gate sync.RWMutex

	mu       sync.Mutex
	closed   bool
	groups   map[groupKey]*group
	inFlight map[uint64]groupKey // published chunks whose PubAck is not in
	ready    []groupKey          // groups whose chunk was acked, to flush
	wake     chan struct{}       // cap 1: ready has entries
}

type groupKey struct {
	kind     string
	deadline int64
}

// group is one kind and deadline's gathering.
type group struct {
	sending bool              // a chunk of the group is on its way
	pending *batch            // calls waiting for the next chunk
	size    int               // their encoded inputs' bytes
	span    trace.SpanContext // the first pending call's, carried by the chunk
}

// take empties the group's gathering and returns it with the context to
// publish it in: not any Submit's own, which may end before the chunk goes,
// but one carrying the first Submit's span. b is nil if nothing waits.
func (g *group) take() (b *batch, ctx context.Context) {
	b, ctx = g.pending, trace.ContextWithSpanContext(context.Background(), g.span)
	g.pending, g.size, g.span = nil, 0, trace.SpanContext{}
	return b, ctx
}

func newCoalescer(n *NATS, max int) *coalescer {
	return &coalescer{n: n, max: max, groups: make(map[groupKey]*group),
		inFlight: make(map[uint64]groupKey), wake: make(chan struct{}, 1)}
}

// add takes a Submit. Its input is encoded now so a bad one fails the call.
func (c *coalescer) add(ctx context.Context, b *batch) error {
	c.gate.RLock()
	defer c.gate.RUnlock()
	raw, err := b.codec.EncodeIn(b.calls[0].arg)
	if err != nil {
		return fmt.Errorf("executor: encode %s input: %w", b.codec.Kind, err)
	}
	key := groupKey{b.codec.Kind, 0}
	if !b.deadline.IsZero() {
		key.deadline = b.deadline.UnixNano()
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrShutdown
	}
	g := c.groups[key]
	if g == nil {
		g = &group{}
		c.groups[key] = g
	}
	if !g.sending {
		// Nothing on its way: this one goes at once, errors to its caller.
		g.sending = true
		c.mu.Unlock()
		id, err := c.n.publish(ctx, b, c.track(key))
		if err != nil {
			c.untrack(id, key)
		}
		return err
	}
	if g.pending == nil {
		g.pending = &batch{codec: b.codec, deadline: b.deadline, submit: true}
		g.span = trace.SpanContextFromContext(ctx)
	}
	g.pending.calls = append(g.pending.calls, b.calls[0])
	g.size += len(raw)
	var full *batch
	var fctx context.Context
	if len(g.pending.calls) >= c.max || int64(g.size) >= c.n.nc.MaxPayload()/2 {
		full, fctx = g.take()
	}
	c.mu.Unlock()
	if full != nil {
		c.send(fctx, key, full, false)
	}
	return nil
}

// send publishes a gathered batch; tracked says whether the group waits for
// its PubAck. A failure fails the batch's futures, whose Submits returned.
func (c *coalescer) send(ctx context.Context, key groupKey, b *batch, tracked bool) {
	var onID func(uint64)
	if tracked {
		onID = c.track(key)
	}
	id, err := c.n.publish(ctx, b, onID)
	if err == nil {
		return
	}
	for i := range b.calls {
		b.calls[i].s.resolve(nil, err)
	}
	if tracked {
		c.untrack(id, key)
	}
}

// track returns the hook that records a chunk of key as on its way before
// it is published, so its PubAck cannot arrive first.
func (c *coalescer) track(key groupKey) func(uint64) {
	return func(id uint64) {
		c.mu.Lock()
		c.inFlight[id] = key
		c.mu.Unlock()
	}
}

// untrack ends the group's chunk that failed to publish; id is 0 if the
// chunk never got one.
func (c *coalescer) untrack(id uint64, key groupKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.inFlight, id)
	c.sentLocked(key, c.groups[key])
}

// acked is told when the PubAck (or the publish error) of chunk id is in.
// It never blocks: it runs on the connection's reply handler.
func (c *coalescer) acked(id uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	key, ok := c.inFlight[id]
	if !ok {
		return
	}
	delete(c.inFlight, id)
	c.sentLocked(key, c.groups[key])
}

// sentLocked ends the group's chunk on its way: a pending batch is queued
// for the flusher, or the group rests.
func (c *coalescer) sentLocked(key groupKey, g *group) {
	if g == nil {
		return
	}
	if g.pending == nil {
		g.sending = false
		delete(c.groups, key)
		return
	}
	c.ready = append(c.ready, key)
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// run flushes the groups whose previous chunk was acked, until stop closes.
// Publishing here, not in acked, keeps a stalled publish from blocking the
// PubAcks it waits for.
func (c *coalescer) run(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-c.wake:
		}
		for c.flushOne() {
		}
	}
}

// flushOne publishes the batch of the first ready group and reports whether
// there was one.
func (c *coalescer) flushOne() bool {
	c.gate.RLock()
	defer c.gate.RUnlock()
	c.mu.Lock()
	if len(c.ready) == 0 {
		c.mu.Unlock()
		return false
	}
	key := c.ready[0]
	c.ready = c.ready[1:]
	g := c.groups[key]
	var b *batch
	var ctx context.Context
	if g != nil {
		if b, ctx = g.take(); b == nil {
			// A full batch went out on its own meanwhile: nothing of the
			// group is on its way any more.
			g.sending = false
			delete(c.groups, key)
		}
	}
	c.mu.Unlock()
	if b != nil {
		c.send(ctx, key, b, true)
	}
	return true
}

// close stops gathering and publishes every batch still waiting, so each
// future a Submit returned reaches the stream before the executor closes.
func (c *coalescer) close() {
	c.gate.Lock()
	defer c.gate.Unlock()
	c.mu.Lock()
	c.closed = true
	type pend struct {
		key groupKey
		ctx context.Context
		b   *batch
	}
	var left []pend
	for key, g := range c.groups {
		if b, ctx := g.take(); b != nil {
			left = append(left, pend{key, ctx, b})
		}
	}
	c.mu.Unlock()
	for _, p := range left {
		c.send(p.ctx, p.key, p.b, false)
	}
}

// publishTimeout bounds the wait for a PubAck: a chunk whose PubAck does not
// come is published again (see NATS.republishLater), and a lost PubAck
// cannot hold a group's next chunk forever.
const publishTimeout = 10 * time.Second
