package worker

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// pull dispatches the chunks of src's kind to the shared slots until ctx
// ends (see dispatcher); the chunks it starts join chunks.
func (w *Worker) pull(ctx context.Context, src source, slots *slotPool, chunks *sync.WaitGroup) {
	d, err := w.newDispatcher(src, slots, chunks)
	if err != nil {
		w.log.Error("worker: cannot pull", "kind", src.kind, "err", err)
		return
	}
	defer d.close()
	d.run(ctx)
}

// dispatcher fetches chunks of one kind and runs each while holding one of
// the shared slots. It never holds a chunk it has no slot for, so that a
// chunk waits in the stream, where any worker with an idle slot can take it,
// never in a busy worker. It asks for as many chunks as there are free
// slots, one request at a time, with no-wait requests the server answers at
// once, and keeps the free slots it asked for until the request ends, so
// that two kinds never ask for the same slot. When the stream ran dry it
// long-polls for a single chunk, holding no slot, and only while some slot
// is free; a chunk that then finds every slot taken goes back to the stream
// at once. When a chunk gives its slot back, every dispatcher is told, so a
// freed slot never waits for a poll.
//
// Only the goroutine running pull uses it; Run's ctx is passed to the
// methods that need it.
type dispatcher struct {
	w      *Worker
	src    source
	p      *puller
	slots  *slotPool
	chunks *sync.WaitGroup // the chunks running, which Run waits for
	freed  chan struct{}   // told when a slot is given back
	lost   *time.Timer     // fires when the request in flight is taken as lost
	// reserved are free slots taken for the chunks the request in flight
	// asks for, so that other kinds do not ask for them too.
	reserved int
}

// newDispatcher subscribes to the chunks of src's consumer.
func (w *Worker) newDispatcher(src source, slots *slotPool, chunks *sync.WaitGroup) (*dispatcher, error) {
	p, err := newPuller(w.nc, jetstream.DefaultAPIPrefix, w.subj.Stream(), w.subj.Consumer(src.kind))
	if err != nil {
		return nil, err
	}
	return &dispatcher{
		w: w, src: src, p: p, slots: slots, chunks: chunks,
		freed: slots.watch(),
		lost:  time.NewTimer(lostAfter),
	}, nil
}

// run dispatches until ctx ends: it starts the chunks that arrived, asks
// for more once no request is in flight, and waits for what comes next. A
// refused request is tried again after a pause.
func (d *dispatcher) run(ctx context.Context) {
	for ctx.Err() == nil {
		msgs, err := d.p.poll()
		for _, m := range msgs {
			d.dispatch(ctx, m)
		}
		if !d.p.inFlight() {
			d.unreserve()
		}
		if err != nil {
			d.pause(ctx, err)
		} else if !d.p.inFlight() {
			if err := d.request(); err != nil {
				d.pause(ctx, err)
				continue
			}
		}
		d.wait(ctx)
	}
}

// dispatch starts msg with a slot reserved for it or else a free one. A
// chunk that finds every slot taken (a long poll's, or one that came after
// its request was taken as lost) goes back to the stream.
func (d *dispatcher) dispatch(ctx context.Context, msg *nats.Msg) {
	switch {
	case d.reserved > 0:
		d.reserved--
	case d.slots.take():
	default:
		d.giveBack(msg)
		return
	}
	d.start(ctx, msg)
}

// start runs msg in a goroutine of its own, with the slot its caller took,
// which the chunk gives back when it ends. A chunk fetched as the drain
// began gives it back at once and goes back to the stream.
func (d *dispatcher) start(ctx context.Context, msg *nats.Msg) {
	if ctx.Err() != nil {
		// Leave it to another worker.
		d.giveBack(msg)
		d.slots.give()
		return
	}
	d.chunks.Go(func() {
		sl := &slot{pool: d.slots, held: true}
		defer sl.release()
		d.w.handle(ctx, d.src, msg, sl)
	})
}

// request sends the next pull request, if there is one to send: with chunks
// in the stream, a no-wait request for one chunk per free slot, each slot
// reserved while the request is in flight; with none, a long poll for a
// single chunk, holding no slot, if some slot is free. When it cannot send,
// it gives the slots back.
func (d *dispatcher) request() error {
	var want int
	var wait time.Duration
	if d.p.idle {
		if d.slots.free() > 0 {
			want, wait = 1, time.Second
		}
	} else {
		for d.slots.take() {
			d.reserved++
		}
		want = d.reserved
	}
	if want == 0 {
		return nil
	}
	if err := d.p.request(want, wait); err != nil {
		d.unreserve()
		return err
	}
	d.lost.Reset(time.Until(d.p.lost))
	return nil
}

// unreserve gives back the slots reserved for the request that ended.
func (d *dispatcher) unreserve() {
	d.slots.giveN(d.reserved)
	d.reserved = 0
}

// wait blocks until something arrives, a slot is given back, the request in
// flight is taken as lost, or ctx ends.
func (d *dispatcher) wait(ctx context.Context) {
	select {
	case <-d.p.signal:
	case <-d.freed:
	case <-d.lost.C:
	case <-ctx.Done():
	}
}

// pause logs a fetch that failed and waits a little before the next, or
// until ctx ends.
func (d *dispatcher) pause(ctx context.Context, err error) {
	d.w.log.Debug("worker: fetch", "kind", d.src.kind, "err", err)
	sleep(ctx, 100*time.Millisecond)
}

// close gives back the reserved slots, stops watching the pool, and hands
// the chunks that arrived but were not dispatched back to the stream.
func (d *dispatcher) close() {
	d.unreserve()
	d.lost.Stop()
	d.slots.unwatch(d.freed)
	for _, m := range d.p.close() {
		d.giveBack(m)
	}
}

// giveBack hands msg back to the stream unstarted, for this worker or
// another to take again, and counts it.
func (d *dispatcher) giveBack(msg *nats.Msg) {
	d.w.metrics.kind(d.src.kind).returned.Add(1)
	msg.Nak()
}

// slotPool is the worker's run slots, shared by the pullers of every kind.
// A chunk holds one while it runs or asks to start; a puller holds some for
// the chunks its request in flight may bring.
type slotPool struct {
	slots chan struct{} // one element per slot taken

	mu       sync.Mutex
	watchers []chan struct{}
}

func newSlotPool(n int) *slotPool { return &slotPool{slots: make(chan struct{}, n)} }

// take takes a free slot and reports whether there was one.
func (p *slotPool) take() bool {
	select {
	case p.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

// wait takes a slot, waiting for one to be free until ctx ends, and reports
// whether it took one.
func (p *slotPool) wait(ctx context.Context) bool {
	select {
	case p.slots <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

// give gives a slot back.
func (p *slotPool) give() { p.giveN(1) }

// giveN gives n slots back. If every slot was taken, it tells every
// watcher: a puller waits for a slot only after it found none free, so a
// give that leaves another free slot behind wakes nobody, which keeps a
// busy worker from waking each kind's puller at the end of every chunk.
func (p *slotPool) giveN(n int) {
	if n <= 0 {
		return
	}
	full := len(p.slots) == cap(p.slots)
	for range n {
		<-p.slots
	}
	if !full {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.watchers {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

// free is how many slots are free now.
func (p *slotPool) free() int { return cap(p.slots) - len(p.slots) }

// watch returns a channel told (without blocking the giver) when a slot is
// given back.
func (p *slotPool) watch() chan struct{} {
	c := make(chan struct{}, 1)
	p.mu.Lock()
	p.watchers = append(p.watchers, c)
	p.mu.Unlock()
	return c
}

func (p *slotPool) unwatch(c chan struct{}) {
	p.mu.Lock()
	p.watchers = slices.DeleteFunc(p.watchers, func(x chan struct{}) bool { return x == c })
	p.mu.Unlock()
}

// slot is one chunk's hold on a slot of its pool. Only the chunk's goroutine
// uses it.
type slot struct {
	pool *slotPool
	held bool
}

// release gives the slot back if it is held.
func (s *slot) release() {
	if s.held {
		s.held = false
		s.pool.give()
	}
}

// retake takes a slot again after release, waiting until one is free or
// ctx ends, and reports whether it holds one.
func (s *slot) retake(ctx context.Context) bool {
	if !s.held {
		s.held = s.pool.wait(ctx)
	}
	return s.held
}
