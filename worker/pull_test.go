package worker

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// pullEnv is a work-queue stream "P" on "p.>" with a pull consumer "c".
func pullEnv(t *testing.T) (*nats.Conn, *puller) {
	t.Helper()
	nc := embeddedConn(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "P", Subjects: []string{"p.>"}, Retention: jetstream.WorkQueuePolicy}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateConsumer(ctx, "P", jetstream.ConsumerConfig{Durable: "c", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	p, err := newPuller(nc, jetstream.DefaultAPIPrefix, "P", "c")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.close() })
	return nc, p
}

// publishN publishes "0" to n-1; it may run in a goroutine of its own.
func publishN(t *testing.T, nc *nats.Conn, n int) {
	t.Helper()
	js, _ := jetstream.New(nc)
	for i := range n {
		if _, err := js.Publish(context.Background(), "p.x", []byte(strconv.Itoa(i))); err != nil {
			t.Error(err)
			return
		}
	}
}

// waitPending waits until consumer "c" has n chunks to deliver: the server
// tells a consumer of new messages asynchronously, and a no-wait request
// that comes first is answered "no messages".
func waitPending(t *testing.T, nc *nats.Conn, n uint64) {
	t.Helper()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		c, err := js.Consumer(ctx, "P", "c")
		if err == nil {
			var info *jetstream.ConsumerInfo
			if info, err = c.Info(ctx); err == nil && info.NumPending == n {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("consumer c never had %d chunks pending (last error %v)", n, err)
		case <-tick.C:
		}
	}
}

// fetch sends a request and polls until the server ended it.
func fetch(t *testing.T, p *puller, n int, wait time.Duration) ([]*nats.Msg, error) {
	t.Helper()
	if err := p.request(n, wait); err != nil {
		t.Fatal(err)
	}
	var got []*nats.Msg
	timeout := time.After(wait + 5*time.Second)
	for {
		msgs, err := p.poll()
		got = append(got, msgs...)
		if err != nil || !p.inFlight() {
			return got, err
		}
		select {
		case <-p.signal:
		case <-timeout:
			t.Fatalf("the request for %d chunks was not answered", n)
		}
	}
}

func TestPullerNoWaitReturnsWhatIsThere(t *testing.T) {
	nc, p := pullEnv(t)
	publishN(t, nc, 3)
	waitPending(t, nc, 3)
	start := time.Now()
	msgs, err := fetch(t, p, 5, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 3 || !p.idle {
		t.Fatalf("got %d chunks (idle %v), want 3 and the stream idle", len(msgs), p.idle)
	}
	for i, m := range msgs {
		if string(m.Data) != strconv.Itoa(i) {
			t.Errorf("chunk %d is %q", i, m.Data)
		}
		meta, err := m.Metadata()
		if err != nil || meta.NumDelivered != 1 {
			t.Errorf("chunk %d: metadata %+v, %v", i, meta, err)
		}
		if err := m.Ack(); err != nil {
			t.Error(err)
		}
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("a no-wait request took %v", took)
	}
	// The stream is empty now: the server answers at once.
	msgs, err = fetch(t, p, 5, 0)
	if err != nil || len(msgs) != 0 || !p.idle {
		t.Fatalf("on an empty stream: %d chunks, idle %v, %v", len(msgs), p.idle, err)
	}
}

func TestPullerBatchIsBounded(t *testing.T) {
	nc, p := pullEnv(t)
	publishN(t, nc, 10)
	waitPending(t, nc, 10)
	msgs, err := fetch(t, p, 4, 0)
	if err != nil || len(msgs) != 4 || p.idle {
		t.Fatalf("4 of 10: %d chunks, idle %v, %v", len(msgs), p.idle, err)
	}
	// Under load the server may end a no-wait request before it delivered
	// what is there (a spurious "no messages"); the next request gets it.
	msgs = nil
	for try := 0; try < 3 && len(msgs) < 6; try++ {
		got, err := fetch(t, p, 100, 0)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, got...)
	}
	if len(msgs) != 6 {
		t.Fatalf("the rest: %d chunks, want 6", len(msgs))
	}
	if string(msgs[0].Data) != "4" {
		t.Errorf("first of the rest is %q, want 4", msgs[0].Data)
	}
}

func TestPullerLongPoll(t *testing.T) {
	nc, p := pullEnv(t)
	start := time.Now()
	msgs, err := fetch(t, p, 1, 200*time.Millisecond)
	if err != nil || len(msgs) != 0 || !p.idle {
		t.Fatalf("long poll on an empty stream: %d chunks, idle %v, %v", len(msgs), p.idle, err)
	}
	if took := time.Since(start); took < 150*time.Millisecond {
		t.Errorf("the long poll ended after %v, before it expired", took)
	}
	published := make(chan struct{})
	go func() {
		defer close(published)
		time.Sleep(100 * time.Millisecond)
		publishN(t, nc, 1)
	}()
	msgs, err = fetch(t, p, 1, 5*time.Second)
	<-published
	if err != nil || len(msgs) != 1 || string(msgs[0].Data) != "0" || p.idle {
		t.Fatalf("long poll with a chunk published meanwhile: %d chunks, idle %v, %v", len(msgs), p.idle, err)
	}
}

// TestPullerLateChunksAreKept: a chunk delivered for a request the puller
// took as lost arrives on the same inbox and is polled all the same; close
// hands back what was never polled.
func TestPullerLateChunksAreKept(t *testing.T) {
	nc, p := pullEnv(t)
	if err := p.request(1, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.lost = time.Now() // taken as lost at once
	if p.inFlight() {
		t.Fatal("a lost request is in flight")
	}
	publishN(t, nc, 1)
	waitForChunk(t, p)
	msgs, err := p.poll()
	if err != nil || len(msgs) != 1 || string(msgs[0].Data) != "0" {
		t.Fatalf("the late chunk: %d chunks, %v", len(msgs), err)
	}
	if err := p.request(1, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	publishN(t, nc, 1)
	waitForChunk(t, p)
	if left := p.close(); len(left) != 1 || string(left[0].Data) != "0" {
		t.Fatalf("close returned %d chunks", len(left))
	}
}

// waitForChunk waits until a chunk has arrived that was not polled.
func waitForChunk(t *testing.T, p *puller) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		p.mu.Lock()
		for _, m := range p.arrived {
			if status(m) == isChunk {
				p.mu.Unlock()
				return
			}
		}
		p.mu.Unlock()
	}
	t.Fatal("no chunk arrived")
}

func TestPullerUnknownConsumerFails(t *testing.T) {
	nc, _ := pullEnv(t)
	p, err := newPuller(nc, jetstream.DefaultAPIPrefix, "P", "missing")
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	start := time.Now()
	if _, err := fetch(t, p, 1, 0); !errors.Is(err, errPullStatus) {
		t.Fatalf("fetch from a missing consumer: %v, want errPullStatus", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("the refusal took %v", took)
	}
}

func TestPullStatus(t *testing.T) {
	statusMsg := func(code, descr string) *nats.Msg {
		m := nats.NewMsg("x")
		m.Header.Set("Status", code)
		if descr != "" {
			m.Header.Set("Description", descr)
		}
		return m
	}
	for _, c := range []struct {
		msg  *nats.Msg
		want int
	}{
		{&nats.Msg{Data: []byte("chunk")}, isChunk},
		{&nats.Msg{Header: nats.Header{"Traceparent": []string{"00-x"}}}, isChunk},
		{statusMsg("404", "No Messages"), isEnd},
		{statusMsg("408", "Request Timeout"), isEnd},
		{statusMsg("409", "Batch Completed"), isEnd},
		{statusMsg("409", "Consumer Deleted"), isError},
		{statusMsg("409", "Exceeded MaxWaiting"), isError},
		{statusMsg("503", ""), isError},
		{statusMsg("100", "Idle Heartbeat"), isOther},
	} {
		if got := status(c.msg); got != c.want {
			t.Errorf("%v: %d, want %d", c.msg.Header, got, c.want)
		}
	}
}
