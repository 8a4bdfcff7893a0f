package executor

import (
	"crypto/sha256"
	"slices"
	"sync/atomic"
	"time"

	"github.com/jetpool/jetpool/broker/wire"
)

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
	// values names its inputs kept in the values bucket, removed once
	// every future of it is done; fetching holds the items whose result by
	// reference is being read (see values.go).
	values   []string
	fetching map[uint32]bool
}

// owed is how many of rc's futures wait for a result no attempt reported;
// NATS.mu is held.
func (rc *remoteChunk) owed() int64 {
	owed := rc.left.Load()
	for seq := range rc.fetching {
		if !rc.b.calls[seq].s.isDone() {
			owed--
		}
	}
	return owed
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
	values := rc.values
	rc.values = nil
	ack := rc.attempt.ack
	if n.closed && !rc.started {
		// Cancelled or expired before any worker started it, after
		// Shutdown: nobody is left to tell a worker to drop it. Its
		// sequence may be on its way in its PubAck.
		switch {
		case rc.seq != 0:
			n.purge = append(n.purge, rc.seq)
		case rc.lost.IsZero():
			// Not when a publish of it was lost: its next one, which
			// would tell, is not made now.
			n.unacked[rc.id] = struct{}{}
		}
	}
	done := n.closed && len(n.chunks) == 0
	n.mu.Unlock()
	n.deleteValues(values...)
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
	data, err := wire.Encode(&wire.Interrupt{Executor: n.id, Chunk: rc.id, Seq: seq, Grant: grant})
	if err == nil {
		err = n.nc.Publish(inbox, data)
	}
	if err != nil {
		n.log.Warn("executor: send interrupt", "chunk", rc.id, "err", err)
	}
}
