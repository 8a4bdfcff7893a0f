// Package worker is the worker runtime: it pulls chunks of the kinds it has
// handlers for from a pool's JetStream consumers, asks their producer for
// leave to start them, runs them with bounded concurrency, keeps them alive
// with heartbeats and sends the results back. See broker/wire.go for the
// protocol.
//
// A running worker can be observed three ways: its Prometheus metrics
// ([Worker.Collector]), its readiness ([Worker.Ready]), and its NATS service
// registration under [ServiceName], whose status endpoint
// ([Worker.StatusSubject]) and $SRV.STATS replies carry a [Status]. A handler's
// context carries the producer's trace span context when the chunk has a W3C
// traceparent header.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/task"
)

// ErrRunning is returned by Run on a worker that is already running.
var ErrRunning = errors.New("worker: already running")

// Stats counts what a worker did. All counters only grow, but InFlight.
type Stats struct {
	ChunksStarted    int64 // chunks the producer let this worker run
	ChunksDropped    int64 // chunks the producer said to drop (cancelled or done)
	ChunksTerminated int64 // malformed, expired, or their producer gone
	ChunksBusy       int64 // chunks another live attempt held
	Redelivered      int64 // chunks delivered more than once
	TasksSucceeded   int64
	TasksFailed      int64
	TasksRetried     int64 // handler calls after the first of a task
	InFlight         int64 // chunks running now
}

// Worker serves a pool. Create it with [New] and run it with [Worker.Run].
type Worker struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	reg  *task.Registry
	cfg  Config
	subj broker.Subjects
	log  *slog.Logger

	inbox      string // the base of the status subject
	interrupts string // where interrupts and pings come: an inbox of the connection's, which a server can keep private to this worker's user

	serving atomic.Bool
	ready   atomic.Bool // pulling, not draining
	metrics *metrics
	starts  *startBatcher
	results *resultSender

	mu      sync.Mutex
	running map[chunkKey][]*chunkRun // granted chunks, for interrupts
	silent  map[string]time.Time     // producers not answering, by start subject, since when

	stats struct {
		started, dropped, terminated, busy, redelivered atomic.Int64
		succeeded, failed, retried, inflight            atomic.Int64
	}
}

// New checks cfg and returns a worker serving reg's handlers over nc. It starts
// nothing; see Run. Invalid settings give an error matching ErrInvalidConfig.
func New(nc *nats.Conn, reg *task.Registry, cfg Config) (*Worker, error) {
	if nc == nil {
		return nil, fmt.Errorf("%w: nil connection", ErrInvalidConfig)
	}
	cfg, subj, err := cfg.withDefaults(reg)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("worker: jetstream: %w", err)
	}
	log := cfg.Logger.With("worker", cfg.ID)
	return &Worker{
		nc: nc, js: js, reg: reg, cfg: cfg, subj: subj,
		inbox:      subj.WorkerInbox(cfg.ID),
		interrupts: nc.NewInbox(),
		log:        log,
		metrics:    newMetrics(subj.Pool(), cfg.Kinds),
		starts:     newStartBatcher(nc),
		results:    newResultSender(nc, log),
		running:    make(map[chunkKey][]*chunkRun),
		silent:     make(map[string]time.Time),
	}, nil
}

// ID returns the worker's id.
func (w *Worker) ID() string { return w.cfg.ID }

// Ready reports whether the worker is serving: Run has provisioned the
// pool's consumers, registered the worker's service and is pulling, its drain
// has not begun, and its connection to the server is up. It is false before
// Run, while the broker is not ready yet, from the moment Run's ctx ends
// (while the running chunks finish) and whenever the connection is lost. It
// is safe to call at any time and costs two atomic loads.
func (w *Worker) Ready() bool { return w.ready.Load() && w.nc.IsConnected() }

// Kinds returns the kinds the worker serves.
func (w *Worker) Kinds() []string { return append([]string(nil), w.cfg.Kinds...) }

// Stats returns a snapshot of the worker's counters. It is safe to call at
// any time, also while Run runs.
func (w *Worker) Stats() Stats {
	return Stats{
		ChunksStarted:    w.stats.started.Load(),
		ChunksDropped:    w.stats.dropped.Load(),
		ChunksTerminated: w.stats.terminated.Load(),
		ChunksBusy:       w.stats.busy.Load(),
		Redelivered:      w.stats.redelivered.Load(),
		TasksSucceeded:   w.stats.succeeded.Load(),
		TasksFailed:      w.stats.failed.Load(),
		TasksRetried:     w.stats.retried.Load(),
		InFlight:         w.stats.inflight.Load(),
	}
}

// source is one kind's consumer.
type source struct {
	kind string
	// ackWait is the consumer's own, which rules redelivery even when this
	// worker was configured with another.
	ackWait time.Duration
}

// Run provisions the pool's stream and the consumers of the worker's kinds
// if they are missing (retrying while the broker is not ready), subscribes to
// the worker's interrupt inbox, registers the worker as a NATS service (see
// [ServiceName] and [Worker.StatusSubject]) and serves until ctx ends. Then
// it drains: it stops pulling, hands back chunks it holds but was not yet let
// to start, lets the running chunks finish (their handlers' contexts are not
// cancelled), flushes their results to the server, stops the service and
// returns nil. Every goroutine it started has ended by then.
//
// It returns an error only if it cannot subscribe, if the pool's stream
// name is another pool's (matching broker.ErrInvalidName), or ErrRunning if
// the worker is running already. A worker may run again after Run returned.
func (w *Worker) Run(ctx context.Context) error {
	if !w.serving.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer w.serving.Store(false)
	sources, err := w.provision(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped before it served
		}
		return err
	}
	inbox, err := w.nc.Subscribe(w.interrupts, w.onInterrupt)
	if err != nil {
		return fmt.Errorf("worker: subscribe interrupts: %w", err)
	}
	// The inbox stays until the last chunk ended: drained chunks are still
	// interruptible.
	defer inbox.Unsubscribe()
	svc, err := w.addService()
	if err != nil {
		return err
	}
	// Listed while its chunks run, drained ones too: their counts still move.
	defer func() {
		if err := svc.Stop(); err != nil {
			w.log.Warn("worker: stop service", "err", err)
		}
	}()

	// slots bounds the chunks held at once across kinds; a puller takes a
	// slot before it pulls, so no message waits client-side for a slot.
	slots := newSlotPool(w.cfg.Concurrency)
	var chunks, pullers sync.WaitGroup
	for _, src := range sources {
		pullers.Go(func() { w.pull(ctx, src, slots, &chunks) })
	}
	w.ready.Store(true)
	stopReady := context.AfterFunc(ctx, func() { w.ready.Store(false) })
	defer func() {
		stopReady()
		w.ready.Store(false)
	}()
	w.log.Info("worker serving", "pool", w.subj.Pool(), "kinds", w.cfg.Kinds, "concurrency", w.cfg.Concurrency,
		"status_subject", w.StatusSubject())
	pullers.Wait()
	w.log.Info("worker draining", "in_flight", w.stats.inflight.Load())
	chunks.Wait()
	if err := w.nc.FlushTimeout(5 * time.Second); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		w.log.Warn("worker: flush results after drain", "err", err)
	}
	return nil
}

// provision makes sure the pool's stream and the consumers of w's kinds
// exist. A broker that is not ready yet (a cluster still electing, a server
// still starting) is retried with backoff until ctx ends, so workers may start
// before their brokers.
func (w *Worker) provision(ctx context.Context) ([]source, error) {
	backoff := 100 * time.Millisecond
	for {
		sources, err := w.provisionOnce(ctx)
		// A name taken by another pool or a setting out of range does not
		// mend by waiting.
		if err == nil || ctx.Err() != nil || errors.Is(err, broker.ErrInvalidName) || errors.Is(err, broker.ErrInvalidConfig) {
			return sources, err
		}
		w.log.Warn("worker: provisioning failed; retrying", "err", err, "in", backoff)
		sleep(ctx, backoff)
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (w *Worker) provisionOnce(ctx context.Context) ([]source, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := broker.EnsureStream(ctx, w.js, w.subj, w.cfg.PoolConfig); err != nil {
		return nil, err
	}
	sources := make([]source, len(w.cfg.Kinds))
	for i, k := range w.cfg.Kinds {
		c, err := broker.EnsureConsumer(ctx, w.js, w.subj, k, w.cfg.PoolConfig)
		if err != nil {
			return nil, err
		}
		sources[i] = source{kind: k, ackWait: w.cfg.PoolConfig.AckWait}
		if info := c.CachedInfo(); info != nil && info.Config.AckWait > 0 {
			sources[i].ackWait = info.Config.AckWait
		}
	}
	return sources, nil
}

// pull fetches chunks of one kind and runs each while holding one of the
// shared slots, until ctx ends. It never holds a chunk it has no slot for,
// so that a chunk waits in the stream, where any worker with an idle slot
// can take it, never in a busy worker. It asks for as many chunks as there
// are free slots, one request at a time, with no-wait requests the server
// answers at once, and keeps the free slots it asked for until the request
// ends, so that two kinds never ask for the same slot. When the stream ran
// dry it long-polls for a single chunk, holding no slot, and only while some
// slot is free; a chunk that then finds every slot taken goes back to the
// stream at once. When a chunk gives its slot back, every puller is told, so
// a freed slot never waits for a poll.
func (w *Worker) pull(ctx context.Context, src source, slots *slotPool, chunks *sync.WaitGroup) {
	p, err := newPuller(w.nc, jetstream.DefaultAPIPrefix, w.subj.Stream(), w.subj.Consumer(src.kind))
	if err != nil {
		w.log.Error("worker: cannot pull", "kind", src.kind, "err", err)
		return
	}
	defer func() {
		for _, m := range p.close() {
			m.Nak()
		}
	}()
	freed := slots.watch()
	defer slots.unwatch(freed)
	// run handles msg with a slot its caller took.
	run := func(msg *nats.Msg) {
		if ctx.Err() != nil {
			// Fetched as the drain began: leave it to another worker.
			msg.Nak()
			slots.give()
			return
		}
		chunks.Go(func() {
			sl := &slot{pool: slots, held: true}
			defer sl.release()
			w.handle(ctx, src, msg, sl)
		})
	}
	lost := time.NewTimer(lostAfter)
	defer lost.Stop()
	// reserved are free slots taken for the chunks the request in flight
	// asks for, so that other kinds do not ask for them too.
	reserved := 0
	release := func() {
		for ; reserved > 0; reserved-- {
			slots.give()
		}
	}
	defer release()
	for ctx.Err() == nil {
		msgs, err := p.poll()
		for _, m := range msgs {
			switch {
			case reserved > 0:
				reserved--
				run(m)
			case slots.take():
				run(m)
			default:
				// A long poll's chunk, or one that came after its request
				// was taken as lost, with every slot taken meanwhile.
				m.Nak()
			}
		}
		if !p.inFlight() {
			release()
		}
		if err != nil {
			w.log.Debug("worker: fetch", "kind", src.kind, "err", err)
			sleep(ctx, 100*time.Millisecond)
		} else if !p.inFlight() {
			var want int
			var wait time.Duration
			if p.idle {
				// Nothing queued: wait for one chunk, holding no slot, if
				// there is a slot to run it.
				if slots.free() > 0 {
					want, wait = 1, time.Second
				}
			} else {
				for slots.take() {
					reserved++
				}
				want = reserved
			}
			if want > 0 {
				if err := p.request(want, wait); err != nil {
					release()
					w.log.Debug("worker: fetch", "kind", src.kind, "err", err)
					sleep(ctx, 100*time.Millisecond)
					continue
				}
				lost.Reset(time.Until(p.lost))
			}
		}
		select {
		case <-p.signal:
		case <-freed:
		case <-lost.C:
		case <-ctx.Done():
		}
	}
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

// give gives a slot back and tells every watcher.
func (p *slotPool) give() {
	<-p.slots
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

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// onInterrupt ends the context of a task the worker runs, or keeps a granted
// task that has not begun from beginning, if the interrupt carries the
// grant of the task's attempt, which only its producer and this worker hold.
// Anything else is ignored.
//
// An empty request is a producer's check that the worker is still there
// (see broker/wire.go); it is answered with an empty reply.
func (w *Worker) onInterrupt(m *nats.Msg) {
	if len(m.Data) == 0 {
		if m.Reply != "" {
			m.Respond(nil)
		}
		return
	}
	var in broker.Interrupt
	if broker.Decode(m.Data, &in) != nil {
		return
	}
	w.mu.Lock()
	runs := w.running[chunkKey{in.Executor, in.Chunk}]
	for _, r := range runs {
		if r.grant == in.Grant {
			r.interrupt(in.Seq)
		}
	}
	w.mu.Unlock()
}
