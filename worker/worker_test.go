package worker_test

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/broker/embedded"
	"github.com/jetpool/jetpool/broker/wire"
	"github.com/jetpool/jetpool/task"
	"github.com/jetpool/jetpool/worker"
)

var (
	Square = task.New[int, int]("square")
	Cube   = task.New[int, int]("cube")
	// Block runs until its context ends or its input's gate opens.
	Block = task.New[string, string]("block")
	Fail  = task.New[string, string]("fail")
	Blob  = task.New[int, string]("blob")
)

// fastPool keeps the fault paths of these tests short.
var fastPool = broker.PoolConfig{AckWait: 2 * time.Second, Grace: 2 * time.Second}

// squares is a registry with Square and a count of its calls.
func squares(calls *atomic.Int64) *task.Registry {
	reg := task.NewRegistry()
	task.Handle(reg, Square, func(ctx context.Context, n int) (int, error) {
		if calls != nil {
			calls.Add(1)
		}
		return n * n, nil
	})
	return reg
}

// gates is a Block handler whose calls wait for a gate named by their input.
type gates struct {
	mu      sync.Mutex
	open    map[string]chan struct{}
	started chan string
	calls   atomic.Int64
}

func newGates() *gates {
	return &gates{open: make(map[string]chan struct{}), started: make(chan string, 64)}
}

func (g *gates) gate(name string) chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	ch, ok := g.open[name]
	if !ok {
		ch = make(chan struct{})
		g.open[name] = ch
	}
	return ch
}

func (g *gates) release(name string) { close(g.gate(name)) }

func (g *gates) handle(reg *task.Registry) {
	task.Handle(reg, Block, func(ctx context.Context, name string) (string, error) {
		g.calls.Add(1)
		g.started <- name
		select {
		case <-g.gate(name):
			if err := ctx.Err(); err != nil {
				return "", err
			}
			return name + " done by " + task.WorkerID(ctx), nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	})
}

func TestChunkRunsInOrder(t *testing.T) {
	e := newEnv(t, fastPool, embedded.Config{})
	p := e.producer("test1")
	w := e.startWorker(squares(nil), worker.Config{})
	p.submit(1, Square.Kind(), 1, 2, 3, 4, 5)

	start := recv(t, p.starts, "start request")
	if start.Chunk != 1 || start.Worker != w.ID() || !strings.HasPrefix(start.Inbox, nats.InboxPrefix) || start.Delivery != 1 {
		t.Errorf("start request %+v, want chunk 1 by %s with an inbox of its connection, delivery 1", start, w.ID())
	}
	items := p.one(1)
	if len(items) != 5 {
		t.Fatalf("%d results, want 5", len(items))
	}
	for i, it := range items {
		if it.Seq != uint32(i) {
			t.Errorf("result %d is of item %d", i, it.Seq)
		}
		if v := decodeValue[int](t, it); v != (i+1)*(i+1) {
			t.Errorf("item %d = %d, want %d", i, v, (i+1)*(i+1))
		}
	}
	e.waitSettled()
	if st := w.Stats(); st.ChunksStarted != 1 || st.TasksSucceeded != 5 || st.TasksFailed != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestDropVerdictAcksAndRunsNothing(t *testing.T) {
	e := newEnv(t, fastPool, embedded.Config{})
	p := e.producer("test1")
	p.setDecide(func(wire.Start, []uint32) wire.StartReply {
		return wire.StartReply{Verdict: wire.VerdictDrop}
	})
	var calls atomic.Int64
	w := e.startWorker(squares(&calls), worker.Config{})
	p.submit(1, Square.Kind(), 1, 2)

	recv(t, p.starts, "start request")
	e.waitSettled()
	eventually(t, "drop counted", func() bool { return w.Stats().ChunksDropped == 1 })
	if n := calls.Load(); n != 0 {
		t.Errorf("handler ran %d times for a dropped chunk", n)
	}
	if len(p.results) != 0 {
		t.Errorf("a dropped chunk sent results")
	}
}

func TestGoRunsOnlyTheGrantedItems(t *testing.T) {
	e := newEnv(t, fastPool, embedded.Config{})
	p := e.producer("test1")
	p.setDecide(func(_ wire.Start, all []uint32) wire.StartReply {
		// Items 0 and 2 were cancelled meanwhile.
		return wire.StartReply{Verdict: wire.VerdictGo, Items: []uint32{1, 3}, LeaseMs: 2000}
	})
	var calls atomic.Int64
	e.startWorker(squares(&calls), worker.Config{})
	p.submit(1, Square.Kind(), 10, 11, 12, 13)

	items := p.one(1)
	if len(items) != 2 || items[0].Seq != 1 || items[1].Seq != 3 {
		t.Fatalf("results of items %v, want 1 and 3", seqs(items))
	}
	if v := decodeValue[int](t, items[0]); v != 121 {
		t.Errorf("item 1 = %d, want 121", v)
	}
	if v := decodeValue[int](t, items[1]); v != 169 {
		t.Errorf("item 3 = %d, want 169", v)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("handler ran %d times, want 2", n)
	}
	e.waitSettled()
}

func seqs(items []wire.ItemResult) []uint32 {
	out := make([]uint32, len(items))
	for i, it := range items {
		out[i] = it.Seq
	}
	return out
}

func TestMalformedChunksAreTerminated(t *testing.T) {
	e := newEnv(t, fastPool, embedded.Config{})
	p := e.producer("test1")
	var calls atomic.Int64
	w := e.startWorker(squares(&calls), worker.Config{})

	wrongShape, _ := msgpack.Marshal(map[string]int{"a": 1})
	encode := func(c wire.Chunk) []byte {
		b, err := wire.Encode(&c)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	good := p.chunk(99, Square.Kind(), 3)
	noItems, otherKind, noControl := good, good, good
	noItems.Items = nil
	otherKind.Kind = Cube.Kind()
	noControl.Control = ""
	cases := map[string][]byte{
		"garbage":     {0xc1, 0xff, 0x00},
		"empty":       {},
		"wrong shape": wrongShape,
		"truncated":   encode(good)[:10],
		"no items":    encode(noItems),
		"other kind":  encode(otherKind),
		"no control":  encode(noControl),
		"huge count":  {0x96, 0xa1, 'x', 0x01, 0xa6, 's', 'q', 'u', 'a', 'r', 'e', 0xa1, 'c', 0x00, 0xdd, 0x7f, 0xff, 0xff, 0xff},
	}
	for _, data := range cases {
		e.publish(Square.Kind(), data)
	}
	e.publishChunk(good)

	items := p.one(99)
	if len(items) != 1 || decodeValue[int](t, items[0]) != 9 {
		t.Fatalf("the good chunk after malformed ones gave %+v", items)
	}
	e.waitSettled()
	if st := w.Stats(); st.ChunksTerminated != int64(len(cases)) {
		t.Errorf("%d chunks terminated, want %d", st.ChunksTerminated, len(cases))
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("handler ran %d times, want 1", n)
	}
}

func TestSilentProducerChunkTerminatedAfterGrace(t *testing.T) {
	pc := broker.PoolConfig{AckWait: 2 * time.Second, Grace: 300 * time.Millisecond}
	e := newEnv(t, pc, embedded.Config{})
	var calls atomic.Int64
	w := e.startWorker(squares(&calls), worker.Config{})
	e.waitServing(Square.Kind())

	gone := wire.Chunk{Executor: "gone", ID: 1, Kind: Square.Kind(), Control: e.subj.Control("gone"),
		Items: []wire.Item{{Seq: 0, Args: msgpack.RawMessage{0x01}}}}
	begin := time.Now()
	e.publishChunk(gone)
	e.waitSettled()
	if d := time.Since(begin); d < pc.Grace {
		t.Errorf("chunk terminated after %v, before the grace of %v", d, pc.Grace)
	}
	if st := w.Stats(); st.ChunksTerminated != 1 {
		t.Errorf("%d chunks terminated, want 1", st.ChunksTerminated)
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("handler ran %d times for a silent producer", n)
	}
}

func TestLateProducerIsWaitedFor(t *testing.T) {
	pc := broker.PoolConfig{AckWait: 2 * time.Second, Grace: 10 * time.Second}
	e := newEnv(t, pc, embedded.Config{})
	e.startWorker(squares(nil), worker.Config{})
	e.waitServing(Square.Kind())

	c := wire.Chunk{Executor: "late", ID: 7, Kind: Square.Kind(), Control: e.subj.Control("late"),
		Items: []wire.Item{{Seq: 0, Args: msgpack.RawMessage{0x05}}}}
	e.publishChunk(c)
	// The worker holds the chunk and meets no responders...
	eventually(t, "chunk delivered", func() bool { return e.consumerInfo(Square.Kind()).NumAckPending == 1 })
	// ...until the producer comes back within the grace period.
	p := e.producerOf("late", map[uint64][]uint32{7: {0}})
	items := p.one(7)
	if v := decodeValue[int](t, items[0]); v != 25 {
		t.Errorf("item 0 = %d, want 25", v)
	}
}

func TestBusyVerdictRedelivers(t *testing.T) {
	pc := broker.PoolConfig{AckWait: 500 * time.Millisecond, Grace: 2 * time.Second}
	e := newEnv(t, pc, embedded.Config{})
	p := e.producer("test1")
	var asked atomic.Int64
	p.setDecide(func(_ wire.Start, all []uint32) wire.StartReply {
		if asked.Add(1) == 1 {
			return wire.StartReply{Verdict: wire.VerdictBusy}
		}
		return wire.StartReply{Verdict: wire.VerdictGo, Items: all, LeaseMs: 500}
	})
	w := e.startWorker(squares(nil), worker.Config{})
	p.submit(1, Square.Kind(), 4)

	first, second := recv(t, p.starts, "start"), recv(t, p.starts, "second start")
	if first.Delivery != 1 || second.Delivery != 2 {
		t.Errorf("deliveries %d and %d, want 1 and 2", first.Delivery, second.Delivery)
	}
	if v := decodeValue[int](t, p.one(1)[0]); v != 16 {
		t.Errorf("item 0 = %d, want 16", v)
	}
	if st := w.Stats(); st.ChunksBusy != 1 || st.Redelivered != 1 || st.ChunksStarted != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestInterruptCancelsTheRunningItem(t *testing.T) {
	e := newEnv(t, fastPool, embedded.Config{})
	p := e.producer("test1")
	g := newGates()
	reg := task.NewRegistry()
	g.handle(reg)
	e.startWorker(reg, worker.Config{})
	p.submit(1, Block.Kind(), "first", "second", "third")

	start := recv(t, p.starts, "start")
	if name := recv(t, g.started, "handler start"); name != "first" {
		t.Fatalf("%s started first", name)
	}
	interrupt := func(seq uint32) {
		data, err := wire.Encode(&wire.Interrupt{Executor: "test1", Chunk: 1, Seq: seq, Grant: 1001})
		if err != nil {
			t.Fatal(err)
		}
		e.nc.Publish(start.Inbox, data)
	}
	// Garbage and interrupts of other chunks are ignored.
	e.nc.Publish(start.Inbox, []byte("garbage"))
	other, _ := wire.Encode(&wire.Interrupt{Executor: "test1", Chunk: 2, Seq: 0, Grant: 1002})
	e.nc.Publish(start.Inbox, other)
	// So is one without the attempt's grant.
	forged, _ := wire.Encode(&wire.Interrupt{Executor: "test1", Chunk: 1, Seq: 0, Grant: 7})
	e.nc.Publish(start.Inbox, forged)
	// The queued item is interrupted before its turn, then the running one.
	interrupt(1)
	interrupt(0)
	if name := recv(t, g.started, "handler start"); name != "third" {
		t.Fatalf("%s started after the first, want third", name)
	}
	g.release("third")

	items := p.one(1)
	if len(items) != 3 {
		t.Fatalf("%d results, want 3", len(items))
	}
	for _, seq := range []int{0, 1} {
		if err := items[seq].Err; err == nil || err.Type != task.TypeInterrupted {
			t.Errorf("item %d: error %+v, want type %s", seq, err, task.TypeInterrupted)
		}
	}
	if v := decodeValue[string](t, items[2]); !strings.HasPrefix(v, "third done by ") {
		t.Errorf("item 2 = %q", v)
	}
	if n := g.calls.Load(); n != 2 {
		t.Errorf("handler ran %d times, want 2 (the interrupted queued item must not start)", n)
	}
}

// retryIn tells the Fail handler how to fail.
type retryIn struct {
	Key       string
	Fails     int  // calls that fail before one succeeds
	Retryable bool // mark the failures retryable
}

func TestRetries(t *testing.T) {
	e := newEnv(t, fastPool, embedded.Config{})
	p := e.producer("test1")
	var mu sync.Mutex
	calls := map[string]int{}
	reg := task.NewRegistry()
	flaky := task.New[retryIn, int]("flaky")
	task.Handle(reg, flaky, func(ctx context.Context, in retryIn) (int, error) {
		mu.Lock()
		calls[in.Key]++
		n := calls[in.Key]
		mu.Unlock()
		if n <= in.Fails {
			err := errors.New("flaky")
			if in.Retryable {
				err = task.Retryable(err)
			}
			return 0, err
		}
		return n, nil
	})
	w := e.startWorker(reg, worker.Config{Retry: task.RetryPolicy{Attempts: 3, Backoff: time.Millisecond}})
	p.submit(1, flaky.Kind(),
		retryIn{Key: "recovers", Fails: 2, Retryable: true},
		retryIn{Key: "exhausted", Fails: 5, Retryable: true},
		retryIn{Key: "permanent", Fails: 5},
	)

	items := p.one(1)
	if v := decodeValue[int](t, items[0]); v != 3 {
		t.Errorf("recovering item succeeded on call %d, want 3", v)
	}
	if err := items[1].Err; err == nil || !err.Retryable || err.Message != "flaky" {
		t.Errorf("exhausted item: error %+v, want a retryable flaky", err)
	}
	if err := items[2].Err; err == nil || err.Retryable {
		t.Errorf("permanent item: error %+v, want a non-retryable one", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls["recovers"] != 3 || calls["exhausted"] != 3 || calls["permanent"] != 1 {
		t.Errorf("calls %v, want recovers 3, exhausted 3, permanent 1", calls)
	}
	if st := w.Stats(); st.TasksRetried != 4 || st.TasksSucceeded != 1 || st.TasksFailed != 2 {
		t.Errorf("stats %+v, want 4 retries, 1 success, 2 failures", st)
	}
}

type quotaError struct{}

func (quotaError) Error() string     { return "over quota" }
func (quotaError) ErrorType() string { return "quota" }

func TestHandlerErrors(t *testing.T) {
	e := newEnv(t, fastPool, embedded.Config{})
	p := e.producer("test1")
	reg := task.NewRegistry()
	task.Handle(reg, Fail, func(ctx context.Context, how string) (string, error) {
		switch how {
		case "panic":
			panic("boom")
		case "typed":
			return "", quotaError{}
		}
		return "ok", nil
	})
	e.startWorker(reg, worker.Config{})
	c := p.chunk(1, Fail.Kind(), "panic", "typed", "fine", "")
	c.Items[3].Args = msgpack.RawMessage{0x01} // an int where a string is due
	e.publishChunk(c)

	items := p.one(1)
	tests := []struct {
		seq       int
		typ, msg  string
		wantStack bool
	}{
		{0, task.TypePanic, "boom", true},
		{1, "quota", "over quota", false},
		{3, task.TypeBadInput, "", false},
	}
	for _, tt := range tests {
		err := items[tt.seq].Err
		if err == nil {
			t.Errorf("item %d succeeded, want a %s error", tt.seq, tt.typ)
			continue
		}
		if err.Type != tt.typ || !strings.Contains(err.Message, tt.msg) {
			t.Errorf("item %d: error %s: %s, want %s: %s", tt.seq, err.Type, err.Message, tt.typ, tt.msg)
		}
		if hasStack := strings.Contains(err.Stack, "goroutine"); hasStack != tt.wantStack {
			t.Errorf("item %d: stack %q, want one: %v", tt.seq, err.Stack, tt.wantStack)
		}
	}
	if v := decodeValue[string](t, items[2]); v != "ok" {
		t.Errorf("item 2 = %q", v)
	}
}

func TestExpiredChunkNeverStarts(t *testing.T) {
	e := newEnv(t, fastPool, embedded.Config{})
	p := e.producer("test1")
	var calls atomic.Int64
	w := e.startWorker(squares(&calls), worker.Config{})
	c := p.chunk(1, Square.Kind(), 2)
	c.Deadline = time.Now().Add(-time.Second).UnixNano()
	e.publishChunk(c)

	e.waitSettled()
	if st := w.Stats(); st.ChunksTerminated != 1 {
		t.Errorf("%d chunks terminated, want 1", st.ChunksTerminated)
	}
	if len(p.starts) != 0 || calls.Load() != 0 {
		t.Errorf("an expired chunk was asked for (%d) or run (%d)", len(p.starts), calls.Load())
	}
}

func TestDeadlineStopsTheChunkMidway(t *testing.T) {
	e := newEnv(t, fastPool, embedded.Config{})
	p := e.producer("test1")
	g := newGates()
	reg := task.NewRegistry()
	g.handle(reg)
	e.startWorker(reg, worker.Config{})
	c := p.chunk(1, Block.Kind(), "forever", "later")
	c.Deadline = time.Now().Add(300 * time.Millisecond).UnixNano()
	e.publishChunk(c)

	items := p.one(1)
	for _, it := range items {
		if it.Err == nil || it.Err.Type != task.TypeDeadline {
			t.Errorf("item %d: error %+v, want type %s", it.Seq, it.Err, task.TypeDeadline)
		}
	}
	if n := g.calls.Load(); n != 1 {
		t.Errorf("handler ran %d times, want 1 (the item after the deadline must not start)", n)
	}
}

func TestDrainFinishesRunningChunks(t *testing.T) {
	e := newEnv(t, fastPool, embedded.Config{})
	p := e.producer("test1")
	g := newGates()
	reg := task.NewRegistry()
	g.handle(reg)
	w := e.startWorker(reg, worker.Config{})
	p.submit(1, Block.Kind(), "slow")
	recv(t, g.started, "handler start")

	w.cancel()
	select {
	case err := <-w.done:
		t.Fatalf("Run returned %v with a chunk running", err)
	case <-time.After(200 * time.Millisecond):
	}
	g.release("slow")
	if err := recv(t, w.done, "Run's return"); err != nil {
		t.Fatalf("Run: %v", err)
	}
	close(w.done)
	// Run's return means the result is out: the producer gets it even when
	// the worker's connection closes at once.
	w.nc.Close()
	items := p.one(1)
	if v := decodeValue[string](t, items[0]); v != "slow done by "+w.ID() {
		t.Errorf("item 0 = %q; the drain must not cancel the handler", v)
	}
	e.waitSettled()
}

func TestDrainReleasesUnstartedChunks(t *testing.T) {
	// A long AckWait: only a nak brings the chunk back in time.
	pc := broker.PoolConfig{AckWait: time.Minute, Grace: time.Minute}
	e := newEnv(t, pc, embedded.Config{})
	var calls atomic.Int64
	w := e.startWorker(squares(&calls), worker.Config{})
	e.waitServing(Square.Kind())
	c := wire.Chunk{Executor: "away", ID: 1, Kind: Square.Kind(), Control: e.subj.Control("away"),
		Items: []wire.Item{{Seq: 0, Args: msgpack.RawMessage{0x03}}}}
	// The worker holds the chunk once it asks the chunk's producer, which
	// is away, for leave to start it: the ask is seen and left unanswered.
	asks, err := e.nc.SubscribeSync(c.Control + broker.StartSuffix)
	if err != nil {
		t.Fatal(err)
	}
	e.publishChunk(c)
	if _, err := asks.NextMsg(waitFor); err != nil {
		t.Fatalf("the worker did not ask to start the chunk: %v", err)
	}
	asks.Unsubscribe()

	// A drain does not wait out the grace of a producer that does not answer:
	// the chunk goes back to the stream at once...
	begin := time.Now()
	if err := w.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if d := time.Since(begin); d > 5*time.Second {
		t.Errorf("drain took %v", d)
	}
	if calls.Load() != 0 {
		t.Errorf("the handler ran without leave")
	}
	if st := w.Stats(); st.ChunksReturned != 1 {
		t.Errorf("Stats().ChunksReturned = %d, want 1: %+v", st.ChunksReturned, st)
	}
	// ...for the next worker, once its producer is back.
	p := e.producerOf("away", map[uint64][]uint32{1: {0}})
	e.startWorker(squares(&calls), worker.Config{})
	if v := decodeValue[int](t, p.one(1)[0]); v != 9 {
		t.Errorf("item 0 = %d, want 9", v)
	}
}

func TestConcurrencyBound(t *testing.T) {
	e := newEnv(t, fastPool, embedded.Config{})
	p := e.producer("test1")
	const limit, perKind = 3, 12
	var now, peak atomic.Int64
	work := func(ctx context.Context, n int) (int, error) {
		cur := now.Add(1)
		for {
			old := peak.Load()
			if cur <= old || peak.CompareAndSwap(old, cur) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond) // the work
		now.Add(-1)
		return n, nil
	}
	reg := task.NewRegistry()
	task.Handle(reg, Square, work)
	task.Handle(reg, Cube, work)
	w := e.startWorker(reg, worker.Config{Concurrency: limit})
	for i := range perKind {
		p.submit(uint64(2*i+1), Square.Kind(), i)
		p.submit(uint64(2*i+2), Cube.Kind(), i)
	}

	items, _ := p.collect(2 * perKind)
	if len(items) != 2*perKind {
		t.Fatalf("results of %d chunks, want %d", len(items), 2*perKind)
	}
	if got := peak.Load(); got > limit {
		t.Errorf("%d handlers ran at once, limit %d", got, limit)
	}
	eventually(t, "nothing in flight", func() bool { return w.Stats().InFlight == 0 })
	e.waitSettled()
}

func TestHeartbeatsOutliveAckWait(t *testing.T) {
	pc := broker.PoolConfig{AckWait: 500 * time.Millisecond, Grace: 2 * time.Second}
	e := newEnv(t, pc, embedded.Config{})
	p := e.producer("test1")
	reg := task.NewRegistry()
	nap := task.New[int, int]("nap")
	task.Handle(reg, nap, func(ctx context.Context, ms int) (int, error) {
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond): // the work
			return ms, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	})
	w := e.startWorker(reg, worker.Config{})
	p.submit(1, nap.Kind(), 1500)

	if v := decodeValue[int](t, p.one(1)[0]); v != 1500 {
		t.Errorf("item 0 = %d", v)
	}
	e.waitSettled()
	if len(p.starts) != 1 || w.Stats().Redelivered != 0 {
		t.Errorf("%d start requests, %d redeliveries; want the chunk delivered once", len(p.starts), w.Stats().Redelivered)
	}
	if n := len(p.leases); n < 2 {
		t.Errorf("%d lease renewals in 1.5s with a 500ms lease, want at least 2", n)
	}
	for range len(p.leases) {
		if l := <-p.leases; l.Chunk != 1 || l.Grant != 1001 {
			t.Errorf("lease %+v", l)
		}
	}
}

// TestBusyWorkerLeavesChunksToIdleOnes: a worker whose slots are all busy
// fetches nothing more, so chunks submitted meanwhile run at once on an idle
// worker instead of waiting behind the busy one.
func TestBusyWorkerLeavesChunksToIdleOnes(t *testing.T) {
	e := newEnv(t, fastPool, embedded.Config{})
	p := e.producer("test1")
	reg := task.NewRegistry()
	release := make(chan struct{})
	block := task.New[int, int]("block")
	task.Handle(reg, block, func(ctx context.Context, n int) (int, error) {
		if n == 0 {
			<-release
		}
		return n, nil
	})
	busy := e.startWorker(reg, worker.Config{Concurrency: 1})
	p.submit(1, block.Kind(), 0)
	eventually(t, "the blocking chunk running", func() bool { return busy.Stats().InFlight == 1 })
	idle := e.startWorker(reg, worker.Config{Concurrency: 1})
	for id := uint64(2); id <= 5; id++ {
		p.submit(id, block.Kind(), int(id))
	}
	for range 4 {
		select {
		case r := <-p.results:
			if r.Chunk == 1 {
				t.Fatal("the blocking chunk ended first")
			}
		case <-time.After(waitFor):
			t.Fatal("chunks wait behind a busy worker while another is idle")
		}
	}
	close(release)
	if r := <-p.results; r.Chunk != 1 {
		t.Fatalf("result of chunk %d, want 1", r.Chunk)
	}
	e.waitSettled()
	if got := busy.Stats().ChunksStarted; got != 1 {
		t.Errorf("the busy worker started %d chunks, want only its first", got)
	}
	if got := idle.Stats().ChunksStarted; got != 4 {
		t.Errorf("the idle worker started %d chunks, want 4", got)
	}
}

func TestPartialResults(t *testing.T) {
	e := newEnv(t, fastPool, embedded.Config{})
	p := e.producer("test1")
	reg := task.NewRegistry()
	task.Handle(reg, Square, func(ctx context.Context, n int) (int, error) {
		time.Sleep(60 * time.Millisecond) // the work
		return n * n, nil
	})
	e.startWorker(reg, worker.Config{ResultInterval: 50 * time.Millisecond})
	p.submit(1, Square.Kind(), 0, 1, 2, 3)

	items, msgs := p.collect(1)
	if got := seqs(items[1]); len(got) != 4 || got[0] != 0 || got[3] != 3 {
		t.Fatalf("results of items %v, want 0..3 in order", got)
	}
	if len(msgs[1]) < 2 {
		t.Errorf("%d result messages for a 240ms chunk with a 50ms interval, want partial ones", len(msgs[1]))
	}
}

// TestOversizedResults: a result above the pool's threshold (half the
// server's maximum payload at most) travels by reference, under the name
// its producer reads it by; smaller ones share messages under the limit.
func TestOversizedResults(t *testing.T) {
	const maxPayload = 64 << 10
	e := newEnv(t, fastPool, embedded.Config{MaxPayload: maxPayload})
	p := e.producer("test1")
	reg := task.NewRegistry()
	task.Handle(reg, Blob, func(ctx context.Context, n int) (string, error) {
		return strings.Repeat("x", n), nil
	})
	e.startWorker(reg, worker.Config{})
	sizes := []any{100 << 10, 20 << 10, 20 << 10, 20 << 10, 20 << 10, 20 << 10, 10}
	p.submit(1, Blob.Kind(), sizes...)

	items, msgs := p.collect(1)
	if len(items[1]) != len(sizes) {
		t.Fatalf("%d results, want %d", len(items[1]), len(sizes))
	}
	big := items[1][0]
	if want := wire.ResultName("test1", 1, 0, msgs[1][0].Grant); big.Ref == nil || big.Ref.Name != want || big.Value != nil {
		t.Fatalf("item 0: %+v (error %+v), want a reference to %s", big, big.Err, want)
	}
	values, err := broker.EnsureValues(context.Background(), e.js, e.subj, fastPool)
	if err != nil {
		t.Fatal(err)
	}
	data, err := values.Get(context.Background(), *big.Ref)
	if err != nil {
		t.Fatal(err)
	}
	if v := decodeValue[string](t, wire.ItemResult{Value: data}); v != strings.Repeat("x", 100<<10) {
		t.Errorf("item 0 by reference: %d bytes, want %d", len(v), 100<<10)
	}
	for i, it := range items[1][1:] {
		if v := decodeValue[string](t, it); len(v) != sizes[i+1].(int) {
			t.Errorf("item %d: %d bytes, want %d", it.Seq, len(v), sizes[i+1])
		}
	}
	if len(msgs[1]) < 2 {
		t.Errorf("%d result messages for 100KiB of results under a 64KiB limit", len(msgs[1]))
	}
	e.waitSettled()
}

func TestHeterogeneousWorkers(t *testing.T) {
	e := newEnv(t, fastPool, embedded.Config{})
	p := e.producer("test1")
	cubes := task.NewRegistry()
	task.Handle(cubes, Cube, func(ctx context.Context, n int) (int, error) { return n * n * n, nil })
	sq := e.startWorker(squares(nil), worker.Config{ID: "squarer"})
	cu := e.startWorker(cubes, worker.Config{ID: "cuber"})
	for i := range 10 {
		p.submit(uint64(2*i+1), Square.Kind(), i)
		p.submit(uint64(2*i+2), Cube.Kind(), i)
	}

	starts := map[uint64]string{}
	for range 20 {
		s := recv(t, p.starts, "start")
		starts[s.Chunk] = s.Worker
	}
	items, _ := p.collect(20)
	for id, res := range items {
		want, n := sq.ID(), int(id-1)/2
		v := n * n
		if id%2 == 0 {
			want, v = cu.ID(), n*n*n
		}
		if starts[id] != want {
			t.Errorf("chunk %d ran on %s, want %s", id, starts[id], want)
		}
		if got := decodeValue[int](t, res[0]); got != v {
			t.Errorf("chunk %d = %d, want %d", id, got, v)
		}
	}
	e.waitSettled()
}

func TestNewValidates(t *testing.T) {
	e := newEnv(t, fastPool, embedded.Config{})
	reg := squares(nil)
	tests := []struct {
		name string
		reg  *task.Registry
		cfg  worker.Config
		also error // a cause the error matches as well; nil: none
	}{
		{"bad id", reg, worker.Config{ID: "a.b"}, task.ErrInvalidName},
		{"bad prefix", reg, worker.Config{Prefix: "a b"}, broker.ErrInvalidName},
		{"bad pool", reg, worker.Config{Pool: "x.>"}, broker.ErrInvalidName},
		{"negative concurrency", reg, worker.Config{Concurrency: -1}, nil},
		{"unknown kind", reg, worker.Config{Kinds: []string{"cube"}}, nil},
		{"empty registry", task.NewRegistry(), worker.Config{}, nil},
		{"nil registry", nil, worker.Config{}, nil},
		{"bad pool config", reg, worker.Config{PoolConfig: broker.PoolConfig{Replicas: 2}}, broker.ErrInvalidConfig},
		{"negative result interval", reg, worker.Config{ResultInterval: -time.Second}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := worker.New(e.nc, tt.reg, tt.cfg); !errors.Is(err, worker.ErrInvalidConfig) {
				t.Errorf("New: %v, want ErrInvalidConfig", err)
			}
			err := tt.cfg.Validate(tt.reg)
			if !errors.Is(err, worker.ErrInvalidConfig) {
				t.Errorf("Validate: %v, want ErrInvalidConfig", err)
			}
			if tt.also != nil && !errors.Is(err, tt.also) {
				t.Errorf("Validate: %v, want an error matching %v too", err, tt.also)
			}
		})
	}
	if err := (worker.Config{Concurrency: 4, Kinds: []string{Square.Kind()}}).Validate(reg); err != nil {
		t.Errorf("Validate of a good config: %v", err)
	}
	if _, err := worker.New(nil, reg, worker.Config{}); !errors.Is(err, worker.ErrInvalidConfig) {
		t.Errorf("New with a nil connection: %v, want ErrInvalidConfig", err)
	}
}

func TestDefaultID(t *testing.T) {
	e := newEnv(t, fastPool, embedded.Config{})
	a, err := worker.New(e.nc, squares(nil), worker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := worker.New(e.nc, squares(nil), worker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	token := regexp.MustCompile(`^[A-Za-z0-9_-]+-[0-9]+-[A-Za-z0-9]+$`)
	if !token.MatchString(a.ID()) {
		t.Errorf("default id %q is not host-pid-random", a.ID())
	}
	if a.ID() == b.ID() {
		t.Errorf("two workers got the id %q", a.ID())
	}
	if got := a.Kinds(); len(got) != 1 || got[0] != Square.Kind() {
		t.Errorf("kinds %v, want [square]", got)
	}
}

// BenchmarkChunks measures a worker's throughput of one-item chunks of a
// trivial task, with a producer that answers at once.
func BenchmarkChunks(b *testing.B) {
	e := newEnv(b, fastPool, embedded.Config{})
	control := e.subj.Control("bench")
	var grants atomic.Uint64
	var acks sync.Map // grant -> ack subject
	goAll := func(m *nats.Msg) {
		var reqs wire.Starts
		if wire.Decode(m.Data, &reqs) != nil {
			return
		}
		replies := wire.StartReplies{Items: make([]wire.StartReply, len(reqs.Items))}
		for i := range replies.Items {
			g := grants.Add(1)
			acks.Store(g, reqs.Items[i].Ack)
			replies.Items[i] = wire.StartReply{Verdict: wire.VerdictGo, Items: []uint32{0}, LeaseMs: 2000, Grant: g}
		}
		data, _ := wire.Encode(&replies)
		m.Respond(data)
	}
	finals := make(chan struct{}, b.N)
	for _, s := range []struct {
		suffix string
		fn     func(m *nats.Msg)
	}{
		{broker.StartSuffix, goAll},
		{broker.ResultSuffix, func(m *nats.Msg) {
			rs, _ := wire.DecodeResults(m.Data)
			for _, r := range rs {
				if ack, ok := acks.LoadAndDelete(r.Grant); ok && r.Final {
					e.nc.Publish(ack.(string), []byte("+ACK"))
					finals <- struct{}{}
				}
			}
		}},
	} {
		sub, err := e.nc.Subscribe(control+s.suffix, s.fn)
		if err != nil {
			b.Fatal(err)
		}
		sub.SetPendingLimits(-1, -1)
	}
	data, _ := wire.Encode(&wire.Chunk{Executor: "bench", Kind: Square.Kind(), Control: control,
		Items: []wire.Item{{Seq: 0, Args: msgpack.RawMessage{0x07}}}})
	for range b.N {
		if _, err := e.js.PublishAsync(e.subj.Tasks(Square.Kind()), data); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-e.js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		b.Fatal("publishing took over a minute")
	}
	b.ResetTimer()
	e.startWorker(squares(nil), worker.Config{Concurrency: benchConcurrency})
	for range b.N {
		recv(b, finals, "final result")
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "chunks/s")
}

var benchConcurrency = 128

// TestChunksOutAreBounded: a worker serving two busy kinds has at most its
// slots' chunks out, and one finished chunk per slot waiting for its ack,
// however the two kinds' fetches interleave.
func TestChunksOutAreBounded(t *testing.T) {
	e := newEnv(t, fastPool, embedded.Config{})
	p := e.producer("test1")
	const limit, perKind = 4, 40
	work := func(ctx context.Context, n int) (int, error) {
		time.Sleep(20 * time.Millisecond)
		return n, nil
	}
	reg := task.NewRegistry()
	task.Handle(reg, Square, work)
	task.Handle(reg, Cube, work)
	for i := range perKind {
		p.submit(uint64(2*i+1), Square.Kind(), i)
		p.submit(uint64(2*i+2), Cube.Kind(), i)
	}
	e.startWorker(reg, worker.Config{Concurrency: limit})
	done := make(chan struct{})
	var peak atomic.Int64
	var watch sync.WaitGroup
	watch.Go(func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(2 * time.Millisecond):
			}
			var out int64
			for _, kind := range []string{Square.Kind(), Cube.Kind()} {
				// Not fatal: the worker may not have made the consumer yet.
				if c, err := e.js.Consumer(t.Context(), e.subj.Stream(), e.subj.Consumer(kind)); err == nil {
					if info, err := c.Info(t.Context()); err == nil {
						out += int64(info.NumAckPending)
					}
				}
			}
			peak.Store(max(peak.Load(), out))
		}
	})
	items, _ := p.collect(2 * perKind)
	close(done)
	watch.Wait()
	if len(items) != 2*perKind {
		t.Fatalf("results of %d chunks, want %d", len(items), 2*perKind)
	}
	// A chunk stays unacked until the producer has its result, so allow
	// one finished chunk per slot on its way to the producer.
	if bound := int64(2 * limit); peak.Load() > bound {
		t.Errorf("%d chunks out at once, want at most %d (%d slots, %d on their way back)", peak.Load(), bound, limit, limit)
	}
	t.Logf("peak %d chunks out with %d slots", peak.Load(), limit)
}
