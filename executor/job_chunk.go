package executor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/broker/wire"
	"github.com/jetpool/jetpool/task"
)

// jobChunk is a Job's record of one chunk of the job: the futures of a
// batch, and the chunk's records as last read. It owns its futures, and is
// their canceller: their Cancel is decided in the jobs bucket.
type jobChunk struct {
	j    *Job
	ord  uint64
	pos  uint64
	b    *batch
	left atomic.Int64 // futures not yet done

	cancelMu sync.Mutex // one cancel or interrupt of the chunk at a time

	// prev is closed once the chunk before it is validated, valid once
	// this one is (see validated).
	prev, valid chan struct{}
	readyCh     chan struct{} // closed once the chunk is ready, or failed before
	readyOnce   sync.Once

	mu     sync.Mutex
	ready  bool                      // the chunk's record is the Job's: its futures are owned and its state applies
	early  []heldResult              // results read before it was ready
	recs   map[string]wire.JobRecord // the chunk's records, by key relative to the chunk
	rec    wire.JobChunk             // the chunk's record as written
	recSeq uint64                    // its sequence
	data   []byte                    // the chunk's message
	seq    uint64                    // the task stream's sequence of it, once known
	// publishing is set while a publish of the chunk waits for its PubAck
	// or its next try.
	publishing bool
	stored     chan struct{}     // while open waits for the chunk's first PubAck; closed by onStored
	pubErr     error             // why the chunk was not stored, as onStored heard
	attempts   []wire.JobAttempt // as last read
	started    bool
	timer      *time.Timer
	lost       time.Time   // when a publish of it first failed in a way that may not be final
	retry      *time.Timer // its next publish, after such a failure
}

// open writes the chunk's record and publishes the chunk, or, if the job
// holds a record at its place already, checks that it is of the same input
// and resumes it (see resume). With wait, as for a Submit, it returns once
// the stream holds the chunk, and on error no future of the batch is
// resolved. Without, as for the chunks of a Map, it returns once the
// record's write is sent: the rest goes on in created, the futures are
// owned, and an error fails them with an [enqueueError].
func (jc *jobChunk) open(ctx context.Context, items []wire.Item, wait bool) error {
	j, b := jc.j, jc.b
	c, data, rec, recData, err := jc.encode(items)
	if err != nil {
		jc.validated(err)
		return err
	}
	jc.mu.Lock()
	_, held := jc.recs["c"]
	jc.mu.Unlock()
	if held {
		// The Job read the chunk's record as it resumed the job.
		err := jc.resume(ctx, c, rec, false, false)
		jc.validated(err)
		return err
	}
	key := wire.JobChunkKey(j.key, jc.ord)
	if wait {
		seq, err := j.store.Create(ctx, key, recData, j.ttl)
		return jc.opened(ctx, c, rec, data, seq, err, true)
	}
	opts := []jetstream.PublishOpt{jetstream.WithExpectLastSequencePerSubject(0), jetstream.WithStallWait(publishStall)}
	if j.ttl > 0 {
		opts = append(opts, jetstream.WithMsgTTL(j.ttl))
	}
	paf, err := j.js.PublishMsgAsync(&nats.Msg{Subject: j.n.subj.JobKey(key), Data: recData}, opts...)
	if err != nil {
		jc.validated(err)
		return fmt.Errorf("executor: job %q: write chunk %d's record: %w", j.name, jc.ord, err)
	}
	for i := range b.calls {
		b.calls[i].s.own(jc, uint32(i)) // a Map's futures, new: none is done
	}
	go jc.created(c, rec, data, recData, paf)
	return nil
}

// encode returns the chunk's message c, encoded as data, and its record
// rec, encoded as recData.
func (jc *jobChunk) encode(items []wire.Item) (c wire.Chunk, data []byte, rec wire.JobChunk, recData []byte, err error) {
	j := jc.j
	c = wire.Chunk{Kind: jc.b.codec.Kind, Deadline: wire.Deadline(jc.b.deadline), Items: items,
		Job: j.key, Ord: jc.ord, Pos: jc.pos, Key: j.chunkKey(jc.ord), TTL: j.ttl}
	if data, err = wire.Encode(&c); err != nil {
		return
	}
	if limit := j.n.nc.MaxPayload() - 256; int64(len(data)) > limit {
		err = fmt.Errorf("%w: a chunk of %d %s tasks is %d bytes, the server takes %d", broker.ErrTooLarge, len(items), c.Kind, len(data), limit)
		return
	}
	args := make([][]byte, len(items))
	for i := range items {
		args[i] = items[i].Args
	}
	digest := wire.Digest(data)
	rec = wire.JobChunk{Pos: jc.pos, N: uint32(len(items)), Kind: c.Kind, Input: wire.InputDigest(c.Kind, jc.pos, args),
		Commit: digest[:], Deadline: c.Deadline}
	recData, err = wire.Encode(&rec)
	return
}

// created goes on with a chunk of a Map once the write of its record is
// answered: a refused or lost write is made again as a Submit's is, which
// tells a record of another producer (the chunk is resumed), a deletion
// marker in the way and a broker that does not answer apart.
func (jc *jobChunk) created(c wire.Chunk, rec wire.JobChunk, data, recData []byte, paf jetstream.PubAckFuture) {
	j := jc.j
	ctx, cancel := context.WithTimeout(context.Background(), jobTimeout)
	defer cancel()
	var seq uint64
	var err error
	select {
	case ack := <-paf.Ok():
		seq = ack.Sequence
	case <-paf.Err():
		seq, err = j.store.Create(ctx, wire.JobChunkKey(j.key, jc.ord), recData, j.ttl)
	}
	if err := jc.opened(ctx, c, rec, data, seq, err, false); err != nil {
		jc.markReady()
		jc.fail(&enqueueError{err})
	}
}

// opened goes on from the create of the chunk's record, which wrote it at
// sequence seq or failed with err: a record of another producer is resumed;
// the chunk's own is published once every chunk before it is validated,
// unless one of them holds another input. With wait it returns once the
// stream holds the chunk, and else once the chunk is sent.
func (jc *jobChunk) opened(ctx context.Context, c wire.Chunk, rec wire.JobChunk, data []byte, seq uint64, err error, wait bool) error {
	j := jc.j
	switch {
	case errors.Is(err, broker.ErrConflict):
		err := jc.resume(ctx, c, rec, true, !wait)
		jc.validated(err)
		return err
	case err != nil:
		jc.validated(err)
		return fmt.Errorf("executor: job %q: %w", j.name, err)
	}
	if after, diverged := jc.validated(nil); diverged {
		// Nothing after a chunk of another input goes into the job.
		purge := j.store.PurgeMsg(wire.JobChunkKey(j.key, jc.ord))
		purge.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(seq, 10))
		if _, err := j.n.js.PublishMsg(ctx, purge); err != nil {
			j.log.Warn("executor: remove the record of a chunk after one of another input", "chunk", jc.ord, "err", err)
		}
		return fmt.Errorf("%w: job %q's chunk %d comes after chunk %d, which the job holds with another input", ErrJobInput, j.name, jc.ord, after)
	}
	var stored chan struct{}
	if wait {
		stored = make(chan struct{})
	}
	jc.mu.Lock()
	jc.rec, jc.recSeq, jc.data, jc.stored = rec, seq, data, stored
	jc.mu.Unlock()
	if err := jc.publish(ctx); err != nil {
		return err
	}
	if wait {
		// The chunk is the job's once the stream holds it, not once it is
		// sent: a producer that dies with it on the wire leaves a record
		// that no worker is ever delivered, so the call must not have
		// returned.
		select {
		case <-stored:
		case <-ctx.Done():
			jc.mu.Lock()
			jc.stopTimers()
			jc.mu.Unlock()
			return fmt.Errorf("executor: publish %s chunk of job %q: %w", c.Kind, j.name, ctx.Err())
		}
		jc.mu.Lock()
		err = jc.pubErr
		jc.mu.Unlock()
		if err != nil {
			return err
		}
	}
	jc.makeReady(nil, !wait)
	return nil
}

// validated is told that the chunk is known to be of the job's input, or,
// with err, that it could not be opened. Once every chunk before it is
// validated it passes the word on to the next; it reports whether one
// before it holds another input, and which.
func (jc *jobChunk) validated(err error) (after uint64, diverged bool) {
	<-jc.prev
	j := jc.j
	j.mu.Lock()
	after, diverged = j.diverged, j.diverged < jc.ord
	if !diverged && errors.Is(err, ErrJobInput) {
		j.diverged = jc.ord
	}
	j.mu.Unlock()
	close(jc.valid)
	return after, diverged
}

// onStored is told that the stream took the chunk, or, with err, that it
// never will; it ends the wait of opened, if it waits. It reports whether
// opened waited: else err is the futures' to hear.
func (jc *jobChunk) onStored(err error) bool {
	jc.mu.Lock()
	defer jc.mu.Unlock()
	jc.publishing = false
	if jc.stored == nil {
		return false
	}
	jc.pubErr = err
	close(jc.stored)
	jc.stored = nil
	return true
}

// resume takes over a chunk the job holds at jc's place: a chunk of the same
// kind, place, length and input, or else an error matching ErrJobInput. It
// applies what the chunk's records say (cancelled items are cancelled,
// started ones running), and publishes the chunk again only if no producer
// learned that the stream took it and no worker claimed it: the same
// message, with the deadline it first had, under the same dedup id. With
// read it reads the chunk's records, and else takes those the Job read
// from the bucket as it attached: then the records may be older than the
// bucket's, which costs at most a publish of a chunk that the stream holds
// already (stored once if within the dedup window, and else dropped by the
// workers as a copy).
func (jc *jobChunk) resume(ctx context.Context, c wire.Chunk, want wire.JobChunk, read, owned bool) error {
	j := jc.j
	var recs []wire.JobRecord
	if read {
		var err error
		if recs, err = j.store.ChunkRecords(ctx, j.key, jc.ord, 0); err != nil {
			return fmt.Errorf("executor: job %q: %w", j.name, err)
		}
	} else {
		jc.mu.Lock()
		for _, r := range jc.recs {
			recs = append(recs, r)
		}
		jc.mu.Unlock()
	}
	st := wire.NewJobChunkState(j.key, jc.ord, recs, c.Key)
	if st.Chunk == nil {
		return fmt.Errorf("executor: job %q: chunk %d was removed as it was resumed", j.name, jc.ord)
	}
	switch got := st.Chunk; {
	case got.Kind != want.Kind || got.Pos != want.Pos || got.N != want.N:
		return fmt.Errorf("%w: job %q's chunk %d holds %d %s tasks at places %d to %d, not %d %s tasks at %d to %d "+
			"(another chunk size, kind or order of calls)", ErrJobInput, j.name, jc.ord,
			got.N, got.Kind, got.Pos, got.Pos+uint64(got.N)-1, want.N, want.Kind, want.Pos, want.Pos+uint64(want.N)-1)
	case !bytes.Equal(got.Input, want.Input):
		return fmt.Errorf("%w: job %q's tasks at places %d to %d (chunk %d) were given another input; "+
			"a job resumes only the input it was started with", ErrJobInput, j.name, got.Pos, got.Pos+uint64(got.N)-1, jc.ord)
	}
	c.Deadline = st.Chunk.Deadline
	data, err := wire.Encode(&c)
	if err != nil {
		return err
	}
	jc.b.deadline = time.Time{}
	if c.Deadline != 0 {
		jc.b.deadline = time.Unix(0, c.Deadline)
	}
	jc.mu.Lock()
	jc.rec, jc.recSeq, jc.data, jc.seq = *st.Chunk, st.ChunkSeq, data, st.Chunk.Seq
	jc.mu.Unlock()
	if seq := st.Chunk.Seq; seq != 0 {
		j.mu.Lock()
		j.bySeq[seq] = jc
		j.mu.Unlock()
	}
	jc.makeReady(recs, owned)
	if st.Chunk.Seq != 0 || st.First != 0 || len(st.Owed()) == 0 {
		return nil
	}
	err = fmt.Errorf("executor: job %q: chunk %d cannot be published again as it was", j.name, jc.ord)
	if digest := wire.Digest(data); bytes.Equal(digest[:], st.Chunk.Commit) {
		err = jc.publish(ctx)
	}
	if err != nil {
		jc.fail(err)
	}
	return nil
}

// makeReady owns the chunk's futures unless they are owned, arms its
// deadline, applies its records (recs and those read meanwhile) and the
// results read before it was ready.
func (jc *jobChunk) makeReady(recs []wire.JobRecord, owned bool) {
	for i := range jc.b.calls {
		if !owned && !jc.b.calls[i].s.own(jc, uint32(i)) {
			jc.j.settle(jc)
		}
	}
	jc.mu.Lock()
	for _, r := range recs {
		jc.mergeLocked(r, false)
	}
	jc.ready = true
	early := jc.early
	jc.early = nil
	if d := jc.b.deadline; !d.IsZero() {
		jc.timer = time.AfterFunc(time.Until(d), func() { jc.expire(false) })
	}
	jc.mu.Unlock()
	jc.apply()
	jc.markReady()
	for _, r := range early {
		jc.resolve(r.res)
	}
}

// markReady ends the waits for the chunk to be ready.
func (jc *jobChunk) markReady() {
	jc.readyOnce.Do(func() { close(jc.readyCh) })
}

// mergeLocked takes a record of the chunk, or its deletion, unless a newer
// one of its key is in; jc.mu is held.
func (jc *jobChunk) mergeLocked(r wire.JobRecord, deleted bool) {
	if old, ok := jc.recs[r.Key]; ok && old.Seq > r.Seq {
		return
	}
	if deleted {
		delete(jc.recs, r.Key)
		return
	}
	jc.recs[r.Key] = r
}

// addRecords takes records of the chunk read from the bucket, and applies
// them once the chunk is ready.
func (jc *jobChunk) addRecords(recs []wire.JobRecord, deleted bool) {
	jc.mu.Lock()
	for _, r := range recs {
		jc.mergeLocked(r, deleted)
	}
	ready := jc.ready
	jc.mu.Unlock()
	if ready {
		jc.apply()
	}
}

// apply sets the futures as the chunk's records say: cancelled items are
// cancelled; once a valid claim started the chunk, the others not done are
// running.
func (jc *jobChunk) apply() {
	jc.mu.Lock()
	recs := make([]wire.JobRecord, 0, len(jc.recs))
	for _, r := range jc.recs {
		recs = append(recs, r)
	}
	jc.mu.Unlock()
	st := wire.NewJobChunkState(jc.j.key, jc.ord, recs, jc.j.chunkKey(jc.ord))
	if st.Chunk == nil {
		return
	}
	jc.mu.Lock()
	jc.attempts = st.Attempts
	jc.started = st.First != 0
	jc.mu.Unlock()
	for i := range jc.b.calls {
		s := jc.b.calls[i].s
		switch {
		case i < len(st.Cancelled) && st.Cancelled[i]:
			s.cancelPending()
		case st.First != 0:
			s.start(nil)
		}
	}
}

// onResult takes a result of the chunk, holding it until the chunk is
// ready.
func (jc *jobChunk) onResult(r heldResult) {
	jc.mu.Lock()
	if !jc.ready {
		jc.early = append(jc.early, r)
		jc.mu.Unlock()
		return
	}
	jc.mu.Unlock()
	jc.resolve(r.res)
}

// resolve sets the futures r answers that are not done yet.
func (jc *jobChunk) resolve(r *wire.JobResult) {
	kind := jc.b.codec.Kind
	for _, it := range r.Items {
		if int(it.Seq) >= len(jc.b.calls) {
			continue
		}
		s := jc.b.calls[it.Seq].s
		if it.Err != nil {
			s.resolve(nil, it.Err.TaskError(kind))
			continue
		}
		v, err := jc.b.codec.DecodeOut(it.Value)
		if err != nil {
			err = &task.Error{Kind: kind, Type: task.TypeBadOutput, Message: err.Error()}
		}
		s.resolve(v, err)
	}
}

// publish sends the chunk's message to the task stream, asynchronously,
// under its dedup id.
func (jc *jobChunk) publish(ctx context.Context) error {
	j := jc.j
	msg := &nats.Msg{Subject: j.n.tasksSubject(jc.b.codec.Kind), Data: jc.data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, j.msgID(jc.ord))
	broker.InjectTrace(ctx, msg.Header)
	stall := publishStall
	if d, ok := ctx.Deadline(); ok {
		stall = max(time.Until(d), time.Millisecond)
	}
	jc.mu.Lock()
	jc.publishing = true
	jc.mu.Unlock()
	if _, err := j.js.PublishMsgAsync(msg, jetstream.WithStallWait(stall)); err != nil {
		jc.mu.Lock()
		jc.publishing = false
		jc.mu.Unlock()
		if errors.Is(err, jetstream.ErrTooManyStalledMsgs) && ctx.Err() != nil {
			err = ctx.Err()
		}
		// The record stays: a producer that resumes the job publishes
		// the chunk.
		return fmt.Errorf("executor: publish %s chunk of job %q: %w", jc.b.codec.Kind, j.name, err)
	}
	return nil
}

// republishLater schedules m, the chunk's message, to go out again, as
// NATS.republishLater does; it returns false once the grace period has
// passed since the chunk's first lost publish.
func (jc *jobChunk) republishLater(m *nats.Msg) bool {
	jc.mu.Lock()
	defer jc.mu.Unlock()
	now := time.Now()
	if jc.lost.IsZero() {
		jc.lost = now
	}
	lostFor := now.Sub(jc.lost)
	if lostFor > jc.j.n.pc.Grace {
		return false
	}
	wait := min(max(lostFor/2, 50*time.Millisecond), time.Second)
	jc.retry = time.AfterFunc(wait, func() {
		if jc.left.Load() == 0 {
			jc.j.mu.Lock()
			delete(jc.j.unacked, jc.ord) // settled: not published again
			jc.j.mu.Unlock()
			return
		}
		again := &nats.Msg{Subject: m.Subject, Data: m.Data, Header: m.Header}
		if _, err := jc.j.js.PublishMsgAsync(again, jetstream.WithStallWait(publishStall)); err != nil {
			jc.j.onPublishError(nil, again, err)
		}
	})
	return true
}

// stopTimers stops the chunk's deadline and next publish; jc.mu is held.
func (jc *jobChunk) stopTimers() {
	if jc.timer != nil {
		jc.timer.Stop()
	}
	if jc.retry != nil {
		jc.retry.Stop()
	}
}

// fail resolves every future of the chunk that is not done with err.
func (jc *jobChunk) fail(err error) {
	for i := range jc.b.calls {
		jc.b.calls[i].s.resolve(nil, err)
	}
}

// expire is the chunk's deadline, as NATS.expire is an unnamed chunk's.
func (jc *jobChunk) expire(final bool) {
	kind := jc.b.codec.Kind
	for i := range jc.b.calls {
		s := jc.b.calls[i].s
		if final {
			s.resolve(nil, errExpired(kind))
		} else {
			s.expire(errExpired(kind))
		}
	}
	if final {
		return
	}
	pc := jc.j.n.pc
	jc.mu.Lock()
	if jc.left.Load() > 0 {
		jc.timer = time.AfterFunc(pc.AckWait+pc.Grace, func() { jc.expire(true) })
	}
	jc.mu.Unlock()
}

// settled implements owner.
func (jc *jobChunk) settled() { jc.j.settle(jc) }

// cancel implements canceller: it writes a cancel record of the items of
// seqs still pending, then reads the chunk's claims, at least as new as
// that record. The items are cancelled if no valid claim came before the
// record, and are running otherwise; every worker decides alike (see the
// job flow in broker/wire). A cancel that JetStream does not confirm
// leaves the futures pending; if its record was stored, reading it later
// cancels them then.
func (jc *jobChunk) cancel(seqs []uint32) {
	// A chunk of a Map owns its futures before its record is written: a
	// cancel waits for the record, so that what it returns is what holds.
	select {
	case <-jc.readyCh:
	default:
		t := time.NewTimer(jobTimeout)
		select {
		case <-jc.readyCh:
		case <-t.C:
		}
		t.Stop()
	}
	jc.cancelMu.Lock()
	defer jc.cancelMu.Unlock()
	var items []uint32
	for _, seq := range seqs {
		if int(seq) < len(jc.b.calls) && jc.b.calls[seq].s.status() == pending {
			items = append(items, seq)
		}
	}
	if len(items) == 0 {
		return
	}
	j := jc.j
	data, err := wire.Encode(&wire.JobCancel{Items: items})
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), jobTimeout)
	defer cancel()
	seq, err := j.store.Create(ctx, wire.JobCancelKey(j.key, jc.ord, rand.Uint64()), data, j.ttl)
	if err != nil {
		level := slog.LevelWarn
		if errors.Is(err, nats.ErrConnectionClosed) {
			level = slog.LevelDebug
		}
		j.log.Log(ctx, level, "executor: cancel a job's tasks", "chunk", jc.ord, "err", err)
		return
	}
	recs, err := j.store.ChunkRecords(ctx, j.key, jc.ord, seq)
	if err != nil {
		j.log.Warn("executor: read a job's chunk after a cancel", "chunk", jc.ord, "err", err)
		return
	}
	jc.addRecords(recs, false)
}

// interrupt implements owner: it adds item seq to the chunk's interrupt
// record, which only the job's owner may write, and tells the inboxes of
// the chunk's attempts to read it.
func (jc *jobChunk) interrupt(seq uint32) {
	jc.cancelMu.Lock()
	defer jc.cancelMu.Unlock()
	j := jc.j
	ctx, cancel := context.WithTimeout(context.Background(), jobTimeout)
	defer cancel()
	key := wire.JobInterruptKey(j.key, jc.ord)
	for range 3 {
		var in wire.JobCancel
		e, ok, err := j.store.Get(ctx, key)
		if err != nil {
			j.log.Warn("executor: interrupt a job's task", "chunk", jc.ord, "err", err)
			return
		}
		if ok && wire.Decode(e.Data, &in) != nil {
			in = wire.JobCancel{}
		}
		if slices.Contains(in.Items, seq) {
			break
		}
		in.Items = append(in.Items, seq)
		data, err := wire.Encode(&in)
		if err != nil {
			return
		}
		if ok {
			_, err = j.store.Update(ctx, key, data, e.Seq, j.ttl)
		} else {
			_, err = j.store.Create(ctx, key, data, j.ttl)
		}
		if err == nil {
			break
		}
		if !errors.Is(err, broker.ErrConflict) {
			j.log.Warn("executor: interrupt a job's task", "chunk", jc.ord, "err", err)
			return
		}
	}
	notice, err := wire.Encode(&wire.Interrupt{Executor: j.key, Chunk: jc.ord, Seq: seq})
	if err != nil {
		return
	}
	jc.mu.Lock()
	attempts := jc.attempts
	jc.mu.Unlock()
	for _, a := range attempts {
		// Notices go to the inbox a claim named, so never to the pool's own
		// subjects or JetStream's.
		if a.Final || a.Inbox == "" || strings.HasPrefix(a.Inbox, j.n.subj.Prefix()+".") || strings.HasPrefix(a.Inbox, "$") {
			continue
		}
		if err := j.n.nc.Publish(a.Inbox, notice); err != nil {
			j.log.Warn("executor: send an interrupt notice", "chunk", jc.ord, "err", err)
		}
	}
}
