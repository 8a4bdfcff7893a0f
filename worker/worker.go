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

	inbox string // where interrupts and status requests come

	serving atomic.Bool
	ready   atomic.Bool // pulling, not draining
	metrics *metrics
	starts  *startBatcher
	results *resultSender

	mu      sync.Mutex
	running map[chunkKey][]*chunkRun // granted chunks, for interrupts
	silent  map[string]time.Time     // producers not answering, since when

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
		inbox:   subj.WorkerInbox(cfg.ID),
		log:     log,
		metrics: newMetrics(subj.Pool(), cfg.Kinds),
		starts:  newStartBatcher(nc),
		results: newResultSender(nc, log),
		running: make(map[chunkKey][]*chunkRun),
		silent:  make(map[string]time.Time),
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
	inbox, err := w.nc.Subscribe(w.inbox, w.onInterrupt)
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
	slots := make(chan struct{}, w.cfg.Concurrency)
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

// maxHeld bounds the chunks of one kind a worker holds, fetched and kept
// alive with InProgress, while its slots are busy.
const maxHeld = 8

// pull fetches chunks of one kind and runs them while holding one of the
// shared slots, until ctx ends. Besides the chunks it runs, it holds a few
// more (a quarter of its slots, at most maxHeld), fetched ahead and kept
// alive with InProgress: a goroutine that ends a chunk takes the next held
// one with the same slot, so a busy kind never waits for the server between
// chunks. It asks for as many chunks as it has free slots and room to hold,
// one request at a time, with no-wait requests the server answers at once,
// and keeps the free slots it asked for until the request ends, so that two
// kinds never ask for the same slot; only when the stream ran dry and it
// holds nothing does it long-poll, for a single chunk and holding no slot,
// so an idle kind never claims capacity a busy one could use.
func (w *Worker) pull(ctx context.Context, src source, slots chan struct{}, chunks *sync.WaitGroup) {
	p, err := newPuller(w.nc, jetstream.DefaultAPIPrefix, w.subj.Stream(), w.subj.Consumer(src.kind))
	if err != nil {
		w.log.Error("worker: cannot pull", "kind", src.kind, "err", err)
		return
	}
	held := &heldChunks{taken: make(chan struct{}, 1)}
	defer func() {
		for _, m := range append(held.drain(), p.close()...) {
			m.Nak()
		}
	}()
	// run handles msg and then held chunks with the slot it holds.
	run := func(msg *nats.Msg) {
		if ctx.Err() != nil {
			// Fetched as the drain began: leave it to another worker.
			msg.Nak()
			<-slots
			return
		}
		chunks.Go(func() {
			defer func() { <-slots }()
			for msg != nil {
				w.handle(ctx, src, msg)
				if msg = nil; ctx.Err() == nil {
					msg = held.pop()
				}
			}
		})
	}
	// runHeld runs the oldest held chunk with a slot just taken, or gives the
	// slot back if a running chunk's goroutine took them all meanwhile.
	runHeld := func() {
		if m := held.pop(); m != nil {
			run(m)
		} else {
			<-slots
		}
	}
	trySlot := func() bool {
		select {
		case slots <- struct{}{}:
			return true
		default:
			return false
		}
	}
	hold := min(max(w.cfg.Concurrency/4, 1), maxHeld)
	beat := time.NewTicker(src.ackWait / 3)
	defer beat.Stop()
	lost := time.NewTimer(lostAfter)
	defer lost.Stop()
	// reserved are free slots taken for the chunks the request in flight
	// asks for, so that other kinds do not ask for them too.
	reserved := 0
	release := func() {
		for ; reserved > 0; reserved-- {
			<-slots
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
			case held.len() == 0 && trySlot():
				run(m)
			default:
				held.push(m)
			}
		}
		if !p.inFlight() {
			release()
		}
		for held.len() > 0 && trySlot() {
			runHeld()
		}
		if err != nil {
			w.log.Debug("worker: fetch", "kind", src.kind, "err", err)
			sleep(ctx, 100*time.Millisecond)
		} else if !p.inFlight() {
			var wait time.Duration
			if p.idle && held.len() == 0 {
				// Nothing to run and nothing queued: wait for one chunk,
				// holding no slot.
				wait = time.Second
			} else {
				for reserved < w.cfg.Concurrency && trySlot() {
					reserved++
				}
			}
			if want := reserved + hold - held.len(); want > 0 {
				if wait > 0 {
					want = 1
				}
				if err := p.request(want, wait); err != nil {
					release()
					w.log.Debug("worker: fetch", "kind", src.kind, "err", err)
					sleep(ctx, 100*time.Millisecond)
					continue
				}
				lost.Reset(time.Until(p.lost))
			}
		}
		// A slot to wait for only while something waits for one.
		var slot chan struct{}
		if held.len() > 0 {
			slot = slots
		}
		select {
		case <-p.signal:
		case slot <- struct{}{}:
			runHeld()
		case <-held.taken:
			// A running chunk's goroutine took a held one: fetch another.
		case <-beat.C:
			held.each(func(m *nats.Msg) { m.InProgress() })
		case <-lost.C:
		case <-ctx.Done():
		}
	}
}

// heldChunks are one kind's fetched chunks waiting for a slot.
type heldChunks struct {
	mu    sync.Mutex
	msgs  []*nats.Msg
	taken chan struct{} // a chunk was popped
}

func (h *heldChunks) len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.msgs)
}

func (h *heldChunks) push(msgs ...*nats.Msg) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs = append(h.msgs, msgs...)
}

// pop returns the oldest held chunk, nil if there is none.
func (h *heldChunks) pop() *nats.Msg {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.msgs) == 0 {
		return nil
	}
	m := h.msgs[0]
	h.msgs[0] = nil
	h.msgs = h.msgs[1:]
	select {
	case h.taken <- struct{}{}:
	default:
	}
	return m
}

func (h *heldChunks) each(f func(*nats.Msg)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range h.msgs {
		f(m)
	}
}

// drain removes and returns every held chunk.
func (h *heldChunks) drain() []*nats.Msg {
	h.mu.Lock()
	defer h.mu.Unlock()
	msgs := h.msgs
	h.msgs = nil
	return msgs
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
// task that has not begun from beginning. Anything else is ignored.
func (w *Worker) onInterrupt(m *nats.Msg) {
	var in broker.Interrupt
	if err := checkLengths(m.Data); err != nil {
		return
	}
	if broker.Decode(m.Data, &in) != nil {
		return
	}
	w.mu.Lock()
	runs := w.running[chunkKey{in.Executor, in.Chunk}]
	for _, r := range runs {
		r.interrupt(in.Seq)
	}
	w.mu.Unlock()
}
