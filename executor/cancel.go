package executor

import (
	"github.com/nats-io/nats.go"

	"github.com/jetpool/jetpool/broker/wire"
)

// onCancel answers an operator's request (submit cancel) to cancel pending
// work: every matching future that has not started is cancelled, exactly as
// Future.Cancel would, and the reply counts what was cancelled and what runs
// on.
func (n *NATS) onCancel(m *nats.Msg) {
	var req wire.CancelRequest
	if err := wire.Decode(m.Data, &req); err != nil {
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
	reply := wire.CancelReply{Executor: n.id}
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
	if data, err := wire.Encode(&reply); err == nil {
		m.Respond(data)
	}
}
