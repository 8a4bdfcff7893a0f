package worker

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/task"
)

// handle runs one delivered chunk through the protocol: ask, run, report.
// It never panics on any input: handlers' panics are recovered by the
// registry, and malformed chunks are terminated.
func (w *Worker) handle(kind string, msg jetstream.Msg) {
	var c broker.Chunk
	if err := broker.Decode(msg.Data(), &c); err != nil {
		w.log.Warn("worker: malformed chunk terminated", "kind", kind, "err", err)
		w.terminate(msg)
		return
	}
	if c.Kind != kind {
		w.log.Warn("worker: chunk kind does not match its subject", "kind", kind, "chunk_kind", c.Kind)
		w.terminate(msg)
		return
	}
	var deadline time.Time
	if c.Deadline != 0 {
		deadline = time.Unix(0, c.Deadline)
		if !time.Now().Before(deadline) {
			// The producer's own timer fails these futures.
			w.terminate(msg)
			return
		}
	}
	meta, err := msg.Metadata()
	if err != nil {
		w.terminate(msg)
		return
	}
	if meta.NumDelivered > 1 {
		w.stats.redelivered.Add(1)
	}
	reply, ok := w.askStart(&c, meta.NumDelivered, msg)
	if !ok {
		w.log.Warn("worker: producer did not answer within the grace period; chunk dropped", "executor", c.Executor, "chunk", c.ID)
		w.terminate(msg)
		return
	}
	switch reply.Verdict {
	case broker.VerdictDrop:
		w.stats.dropped.Add(1)
		msg.Ack()
		return
	case broker.VerdictBusy:
		w.stats.busy.Add(1)
		msg.NakWithDelay(w.cfg.PoolConfig.AckWait)
		return
	}
	w.stats.started.Add(1)
	w.stats.inflight.Add(1)
	defer w.stats.inflight.Add(-1)
	w.run(&c, meta.NumDelivered, deadline, reply, msg)
}

func (w *Worker) terminate(msg jetstream.Msg) {
	w.stats.terminated.Add(1)
	msg.Term()
}

// askStart requests leave to start c, retrying while the producer does not
// answer (it may be reconnecting) until the pool's grace period has passed
// since the producer last answered anything, keeping the message alive
// meanwhile. A producer already silent for longer than that gets a single
// try, so the chunks of a producer that is gone for good are dropped at once.
// ok is false if the producer did not answer.
func (w *Worker) askStart(c *broker.Chunk, delivery uint64, msg jetstream.Msg) (reply broker.StartReply, ok bool) {
	req, err := broker.Encode(&broker.Start{Chunk: c.ID, Worker: w.cfg.ID, Inbox: w.subj.WorkerInbox(w.cfg.ID), Delivery: delivery})
	if err != nil {
		return reply, false
	}
	giveUp := w.silentSince(c.Executor, time.Now()).Add(w.cfg.PoolConfig.Grace)
	backoff := 50 * time.Millisecond
	lastProgress := time.Now()
	for {
		resp, err := w.nc.Request(c.Control+broker.StartSuffix, req, 2*time.Second)
		if err == nil {
			if err := broker.Decode(resp.Data, &reply); err == nil {
				w.answered(c.Executor)
				return reply, true
			}
			w.log.Warn("worker: malformed start reply", "executor", c.Executor, "chunk", c.ID)
		} else if !errors.Is(err, nats.ErrNoResponders) && !errors.Is(err, nats.ErrTimeout) {
			w.log.Debug("worker: start request", "chunk", c.ID, "err", err)
		}
		if time.Now().After(giveUp) {
			return reply, false
		}
		if time.Since(lastProgress) > w.cfg.PoolConfig.AckWait/3 {
			msg.InProgress()
			lastProgress = time.Now()
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, time.Second)
	}
}

// silentSince returns when the producer first failed to answer in its
// current silence, recording now if it is not silent yet.
func (w *Worker) silentSince(executor string, now time.Time) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	if t, ok := w.silent[executor]; ok {
		return t
	}
	w.silent[executor] = now
	return now
}

// answered clears a producer's silence.
func (w *Worker) answered(executor string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.silent, executor)
}

// run executes the granted items of c in order and reports their results.
func (w *Worker) run(c *broker.Chunk, delivery uint64, deadline time.Time, reply broker.StartReply, msg jetstream.Msg) {
	h, ok := w.reg.Lookup(c.Kind)
	stopBeat := w.heartbeat(c, delivery, reply.LeaseMs, msg)
	defer stopBeat()

	rep := reporter{w: w, c: c}
	for _, seq := range reply.Items {
		args, known := argsOf(c, seq)
		var res broker.ItemResult
		switch {
		case !ok:
			res = broker.ItemResult{Seq: seq, Err: &broker.ErrorInfo{Type: task.TypeUnknownKind, Message: "no handler for kind " + c.Kind + " on worker " + w.cfg.ID}}
		case !known:
			res = broker.ItemResult{Seq: seq, Err: &broker.ErrorInfo{Type: task.TypeBadInput, Message: "the producer granted an item the chunk does not hold"}}
		case !deadline.IsZero() && !time.Now().Before(deadline):
			res = broker.ItemResult{Seq: seq, Err: &broker.ErrorInfo{Type: task.TypeDeadline, Message: "deadline passed before the task started"}}
		default:
			res = w.runItem(c, seq, h, args, deadline)
		}
		if res.Err != nil {
			w.stats.failed.Add(1)
		} else {
			w.stats.succeeded.Add(1)
		}
		rep.add(res)
	}
	stopBeat()
	rep.flush(true, msg.Reply())
}

// argsOf finds item seq's input; items are normally stored at their index.
func argsOf(c *broker.Chunk, seq uint32) ([]byte, bool) {
	if int(seq) < len(c.Items) && c.Items[seq].Seq == seq {
		return c.Items[seq].Args, true
	}
	for _, it := range c.Items {
		if it.Seq == seq {
			return it.Args, true
		}
	}
	return nil, false
}

func (w *Worker) runItem(c *broker.Chunk, seq uint32, h task.Handler, args []byte, deadline time.Time) broker.ItemResult {
	ctx := task.WithWorker(context.Background(), w.cfg.ID)
	var cancel context.CancelFunc
	if deadline.IsZero() {
		ctx, cancel = context.WithCancel(ctx)
	} else {
		ctx, cancel = context.WithDeadline(ctx, deadline)
	}
	key := runKey{c.Executor, c.ID, seq}
	w.mu.Lock()
	w.running[key] = cancel
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		delete(w.running, key)
		w.mu.Unlock()
		cancel()
	}()
	var out []byte
	attempts := 0
	err := w.cfg.Retry.Do(ctx, func() (err error) {
		if attempts++; attempts > 1 {
			w.stats.retried.Add(1)
		}
		out, err = h.CallRaw(ctx, args)
		return err
	})
	if err != nil {
		return broker.ItemResult{Seq: seq, Err: broker.NewErrorInfo(c.Kind, err)}
	}
	return broker.ItemResult{Seq: seq, Value: out}
}

// heartbeat keeps a running chunk from being redelivered (InProgress) and
// renews its lease with the producer, every third of the lease. The returned
// func stops it and may be called more than once.
func (w *Worker) heartbeat(c *broker.Chunk, delivery uint64, leaseMs int64, msg jetstream.Msg) func() {
	lease := time.Duration(leaseMs) * time.Millisecond
	if lease <= 0 {
		lease = w.cfg.PoolConfig.AckWait
	}
	renew, _ := broker.Encode(&broker.Lease{Chunk: c.ID, Worker: w.cfg.ID, Delivery: delivery})
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(lease / 3)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				msg.InProgress()
				w.nc.Publish(c.Control+broker.LeaseSuffix, renew)
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(stop) })
		<-done
	}
}

// reporter batches a chunk's results: it sends what it has every
// ResultInterval and everything at the end, splitting messages to stay under
// the server's maximum payload.
type reporter struct {
	w        *Worker
	c        *broker.Chunk
	pending  []broker.ItemResult
	size     int
	lastSent time.Time
}

func (r *reporter) add(res broker.ItemResult) {
	limit := int(r.w.nc.MaxPayload()) - 1024
	if len(res.Value)+256 > limit {
		res = broker.ItemResult{Seq: res.Seq, Err: &broker.ErrorInfo{Type: "result_too_large",
			Message: "result of " + strconv.Itoa(len(res.Value)) + " bytes exceeds the server's maximum payload"}}
	}
	if res.Err != nil && len(res.Err.Message)+len(res.Err.Stack) > limit/2 {
		res.Err.Stack = ""
		if len(res.Err.Message) > limit/2 {
			res.Err.Message = res.Err.Message[:limit/2]
		}
	}
	sz := len(res.Value) + 64
	if res.Err != nil {
		sz += len(res.Err.Message) + len(res.Err.Stack) + len(res.Err.Type)
	}
	if r.size+sz > limit {
		r.flush(false, "")
	}
	r.pending = append(r.pending, res)
	r.size += sz
	if r.lastSent.IsZero() {
		r.lastSent = time.Now()
	}
	if time.Since(r.lastSent) >= r.w.cfg.ResultInterval {
		r.flush(false, "")
	}
}

func (r *reporter) flush(final bool, ack string) {
	if len(r.pending) == 0 && !final {
		return
	}
	data, err := broker.Encode(&broker.Result{Chunk: r.c.ID, Worker: r.w.cfg.ID, Final: final, Ack: ack, Items: r.pending})
	if err == nil {
		err = r.w.nc.Publish(r.c.Control+broker.ResultSuffix, data)
	}
	if err != nil {
		// A lost result means a redelivery that the producer drops or reruns.
		r.w.log.Warn("worker: send results", "chunk", r.c.ID, "err", err)
	}
	r.pending, r.size, r.lastSent = r.pending[:0], 0, time.Now()
}
