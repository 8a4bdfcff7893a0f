package executor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/broker/wire"
	"github.com/jetpool/jetpool/task"
)

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

	// Leave room for the headers.
	limit := n.nc.MaxPayload() - 256
	if err := n.spill(ctx, rc, items, limit); err != nil {
		return 0, err
	}
	data, err := wire.Encode(&wire.Chunk{
		Executor: n.id, ID: rc.id, Kind: b.codec.Kind, Control: n.control,
		Deadline: wire.Deadline(b.deadline), Items: items,
	})
	if err == nil && int64(len(data)) > limit {
		err = fmt.Errorf("%w: a chunk of %d %s tasks is %d bytes, the server takes %d", broker.ErrTooLarge, len(items), b.codec.Kind, len(data), limit)
	}
	n.mu.Lock()
	if err == nil && n.closed {
		err = ErrShutdown
	}
	if err != nil {
		n.mu.Unlock()
		// Here, not in the background: after Shutdown, nothing is.
		n.removeValues(rc.values)
		return 0, err
	}
	rc.digest = wire.Digest(data)
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
	msg.Header.Set(jetstream.MsgIDHeader, wire.MsgID(n.id, rc.id))
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
	exec, id, ok := wire.ParseMsgID(m.Header.Get(jetstream.MsgIDHeader))
	if !ok || exec != n.id {
		return
	}
	n.mu.Lock()
	if _, settled := n.unacked[id]; settled {
		delete(n.unacked, id)
		if pa != nil && pa.Sequence != 0 {
			n.purge = append(n.purge, pa.Sequence)
		}
		select {
		case n.ackedOne <- struct{}{}:
		default:
		}
	} else if rc := n.chunks[id]; rc != nil && rc.seq == 0 && pa != nil && pa.Sequence != 0 {
		rc.seq = pa.Sequence
		n.bySeq[pa.Sequence] = rc
	}
	n.mu.Unlock()
	if n.coalesce != nil {
		n.coalesce.acked(id)
	}
}

// chunkOf reads the chunk id of a message with headers h: ours reports
// whether this executor published it, rc is its record while some of its
// futures are not done.
func (n *NATS) chunkOf(h nats.Header) (rc *remoteChunk, ours bool) {
	exec, id, ok := wire.ParseMsgID(h.Get(jetstream.MsgIDHeader))
	if !ok || exec != n.id {
		return nil, false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.chunks[id], true
}

// encodeArgs encodes the inputs of b's calls into one buffer, one item each.
func encodeArgs(b *batch) ([]wire.Item, error) {
	var buf []byte
	ends := make([]int, len(b.calls))
	for i, c := range b.calls {
		var err error
		if buf, err = b.codec.AppendIn(buf, c.arg); err != nil {
			return nil, fmt.Errorf("executor: encode %s input: %w", b.codec.Kind, err)
		}
		ends[i] = len(buf)
	}
	items := make([]wire.Item, len(b.calls))
	start := 0
	for i, end := range ends {
		items[i] = wire.Item{Seq: uint32(i), Args: buf[start:end:end]}
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
	values := rc.values
	rc.values = nil
	done := n.closed && len(n.chunks) == 0
	n.mu.Unlock()
	n.deleteValues(values...)
	for i := range rc.b.calls {
		rc.b.calls[i].s.own(nil, 0)
	}
	if done {
		n.stopOnce.Do(func() { close(n.stop) })
	}
}
