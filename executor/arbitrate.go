package executor

import (
	"bytes"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetpool/jetpool/broker/wire"
)

// newGrant draws an attempt's grant; n.mu is held.
func (n *NATS) newGrant() uint64 {
	for {
		if g := n.rng.Uint64(); g != 0 {
			return g
		}
	}
}

func (n *NATS) onStart(m *nats.Msg) {
	var req wire.Starts
	if err := wire.Decode(m.Data, &req); err != nil {
		n.log.Warn("executor: bad start request", "err", err)
		return
	}
	// A request without Starts is a worker's ping; the empty answer says
	// that this producer is there.
	replies := wire.StartReplies{Items: make([]wire.StartReply, len(req.Items))}
	for i, s := range req.Items {
		replies.Items[i] = n.decideStart(s)
	}
	data, err := wire.Encode(&replies)
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
func (n *NATS) decideStart(req wire.Start) wire.StartReply {
	drop := wire.StartReply{Verdict: wire.VerdictDrop}
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
	case rc.started && !rc.lease.IsZero() && rc.attempt.worker == req.Worker && rc.attempt.delivery == req.Delivery && rc.attempt.inbox == req.Inbox:
		// A retried request of the attempt already granted, and not ended
		// since (an ended attempt's chunk is being delivered again, and a
		// retry is a new attempt). Its inbox, which nobody but that worker
		// knows, tells it from a replay.
		items, grant := rc.goItems, rc.attempt.grant
		n.mu.Unlock()
		return wire.StartReply{Verdict: wire.VerdictGo, Items: items, LeaseMs: n.pc.AckWait.Milliseconds(), Grant: grant}
	case rc.started && now.Before(rc.lease):
		n.mu.Unlock()
		return wire.StartReply{Verdict: wire.VerdictBusy}
	}
	defer n.mu.Unlock()
	items := make([]uint32, 0, len(rc.b.calls))
	for i := range rc.b.calls {
		s := rc.b.calls[i].s
		seq := uint32(i)
		if rc.fetching[seq] {
			continue // answered: its result is being read
		}
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
	return wire.StartReply{Verdict: wire.VerdictGo, Items: items, LeaseMs: n.pc.AckWait.Milliseconds(), Grant: att.grant}
}

func (n *NATS) onLease(m *nats.Msg) {
	var l wire.Lease
	if wire.Decode(m.Data, &l) != nil {
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

// endAttempt ends rc's attempt with grant g, if it is the latest and has not
// ended: its lease lapses at once and the chunk is nakked, so JetStream
// redelivers it now and the next start request is granted the items still
// owed a result.
func (n *NATS) endAttempt(rc *remoteChunk, g uint64, why string) {
	n.mu.Lock()
	if rc.attempt.grant != g || rc.lease.IsZero() || rc.owed() == 0 {
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
