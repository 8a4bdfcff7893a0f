// Package worker is the worker runtime: it pulls chunks of the kinds it has
// handlers for from a pool's JetStream consumers, asks their producer for
// leave to start them, runs them with bounded concurrency, keeps them alive
// with heartbeats and sends the results back. A chunk of a named job asks
// no producer: the job's records in JetStream decide its start, and its
// results are stored there (job.go). See broker/wire for the protocol.
//
// A running worker can be observed three ways: its Prometheus metrics
// ([Worker.Collector]), its readiness ([Worker.Ready]), and its NATS service
// registration under [ServiceName], whose status endpoint
// ([Worker.StatusSubject]) and $SRV.STATS replies carry a [Status]. A handler's
// context carries the producer's trace span context when the chunk has a W3C
// traceparent header.
//
// A whole worker program, with the flags and environment variables of
// cmd/worker, its HTTP endpoints, logs and drain on SIGTERM, is one call:
// [Main].
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
	"github.com/jetpool/jetpool/broker/wire"
	"github.com/jetpool/jetpool/task"
)

// ErrRunning is returned by Run on a worker that is already running.
var ErrRunning = errors.New("worker: already running")

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
	jobs    *broker.JobStore
	vals    *broker.LazyValues // the pool's values bucket

	mu      sync.Mutex
	running map[chunkKey][]*chunkRun // granted chunks, for interrupts
	silent  map[string]time.Time     // producers not answering, by start subject, since when
	// pullsStopped is closed once the running Run's pullers have stopped,
	// set as Run begins: a chunk that goes back unstarted on a drain waits
	// for it, so that the stream hands it to another worker, not to a
	// puller of this one that is still closing.
	pullsStopped chan struct{}
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
		jobs:       broker.NewJobStore(nc, js, subj),
		vals:       broker.NewLazyValues(js, subj, cfg.PoolConfig),
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

// source is one kind's consumer.
type source struct {
	kind string
	// ackWait and maxDeliver are the consumer's own, which rule
	// redelivery even when this worker was configured with others;
	// maxDeliver is 0 for a consumer that delivers without a limit.
	ackWait    time.Duration
	maxDeliver int
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

	// slots bounds the chunks held at once across kinds; a dispatcher takes a
	// slot before it pulls, so no message waits client-side for a slot.
	slots := newSlotPool(w.cfg.Concurrency)
	var chunks, pullers sync.WaitGroup
	pullsStopped := make(chan struct{})
	w.pullsStopped = pullsStopped
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
	close(pullsStopped)
	w.log.Info("worker draining", "in_flight", w.metrics.stats().InFlight)
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
		sources[i] = source{kind: k, ackWait: w.cfg.PoolConfig.AckWait, maxDeliver: w.cfg.PoolConfig.MaxDeliver}
		if info := c.CachedInfo(); info != nil {
			if info.Config.AckWait > 0 {
				sources[i].ackWait = info.Config.AckWait
			}
			sources[i].maxDeliver = max(info.Config.MaxDeliver, 0)
		}
	}
	return sources, nil
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
// An interrupt naming a named job's chunk this worker runs only makes it
// read the chunk's interrupt record, which only the job's owner may write
// (see checkInterrupts). Anything else is ignored.
//
// A request is a producer's probe (see package wire): an empty one, a
// check that the worker is still there, is answered with an empty reply; a
// wire.Probe with the chunks of the producer's that the worker still runs.
func (w *Worker) onInterrupt(m *nats.Msg) {
	if m.Reply != "" {
		w.answerProbe(m)
		return
	}
	var in wire.Interrupt
	if wire.Decode(m.Data, &in) != nil {
		return
	}
	w.mu.Lock()
	runs := w.running[chunkKey{in.Executor, in.Chunk}]
	for _, r := range runs {
		if in.Grant != 0 && r.grant == in.Grant {
			r.interrupt(in.Seq)
		}
	}
	named := slices.Clone(w.running[chunkKey{jobKeyPrefix + in.Executor, in.Chunk}])
	w.mu.Unlock()
	for _, r := range named {
		r.checkInterrupts()
	}
}

// answerProbe answers a producer's probe with the grants, of the attempts
// it names, that the worker runs or is still asking to start: a chunk is
// registered from its first start request until its final result is sent,
// or queued behind another send to the same producer (see resultSender),
// which publishes it within moments; the producer acts only on two answers
// a second apart that leave an attempt out.
func (w *Worker) answerProbe(m *nats.Msg) {
	if len(m.Data) == 0 {
		m.Respond(nil)
		return
	}
	var p wire.Probe
	if wire.Decode(m.Data, &p) != nil {
		return
	}
	reply := wire.ProbeReply{Grants: []uint64{}}
	w.mu.Lock()
	for i, id := range p.Chunks {
		for _, r := range w.running[chunkKey{p.Executor, id}] {
			if r.grant == p.Grants[i] || r.grant == 0 {
				reply.Grants = append(reply.Grants, p.Grants[i])
				break
			}
		}
	}
	w.mu.Unlock()
	if data, err := wire.Encode(&reply); err == nil {
		m.Respond(data)
	}
}
