package worker

import (
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetpool/jetpool/broker/wire"
)

// collect subscribes to subject and returns the results of each message
// received, one message's at a time.
func collect(t *testing.T, nc *nats.Conn, subject string) <-chan []wire.Result {
	t.Helper()
	msgs := make(chan []wire.Result, 1024)
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
		if len(m.Data) > int(nc.MaxPayload()) {
			t.Errorf("a message of %d bytes, above the maximum payload", len(m.Data))
		}
		rs, err := wire.DecodeResults(m.Data)
		if err != nil {
			t.Errorf("bad result message: %v", err)
		}
		msgs <- rs
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	return msgs
}

// receive returns the messages from msgs that hold the next want results.
func receive(t *testing.T, msgs <-chan []wire.Result, want int) [][]wire.Result {
	t.Helper()
	var got [][]wire.Result
	timeout := time.After(10 * time.Second)
	for n := 0; n < want; {
		select {
		case rs := <-msgs:
			got = append(got, rs)
			n += len(rs)
		case <-timeout:
			t.Fatalf("%d messages with %d of %d results after 10s", len(got), n, want)
		}
	}
	return got
}

// quiet fails if a message reaches msgs once everything sent on nc so far
// has been through the server.
func quiet(t *testing.T, nc *nats.Conn, msgs <-chan []wire.Result) {
	t.Helper()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	select {
	case rs := <-msgs:
		t.Fatalf("a message arrived: %+v", rs)
	case <-time.After(50 * time.Millisecond):
	}
}

func encodedResult(t *testing.T, chunk uint64, final bool, value []byte) []byte {
	t.Helper()
	data, err := wire.Encode(&wire.Result{Chunk: chunk, Worker: "w", Final: final, Items: []wire.ItemResult{{Seq: 0, Value: value}}})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func chunksOf(msg []wire.Result) []uint64 {
	ids := make([]uint64, len(msg))
	for i, r := range msg {
		ids[i] = r.Chunk
	}
	return ids
}

// TestResultSenderCoalesces: a result with no send under way is its
// caller's to publish; results that come meanwhile are handed over and leave
// together, in order, in the next message.
func TestResultSenderCoalesces(t *testing.T) {
	nc := embeddedConn(t)
	const subject = "jetpool.default.ctl.ex.result"
	msgs := collect(t, nc, subject)
	s := newResultSender(nc, slog.Default())

	batch := s.queue(subject, encodedResult(t, 1, true, []byte{0x01}))
	if len(batch) != 1 {
		t.Fatalf("the first result should be its caller's to send, got a batch of %d", len(batch))
	}
	for id := uint64(2); id <= 4; id++ {
		if b := s.queue(subject, encodedResult(t, id, id == 4, []byte{0x01})); b != nil {
			t.Fatalf("result %d, queued while a send is under way, was given back to send", id)
		}
	}
	quiet(t, nc, msgs) // nothing leaves before the send under way publishes
	s.publish(subject, batch)
	if batch = s.next(subject, batch); len(batch) != 3 {
		t.Fatalf("the send under way should take over 3 results, got %d", len(batch))
	}
	s.publish(subject, batch)
	if batch = s.next(subject, batch); batch != nil {
		t.Fatalf("nothing was handed over, yet the send goes on with %d results", len(batch))
	}
	got := receive(t, msgs, 4)
	if len(got) != 2 || !slices.Equal(chunksOf(got[0]), []uint64{1}) || !slices.Equal(chunksOf(got[1]), []uint64{2, 3, 4}) {
		t.Fatalf("messages carried the chunks %v, want [1] then [2 3 4]", got)
	}
	if !got[1][2].Final || got[1][0].Final {
		t.Fatalf("finals changed on the way: %+v", got[1])
	}

	// With the send over, the next result is its caller's to send again.
	s.send(subject, encodedResult(t, 5, true, []byte{0x01}))
	if got := receive(t, msgs, 1); len(got) != 1 || !slices.Equal(chunksOf(got[0]), []uint64{5}) {
		t.Fatalf("a lone result after the send: %v", got)
	}
}

// TestResultSenderSplitsAtMaxPayload: a batch goes in as few messages as fit
// under the server's maximum payload, in order.
func TestResultSenderSplitsAtMaxPayload(t *testing.T) {
	nc := embeddedConn(t)
	const subject = "jetpool.default.ctl.ex.result"
	msgs := collect(t, nc, subject)
	s := newResultSender(nc, slog.Default())

	big := make([]byte, int(nc.MaxPayload())*2/5) // two fit in a message, three do not
	var batch [][]byte
	for id := range uint64(5) {
		batch = append(batch, encodedResult(t, id, true, big))
	}
	s.publish(subject, batch)
	got := receive(t, msgs, 5)
	var ids [][]uint64
	for _, msg := range got {
		ids = append(ids, chunksOf(msg))
	}
	if want := [][]uint64{{0, 1}, {2, 3}, {4}}; !slices.EqualFunc(ids, want, slices.Equal) {
		t.Fatalf("messages carried the chunks %v, want %v", ids, want)
	}
}

// TestResultSenderUnderConcurrentSends: results sent from many goroutines
// at once all arrive, once each, and each goroutine's in the order it sent
// them, whatever coalescing happened.
func TestResultSenderUnderConcurrentSends(t *testing.T) {
	nc := embeddedConn(t)
	const subject = "jetpool.default.ctl.ex.result"
	msgs := collect(t, nc, subject)
	s := newResultSender(nc, slog.Default())

	const senders, each = 16, 200
	var wg sync.WaitGroup
	for g := range senders {
		wg.Go(func() {
			for i := range each {
				s.send(subject, encodedResult(t, uint64(g*each+i), i == each-1, []byte{0x01}))
			}
		})
	}
	wg.Wait()
	next := make([]int, senders) // the next result expected from each sender
	messages := 0
	for _, msg := range receive(t, msgs, senders*each) {
		messages++
		for _, r := range msg {
			g, i := int(r.Chunk)/each, int(r.Chunk)%each
			if i != next[g] {
				t.Fatalf("sender %d: result %d arrived when %d was due", g, i, next[g])
			}
			next[g]++
		}
	}
	for g, n := range next {
		if n != each {
			t.Errorf("sender %d: %d of %d results arrived", g, n, each)
		}
	}
	if len(s.waiting) != 0 {
		t.Errorf("sends are over, yet %d subjects are marked busy", len(s.waiting))
	}
	t.Logf("%d results in %d messages", senders*each, messages)
}
