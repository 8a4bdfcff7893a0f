package worker_test

import (
	"context"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/broker/embedded"
	"github.com/jetpool/jetpool/broker/wire"
	"github.com/jetpool/jetpool/task"
	"github.com/jetpool/jetpool/worker"
)

// waitFor bounds every wait of these tests.
const waitFor = 15 * time.Second

// env is one test's broker, pool and producer-side connection.
type env struct {
	t    testing.TB
	srv  *embedded.Server
	nc   *nats.Conn
	js   jetstream.JetStream
	subj broker.Subjects
	pc   broker.PoolConfig
}

// newEnv starts an embedded server for one test and provisions the pool's
// stream with pc, so chunks can be published before a worker runs.
func newEnv(t testing.TB, pc broker.PoolConfig, ec embedded.Config) *env {
	t.Helper()
	srv, err := embedded.Start(ec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	subj, err := broker.NewSubjects(broker.DefaultPrefix, broker.DefaultPool)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, srv: srv, subj: subj, pc: pc.WithDefaults()}
	e.nc = e.connect()
	if e.js, err = jetstream.New(e.nc); err != nil {
		t.Fatal(err)
	}
	if _, err := broker.EnsureStream(context.Background(), e.js, subj, pc); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) connect() *nats.Conn {
	e.t.Helper()
	nc, err := nats.Connect(e.srv.ClientURL())
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(nc.Close)
	return nc
}

// running is a worker whose Run goroutine the test owns.
type running struct {
	*worker.Worker
	nc     *nats.Conn
	cancel context.CancelFunc
	done   chan error
}

// startWorker runs a worker on its own connection until stop or the end of
// the test. cfg.PoolConfig defaults to the env's.
func (e *env) startWorker(reg *task.Registry, cfg worker.Config) *running {
	e.t.Helper()
	if cfg.PoolConfig == (broker.PoolConfig{}) {
		cfg.PoolConfig = e.pc
	}
	nc := e.connect()
	w, err := worker.New(nc, reg, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Worker: w, nc: nc, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- w.Run(ctx) }()
	e.t.Cleanup(func() {
		if err := r.stop(); err != nil {
			e.t.Errorf("worker Run: %v", err)
		}
	})
	return r
}

// stop ends Run and waits for it; later calls return nil at once.
func (r *running) stop() error {
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok {
			close(r.done)
		}
		return err
	case <-time.After(waitFor):
		return context.DeadlineExceeded
	}
}

// waitServing waits until the worker's consumers exist.
func (e *env) waitServing(kinds ...string) {
	e.t.Helper()
	eventually(e.t, "consumers provisioned", func() bool {
		for _, k := range kinds {
			if _, err := e.js.Consumer(context.Background(), e.subj.Stream(), e.subj.Consumer(k)); err != nil {
				return false
			}
		}
		return true
	})
}

// publish stores raw bytes as a chunk of kind.
func (e *env) publish(kind string, data []byte) {
	e.t.Helper()
	if _, err := e.js.Publish(context.Background(), e.subj.Tasks(kind), data); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) publishChunk(c wire.Chunk) {
	e.t.Helper()
	data, err := wire.Encode(&c)
	if err != nil {
		e.t.Fatal(err)
	}
	e.publish(c.Kind, data)
}

func (e *env) streamMsgs() uint64 {
	e.t.Helper()
	st, err := e.js.Stream(context.Background(), e.subj.Stream())
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return info.State.Msgs
}

func (e *env) consumerInfo(kind string) *jetstream.ConsumerInfo {
	e.t.Helper()
	c, err := e.js.Consumer(context.Background(), e.subj.Stream(), e.subj.Consumer(kind))
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return info
}

// waitSettled waits until every chunk left the stream: acked or terminated.
func (e *env) waitSettled() {
	e.t.Helper()
	eventually(e.t, "stream empty", func() bool { return e.streamMsgs() == 0 })
}

// decideFunc is a fake producer's verdict on a start request for a chunk
// whose items are all.
type decideFunc func(req wire.Start, all []uint32) wire.StartReply

// fakeProducer plays the producer's side of the protocol on one control
// subject: it answers start requests with decide (by default: go, every
// item), collects leases and results, and acks a chunk on its final result
// as the real producer does.
type fakeProducer struct {
	e       *env
	id      string
	control string
	leaseMs int64

	mu     sync.Mutex
	items  map[uint64][]uint32 // published chunks' seqs
	acks   map[uint64]string   // the ack subject of each chunk's latest start
	decide decideFunc

	starts  chan wire.Start
	leases  chan wire.Lease
	results chan wire.Result
}

func (e *env) producer(id string) *fakeProducer {
	e.t.Helper()
	return e.producerOf(id, nil)
}

// producerOf is producer for chunks published before it, the seqs of each
// known from its first start request on.
func (e *env) producerOf(id string, published map[uint64][]uint32) *fakeProducer {
	e.t.Helper()
	p := &fakeProducer{
		e: e, id: id, control: e.subj.Control(id), leaseMs: e.pc.AckWait.Milliseconds(),
		items:   make(map[uint64][]uint32),
		acks:    make(map[uint64]string),
		starts:  make(chan wire.Start, 1024),
		leases:  make(chan wire.Lease, 1024),
		results: make(chan wire.Result, 1024),
	}
	maps.Copy(p.items, published)
	if got, want := p.control, broker.DefaultPrefix+"."+broker.DefaultPool+".ctl."+id; got != want {
		e.t.Fatalf("control subject %q, want %q", got, want)
	}
	sub, err := e.nc.Subscribe(p.control+".>", p.on)
	if err != nil {
		e.t.Fatal(err)
	}
	sub.SetPendingLimits(-1, -1)
	if err := e.nc.Flush(); err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (p *fakeProducer) setDecide(fn decideFunc) {
	p.mu.Lock()
	p.decide = fn
	p.mu.Unlock()
}

func (p *fakeProducer) on(m *nats.Msg) {
	switch strings.TrimPrefix(m.Subject, p.control) {
	case broker.StartSuffix:
		var reqs wire.Starts
		if err := wire.Decode(m.Data, &reqs); err != nil {
			p.e.t.Errorf("bad start request: %v", err)
			return
		}
		var replies wire.StartReplies
		for _, req := range reqs.Items {
			if len(req.Digest) != 32 || !strings.HasPrefix(req.Ack, "$JS.ACK.") {
				p.e.t.Errorf("start request for chunk %d with digest % x and ack %q", req.Chunk, req.Digest, req.Ack)
			}
			p.mu.Lock()
			all, decide := p.items[req.Chunk], p.decide
			p.acks[req.Chunk] = req.Ack
			p.mu.Unlock()
			reply := wire.StartReply{Verdict: wire.VerdictGo, Items: all, LeaseMs: p.leaseMs, Grant: req.Chunk + 1000}
			if decide != nil {
				reply = decide(req, all)
				reply.Grant = req.Chunk + 1000
			}
			replies.Items = append(replies.Items, reply)
			p.starts <- req
		}
		data, _ := wire.Encode(&replies)
		m.Respond(data)
	case broker.LeaseSuffix:
		var l wire.Lease
		if err := wire.Decode(m.Data, &l); err != nil {
			p.e.t.Errorf("bad lease: %v", err)
			return
		}
		p.leases <- l
	case broker.ResultSuffix:
		rs, err := wire.DecodeResults(m.Data)
		if err != nil {
			p.e.t.Errorf("bad result: %v", err)
		}
		for _, r := range rs {
			if r.Grant != r.Chunk+1000 {
				p.e.t.Errorf("result of chunk %d with grant %d, want %d", r.Chunk, r.Grant, r.Chunk+1000)
			}
			if r.Final {
				p.mu.Lock()
				ack := p.acks[r.Chunk]
				p.mu.Unlock()
				p.e.nc.Publish(ack, []byte("+ACK"))
			}
			p.results <- r
		}
	default:
		p.e.t.Errorf("unexpected control message on %s", m.Subject)
	}
}

// chunk builds chunk id of kind with one item per arg and registers it.
func (p *fakeProducer) chunk(id uint64, kind string, args ...any) wire.Chunk {
	p.e.t.Helper()
	c := wire.Chunk{Executor: p.id, ID: id, Kind: kind, Control: p.control}
	seqs := make([]uint32, len(args))
	for i, a := range args {
		raw, err := msgpack.Marshal(a)
		if err != nil {
			p.e.t.Fatal(err)
		}
		c.Items = append(c.Items, wire.Item{Seq: uint32(i), Args: raw})
		seqs[i] = uint32(i)
	}
	p.mu.Lock()
	p.items[id] = seqs
	p.mu.Unlock()
	return c
}

// submit publishes a chunk of kind with one item per arg.
func (p *fakeProducer) submit(id uint64, kind string, args ...any) {
	p.e.t.Helper()
	p.e.publishChunk(p.chunk(id, kind, args...))
}

// collect reads results until n chunks had their final one, and returns each
// chunk's items in the order they came and its result messages.
func (p *fakeProducer) collect(n int) (items map[uint64][]wire.ItemResult, msgs map[uint64][]wire.Result) {
	p.e.t.Helper()
	items, msgs = make(map[uint64][]wire.ItemResult), make(map[uint64][]wire.Result)
	for finals := 0; finals < n; {
		r := recv(p.e.t, p.results, "result")
		items[r.Chunk] = append(items[r.Chunk], r.Items...)
		msgs[r.Chunk] = append(msgs[r.Chunk], r)
		if r.Final {
			finals++
		}
	}
	return items, msgs
}

// one collects the results of the only chunk expected.
func (p *fakeProducer) one(id uint64) []wire.ItemResult {
	p.e.t.Helper()
	items, _ := p.collect(1)
	if _, ok := items[id]; !ok {
		p.e.t.Fatalf("results of chunk %d, want %d", slices.Collect(maps.Keys(items)), id)
	}
	return items[id]
}

// recv takes one value from ch or fails the test after waitFor.
func recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitFor):
		t.Fatalf("no %s within %v", what, waitFor)
		panic("unreachable")
	}
}

// eventually polls cond until it holds or fails the test after waitFor.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(waitFor)
	for !cond() {
		select {
		case <-tick.C:
		case <-timeout:
			t.Fatalf("%s: not within %v", what, waitFor)
		}
	}
}

// decodeValue unmarshals an item's value or fails the test.
func decodeValue[T any](t testing.TB, it wire.ItemResult) T {
	t.Helper()
	var v T
	if it.Err != nil {
		t.Fatalf("item %d failed: %+v", it.Seq, *it.Err)
	}
	if err := msgpack.Unmarshal(it.Value, &v); err != nil {
		t.Fatalf("item %d: decode %T: %v", it.Seq, v, err)
	}
	return v
}
