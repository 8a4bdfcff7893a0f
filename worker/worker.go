// Package worker is the worker runtime: it pulls chunks of the kinds it has
// handlers for from a pool's JetStream consumers, asks their producer for
// leave to start them, runs them with bounded concurrency, keeps them alive
// with heartbeats and sends the results back. See broker/wire.go for the
// protocol.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/task"
)

// ErrInvalidConfig is matched by errors for Config values out of range.
var ErrInvalidConfig = errors.New("worker: invalid config")

// Config configures a [Worker]. Every zero field means its documented default.
type Config struct {
	// Prefix of the pool's subjects; default broker.DefaultPrefix.
	Prefix string
	// Pool to serve; default broker.DefaultPool.
	Pool string
	// ID names the worker in results and logs: letters, digits, '-' and '_'.
	// Default: host name, pid and a random suffix.
	ID string
	// Concurrency is how many chunks run at once across all kinds; default
	// GOMAXPROCS.
	Concurrency int
	// Kinds to serve, a subset of the registry's; default all of them.
	Kinds []string
	// PoolConfig provisions the stream and consumers if they do not exist,
	// and sets the grace period for producers that do not answer.
	PoolConfig broker.PoolConfig
	// Retry says how handler errors marked task.Retryable are retried;
	// default: not at all.
	Retry task.RetryPolicy
	// Logger receives the worker's logs; default slog.Default().
	Logger *slog.Logger
	// ResultInterval is how often results of a long chunk are sent before it
	// ends; default 100ms.
	ResultInterval time.Duration
}

// Stats counts what a worker did. All counters only grow, but InFlight.
type Stats struct {
	ChunksStarted    int64 // chunks the producer let this worker run
	ChunksDropped    int64 // chunks the producer said to drop (cancelled or done)
	ChunksTerminated int64 // malformed, expired, or their producer gone
	ChunksBusy       int64 // chunks another live attempt held
	Redelivered      int64 // chunks delivered more than once
	TasksSucceeded   int64
	TasksFailed      int64
	TasksRetried     int64
	InFlight         int64 // chunks running now
}

// Worker serves a pool. Create it with [New] and run it with [Worker.Run].
type Worker struct {
	nc    *nats.Conn
	js    jetstream.JetStream
	reg   *task.Registry
	cfg   Config
	subj  broker.Subjects
	log   *slog.Logger
	kinds []string

	mu      sync.Mutex
	running map[runKey]context.CancelFunc // interruptible tasks
	silent  map[string]time.Time          // producers not answering, since when

	stats struct {
		started, dropped, terminated, busy, redelivered atomic.Int64
		succeeded, failed, retried, inflight            atomic.Int64
	}
}

type runKey struct {
	executor string
	chunk    uint64
	seq      uint32
}

// New checks cfg and returns a worker serving reg's handlers over nc. It starts
// nothing; see Run.
func New(nc *nats.Conn, reg *task.Registry, cfg Config) (*Worker, error) {
	if nc == nil || reg == nil {
		return nil, fmt.Errorf("%w: nil connection or registry", ErrInvalidConfig)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = broker.DefaultPrefix
	}
	if cfg.Pool == "" {
		cfg.Pool = broker.DefaultPool
	}
	subj, err := broker.NewSubjects(cfg.Prefix, cfg.Pool)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	if cfg.ID == "" {
		cfg.ID = defaultID()
	} else if err := task.ValidateKind(cfg.ID); err != nil {
		return nil, fmt.Errorf("%w: id %q: letters, digits, '-' and '_' only", ErrInvalidConfig, cfg.ID)
	}
	if cfg.Concurrency < 0 {
		return nil, fmt.Errorf("%w: concurrency %d", ErrInvalidConfig, cfg.Concurrency)
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = runtime.GOMAXPROCS(0)
	}
	if err := cfg.PoolConfig.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	cfg.PoolConfig = cfg.PoolConfig.WithDefaults()
	if cfg.ResultInterval <= 0 {
		cfg.ResultInterval = 100 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	kinds := cfg.Kinds
	if len(kinds) == 0 {
		kinds = reg.Kinds()
	}
	for _, k := range kinds {
		if _, ok := reg.Lookup(k); !ok {
			return nil, fmt.Errorf("%w: no handler for kind %q", ErrInvalidConfig, k)
		}
	}
	if len(kinds) == 0 {
		return nil, fmt.Errorf("%w: no kinds to serve", ErrInvalidConfig)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("worker: jetstream: %w", err)
	}
	return &Worker{
		nc: nc, js: js, reg: reg, cfg: cfg, subj: subj, kinds: kinds,
		log:     cfg.Logger.With("worker", cfg.ID),
		running: make(map[runKey]context.CancelFunc),
		silent:  make(map[string]time.Time),
	}, nil
}

func defaultID() string {
	host, _ := os.Hostname()
	var b strings.Builder
	for _, r := range host {
		if r < 128 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			b.WriteRune(r)
		}
	}
	h := b.String()
	if h == "" {
		h = "worker"
	}
	if len(h) > 32 {
		h = h[:32]
	}
	n := nuid.Next()
	return h + "-" + strconv.Itoa(os.Getpid()) + "-" + n[len(n)-6:]
}

// ID returns the worker's id.
func (w *Worker) ID() string { return w.cfg.ID }

// Kinds returns the kinds the worker serves.
func (w *Worker) Kinds() []string { return append([]string(nil), w.kinds...) }

// Stats returns a snapshot of the worker's counters.
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

// Run provisions the pool's stream and the consumers of the worker's kinds
// if they are missing (retrying while the broker is not ready), then serves
// until ctx ends. Then it drains: it stops pulling, lets the running chunks
// finish (their handlers' contexts are not cancelled) and sends their
// results, and returns nil. It returns an error only if it cannot subscribe.
func (w *Worker) Run(ctx context.Context) error {
	consumers, err := w.provision(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped before it served
		}
		return err
	}
	inbox, err := w.nc.Subscribe(w.subj.WorkerInbox(w.cfg.ID), w.onInterrupt)
	if err != nil {
		return fmt.Errorf("worker: subscribe interrupts: %w", err)
	}
	defer inbox.Unsubscribe()

	// slots bounds the chunks running at once across kinds; a puller takes a
	// slot before it pulls, so no message waits client-side for a slot.
	slots := make(chan struct{}, w.cfg.Concurrency)
	var chunks sync.WaitGroup
	var pullers sync.WaitGroup
	for i, c := range consumers {
		pullers.Add(1)
		go func() {
			defer pullers.Done()
			w.pull(ctx, w.kinds[i], c, slots, &chunks)
		}()
	}
	w.log.Info("worker serving", "pool", w.subj.Pool(), "kinds", w.kinds, "concurrency", w.cfg.Concurrency)
	pullers.Wait()
	chunks.Wait()
	return nil
}

// provision makes sure the pool's stream and the consumers of w's kinds
// exist. A broker that is not ready yet (a cluster still electing, a server
// still starting) is retried with backoff until ctx ends, so workers may start
// before their brokers.
func (w *Worker) provision(ctx context.Context) ([]jetstream.Consumer, error) {
	backoff := 100 * time.Millisecond
	for {
		consumers, err := w.provisionOnce(ctx)
		if err == nil || ctx.Err() != nil {
			return consumers, err
		}
		w.log.Warn("worker: provisioning failed; retrying", "err", err, "in", backoff)
		sleep(ctx, backoff)
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (w *Worker) provisionOnce(ctx context.Context) ([]jetstream.Consumer, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := broker.EnsureStream(ctx, w.js, w.subj, w.cfg.PoolConfig); err != nil {
		return nil, err
	}
	consumers := make([]jetstream.Consumer, len(w.kinds))
	for i, k := range w.kinds {
		c, err := broker.EnsureConsumer(ctx, w.js, w.subj, k, w.cfg.PoolConfig)
		if err != nil {
			return nil, err
		}
		consumers[i] = c
	}
	return consumers, nil
}

// pull fetches chunks of one kind and runs each in its own goroutine while
// holding one of the shared slots, until ctx ends. When slots are free it
// fetches as many chunks as there are free slots, without waiting; when the
// stream is empty or the slots are taken it long-polls for a single chunk
// without holding a slot, so one busy kind never starves another.
func (w *Worker) pull(ctx context.Context, kind string, c jetstream.Consumer, slots chan struct{}, chunks *sync.WaitGroup) {
	dispatch := func(msg jetstream.Msg) {
		chunks.Add(1)
		go func() {
			defer chunks.Done()
			defer func() { <-slots }()
			w.handle(kind, msg)
		}()
	}
	for ctx.Err() == nil {
		n := 0
	grab:
		for n < w.cfg.Concurrency {
			select {
			case slots <- struct{}{}:
				n++
			default:
				break grab
			}
		}
		if n > 0 {
			got := 0
			if batch, err := c.FetchNoWait(n); err == nil {
				for msg := range batch.Messages() {
					got++
					dispatch(msg)
				}
			}
			for range n - got {
				<-slots
			}
			if got > 0 {
				continue
			}
		}
		batch, err := c.Fetch(1, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			if ctx.Err() == nil {
				w.log.Debug("worker: fetch", "kind", kind, "err", err)
				sleep(ctx, 100*time.Millisecond)
			}
			continue
		}
		for msg := range batch.Messages() {
			if !w.waitSlot(ctx, msg, slots) {
				msg.Nak()
				continue
			}
			dispatch(msg)
		}
	}
}

// waitSlot takes a slot for msg, keeping msg alive with InProgress while all
// slots are busy. It reports false if ctx ended first.
func (w *Worker) waitSlot(ctx context.Context, msg jetstream.Msg, slots chan struct{}) bool {
	t := time.NewTicker(w.cfg.PoolConfig.AckWait / 3)
	defer t.Stop()
	for {
		select {
		case slots <- struct{}{}:
			return true
		case <-ctx.Done():
			return false
		case <-t.C:
			msg.InProgress()
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func (w *Worker) onInterrupt(m *nats.Msg) {
	var in broker.Interrupt
	if broker.Decode(m.Data, &in) != nil {
		return
	}
	w.mu.Lock()
	cancel := w.running[runKey{in.Executor, in.Chunk, in.Seq}]
	w.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}
