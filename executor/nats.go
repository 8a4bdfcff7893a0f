package executor

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
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

// ErrDisconnected fails the futures of a NATS executor that was cut off from
// the broker for longer than the pool's grace period.
var ErrDisconnected = errors.New("executor: cut off from the broker for longer than the grace period")

// NATSOption configures [NewNATS].
type NATSOption func(*natsConfig) error

type natsConfig struct {
	prefix, pool string
	name         string // "": none
	pc           broker.PoolConfig
	log          *slog.Logger
	autoBatch    int // 0: off
}

// WithPool names the pool to submit to; the default is broker.DefaultPool.
func WithPool(name string) NATSOption {
	return func(c *natsConfig) error { c.pool = name; return nil }
}

// WithPrefix sets the subject prefix; the default is broker.DefaultPrefix.
func WithPrefix(prefix string) NATSOption {
	return func(c *natsConfig) error { c.prefix = prefix; return nil }
}

// WithPoolConfig sets the pool's stream settings, lease and grace period;
// workers of the pool should use the same.
func WithPoolConfig(pc broker.PoolConfig) NATSOption {
	return func(c *natsConfig) error {
		if err := pc.Validate(); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidOption, err)
		}
		c.pc = pc
		return nil
	}
}

// WithName makes the executor's ID name.<random> instead of <random>, and so
// its control subjects <prefix>.<pool>.ctl.<name>.<random>.*: a server can
// then let each producer user subscribe only to its own control subjects
// (docs/security.conf), so that no other producer of the pool can read or
// answer its workers. name is a token like a pool name: letters, digits,
// '-' and '_'.
func WithName(name string) NATSOption {
	return func(c *natsConfig) error {
		if err := task.ValidateKind(name); err != nil {
			return fmt.Errorf("%w: name: %v", ErrInvalidOption, err)
		}
		c.name = name
		return nil
	}
}

// WithLogger sets where the executor logs; the default is slog.Default().
func WithLogger(l *slog.Logger) NATSOption {
	return func(c *natsConfig) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", ErrInvalidOption)
		}
		c.log = l
		return nil
	}
}

// NATS runs tasks on worker processes reached through NATS JetStream. It
// publishes chunks to the pool's stream and is the only arbiter of its
// futures: a worker must ask it before starting a chunk, which makes Cancel
// and Running exact across hosts, and each future is set once however often
// a chunk is delivered. Create it with [NewNATS].
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

	mu       sync.Mutex
	chunks   map[uint64]*remoteChunk
	bySeq    map[uint64]*remoteChunk // chunks by stream sequence, once the stream took them
	purge    []uint64                // stream sequences of chunks to remove at the end (see settle)
	rng      *rand.ChaCha8           // chunk ids and grants; seeded from crypto/rand
	closed   bool
	stopOnce sync.Once

	// forged counts start requests, leases and results that no grant of
	// this executor backs: a forger's, or a worker's holding a copy of a
	// chunk that is not the one published.
	forged atomic.Int64
	// noDelete is set once the server refused to delete a chunk that
	// reached MaxDeliver.
	noDelete atomic.Bool

	coalesce *coalescer // nil unless WithAutoBatch

	subs     []*nats.Subscription
	stop     chan struct{} // closed when closed and every chunk is settled
	finished chan struct{} // closed when the executor's goroutines are gone
}

// remoteChunk is the producer's record of a published chunk. Its fields but
// left are guarded by NATS.mu.
type remoteChunk struct {
	n       *NATS
	id      uint64
	b       *batch
	digest  [sha256.Size]byte // of the message published; a Start must name it
	seq     uint64            // the stream's sequence of it; 0 until its PubAck is in
	left    atomic.Int64      // futures not yet done
	started bool
	attempt attempt  // the latest granted attempt
	grants  []uint64 // every attempt's grant, the latest last
	goItems []uint32
	lease   time.Time // the current attempt's lease ends then; zero once it ended
	timer   *time.Timer
	lost    time.Time   // when a publish of it first failed in a way that may not be final
	retry   *time.Timer // the next publish of it, after such a failure
}

// granted reports whether g is the grant of one of rc's attempts; NATS.mu
// is held.
func (rc *remoteChunk) granted(g uint64) bool {
	return g != 0 && slices.Contains(rc.grants, g)
}

// stopTimers stops rc's deadline and its next publish; NATS.mu is held.
func (rc *remoteChunk) stopTimers() {
	if rc.timer != nil {
		rc.timer.Stop()
	}
	if rc.retry != nil {
		rc.retry.Stop()
	}
}

// attempt is one delivery of a chunk to one worker, as granted.
type attempt struct {
	worker   string
	delivery uint64
	inbox    string
	ack      string // the delivery's JetStream ack subject; "" if it was not one of this pool's
	grant    uint64
	since    time.Time
}

// maxGrants bounds the grants a chunk remembers: results of attempts older
// than that many are ignored.
const maxGrants = 16

// NewNATS returns an executor publishing to a pool over nc, creating the
// pool's stream if needed. The executor does not own nc: close it after
// Shutdown. It fails with ErrInvalidOption for a bad option or with the
// broker's error if the stream cannot be provisioned.
func NewNATS(ctx context.Context, nc *nats.Conn, opts ...NATSOption) (*NATS, error) {
	cfg := natsConfig{prefix: broker.DefaultPrefix, pool: broker.DefaultPool, log: slog.Default()}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	subj, err := broker.NewSubjects(cfg.prefix, cfg.pool)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidOption, err)
	}
	id := nuid.Next()
	if cfg.name != "" {
		id = cfg.name + "." + id
	}
	var seed [32]byte
	crand.Read(seed[:])
	n := &NATS{
		nc: nc, subj: subj, pc: cfg.pc.WithDefaults(), log: cfg.log,
		id: id, control: subj.Control(id), acks: "$JS.ACK." + subj.Stream() + ".",
		chunks:   make(map[uint64]*remoteChunk),
		bySeq:    make(map[uint64]*remoteChunk),
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
	if n.stream, err = broker.EnsureStream(ctx, js, subj, cfg.pc); err != nil {
		return nil, err
	}
	n.js = js
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
	}
	if err := nc.Flush(); err != nil {
		n.unsubscribe()
		return nil, fmt.Errorf("executor: flush subscriptions: %w", err)
	}
	go n.run()
	return n, nil
}

// ID is the executor's id, unique per executor; workers see it in chunks.
func (n *NATS) ID() string { return n.id }

func (n *NATS) enqueue(ctx context.Context, b *batch) error {
	if err := task.ValidateKind(b.codec.Kind); err != nil {
		return err
	}
	if n.coalesce != nil && b.submit {
		return n.coalesce.add(ctx, b)
	}
	_, err := n.publish(ctx, b, nil)
	return err
}

// publish sends b as one chunk and returns the chunk's id, calling onID, if
// set, with the id before the chunk goes out. On error nothing was published
// and no future of b was resolved.
func (n *NATS) publish(ctx context.Context, b *batch, onID func(uint64)) (uint64, error) {
	items, err := encodeArgs(b)
	if err != nil {
		return 0, err
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return 0, ErrShutdown
	}
	rc := &remoteChunk{n: n, id: n.newChunkID(), b: b}
	rc.left.Store(int64(len(b.calls)))
	n.mu.Unlock()

	data, err := broker.Encode(&broker.Chunk{
		Executor: n.id, ID: rc.id, Kind: b.codec.Kind, Control: n.control,
		Deadline: broker.WireDeadline(b.deadline), Items: items,
	})
	if err != nil {
		return 0, err
	}
	rc.digest = broker.Digest(data)
	// Leave room for the headers.
	if limit := n.nc.MaxPayload() - 256; int64(len(data)) > limit {
		return 0, fmt.Errorf("%w: a chunk of %d %s tasks is %d bytes, the server takes %d", broker.ErrTooLarge, len(items), b.codec.Kind, len(data), limit)
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return 0, ErrShutdown
	}
	n.chunks[rc.id] = rc
	if !b.deadline.IsZero() {
		rc.timer = time.AfterFunc(time.Until(b.deadline), func() { n.expire(rc, false) })
	}
	n.mu.Unlock()
	// A future may be done already: a coalesced Submit's caller can cancel
	// it before its chunk goes out.
	for i := range b.calls {
		if !b.calls[i].s.own(rc, uint32(i)) {
			n.settle(rc)
		}
	}

	if onID != nil {
		onID(rc.id)
	}
	msg := &nats.Msg{Subject: n.tasksSubject(b.codec.Kind), Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, broker.MsgID(n.id, rc.id))
	broker.InjectTrace(ctx, msg.Header)
	// With too many PubAcks outstanding the publish waits for the server,
	// as long as ctx allows: the broker's pace is the producer's.
	stall := publishStall
	if d, ok := ctx.Deadline(); ok {
		stall = max(time.Until(d), time.Millisecond)
	}
	if _, err := n.js.PublishMsgAsync(msg, jetstream.WithStallWait(stall)); err != nil {
		n.forget(rc)
		if errors.Is(err, jetstream.ErrTooManyStalledMsgs) && ctx.Err() != nil {
			err = ctx.Err()
		}
		return rc.id, fmt.Errorf("executor: publish %s chunk: %w", b.codec.Kind, err)
	}
	return rc.id, nil
}

// newChunkID draws an id no chunk of n has now: random, so nobody can
// publish a chunk under the id of one n is about to publish. n.mu is held.
func (n *NATS) newChunkID() uint64 {
	for {
		id := n.rng.Uint64()
		if _, taken := n.chunks[id]; !taken && id != 0 {
			return id
		}
	}
}

// newGrant draws an attempt's grant; n.mu is held.
func (n *NATS) newGrant() uint64 {
	for {
		if g := n.rng.Uint64(); g != 0 {
			return g
		}
	}
}

// tasksSubject is the subject of kind's chunks.
func (n *NATS) tasksSubject(kind string) string {
	if s, ok := n.tasks.Load(kind); ok {
		return s.(string)
	}
	s := n.subj.Tasks(kind)
	n.tasks.Store(kind, s)
	return s
}

// publishStall bounds how long a publish without a deadline waits for the
// server to acknowledge earlier ones.
const publishStall = time.Minute

// onPublishError publishes a chunk again when the error leaves open whether
// the stream took it, and fails the chunk's futures when the stream refused
// it or the grace period has passed since its first such error.
func (n *NATS) onPublishError(_ jetstream.JetStream, m *nats.Msg, err error) {
	rc, _ := n.chunkOf(m.Header)
	if rc == nil {
		n.onPublishAck(nil, m, nil)
		return
	}
	if mayRetryPublish(err) {
		if n.republishLater(rc, m) {
			n.log.Debug("executor: publishing a chunk again", "kind", rc.b.codec.Kind, "chunk", rc.id, "err", err)
			return
		}
		err = fmt.Errorf("%w, still after the grace period of %v", err, n.pc.Grace)
	}
	n.failChunk(rc, fmt.Errorf("executor: publish %s chunk: %w", rc.b.codec.Kind, err))
	n.onPublishAck(nil, m, nil)
}

// mayRetryPublish reports whether a publish that failed with err may have
// been lost on the way rather than refused: the connection dropped with the
// PubAck outstanding, no PubAck came in time, or no stream was there to
// answer, as while the broker restarts or elects a leader.
func mayRetryPublish(err error) bool {
	var api *jetstream.APIError
	return errors.Is(err, nats.ErrDisconnected) || errors.Is(err, jetstream.ErrAsyncPublishTimeout) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) || errors.As(err, &api) && api.Code == 503
}

// republishLater schedules m, rc's chunk, to be published again with the
// same Nats-Msg-Id, so the stream stores it once however many of its
// publishes got through, and a worker runs it once whatever the stream
// holds: the producer arbitrates every start. It backs off from 50ms to 1s
// and gives up, returning false, once the grace period has passed since
// the chunk's first lost publish.
func (n *NATS) republishLater(rc *remoteChunk, m *nats.Msg) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	now := time.Now()
	if rc.lost.IsZero() {
		rc.lost = now
	}
	lostFor := now.Sub(rc.lost)
	if lostFor > n.pc.Grace {
		return false
	}
	wait := min(max(lostFor/2, 50*time.Millisecond), time.Second)
	rc.retry = time.AfterFunc(wait, func() { n.republish(rc, m) })
	return true
}

// republish publishes m, rc's chunk, again unless every future of rc is
// done meanwhile.
func (n *NATS) republish(rc *remoteChunk, m *nats.Msg) {
	if rc.left.Load() == 0 {
		n.onPublishAck(nil, m, nil)
		return
	}
	again := &nats.Msg{Subject: m.Subject, Data: m.Data, Header: m.Header}
	if _, err := n.js.PublishMsgAsync(again, jetstream.WithStallWait(publishStall)); err != nil {
		n.onPublishError(nil, again, err)
	}
}

// onPublishAck records the stream sequence of a chunk the stream took, and
// lets the coalescer send the next chunk of a kind once the previous one is
// in the stream. pa is nil when a publish failed for good.
func (n *NATS) onPublishAck(_ jetstream.JetStream, m *nats.Msg, pa *jetstream.PubAck) {
	exec, id, ok := broker.ParseMsgID(m.Header.Get(jetstream.MsgIDHeader))
	if !ok || exec != n.id {
		return
	}
	if pa != nil && pa.Sequence != 0 {
		n.mu.Lock()
		if rc := n.chunks[id]; rc != nil && rc.seq == 0 {
			rc.seq = pa.Sequence
			n.bySeq[pa.Sequence] = rc
		}
		n.mu.Unlock()
	}
	if n.coalesce != nil {
		n.coalesce.acked(id)
	}
}

// chunkOf reads the chunk id of a message with headers h: ours reports
// whether this executor published it, rc is its record while some of its
// futures are not done.
func (n *NATS) chunkOf(h nats.Header) (rc *remoteChunk, ours bool) {
	exec, id, ok := broker.ParseMsgID(h.Get(jetstream.MsgIDHeader))
	if !ok || exec != n.id {
		return nil, false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.chunks[id], true
}

// encodeArgs encodes the inputs of b's calls into one buffer, one item each.
func encodeArgs(b *batch) ([]broker.Item, error) {
	var buf []byte
	ends := make([]int, len(b.calls))
	for i, c := range b.calls {
		var err error
		if buf, err = b.codec.AppendIn(buf, c.arg); err != nil {
			return nil, fmt.Errorf("executor: encode %s input: %w", b.codec.Kind, err)
		}
		ends[i] = len(buf)
	}
	items := make([]broker.Item, len(b.calls))
	start := 0
	for i, end := range ends {
		items[i] = broker.Item{Seq: uint32(i), Args: buf[start:end:end]}
		start = end
	}
	return items, nil
}

// forget drops a chunk that never escaped enqueue.
func (n *NATS) forget(rc *remoteChunk) {
	n.mu.Lock()
	delete(n.chunks, rc.id)
	if rc.seq != 0 {
		delete(n.bySeq, rc.seq)
	}
	rc.stopTimers()
	n.mu.Unlock()
	for i := range rc.b.calls {
		rc.b.calls[i].s.own(nil, 0)
	}
}

// settle is told when one future of rc is done, however it got done. Once
// every future of rc is, it acks the chunk on the ack subject of its latest
// attempt: only then, so that a chunk leaves the stream only when none of
// its items is still owed a result. A chunk no worker was granted is acked
// by the worker that asks to start it and is told to drop it.
func (n *NATS) settle(rc *remoteChunk) {
	if rc.left.Add(-1) > 0 {
		return
	}
	n.mu.Lock()
	delete(n.chunks, rc.id)
	if rc.seq != 0 {
		delete(n.bySeq, rc.seq)
	}
	rc.stopTimers()
	ack := rc.attempt.ack
	if n.closed && !rc.started && rc.seq != 0 {
		// Cancelled or expired before any worker started it, after
		// Shutdown: nobody is left to tell a worker to drop it.
		n.purge = append(n.purge, rc.seq)
	}
	done := n.closed && len(n.chunks) == 0
	n.mu.Unlock()
	if ack != "" {
		if err := n.nc.Publish(ack, ackBody); err != nil {
			n.log.Warn("executor: ack chunk", "chunk", rc.id, "err", err)
		}
	}
	if done {
		n.stopOnce.Do(func() { close(n.stop) })
	}
}

// The bodies of JetStream acknowledgements.
var (
	ackBody = []byte("+ACK")
	nakBody = []byte("-NAK")
)

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
	missed := make(map[string]int) // see probeWorkers
	for {
		select {
		case <-n.stop:
			n.purgeCancelled()
			return
		case now := <-tick.C:
			if n.nc.Status() == nats.CONNECTED {
				cutOff = time.Time{}
				n.probeWorkers(now, missed)
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

// purgeTimeout bounds purgeCancelled.
const purgeTimeout = 5 * time.Second

func (n *NATS) unsubscribe() {
	for _, s := range n.subs {
		s.Unsubscribe()
	}
}

// failChunk resolves every future of rc that is not done with err.
func (n *NATS) failChunk(rc *remoteChunk, err error) {
	for i := range rc.b.calls {
		rc.b.calls[i].s.resolve(nil, err)
	}
}

func (n *NATS) failAll(err error) {
	n.mu.Lock()
	all := make([]*remoteChunk, 0, len(n.chunks))
	for _, rc := range n.chunks {
		all = append(all, rc)
	}
	n.mu.Unlock()
	for _, rc := range all {
		n.failChunk(rc, err)
	}
}

// expire runs at a chunk's deadline: pending futures fail at once, as their
// tasks must never start. Running ones get until the deadline plus the lease
// and grace for their worker to report, then fail too, so a future with a
// deadline never hangs.
func (n *NATS) expire(rc *remoteChunk, final bool) {
	for i := range rc.b.calls {
		s := rc.b.calls[i].s
		if final {
			s.resolve(nil, errExpired(rc.b.codec.Kind))
		} else {
			s.expire(errExpired(rc.b.codec.Kind))
		}
	}
	if final {
		return
	}
	n.mu.Lock()
	if rc.left.Load() > 0 {
		rc.timer = time.AfterFunc(n.pc.AckWait+n.pc.Grace, func() { n.expire(rc, true) })
	}
	n.mu.Unlock()
}

func (n *NATS) onStart(m *nats.Msg) {
	var req broker.Starts
	if err := broker.Decode(m.Data, &req); err != nil {
		n.log.Warn("executor: bad start request", "err", err)
		return
	}
	// A request without Starts is a worker's ping; the empty answer says
	// that this producer is there.
	replies := broker.StartReplies{Items: make([]broker.StartReply, len(req.Items))}
	for i, s := range req.Items {
		replies.Items[i] = n.decideStart(s)
	}
	data, err := broker.Encode(&replies)
	if err != nil {
		return
	}
	if err := m.Respond(data); err != nil {
		n.log.Warn("executor: answer start request", "chunks", len(req.Items), "err", err)
	}
}

// decideStart arbitrates a worker's request to start a chunk. It is the only
// place futures become running, so a future is either cancelled or started,
// never both.
func (n *NATS) decideStart(req broker.Start) broker.StartReply {
	drop := broker.StartReply{Verdict: broker.VerdictDrop}
	n.mu.Lock()
	rc := n.chunks[req.Chunk]
	if rc == nil {
		n.mu.Unlock()
		return drop
	}
	if !bytes.Equal(req.Digest, rc.digest[:]) {
		// Not the chunk this executor published under that id: whoever
		// holds it is told to drop it, and nothing of rc changes.
		n.mu.Unlock()
		n.forged.Add(1)
		n.log.Warn("executor: start request for a chunk that is not the one published; dropped", "chunk", req.Chunk, "worker", req.Worker)
		return drop
	}
	now := time.Now()
	switch {
	case rc.b.expired(now):
		n.mu.Unlock()
		n.expire(rc, true)
		return drop
	case rc.started && rc.attempt.worker == req.Worker && rc.attempt.delivery == req.Delivery && rc.attempt.inbox == req.Inbox:
		// A retried request of the attempt already granted. Its inbox,
		// which nobody but that worker knows, tells it from a replay.
		items, grant := rc.goItems, rc.attempt.grant
		n.mu.Unlock()
		return broker.StartReply{Verdict: broker.VerdictGo, Items: items, LeaseMs: n.pc.AckWait.Milliseconds(), Grant: grant}
	case rc.started && now.Before(rc.lease):
		n.mu.Unlock()
		return broker.StartReply{Verdict: broker.VerdictBusy}
	}
	defer n.mu.Unlock()
	items := make([]uint32, 0, len(rc.b.calls))
	for i := range rc.b.calls {
		s := rc.b.calls[i].s
		seq := uint32(i)
		// Unfinished items of an attempt whose lease lapsed are running
		// already; the new attempt takes them over.
		if s.start(nil) || s.status() == running {
			items = append(items, seq)
		}
	}
	if len(items) == 0 {
		return drop
	}
	att := attempt{worker: req.Worker, delivery: req.Delivery, grant: n.newGrant(), since: now}
	// Interrupts and liveness probes go to the inbox, so never to the pool's
	// own subjects or JetStream's, where they would land as chunks or API
	// requests.
	if !strings.HasPrefix(req.Inbox, n.subj.Prefix()+".") && !strings.HasPrefix(req.Inbox, "$") {
		att.inbox = req.Inbox
	}
	// Only an ack subject of this pool's stream, so that a chunk's holder
	// cannot make the producer ack anything else.
	if strings.HasPrefix(req.Ack, n.acks) {
		att.ack = req.Ack
	}
	rc.started, rc.attempt, rc.goItems = true, att, items
	if len(rc.grants) == maxGrants {
		rc.grants = slices.Delete(rc.grants, 0, 1)
	}
	rc.grants = append(rc.grants, att.grant)
	rc.lease = now.Add(n.pc.AckWait)
	return broker.StartReply{Verdict: broker.VerdictGo, Items: items, LeaseMs: n.pc.AckWait.Milliseconds(), Grant: att.grant}
}

// settled is told when one future of rc is done.
func (rc *remoteChunk) settled() { rc.n.settle(rc) }

// interrupt asks the worker running item seq of rc to end its handler's
// context.
func (rc *remoteChunk) interrupt(seq uint32) {
	n := rc.n
	n.mu.Lock()
	inbox, grant := rc.attempt.inbox, rc.attempt.grant
	n.mu.Unlock()
	if inbox == "" {
		return
	}
	data, err := broker.Encode(&broker.Interrupt{Executor: n.id, Chunk: rc.id, Seq: seq, Grant: grant})
	if err == nil {
		err = n.nc.Publish(inbox, data)
	}
	if err != nil {
		n.log.Warn("executor: send interrupt", "chunk", rc.id, "err", err)
	}
}

func (n *NATS) onLease(m *nats.Msg) {
	var l broker.Lease
	if broker.Decode(m.Data, &l) != nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	rc := n.chunks[l.Chunk]
	switch {
	case rc == nil:
	case l.Grant != 0 && rc.attempt.grant == l.Grant:
		if !rc.lease.IsZero() {
			rc.lease = time.Now().Add(n.pc.AckWait)
		}
	case !rc.granted(l.Grant):
		n.forged.Add(1)
	}
}

// onResult takes a result message: the results of one or more chunks.
func (n *NATS) onResult(m *nats.Msg) {
	rs, err := broker.DecodeResults(m.Data)
	for i := range rs {
		n.result(&rs[i])
	}
	if err != nil {
		n.log.Warn("executor: bad result", "err", err)
	}
}

// result sets the futures r answers, if r carries a grant of its chunk;
// anything else is counted as forged and changes nothing. The chunk is acked
// once all its futures are done (see settle). A final result of the latest
// attempt that leaves some of them without a result ends that attempt: the
// chunk is nakked, and its redelivery is granted the items still owed, so
// a lost result message never loses a future.
func (n *NATS) result(r *broker.Result) {
	n.mu.Lock()
	rc := n.chunks[r.Chunk]
	known := rc != nil && rc.granted(r.Grant)
	n.mu.Unlock()
	if rc == nil {
		return // late: every future of the chunk is done
	}
	if !known {
		n.forged.Add(1)
		n.log.Warn("executor: result without a grant of its chunk ignored", "chunk", r.Chunk, "worker", r.Worker)
		return
	}
	kind := rc.b.codec.Kind
	for _, it := range r.Items {
		if int(it.Seq) >= len(rc.b.calls) {
			continue
		}
		s := rc.b.calls[it.Seq].s
		if it.Err != nil {
			s.resolve(nil, it.Err.TaskError(kind))
			continue
		}
		v, err := rc.b.codec.DecodeOut(it.Value)
		if err != nil {
			err = &task.Error{Kind: kind, Type: "bad_output", Message: err.Error()}
		}
		s.resolve(v, err)
	}
	if r.Final && rc.left.Load() > 0 {
		n.endAttempt(rc, r.Grant, "its final result left items without one")
	}
}

// endAttempt ends rc's attempt with grant g, if it is the latest and has not
// ended: its lease lapses at once and the chunk is nakked, so JetStream
// redelivers it now and the next start request is granted the items still
// owed a result.
func (n *NATS) endAttempt(rc *remoteChunk, g uint64, why string) {
	n.mu.Lock()
	if rc.attempt.grant != g || rc.lease.IsZero() || rc.left.Load() == 0 {
		n.mu.Unlock()
		return
	}
	rc.lease = time.Time{}
	ack := rc.attempt.ack
	n.mu.Unlock()
	n.log.Info("executor: chunk attempt ended; running the rest again", "chunk", rc.id, "worker", rc.attempt.worker, "why", why)
	if ack != "" {
		if err := n.nc.Publish(ack, nakBody); err != nil {
			n.log.Warn("executor: nak chunk", "chunk", rc.id, "err", err)
		}
	}
}

// Forged returns how many start requests, lease renewals and results the
// executor ignored because no grant of its own backed them: a message
// forged by another party of the pool, or a start request for a copy of a
// chunk that is not the one published.
func (n *NATS) Forged() int64 { return n.forged.Load() }

// onCancel answers an operator's request (submit cancel) to cancel pending
// work: every matching future that has not started is cancelled, exactly as
// Future.Cancel would, and the reply counts what was cancelled and what runs
// on.
func (n *NATS) onCancel(m *nats.Msg) {
	var req broker.CancelRequest
	if err := broker.Decode(m.Data, &req); err != nil {
		n.log.Warn("executor: bad cancel request", "err", err)
		return
	}
	if req.Executor != "" && req.Executor != n.id {
		return
	}
	n.mu.Lock()
	var match []*remoteChunk
	for _, rc := range n.chunks {
		if req.Kind == "" || req.Kind == rc.b.codec.Kind {
			match = append(match, rc)
		}
	}
	n.mu.Unlock()
	reply := broker.CancelReply{Executor: n.id}
	for _, rc := range match {
		for i := range rc.b.calls {
			s := rc.b.calls[i].s
			switch {
			case s.status() == pending && s.cancel():
				reply.Cancelled++
			case s.status() == running:
				reply.Running++
			}
		}
	}
	n.log.Info("executor: pending work cancelled on request", "kind", req.Kind, "cancelled", reply.Cancelled, "running", reply.Running)
	if m.Reply == "" {
		return
	}
	if data, err := broker.Encode(&reply); err == nil {
		m.Respond(data)
	}
}

// onMaxDeliveries fails the futures of a chunk of ours that JetStream gave up
// on after MaxDeliver deliveries, and removes the chunk from the stream. The
// chunk is known by the stream sequence its PubAck gave, so the producer
// never reads the stream (a server may forbid it: docs/security.conf). If
// the server refuses the delete, the chunk stays in the stream, where no
// consumer delivers it again, until an operator purges it.
func (n *NATS) onMaxDeliveries(m *nats.Msg) {
	var adv struct {
		StreamSeq  uint64 `json:"stream_seq"`
		Deliveries uint64 `json:"deliveries"`
	}
	if json.Unmarshal(m.Data, &adv) != nil || adv.StreamSeq == 0 {
		return
	}
	n.mu.Lock()
	rc := n.bySeq[adv.StreamSeq]
	n.mu.Unlock()
	if rc == nil {
		return
	}
	n.failChunk(rc, &task.Error{Kind: rc.b.codec.Kind, Type: "max_deliveries",
		Message: fmt.Sprintf("chunk delivered %d times without completing", adv.Deliveries)})
	if n.noDelete.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.stream.DeleteMsg(ctx, adv.StreamSeq); err != nil {
		// Refused (a server may not let producers delete, see
		// docs/security.conf), or no answer in time, which is how a
		// refused request looks: not tried again, so that every later
		// advisory is handled at once.
		n.noDelete.Store(true)
		n.log.Warn("executor: delete abandoned chunk; chunks that reach MaxDeliver stay in the stream from now on", "seq", adv.StreamSeq, "err", err)
	}
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
	if !wait {
		return nil
	}
	select {
	case <-n.finished:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
