package worker

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetpool/jetpool/broker/embedded"
	"github.com/jetpool/jetpool/broker/wire"
)

// TestStartBatcherCoalesces: chunks asking while a round trip is in flight
// go together in the next one, each gets its own verdict, and a lone ask
// goes at once.
func TestStartBatcherCoalesces(t *testing.T) {
	nc := embeddedConn(t)
	const subject = "jetpool.default.ctl.batch.start"
	var requests, asked atomic.Int64
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
		requests.Add(1)
		var reqs wire.Starts
		if err := wire.Decode(m.Data, &reqs); err != nil {
			t.Errorf("bad request: %v", err)
			return
		}
		asked.Add(int64(len(reqs.Items)))
		time.Sleep(20 * time.Millisecond) // a slow producer: others queue up
		var replies wire.StartReplies
		for _, r := range reqs.Items {
			replies.Items = append(replies.Items, wire.StartReply{Verdict: wire.VerdictGo, Items: []uint32{uint32(r.Chunk)}, LeaseMs: int64(r.Delivery)})
		}
		data, _ := wire.Encode(&replies)
		m.Respond(data)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	b := newStartBatcher(nc)

	reply, err := b.ask(subject, wire.Start{Chunk: 7, Delivery: 3})
	if err != nil || reply.Items[0] != 7 || reply.LeaseMs != 3 || requests.Load() != 1 {
		t.Fatalf("lone ask: %+v, %v after %d requests", reply, err, requests.Load())
	}

	const n = 200
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			reply, err := b.ask(subject, wire.Start{Chunk: uint64(1000 + i), Delivery: uint64(i)})
			if err != nil {
				t.Errorf("chunk %d: %v", i, err)
				return
			}
			if reply.Verdict != wire.VerdictGo || len(reply.Items) != 1 || reply.Items[0] != uint32(1000+i) || reply.LeaseMs != int64(i) {
				t.Errorf("chunk %d got the verdict %+v", 1000+i, reply)
			}
		})
	}
	wg.Wait()
	if asked.Load() != n+1 {
		t.Fatalf("the producer was asked about %d chunks, want %d", asked.Load(), n+1)
	}
	if got := requests.Load() - 1; got >= n/4 {
		t.Fatalf("%d round trips for %d concurrent chunks: not coalesced", got, n)
	}
	b.mu.Lock()
	left := len(b.queues)
	b.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d queues left behind", left)
	}
}

// TestStartBatcherErrors: a round trip's failure reaches every chunk in it,
// and a reply with too few verdicts is an error, not a wrong verdict.
func TestStartBatcherErrors(t *testing.T) {
	nc := embeddedConn(t)
	b := newStartBatcher(nc)
	if _, err := b.ask("jetpool.default.ctl.nobody.start", wire.Start{Chunk: 1}); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("no producer: %v, want ErrNoResponders", err)
	}
	const subject = "jetpool.default.ctl.short.start"
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
		data, _ := wire.Encode(&wire.StartReplies{})
		m.Respond(data)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	if _, err := b.ask(subject, wire.Start{Chunk: 1}); !errors.Is(err, errShortReply) {
		t.Fatalf("short reply: %v, want errShortReply", err)
	}
	garbage := "jetpool.default.ctl.garbage.start"
	sub2, err := nc.Subscribe(garbage, func(m *nats.Msg) { m.Respond([]byte{0xc1, 0xff}) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub2.Unsubscribe() })
	if _, err := b.ask(garbage, wire.Start{Chunk: 1}); !errors.Is(err, wire.ErrMalformed) {
		t.Fatalf("garbage reply: %v, want ErrMalformed", err)
	}
}

// embeddedConn starts an embedded server for one test and connects to it.
func embeddedConn(t *testing.T) *nats.Conn {
	t.Helper()
	srv, err := embedded.Start(embedded.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}
