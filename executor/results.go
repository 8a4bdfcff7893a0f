package executor

import (
	"github.com/nats-io/nats.go"

	"github.com/jetpool/jetpool/broker/wire"
	"github.com/jetpool/jetpool/task"
)

// onResult takes a result message: the results of one or more chunks.
func (n *NATS) onResult(m *nats.Msg) {
	rs, err := wire.DecodeResults(m.Data)
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
// a lost result message never loses a future. A result by reference is
// read in the background (see fetchLater).
func (n *NATS) result(r *wire.Result) {
	n.mu.Lock()
	rc := n.chunks[r.Chunk]
	known := rc != nil && rc.granted(r.Grant)
	n.mu.Unlock()
	if rc == nil {
		// Late: every future of the chunk is done. A value it kept for
		// one is not needed.
		var names []string
		for _, it := range r.Items {
			if it.Ref != nil && len(names) < maxLateRemovals {
				names = append(names, wire.ResultName(n.id, r.Chunk, it.Seq, r.Grant))
			}
		}
		n.deleteValues(names...)
		return
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
		if it.Ref != nil {
			n.fetchLater(rc, r.Grant, it.Seq, *it.Ref)
			continue
		}
		v, err := rc.b.codec.DecodeOut(it.Value)
		if err != nil {
			err = &task.Error{Kind: kind, Type: task.TypeBadOutput, Message: err.Error()}
		}
		s.resolve(v, err)
	}
	// endAttempt ends nothing if every item left is being read.
	if r.Final && rc.left.Load() > 0 {
		n.endAttempt(rc, r.Grant, "its final result left items without one")
	}
}

// maxLateRemovals bounds the values one late result message has removed, so
// that a forged one costs little.
const maxLateRemovals = 16

// Forged returns how many start requests, lease renewals and results the
// executor ignored because no grant of its own backed them: a message
// forged by another party of the pool, or a start request for a copy of a
// chunk that is not the one published.
func (n *NATS) Forged() int64 { return n.forged.Load() }
