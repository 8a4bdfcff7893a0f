package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/broker/wire"
	"github.com/jetpool/jetpool/task"
)

// startTimeout bounds one start request; a producer answers from memory.
const startTimeout = 2 * time.Second

// handle runs one delivered chunk through the protocol: ask, run, report.
// It never panics on any input: handlers' panics are recovered by the
// registry, and malformed chunks are terminated. ctx is Run's: once it ends,
// a chunk not yet granted goes back to the stream, while a granted one runs
// to its end. sl is the slot the chunk holds; while its producer does not
// answer, the chunk gives it back (see chunkRun.askStart).
func (w *Worker) handle(ctx context.Context, src source, msg *nats.Msg, sl *slot) {
	m := w.metrics.kind(src.kind)
	meta, err := msg.Metadata()
	if err != nil {
		w.log.Warn("worker: chunk without JetStream metadata terminated", "kind", src.kind, "err", err)
		w.terminate(m, msg)
		return
	}
	if meta.NumDelivered > 1 {
		m.redelivered.Add(1)
	}
	var c wire.Chunk
	if err := wire.Decode(msg.Data, &c); err != nil {
		w.log.Warn("worker: malformed chunk terminated", "kind", src.kind, "err", err)
		w.terminate(m, msg)
		return
	}
	if c.Kind != src.kind {
		w.log.Warn("worker: chunk kind does not match its subject; terminated", "kind", src.kind, "chunk_kind", c.Kind)
		w.terminate(m, msg)
		return
	}
	var deadline time.Time
	if c.Deadline != 0 {
		deadline = time.Unix(0, c.Deadline)
		if !time.Now().Before(deadline) {
			// The producer's own timer fails these futures.
			w.terminate(m, msg)
			return
		}
	}
	r := &chunkRun{w: w, c: &c, msg: msg, m: m, delivery: meta.NumDelivered, ackWait: src.ackWait, maxDeliver: src.maxDeliver,
		deadline: deadline, streamSeq: meta.Sequence.Stream}
	if c.Named() {
		r.startNamed(ctx)
		return
	}
	r.start(ctx, sl)
}

// start asks the producer for leave to run the chunk (see askStart) and does
// as it says: a chunk granted runs, one to drop is acked, one another
// attempt holds is nakked with a delay of the consumer's AckWait. A chunk
// whose producer stayed silent is terminated, and one still waiting for a
// verdict when ctx ended goes back to the stream.
func (r *chunkRun) start(ctx context.Context, sl *slot) {
	// Registered from its first request: a producer probing an attempt it
	// granted must hear that the worker holds it even before the grant
	// arrives (see answerProbe).
	key := chunkKey{r.c.Executor, r.c.ID}
	r.w.register(key, r)
	defer r.w.unregister(key, r)
	asked := time.Now()
	reply, outcome := r.askStart(ctx, sl)
	switch outcome {
	case drained:
		r.giveBack()
		return
	case silent:
		r.w.log.Warn("worker: producer did not answer within the grace period; chunk terminated", "executor", r.c.Executor, "chunk", r.c.ID)
		r.w.terminate(r.m, r.msg)
		return
	}
	r.m.startWait.Observe(time.Since(asked).Seconds())
	switch reply.Verdict {
	case wire.VerdictDrop:
		r.m.dropped.Add(1)
		r.msg.Ack()
		return
	case wire.VerdictBusy:
		r.m.busy.Add(1)
		r.msg.NakWithDelay(r.ackWait)
		return
	}
	r.m.chunksStarted.Add(1)
	r.m.inFlight.Add(1)
	defer r.m.inFlight.Add(-1)
	// Checked first: the arguments alone would cost allocations per chunk.
	if r.w.log.Enabled(ctx, slog.LevelDebug) {
		r.w.log.Debug("worker: chunk started", "kind", r.c.Kind, "executor", r.c.Executor, "chunk", r.c.ID,
			"items", len(reply.Items), "delivery", r.delivery)
	}
	r.run(reply)
}

// giveBack hands a chunk that did not start back to the stream as the worker
// drains, once the worker's pullers have stopped: the stream then hands it
// to another worker rather than to a puller of this one that is closing.
func (r *chunkRun) giveBack() {
	if stopped := r.w.pullsStopped; stopped != nil {
		<-stopped
	}
	r.m.returned.Add(1)
	r.msg.Nak()
}

// terminate ends a chunk that can never run, counted in m: JetStream does
// not deliver it again.
func (w *Worker) terminate(m *kindMetrics, msg *nats.Msg) {
	m.terminated.Add(1)
	msg.Term()
}

// startOutcome is what came of asking a chunk's producer for leave to start
// it.
type startOutcome int

const (
	answered startOutcome = iota // the producer gave its verdict
	silent                       // the producer did not answer within the grace period
	drained                      // Run's ctx ended before the producer answered
)

// askStart requests leave to start the chunk, together with whatever other
// chunks of the same producer are asking at the time (see startBatcher). The
// Start carries the digest of the chunk's message, which proves to the
// producer that this is the chunk it published, and the message's ack
// subject, on which the producer acks it.
//
// While the producer does not answer (it may be reconnecting), the chunk
// gives its slot back, so that a silent producer never keeps other work
// from running, and pings the producer with backoff, keeping the message
// alive meanwhile. Once a ping is answered it waits for a slot and asks
// again. It gives up with silent once the pool's grace period has passed
// since the producer first failed to answer; a producer already silent for
// longer than that gets a single try, so the chunks of a producer that is
// gone for good are terminated at once. If ctx ends first, it gives up with
// drained.
func (r *chunkRun) askStart(ctx context.Context, sl *slot) (wire.StartReply, startOutcome) {
	w, c, msg, ackWait := r.w, r.c, r.msg, r.ackWait
	digest := wire.Digest(msg.Data)
	req := wire.Start{Chunk: c.ID, Worker: w.cfg.ID, Inbox: w.interrupts, Delivery: r.delivery, Digest: digest[:], Ack: msg.Reply}
	subject := c.Control + broker.StartSuffix
	var giveUp time.Time
	backoff := 50 * time.Millisecond
	lastProgress := time.Now()
	for {
		reply, err := w.starts.ask(subject, req)
		switch {
		case err == nil:
			w.answered(subject)
			return reply, answered
		case errors.Is(err, wire.ErrMalformed) || errors.Is(err, errShortReply):
			w.log.Warn("worker: malformed start reply", "executor", c.Executor, "chunk", c.ID, "err", err)
		case !errors.Is(err, nats.ErrNoResponders) && !errors.Is(err, nats.ErrTimeout):
			w.log.Debug("worker: start request", "chunk", c.ID, "err", err)
		}
		now := time.Now()
		if giveUp.IsZero() {
			giveUp = w.silentSince(subject, now).Add(w.cfg.PoolConfig.Grace)
		}
		if !now.Before(giveUp) {
			return wire.StartReply{}, silent
		}
		sl.release()
		for {
			if now := time.Now(); now.Sub(lastProgress) > ackWait/3 {
				msg.InProgress()
				lastProgress = now
			}
			t := time.NewTimer(min(backoff, time.Until(giveUp), ackWait/3))
			select {
			case <-ctx.Done():
				t.Stop()
				return wire.StartReply{}, drained
			case <-t.C:
			}
			backoff = min(2*backoff, time.Second)
			if w.ping(subject) {
				break
			}
			if !time.Now().Before(giveUp) {
				return wire.StartReply{}, silent
			}
		}
		if !sl.retake(ctx) {
			return wire.StartReply{}, drained
		}
	}
}

// pingRequest is a start request for no chunk: a producer answers it with
// no verdicts.
var pingRequest, _ = wire.Encode(&wire.Starts{})

// ping reports whether the producer listening on subject answers.
func (w *Worker) ping(subject string) bool {
	_, err := w.nc.Request(subject, pingRequest, startTimeout)
	return err == nil
}

// silentSince returns when the producer listening on subject, its start
// subject, first failed to answer in its current silence, recording now if
// it is not silent yet. Producers are known by the subject the worker asks,
// not by the id a chunk claims, so that chunks naming another producer's id
// cannot make that producer look silent. Producers silent for ten grace
// periods are forgotten, so the record stays small on a worker that
// outlives many producers.
func (w *Worker) silentSince(subject string, now time.Time) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	if t, ok := w.silent[subject]; ok {
		return t
	}
	for e, t := range w.silent {
		if now.Sub(t) > 10*w.cfg.PoolConfig.Grace {
			delete(w.silent, e)
		}
	}
	w.silent[subject] = now
	return now
}

// answered clears the silence of the producer listening on subject.
func (w *Worker) answered(subject string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.silent) > 0 {
		delete(w.silent, subject)
	}
}

// chunkKey names a chunk, as an Interrupt does.
type chunkKey struct {
	executor string
	chunk    uint64
}

// chunkRun is one delivery of a chunk on its way through the protocol: it
// asks the producer for leave to start (start, askStart), then runs the
// granted items and reports their results (run, runItem).
//
// While granted items run, they share one context, derived from base, until
// an interrupt ends it for the running item; the next item gets a fresh one.
// An interrupt for a later item marks it so that it never begins.
type chunkRun struct {
	w          *Worker
	c          *wire.Chunk
	msg        *nats.Msg
	m          *kindMetrics  // the kind's counts
	delivery   uint64        // JetStream's delivery count
	ackWait    time.Duration // the consumer's
	maxDeliver int           // the consumer's; 0: no limit
	deadline   time.Time     // the chunk's; zero: none
	// streamSeq is the task stream's sequence of the message.
	streamSeq uint64
	// job is the attempt at a named chunk, set before it runs; nil for a
	// chunk of unnamed work.
	job *jobAttempt
	// abandon is set for a named chunk's last delivery: its attempt fails
	// the items owed with max_deliveries instead of running them (see
	// startNamed).
	abandon bool

	// Set by run. grant is 0 until then, and set under the worker's mu,
	// which guards it: interrupts and probes read it.
	grant    uint64 // the attempt's; an interrupt must carry it
	items    int    // granted items; bounds the marks
	handler  task.Handler
	appender appender // the handler, if it is one
	// spillAbove is the size above which a result travels by reference.
	spillAbove int
	base       context.Context
	beats      heartbeat

	mu          sync.Mutex
	seq         uint32
	running     bool
	ctx         context.Context // the items' context; nil after an interrupt
	cancel      context.CancelFunc
	interrupted map[uint32]bool
}

func (r *chunkRun) interrupt(seq uint32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running && r.seq == seq {
		r.cancel()
		r.ctx = nil
		return
	}
	if r.interrupted == nil {
		r.interrupted = make(map[uint32]bool)
	}
	if len(r.interrupted) < r.items {
		r.interrupted[seq] = true
	}
}

// begin makes item seq the running one and returns its context. It reports
// false if the item was interrupted before its turn.
func (r *chunkRun) begin(seq uint32) (context.Context, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.interrupted[seq] {
		return nil, false
	}
	if r.ctx == nil {
		r.ctx, r.cancel = context.WithCancel(r.base)
	}
	r.seq, r.running = seq, true
	return r.ctx, true
}

func (r *chunkRun) end() {
	r.mu.Lock()
	r.running = false
	r.mu.Unlock()
}

// close ends the items' context once the chunk has run.
func (r *chunkRun) close() {
	r.mu.Lock()
	if r.cancel != nil {
		r.cancel()
	}
	r.mu.Unlock()
}

func (w *Worker) register(key chunkKey, r *chunkRun) {
	w.mu.Lock()
	w.running[key] = append(w.running[key], r)
	w.mu.Unlock()
}

func (w *Worker) unregister(key chunkKey, r *chunkRun) {
	w.mu.Lock()
	defer w.mu.Unlock()
	runs := slices.DeleteFunc(w.running[key], func(x *chunkRun) bool { return x == r })
	if len(runs) == 0 {
		delete(w.running, key)
	} else {
		w.running[key] = runs
	}
}

// run executes the granted items in the order granted and reports their
// results, the last report marked final; the producer acks the message once
// it has every result. A handler's context ends at the chunk's deadline, on
// an interrupt, or once the chunk has run, never with Run's, and carries the
// producer's span context when the message has a traceparent header.
func (r *chunkRun) run(reply wire.StartReply) {
	w, c := r.w, r.c
	if r.job != nil {
		// Registered for interrupt notices (see checkInterrupts).
		key := chunkKey{jobKeyPrefix + c.Job, c.Ord}
		w.register(key, r)
		defer w.unregister(key, r)
	}
	base := broker.ExtractTrace(task.WithWorker(context.Background(), w.cfg.ID), r.msg.Header)
	if !r.deadline.IsZero() {
		var cancel context.CancelFunc
		base, cancel = context.WithDeadline(base, r.deadline)
		defer cancel()
	}
	h, known := w.reg.Lookup(c.Kind)
	r.items, r.handler, r.base, r.spillAbove = len(reply.Items), h, base, spillAbove(w, c)
	defer r.close()
	// The grant last: from here interrupts carrying it reach the run.
	w.mu.Lock()
	r.grant = reply.Grant
	w.mu.Unlock()
	r.beats = heartbeat{w: w, c: c, msg: r.msg, grant: reply.Grant}
	if r.job != nil {
		r.beats.renew = r.renewJob
	}
	r.beats.start(reply.LeaseMs, r.ackWait)
	defer r.beats.stop()

	rep := newReporter(w, c, r.m, reply.Grant, len(reply.Items))
	if r.job != nil {
		rep.store = r.storeResults
	}
	// The items' outputs are appended to one buffer, reused once the
	// results referring to it have been sent. An item's clock starts when
	// the previous one's stopped; the clock is read as the monotonic time
	// since the chunk began, which costs half of a time.Now.
	out := make([]byte, 0, len(r.msg.Data))
	r.appender, _ = h.(appender)
	began := time.Now()
	now, elapsed := began, time.Duration(0)
	for i, seq := range reply.Items {
		var res wire.ItemResult
		took := time.Duration(-1)
		item, ok := itemOf(c, seq)
		switch {
		case r.abandon:
			res = failed(seq, task.TypeMaxDeliveries, fmt.Sprintf("chunk delivered %d times without completing", r.delivery))
		case !known:
			res = failed(seq, task.TypeUnknownKind, "no handler for kind "+c.Kind+" on worker "+w.cfg.ID)
		case !ok:
			res = failed(seq, task.TypeBadInput, "the producer granted an item the chunk does not hold")
		case !r.deadline.IsZero() && !now.Before(r.deadline):
			res = failed(seq, task.TypeDeadline, "deadline passed before the task started")
		default:
			var ran bool
			if res, out, ran = r.runItem(item, out); ran {
				prev := elapsed
				elapsed = time.Since(began)
				now = began.Add(elapsed)
				took = elapsed - prev
			}
		}
		if rep.add(res, i < len(reply.Items)-1, now, took) {
			out = out[:0]
		}
	}
	r.beats.stop()
	rep.final()
	if r.job != nil {
		r.finishJob()
	}
}

func failed(seq uint32, typ, message string) wire.ItemResult {
	return wire.ItemResult{Seq: seq, Err: &wire.ErrorInfo{Type: typ, Message: message}}
}

// itemOf finds item seq; items are normally stored at their index.
func itemOf(c *wire.Chunk, seq uint32) (*wire.Item, bool) {
	if int(seq) < len(c.Items) && c.Items[seq].Seq == seq {
		return &c.Items[seq], true
	}
	for i := range c.Items {
		if c.Items[i].Seq == seq {
			return &c.Items[i], true
		}
	}
	return nil, false
}

// appender is a handler that appends its encoded output to a buffer (see
// task.Handler's AppendRaw).
type appender interface {
	AppendRaw(ctx context.Context, dst, raw []byte) ([]byte, error)
}

// runItem calls the handler on item's input, retrying errors marked
// retryable, and returns its result, out, to which the handler may have
// appended the result's value, and whether the handler was called at all.
// An input or a result too large for a message travels by reference (see
// values.go).
func (r *chunkRun) runItem(item *wire.Item, out []byte) (wire.ItemResult, []byte, bool) {
	seq, args := item.Seq, item.Args
	ctx, ok := r.begin(seq)
	if !ok {
		return failed(seq, task.TypeInterrupted, "interrupted before it started"), out, false
	}
	defer r.end()
	if item.Ref != nil {
		in, lost, ok := r.input(ctx, seq, *item.Ref)
		if !ok {
			return lost, out, false
		}
		args = in
	}
	r.m.started.Add(1)
	var (
		value []byte
		err   error
	)
	if a := r.appender; a != nil {
		start := len(out)
		if out, err = a.AppendRaw(ctx, out, args); err == nil {
			value = out[start:len(out):len(out)]
		}
	} else {
		value, err = r.handler.CallRaw(ctx, args)
	}
	if err != nil && r.w.cfg.Retry.MaxAttempts() > 1 && task.IsRetryable(err) {
		value, err = r.retry(ctx, args, err)
	}
	if err != nil {
		return wire.ItemResult{Seq: seq, Err: wire.NewErrorInfo(r.c.Kind, err)}, out, true
	}
	if len(value) > r.spillAbove {
		return r.spill(ctx, seq, value), out, true
	}
	return wire.ItemResult{Seq: seq, Value: value}, out, true
}

// retry calls the handler again after a first call failed with err, as the
// worker's retry policy says.
func (r *chunkRun) retry(ctx context.Context, args []byte, err error) ([]byte, error) {
	var out []byte
	first := true
	err = r.w.cfg.Retry.Do(ctx, func() error {
		if first {
			first = false
			return err
		}
		r.m.retried.Add(1)
		out, err = r.handler.CallRaw(ctx, args)
		return err
	})
	return out, err
}

// heartbeat keeps a running chunk from being redelivered (InProgress) and
// renews its lease with the producer, every third of the shorter of the
// lease and the consumer's AckWait. A timer rather than a goroutine: most
// chunks end before their first beat.
type heartbeat struct {
	w     *Worker
	c     *wire.Chunk
	msg   *nats.Msg
	grant uint64
	every time.Duration

	// renew, if set, renews the lease in its stead: a named job's chunk
	// renews in the jobs bucket.
	renew func()

	mu      sync.Mutex
	stopped bool
	lease   []byte // the encoded Lease, made on the first beat
	t       *time.Timer
}

// start arms the first beat.
func (b *heartbeat) start(leaseMs int64, ackWait time.Duration) {
	b.every = ackWait
	if lease := time.Duration(leaseMs) * time.Millisecond; lease > 0 {
		b.every = min(b.every, lease)
	}
	b.every = max(b.every/3, 10*time.Millisecond)
	b.mu.Lock()
	b.t = time.AfterFunc(b.every, b.beat)
	b.mu.Unlock()
}

func (b *heartbeat) beat() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped {
		return
	}
	b.msg.InProgress()
	switch {
	case b.renew != nil:
		b.renew()
	default:
		if b.lease == nil {
			b.lease, _ = wire.Encode(&wire.Lease{Chunk: b.c.ID, Grant: b.grant})
		}
		b.w.nc.Publish(b.c.Control+broker.LeaseSuffix, b.lease)
	}
	b.t.Reset(b.every)
}

// stop ends the beats; once it returned, no beat is under way. It may be
// called more than once.
func (b *heartbeat) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stopped = true
	b.t.Stop()
}
