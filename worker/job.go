package worker

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/broker/wire"
)

// A chunk of a named job asks no producer: its start is decided by the
// job's records in the pool's jobs bucket, its results go to its owner's
// results stream, and the worker acks it once they are stored (see the job
// flow in broker/wire/job.go). It costs a read of the chunk's records, a
// claim, a second read, and a write per results message and per renewal.

// jobTimeout bounds each read and write of a named job's records.
const jobTimeout = 5 * time.Second

// claimTries bounds how often one delivery claims a chunk when workers of
// its author race it.
const claimTries = 3

// jobKeyPrefix marks the chunk keys of named chunks among the running ones,
// so that none is taken for an unnamed chunk's.
const jobKeyPrefix = "\x00"

// jobAttempt is this worker's attempt at a named chunk: what its renewals
// and results carry.
type jobAttempt struct {
	owner, name string
	author      string
	nonce       uint64
	proof       []byte
	since       uint64   // the sequence of the lease record the attempt began with; 0 if it began with the author's first claim
	prior       []uint32 // the items the author's earlier attempts stored results for
	ttl         time.Duration

	mu       sync.Mutex
	leaseSeq uint64   // the author's lease record, which the next renewal expects; 0: none
	stored   []uint32 // the items whose results this attempt stored
	lost     bool     // a renewal lost its compare-and-set: another worker of the author took the chunk over
	failed   bool     // some results could not be stored
}

// claim is the attempt's record as of now.
func (a *jobAttempt) claim(r *chunkRun, final bool) wire.JobClaim {
	a.mu.Lock()
	defer a.mu.Unlock()
	done := slices.Concat(a.prior, a.stored)
	slices.Sort(done)
	return wire.JobClaim{Worker: r.w.cfg.ID, Nonce: a.nonce, Inbox: r.w.interrupts, StreamSeq: r.streamSeq,
		LeaseMs: r.ackWait.Milliseconds(), Since: a.since, Proof: a.proof, Done: slices.Compact(done), Final: final}
}

// startNamed runs a chunk of a named job through steps 2 to 5 of the job
// flow: it reads the chunk's records, claims it, reads them again and then
// runs the items still owed a result, steps back for an attempt that began
// first, or drops the chunk. A chunk of a job that no longer exists is
// acked, and one that is not the chunk its owner published is terminated.
// If ctx ends before the chunk is claimed, it goes back to the stream.
func (r *chunkRun) startNamed(ctx context.Context) {
	w, c := r.w, r.c
	asked := time.Now()
	digest := wire.Digest(r.msg.Data)
	st, ok := r.readJob(0, digest, time.Now())
	if !ok {
		return
	}
	for range claimTries {
		if ctx.Err() != nil {
			r.giveBack()
			return
		}
		a, seq, err := r.claimJob(&st)
		if errors.Is(err, broker.ErrConflict) {
			if st, ok = r.readJob(0, digest, time.Now()); !ok {
				return
			}
			continue
		}
		if err != nil {
			w.log.Warn("worker: claim a job's chunk", "job", c.Job, "chunk", c.Ord, "err", err)
			r.msg.NakWithDelay(time.Second)
			return
		}
		st, ok = r.readJob(seq, digest, time.Time{})
		if !ok {
			return
		}
		mine, ok := st.Attempt(a.author)
		if !ok || mine.Nonce != a.nonce {
			// A worker of the same author took the chunk meanwhile.
			r.m.busy.Add(1)
			r.msg.NakWithDelay(r.ackWait)
			return
		}
		now := mine.Last
		for _, l := range st.Live(now) {
			if l.Nonce != a.nonce && l.Start < mine.Start {
				r.stepBack(a, &st, l)
				return
			}
		}
		owed := st.Owed()
		if len(owed) == 0 {
			r.endJobAttempt(a)
			r.m.dropped.Add(1)
			r.msg.Ack()
			return
		}
		a.leaseSeq = st.Leases[a.author]
		r.job = a
		if r.lastDelivery() {
			// JetStream delivers the chunk no more, and no producer may
			// be there to hear of it: this attempt stores the items'
			// failure rather than run them once more, as a run that died
			// now would leave them owed for ever.
			w.log.Warn("worker: job's chunk at its last delivery; its tasks fail with max_deliveries",
				"job", c.Job, "chunk", c.Ord, "delivery", r.delivery, "items", len(owed))
			r.abandon = true
			r.m.terminated.Add(1)
		} else {
			r.m.startWait.Observe(time.Since(asked).Seconds())
			r.m.chunksStarted.Add(1)
			r.m.inFlight.Add(1)
			defer r.m.inFlight.Add(-1)
		}
		r.run(wire.StartReply{Verdict: wire.VerdictGo, Items: owed, LeaseMs: r.ackWait.Milliseconds(), Grant: a.nonce})
		return
	}
	r.m.busy.Add(1)
	r.msg.NakWithDelay(r.ackWait)
}

// lastDelivery reports whether JetStream delivers the chunk no more after
// this delivery. A consumer that delivers a chunk once has no delivery to
// spare: its one delivery runs the chunk.
func (r *chunkRun) lastDelivery() bool {
	return r.maxDeliver > 1 && r.delivery >= uint64(r.maxDeliver)
}

// readJob reads the chunk's records, at least as new as fresh, and reports
// whether the chunk may go on to be claimed or run. It does what the
// records say otherwise: a chunk without a record, or with nothing left to
// run, is acked; one that is not the chunk the owner published is
// terminated; one another attempt runs is nakked with a delay, or acked if
// that attempt holds another copy of the message. With now zero it checks
// only the record and the digest: the caller judges the attempts. A read
// that fails naks the chunk after a second.
func (r *chunkRun) readJob(fresh uint64, digest [32]byte, now time.Time) (wire.JobChunkState, bool) {
	w, c := r.w, r.c
	ctx, cancel := context.WithTimeout(context.Background(), jobTimeout)
	defer cancel()
	recs, err := w.jobs.ChunkRecords(ctx, c.Job, c.Ord, fresh)
	if err != nil {
		w.log.Warn("worker: read a job's chunk", "job", c.Job, "chunk", c.Ord, "err", err)
		r.msg.NakWithDelay(time.Second)
		return wire.JobChunkState{}, false
	}
	st := wire.NewJobChunkState(c.Job, c.Ord, recs, c.Key)
	switch {
	case st.Chunk == nil:
		w.log.Info("worker: chunk of a job that is deleted or expired; dropped", "job", c.Job, "chunk", c.Ord)
		r.m.dropped.Add(1)
		r.msg.Ack()
		return st, false
	case !bytes.Equal(st.Chunk.Commit, digest[:]):
		w.log.Warn("worker: chunk that is not the one its job's owner published; terminated", "job", c.Job, "chunk", c.Ord)
		w.terminate(r.m, r.msg)
		return st, false
	case now.IsZero():
		return st, true
	case len(st.Owed()) == 0:
		r.m.dropped.Add(1)
		r.msg.Ack()
		return st, false
	}
	if live := st.Live(now); len(live) > 0 {
		r.yield(live[0])
		return st, false
	}
	return st, true
}

// yield leaves the chunk to the live attempt a: a copy of the message other
// than the one a holds is acked, since a runs the chunk; the same message,
// delivered again while a holds its lease, is nakked until a's lease could
// have lapsed.
func (r *chunkRun) yield(a wire.JobAttempt) {
	if a.StreamSeq != 0 && a.StreamSeq != r.streamSeq {
		r.m.dropped.Add(1)
		r.msg.Ack()
		return
	}
	r.m.busy.Add(1)
	r.msg.NakWithDelay(r.ackWait)
}

// claimJob writes a claim of the chunk for this worker's author: its first
// claim if it has none, else a compare-and-set of its lease record. It
// returns the attempt and the sequence of the record written; a record
// written meanwhile by another worker of the author fails with an error
// matching broker.ErrConflict.
func (r *chunkRun) claimJob(st *wire.JobChunkState) (*jobAttempt, uint64, error) {
	w, c := r.w, r.c
	owner, name, _ := strings.Cut(c.Job, ".")
	a := &jobAttempt{owner: owner, name: name, author: w.cfg.User, nonce: rand.Uint64() | 1, ttl: c.TTL}
	a.proof = wire.JobProof(c.Key, c.Job, c.Ord, a.author, w.cfg.ID, a.nonce)
	if prev, ok := st.Attempt(a.author); ok {
		a.prior = prev.Done
	}
	ctx, cancel := context.WithTimeout(context.Background(), jobTimeout)
	defer cancel()
	claim := a.claim(r, false)
	data, err := wire.Encode(&claim)
	if err != nil {
		return nil, 0, err
	}
	if !st.Claimed[a.author] {
		seq, err := w.jobs.Create(ctx, wire.JobClaimKey(c.Job, c.Ord, a.author), data, c.TTL)
		return a, seq, err
	}
	seq, err := w.jobs.Update(ctx, wire.JobLeaseKey(c.Job, c.Ord, a.author), data, st.Leases[a.author], c.TTL)
	a.since = seq
	return a, seq, err
}

// stepBack ends attempt a, claimed while the attempt first began earlier
// and is live, and leaves the chunk to it.
func (r *chunkRun) stepBack(a *jobAttempt, st *wire.JobChunkState, first wire.JobAttempt) {
	a.leaseSeq = st.Leases[a.author]
	r.endJobAttempt(a)
	r.yield(first)
}

// endJobAttempt marks attempt a final in its author's lease record, so that
// no worker waits for its lease. It is best effort: an attempt not marked
// lapses with its lease.
func (r *chunkRun) endJobAttempt(a *jobAttempt) {
	if _, err := r.writeLease(a, true); err != nil {
		r.w.log.Debug("worker: end a job's chunk attempt", "job", r.c.Job, "chunk", r.c.Ord, "err", err)
	}
}

// writeLease writes attempt a's record, final or not, over the author's
// lease record it last wrote or read (a compare-and-set), and returns the
// record's new sequence.
func (r *chunkRun) writeLease(a *jobAttempt, final bool) (uint64, error) {
	claim := a.claim(r, final)
	data, err := wire.Encode(&claim)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), jobTimeout)
	defer cancel()
	a.mu.Lock()
	last := a.leaseSeq
	a.mu.Unlock()
	return r.w.jobs.Update(ctx, wire.JobLeaseKey(r.c.Job, r.c.Ord, a.author), data, last, a.ttl)
}

// renewJob renews the attempt's lease, with the items it has stored results
// for. A renewal that loses its compare-and-set means another worker of
// the author took the chunk over: the attempt stops renewing, and runs on,
// its results still counting where they come first.
func (r *chunkRun) renewJob() {
	a := r.job
	a.mu.Lock()
	lost := a.lost
	a.mu.Unlock()
	if lost {
		return
	}
	seq, err := r.writeLease(a, false)
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case err == nil:
		a.leaseSeq = seq
	case errors.Is(err, broker.ErrConflict):
		a.lost = true
		r.w.log.Info("worker: another worker took over a job's chunk", "job", r.c.Job, "chunk", r.c.Ord)
	default:
		r.w.log.Warn("worker: renew a job's chunk", "job", r.c.Job, "chunk", r.c.Ord, "err", err)
	}
}

// storeResults stores a results message of the attempt in its owner's
// results stream and waits until the stream has it. A message the stream
// does not take marks the attempt failed: its chunk is nakked at the end,
// and the items still owed run again.
func (r *chunkRun) storeResults(items []wire.ItemResult, final bool) {
	a := r.job
	data, err := wire.Encode(&wire.JobResult{Worker: r.w.cfg.ID, Nonce: a.nonce, Proof: a.proof, Final: final, Items: items})
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), jobTimeout)
		var opts []jetstream.PublishOpt
		if a.ttl > 0 {
			opts = append(opts, jetstream.WithMsgTTL(a.ttl))
		}
		subject := r.w.subj.Results(a.owner, a.name, r.c.Ord, a.author)
		_, err = r.w.js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: data}, opts...)
		cancel()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		a.failed = true
		r.w.log.Warn("worker: store a job's results", "job", r.c.Job, "chunk", r.c.Ord, "items", len(items), "err", err)
		return
	}
	for _, it := range items {
		a.stored = append(a.stored, it.Seq)
	}
}

// finishJob ends the attempt once its final results went out: stored, it
// marks the attempt final and acks the chunk; not, it naks the chunk, so
// that the items still owed a result run again.
func (r *chunkRun) finishJob() {
	a := r.job
	a.mu.Lock()
	failed := a.failed
	a.mu.Unlock()
	if failed {
		r.msg.Nak()
		return
	}
	r.endJobAttempt(a)
	r.msg.Ack()
}

// checkInterrupts reads the chunk's interrupt record, which only the job's
// owner may write, and interrupts the items it lists: a notice on the
// worker's inbox, which anyone may send, only makes the worker look.
func (r *chunkRun) checkInterrupts() {
	ctx, cancel := context.WithTimeout(context.Background(), jobTimeout)
	defer cancel()
	e, ok, err := r.w.jobs.Get(ctx, wire.JobInterruptKey(r.c.Job, r.c.Ord))
	if err != nil || !ok {
		return
	}
	var in wire.JobCancel
	if wire.Decode(e.Data, &in) != nil {
		return
	}
	for _, seq := range in.Items {
		r.interrupt(seq)
	}
}
