package executor_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/broker/wire"
)

// TestProbeEndsAnAttemptItsWorkerLeftOut: a worker that twice answers a
// probe without an attempt's grant has the attempt ended and the chunk
// delivered again; its retried start of the ended attempt is then no
// retry of the old grant but a new attempt, with a grant and a lease of its
// own, which is probed and renewed like any.
func TestProbeEndsAnAttemptItsWorkerLeftOut(t *testing.T) {
	srv := secureServer(t)
	ex, _, _ := producerAs(t, srv, "producer")
	futs := submitSquares(t, ex, 6)
	r := newRogue(t, srv, broker.PoolConfig{AckWait: time.Minute})
	probed := make(chan wire.Probe, 16)
	sub, err := r.nc.Subscribe(r.inbox, func(m *nats.Msg) {
		var p wire.Probe
		if m.Reply == "" || wire.Decode(m.Data, &p) != nil {
			return
		}
		select {
		case probed <- p:
		default:
		}
		data, _ := wire.Encode(&wire.ProbeReply{Grants: []uint64{}})
		m.Respond(data)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	held := r.pull(t, 1)
	c, digest := held[0].chunk, wire.Digest(held[0].msg.Data())
	start := wire.Start{Chunk: c.ID, Worker: "worker-r", Inbox: r.inbox, Delivery: 1, Digest: digest[:], Ack: held[0].msg.Reply()}
	first := r.askStart(t, c.Control, start)[0]
	if first.Verdict != wire.VerdictGo || first.Grant == 0 {
		t.Fatalf("first start: %+v, want a grant", first)
	}
	for range 2 {
		select {
		case p := <-probed:
			if len(p.Chunks) != 1 || p.Chunks[0] != c.ID || p.Grants[0] != first.Grant {
				t.Fatalf("probe %+v, want chunk %d with grant %d", p, c.ID, first.Grant)
			}
		case <-time.After(settleBound):
			t.Fatal("the worker of a granted attempt was not probed")
		}
	}
	// The producer naks the chunk: it is delivered again.
	var again jetstream.Msg
	for deadline := time.Now().Add(settleBound); again == nil; {
		if time.Now().After(deadline) {
			t.Fatal("the chunk of the ended attempt was not delivered again")
		}
		batch, err := r.cons.Fetch(1, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			again = m
		}
	}
	if meta, err := again.Metadata(); err != nil || meta.NumDelivered != 2 {
		t.Fatalf("delivered again with metadata %+v, %v; want delivery 2", meta, err)
	}
	retried := r.askStart(t, c.Control, start)[0]
	if retried.Verdict != wire.VerdictGo || retried.Grant == first.Grant {
		t.Fatalf("the retried start of the ended attempt: %+v; want a grant other than %d", retried, first.Grant)
	}
	// The new attempt is leased like any: its result resolves the future.
	r.publish(t, c.Control+broker.ResultSuffix, &wire.Result{Chunk: c.ID, Worker: "worker-r", Final: true,
		Grant: retried.Grant, Items: []wire.ItemResult{{Seq: 0, Value: msgpackOf(t, 36)}}})
	wantSquares(t, futs, 6)
	again.Nak()
}
