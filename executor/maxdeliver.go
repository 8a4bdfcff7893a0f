package executor

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetpool/jetpool/task"
)

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
		for _, j := range n.attached() {
			j.onMaxDeliveries(adv.StreamSeq, adv.Deliveries)
		}
		return
	}
	n.failChunk(rc, &task.Error{Kind: rc.b.codec.Kind, Type: task.TypeMaxDeliveries,
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
