package executor

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/jetpool/jetpool/broker"
)

// ErrDisconnected fails the futures of a NATS executor that was cut off from
// the broker for longer than the pool's grace period.
var ErrDisconnected = errors.New("executor: cut off from the broker for longer than the grace period")

// NATS runs tasks on worker processes reached through NATS JetStream. It
// publishes chunks to the pool's stream and is the only arbiter of its
// futures: a worker must ask it before starting a chunk, which makes Cancel
// and Running exact across hosts, and each future is set once however often
// a chunk is delivered. The work of a named job ([NATS.Job]) is arbitrated
// in JetStream instead, so that it outlives the producer. Create it with
// [NewNATS].
type NATS struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	stream  jetstream.Stream
	subj    broker.Subjects
	tasks   sync.Map // kind -> its tasks subject, built once
	pc      broker.PoolConfig
	log     *slog.Logger
	id      string
	control string
	acks    string // the prefix of the ack subjects of the pool's stream

	mu     sync.Mutex
	chunks map[uint64]*remoteChunk
	bySeq  map[uint64]*remoteChunk // chunks by stream sequence, once the stream took them
	purge  []uint64                // stream sequences of chunks to remove at the end (see settle)
	// unacked holds the ids of chunks that settle found to purge before
	// their PubAck said where the stream keeps them.
	unacked  map[uint64]struct{}
	ackedOne chan struct{} // told when an id leaves unacked
	rng      *rand.ChaCha8 // chunk ids and grants; seeded from crypto/rand
	closed   bool
	// valueOps counts the reads and removals of values under way (see
	// values.go); none starts once valuesDone is set.
	valueOps   sync.WaitGroup
	valuesDone bool
	stopOnce   sync.Once

	// forged counts start requests, leases and results that no grant of
	// this executor backs: a forger's, or a worker's holding a copy of a
	// chunk that is not the one published.
	forged atomic.Int64
	// noDelete is set once the server refused to delete a chunk that
	// reached MaxDeliver.
	noDelete atomic.Bool

	coalesce *coalescer // nil unless NATSAutoBatch

	vals *broker.LazyValues // the pool's values bucket

	owner       string           // the owner of the executor's named jobs
	jobsMu      sync.Mutex       // guards jobs and store
	jobs        map[string]*Job  // the named jobs attached, by name
	store       *broker.JobStore // nil until first used
	provisioned bool             // the jobs bucket is known to exist

	subs     []*nats.Subscription
	results  *nats.Subscription // of subs, the results' (see probeWorkers)
	stop     chan struct{}      // closed when closed and every chunk is settled
	finished chan struct{}      // closed when the executor's goroutines are gone
}

// NewNATS returns an executor publishing to a pool over nc, creating the
// pool's stream if needed. The executor does not own nc: close it after
// Shutdown. It fails with ErrInvalidOption for a bad option or with the
// broker's error if the stream cannot be provisioned; without a deadline on
// ctx, provisioning gives up after provisionTimeout.
func NewNATS(ctx context.Context, nc *nats.Conn, opts ...NATSOption) (*NATS, error) {
	cfg := defaultNATSConfig()
	for _, o := range opts {
		if err := o.applyNATS(&cfg); err != nil {
			return nil, err
		}
	}
	return newNATS(ctx, nc, cfg)
}

func defaultNATSConfig() NATSConfig {
	return NATSConfig{prefix: broker.DefaultPrefix, pool: broker.DefaultPool, log: slog.Default()}
}

// newNATS is NewNATS with its options applied.
func newNATS(ctx context.Context, nc *nats.Conn, cfg NATSConfig) (*NATS, error) {
	subj, err := broker.NewSubjects(cfg.prefix, cfg.pool)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidOption, err)
	}
	id := nuid.Next()
	if cfg.name != "" {
		id = cfg.name + "." + id
	}
	var seed [32]byte
	crand.Read(seed[:])
	owner := cfg.name
	if owner == "" {
		owner = broker.DefaultOwner
	}
	n := &NATS{
		nc: nc, subj: subj, pc: cfg.pc.WithDefaults(), log: cfg.log, owner: owner, jobs: make(map[string]*Job),
		id: id, control: subj.Control(id), acks: "$JS.ACK." + subj.Stream() + ".",
		chunks:   make(map[uint64]*remoteChunk),
		bySeq:    make(map[uint64]*remoteChunk),
		unacked:  make(map[uint64]struct{}),
		ackedOne: make(chan struct{}, 1),
		rng:      rand.NewChaCha8(seed),
		stop:     make(chan struct{}),
		finished: make(chan struct{}),
	}
	jsOpts := []jetstream.JetStreamOpt{jetstream.WithPublishAsyncErrHandler(n.onPublishError),
		jetstream.WithPublishAsyncAckHandler(n.onPublishAck),
		jetstream.WithPublishAsyncTimeout(publishTimeout)}
	if cfg.autoBatch > 0 {
		n.coalesce = newCoalescer(n, cfg.autoBatch)
	}
	js, err := jetstream.New(nc, jsOpts...)
	if err != nil {
		return nil, fmt.Errorf("executor: jetstream: %w", err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, provisionTimeout)
		defer cancel()
	}
	if n.stream, err = broker.EnsureStream(ctx, js, subj, cfg.pc); err != nil {
		return nil, err
	}
	n.js = js
	n.vals = broker.NewLazyValues(js, subj, n.pc)
	for _, s := range []struct {
		subject string
		fn      nats.MsgHandler
	}{
		{n.control + broker.StartSuffix, n.onStart},
		{n.control + broker.ResultSuffix, n.onResult},
		{n.control + broker.LeaseSuffix, n.onLease},
		{subj.MaxDeliveriesAdvisory(), n.onMaxDeliveries},
		{subj.Cancel(), n.onCancel},
	} {
		sub, err := nc.Subscribe(s.subject, s.fn)
		if err != nil {
			n.unsubscribe()
			return nil, fmt.Errorf("executor: subscribe %s: %w", s.subject, err)
		}
		sub.SetPendingLimits(-1, -1)
		n.subs = append(n.subs, sub)
		if s.subject == n.control+broker.ResultSuffix {
			n.results = sub
		}
	}
	if err := nc.Flush(); err != nil {
		n.unsubscribe()
		return nil, fmt.Errorf("executor: flush subscriptions: %w", err)
	}
	go n.run()
	return n, nil
}

// provisionTimeout bounds NewNATS's provisioning when its context has no
// deadline: longer than the broker client's default of 5 s per request, which
// a busy server's first file-backed stream can take.
const provisionTimeout = 30 * time.Second

// ID is the executor's id, unique per executor; workers see it in chunks.
func (n *NATS) ID() string { return n.id }

// run owns the executor's background work: watching the connection and the
// workers that run its chunks (see probeWorkers). It exits once the executor
// is shut down and every chunk is settled, having removed from the stream
// the chunks that Shutdown cancelled before any worker started them.
func (n *NATS) run() {
	defer close(n.finished)
	defer n.unsubscribe()
	if n.coalesce != nil {
		var flusher sync.WaitGroup
		flusher.Go(func() { n.coalesce.run(n.stop) })
		defer flusher.Wait()
	}
	tick := time.NewTicker(min(n.pc.Grace/4, time.Second))
	defer tick.Stop()
	var cutOff time.Time
	probes := newProbes() // see probeWorkers
	for {
		select {
		case <-n.stop:
			n.awaitPubAcks()
			n.purgeCancelled()
			n.awaitValues()
			return
		case now := <-tick.C:
			if n.nc.Status() == nats.CONNECTED {
				cutOff = time.Time{}
				n.probeWorkers(now, probes)
				continue
			}
			if cutOff.IsZero() {
				cutOff = now
			} else if now.Sub(cutOff) > n.pc.Grace {
				n.failAll(fmt.Errorf("%w (%v)", ErrDisconnected, n.pc.Grace))
			}
		}
	}
}

// purgeCancelled removes from the stream the chunks that settle found
// cancelled after Shutdown before any worker started them, so that no
// worker waits for the verdict of a producer that is gone. It spends at most
// a few seconds; what it cannot remove, workers drop once the grace period
// has passed.
func (n *NATS) purgeCancelled() {
	n.mu.Lock()
	seqs := n.purge
	n.purge = nil
	n.mu.Unlock()
	if len(seqs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), purgeTimeout)
	defer cancel()
	for _, seq := range seqs {
		if err := n.stream.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			n.log.Debug("executor: remove a cancelled chunk", "seq", seq, "err", err)
			if ctx.Err() != nil {
				return
			}
		}
	}
}

// awaitPubAcks waits, at most purgeTimeout, until the PubAcks of the chunks
// in unacked are in, so that purgeCancelled knows where those chunks are.
func (n *NATS) awaitPubAcks() {
	t := time.NewTimer(purgeTimeout)
	defer t.Stop()
	for {
		n.mu.Lock()
		waiting := len(n.unacked) > 0
		n.mu.Unlock()
		if !waiting {
			return
		}
		select {
		case <-n.ackedOne:
		case <-t.C:
			return
		}
	}
}

// purgeTimeout bounds purgeCancelled.
const purgeTimeout = 5 * time.Second

// unsubscribe ends the executor's subscriptions and waits until the server
// has them, so that a worker asking to start a chunk after Shutdown returned
// meets no responders at once instead of a request nobody answers.
func (n *NATS) unsubscribe() {
	for _, s := range n.subs {
		s.Unsubscribe()
	}
	n.nc.FlushTimeout(time.Second)
}

// Shutdown implements [Executor.Shutdown]. The executor keeps listening for
// results until every outstanding future is done, then releases its
// subscriptions; it never closes the connection it was given.
func (n *NATS) Shutdown(ctx context.Context, wait, cancelFutures bool) error {
	if n.coalesce != nil {
		n.coalesce.close()
	}
	n.mu.Lock()
	n.closed = true
	var all []*remoteChunk
	if cancelFutures {
		for _, rc := range n.chunks {
			all = append(all, rc)
		}
	}
	done := len(n.chunks) == 0
	n.mu.Unlock()
	for _, rc := range all {
		for i := range rc.b.calls {
			rc.b.calls[i].s.cancel()
		}
	}
	if done {
		n.stopOnce.Do(func() { close(n.stop) })
	}
	n.jobsMu.Lock()
	jobs := make([]*Job, 0, len(n.jobs))
	for _, j := range n.jobs {
		jobs = append(jobs, j)
	}
	n.jobsMu.Unlock()
	for _, j := range jobs {
		j.Shutdown(ctx, false, cancelFutures)
	}
	if !wait {
		return nil
	}
	for _, j := range jobs {
		select {
		case <-j.finished:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	select {
	case <-n.finished:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
