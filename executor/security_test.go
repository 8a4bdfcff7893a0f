package executor_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
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
	"github.com/jetpool/jetpool/executor"
	"github.com/jetpool/jetpool/task"
	"github.com/jetpool/jetpool/worker"
)

// The access-control tests run an embedded server with docs/security.conf:
// producers, workers and operators of the pool "batch" hold only the subjects
// they need.

func secureServer(t *testing.T) *embedded.Server {
	t.Helper()
	srv, err := embedded.Start(embedded.Config{ConfigFile: "../docs/security.conf"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

// connectAs connects as user, with the inbox prefix docs/security.conf gives
// that user (_INBOX.<user>), and collects the server's asynchronous errors
// (permission violations) on the returned channel.
func connectAs(t *testing.T, srv *embedded.Server, user, password string) (*nats.Conn, <-chan error) {
	t.Helper()
	errs := make(chan error, 16)
	nc, err := broker.Connect(broker.ConnectOptions{URL: srv.ClientURL(), User: user, Password: password, InboxPrefix: "_INBOX." + user})
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	nc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case errs <- err:
		default:
		}
	})
	t.Cleanup(nc.Close)
	return nc, errs
}

// producerAs starts an executor of the pool "batch" for the producer user,
// named after it as docs/security.conf requires.
func producerAs(t *testing.T, srv *embedded.Server, user string) (*executor.NATS, *nats.Conn, <-chan error) {
	t.Helper()
	nc, errs := connectAs(t, srv, user, user+"-secret")
	return newNATS(t, nc, executor.NATSPool("batch"), executor.NATSName(user)), nc, errs
}

func wantViolation(t *testing.T, errs <-chan error, what string) {
	t.Helper()
	select {
	case err := <-errs:
		if !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
			t.Fatalf("%s: got %v, want a permissions violation", what, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("%s was allowed", what)
	}
}

// untilInterrupted runs until its context ends.
var untilInterrupted = task.New[int, int]("until-interrupted")

// securityRegistry serves Square and untilInterrupted.
func securityRegistry() *task.Registry {
	reg := task.NewRegistry()
	task.Handle(reg, Square, func(ctx context.Context, n int) (int, error) { return n * n, nil })
	task.Handle(reg, Echo, func(ctx context.Context, b []byte) ([]byte, error) { return b, nil })
	task.Handle(reg, untilInterrupted, func(ctx context.Context, n int) (int, error) {
		<-ctx.Done()
		return 0, ctx.Err()
	})
	return reg
}

func TestSecurityPoolRunsWithLeastPrivilege(t *testing.T) {
	srv := secureServer(t)
	ex, _, perrs := producerAs(t, srv, "producer")
	wnc, werrs := connectAs(t, srv, "worker", "worker-secret")
	startWorker(t, wnc, securityRegistry(), worker.Config{Pool: "batch", Concurrency: 2})
	i := 0
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for v, err := range executor.Map(ctx, ex, Square, slices.Values([]int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}), executor.MapChunksize(3)) {
		if err != nil || v != i*i {
			t.Fatalf("result %d = %d, %v", i, v, err)
		}
		i++
	}
	f, err := executor.Submit(ctx, ex, Square, 12)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := f.Result(ctx); err != nil || v != 144 {
		t.Fatalf("Submit = %d, %v", v, err)
	}
	// A value too large for a message, both ways, through the values
	// bucket.
	big := bytes.Repeat([]byte("jetpool"), 1<<20)
	echo, err := executor.Submit(ctx, ex, Echo, big)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := echo.Result(ctx); err != nil || !bytes.Equal(v, big) {
		t.Fatalf("echo of 7 MB: %d bytes, %v", len(v), err)
	}

	// A long task: its worker is probed for liveness, and the interrupt
	// reaches it, both through the worker's own inbox. The operator, who
	// may read every inbox, sees the probe go by.
	onc, _ := connectAs(t, srv, "operator", "operator-secret")
	probed := make(chan struct{}, 1)
	tap, err := onc.Subscribe("_INBOX.worker.>", func(m *nats.Msg) {
		var p wire.Probe
		if strings.HasPrefix(m.Reply, "_INBOX.producer.") && wire.Decode(m.Data, &p) == nil && len(p.Chunks) == 1 {
			select {
			case probed <- struct{}{}:
			default:
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer tap.Unsubscribe()
	onc.Flush()
	long, err := executor.Submit(ctx, ex, untilInterrupted, 0)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-probed:
	case <-ctx.Done():
		t.Fatal("the worker of a long task was never probed")
	}
	if !long.Interrupt() {
		t.Fatal("Interrupt() = false for a running task")
	}
	if _, err := long.Result(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted task: %v, want an error matching context.Canceled", err)
	}
	for who, errs := range map[string]<-chan error{"producer": perrs, "worker": werrs} {
		select {
		case err := <-errs:
			t.Errorf("%s hit %v in a normal run", who, err)
		default:
		}
	}
}

func TestSecurityWorkerCannotPublishTasks(t *testing.T) {
	srv := secureServer(t)
	nc, errs := connectAs(t, srv, "worker", "worker-secret")
	nc.Publish("jetpool.batch.tasks.square", []byte("forged"))
	nc.Flush()
	wantViolation(t, errs, "a worker publishing a task")
}

func TestSecurityWorkerCannotReadOtherPools(t *testing.T) {
	srv := secureServer(t)
	nc, errs := connectAs(t, srv, "worker", "worker-secret")
	if _, err := nc.SubscribeSync("jetpool.other.>"); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	wantViolation(t, errs, "a worker subscribing to another pool")
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if _, err := js.CreateConsumer(ctx, "JETPOOL_OTHER", jetstream.ConsumerConfig{Durable: "x"}); err == nil {
		t.Fatal("a worker created a consumer on another pool's stream")
	}
}

func TestSecurityProducerCannotConsumeTasks(t *testing.T) {
	srv := secureServer(t)
	_, nc, errs := producerAs(t, srv, "producer") // creates the stream
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if _, err := js.CreateConsumer(ctx, "JETPOOL_BATCH", jetstream.ConsumerConfig{Durable: "thief", FilterSubject: "jetpool.batch.tasks.>"}); err == nil {
		t.Fatal("a producer created a consumer of the task stream")
	}
	if _, err := nc.SubscribeSync("jetpool.batch.tasks.>"); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	wantViolation(t, errs, "a producer subscribing to the task subjects")
}

func TestSecurityUnauthenticatedRefused(t *testing.T) {
	srv := secureServer(t)
	if nc, err := broker.Connect(broker.ConnectOptions{URL: srv.ClientURL()}); err == nil {
		nc.Close()
		t.Fatal("a client without credentials connected")
	}
	_, err := broker.Connect(broker.ConnectOptions{URL: srv.ClientURL(), User: "worker", Password: "wrong-secret-123"})
	if err == nil {
		t.Fatal("a wrong password was accepted")
	}
	if !errors.Is(err, nats.ErrAuthorization) && !strings.Contains(err.Error(), "uthorization") {
		t.Errorf("wrong password: %v, want an authorization error", err)
	}
	if strings.Contains(err.Error(), "wrong-secret-123") {
		t.Errorf("the error shows the password: %v", err)
	}
}

// The attack tests: a victim producer ("producer") shares the pool with a
// second producer ("producer2") and a rogue worker credential ("worker2"),
// each holding what docs/security.conf gives it. Each attack must leave the
// victim's futures resolving with their own values, on time, and be either
// refused by the server or counted by the victim's Forged.

// settleBound bounds how long a victim's futures may take once a real worker
// serves them.
const settleBound = 20 * time.Second

// rogue is a worker credential of the pool that pulls chunks itself, to
// learn what a worker learns, and never asks to start them.
type rogue struct {
	nc    *nats.Conn
	errs  <-chan error
	js    jetstream.JetStream
	cons  jetstream.Consumer
	inbox string
}

// pulled is a chunk as the rogue was delivered it.
type pulled struct {
	msg   jetstream.Msg
	chunk wire.Chunk
}

// newRogue connects as worker2 and provisions the square consumer with a
// long AckWait, so that what the rogue holds stays with it until it naks.
func newRogue(t *testing.T, srv *embedded.Server, pc broker.PoolConfig) *rogue {
	t.Helper()
	nc, errs := connectAs(t, srv, "worker2", "worker2-secret")
	js := jetstreamOf(t, nc)
	subj, err := broker.NewSubjects(broker.DefaultPrefix, "batch")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := broker.EnsureConsumer(ctx, js, subj, Square.Kind(), pc)
	if err != nil {
		t.Fatal(err)
	}
	return &rogue{nc: nc, errs: errs, js: js, cons: cons, inbox: nc.NewInbox()}
}

// pull takes n distinct chunks off the stream and holds them.
func (r *rogue) pull(t *testing.T, n int) []pulled {
	t.Helper()
	var got []pulled
	seen := make(map[uint64]bool)
	deadline := time.Now().Add(10 * time.Second)
	for len(got) < n {
		if time.Now().After(deadline) {
			t.Fatalf("the rogue pulled %d chunks, want %d", len(got), n)
		}
		batch, err := r.cons.Fetch(n-len(got), jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			var c wire.Chunk
			if err := wire.Decode(m.Data(), &c); err != nil {
				t.Fatalf("the rogue pulled a chunk it cannot read: %v", err)
			}
			if seen[c.ID] {
				m.Nak()
				continue
			}
			seen[c.ID] = true
			got = append(got, pulled{msg: m, chunk: c})
		}
	}
	return got
}

// giveBack naks what the rogue holds, so that real workers get it.
func giveBack(t *testing.T, held []pulled) {
	t.Helper()
	for _, p := range held {
		if err := p.msg.Nak(); err != nil {
			t.Fatal(err)
		}
	}
}

// askStart sends starts to the control subject of a chunk the rogue pulled
// and returns the producer's verdicts.
func (r *rogue) askStart(t *testing.T, control string, starts ...wire.Start) []wire.StartReply {
	t.Helper()
	data, err := wire.Encode(&wire.Starts{Items: starts})
	if err != nil {
		t.Fatal(err)
	}
	m, err := r.nc.Request(control+broker.StartSuffix, data, 5*time.Second)
	if err != nil {
		t.Fatalf("start request: %v", err)
	}
	var replies wire.StartReplies
	if err := wire.Decode(m.Data, &replies); err != nil || len(replies.Items) != len(starts) {
		t.Fatalf("start replies %+v, %v", replies, err)
	}
	return replies.Items
}

func (r *rogue) publish(t *testing.T, subject string, v any) {
	t.Helper()
	data, err := wire.Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.nc.Publish(subject, data); err != nil {
		t.Fatal(err)
	}
}

// recorder is a square handler that records every input it ran.
type recorder struct {
	mu  sync.Mutex
	ran []int
}

func (rec *recorder) square(_ context.Context, n int) (int, error) {
	rec.mu.Lock()
	rec.ran = append(rec.ran, n)
	rec.mu.Unlock()
	return n * n, nil
}

func (rec *recorder) inputs() []int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Clone(rec.ran)
}

// serve starts a real worker of the pool, as the user "worker", running
// squares through rec.
func serve(t *testing.T, srv *embedded.Server, rec *recorder, cfg worker.Config) *worker.Worker {
	t.Helper()
	nc, errs := connectAs(t, srv, "worker", "worker-secret")
	reg := task.NewRegistry()
	task.Handle(reg, Square, rec.square)
	cfg.Pool = "batch"
	w := startWorker(t, nc, reg, cfg)
	t.Cleanup(func() {
		select {
		case err := <-errs:
			t.Errorf("the real worker hit %v", err)
		default:
		}
	})
	return w
}

func submitSquares(t *testing.T, ex executor.Executor, inputs ...int) []*executor.Future[int] {
	t.Helper()
	futs := make([]*executor.Future[int], len(inputs))
	for i, n := range inputs {
		f, err := executor.Submit(context.Background(), ex, Square, n)
		if err != nil {
			t.Fatal(err)
		}
		futs[i] = f
	}
	return futs
}

// wantSquares checks that each future resolves with the square of its input
// within settleBound.
func wantSquares(t *testing.T, futs []*executor.Future[int], inputs ...int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), settleBound)
	defer cancel()
	for i, f := range futs {
		if v, err := f.Result(ctx); err != nil || v != inputs[i]*inputs[i] {
			t.Fatalf("future of %d = %d, %v; want %d", inputs[i], v, err, inputs[i]*inputs[i])
		}
	}
}

func wantPending(t *testing.T, futs []*executor.Future[int]) {
	t.Helper()
	for i, f := range futs {
		select {
		case <-f.Done():
			v, err := f.Result(context.Background())
			t.Fatalf("future %d resolved by a forger: %d, %v", i, v, err)
		default:
		}
		if f.Running() {
			t.Fatalf("future %d is running, though no real worker was granted it", i)
		}
	}
}

func msgpackOf(t *testing.T, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSecurityForgedResultsIgnored: a rogue worker that was delivered the
// victim's chunks, and so knows their ids and the victim's control subject,
// sends results for them with every grant it can make up. None is taken:
// each is counted as forged, and the futures resolve with the values their
// real worker computes.
func TestSecurityForgedResultsIgnored(t *testing.T) {
	srv := secureServer(t)
	ex, _, _ := producerAs(t, srv, "producer")
	inputs := []int{2, 3, 4, 5}
	futs := submitSquares(t, ex, inputs...)
	r := newRogue(t, srv, broker.PoolConfig{AckWait: time.Minute})
	held := r.pull(t, len(inputs))

	forged := msgpackOf(t, -1)
	var sent int64
	var batch []byte // every forgery again, all in one result message
	for _, p := range held {
		c := p.chunk
		for _, g := range []uint64{0, 1, c.ID, c.ID + 1, rand.Uint64(), rand.Uint64()} {
			// By value and by reference, under the name the grant would
			// give.
			byRef := wire.Ref{Name: wire.ResultName(ex.ID(), c.ID, 0, g), Size: 1, Key: make([]byte, wire.RefKeyLen)}
			for _, it := range []wire.ItemResult{{Seq: 0, Value: forged}, {Seq: 0, Ref: &byRef}} {
				res := wire.Result{Chunk: c.ID, Worker: "rogue", Final: true, Grant: g, Items: []wire.ItemResult{it}}
				r.publish(t, c.Control+broker.ResultSuffix, &res)
				data, err := wire.Encode(&res)
				if err != nil {
					t.Fatal(err)
				}
				batch = append(batch, data...)
				sent++
			}
		}
	}
	if err := r.nc.Publish(held[0].chunk.Control+broker.ResultSuffix, batch); err != nil {
		t.Fatal(err)
	}
	sent *= 2
	r.nc.Flush()
	waitUntil(t, func() bool { return ex.Forged() >= sent }, "every forged result counted")
	wantPending(t, futs)

	giveBack(t, held)
	serve(t, srv, &recorder{}, worker.Config{Concurrency: 2})
	wantSquares(t, futs, inputs...)
	select {
	case err := <-r.errs:
		t.Fatalf("the rogue hit %v: the forgeries should have reached the producer", err)
	default:
	}
}

// TestSecurityFakeChunksNeitherRunNorShadow: a second producer, knowing the
// victim's id, queues chunks that claim to be the victim's, under the dedup
// ids a counter would give its chunks (id.1 to id.50), before the victim
// submits; then, with the help of a rogue worker that pulled one of the
// victim's chunks, under that chunk's id. The victim's chunks, whose ids are
// random, are all stored and run; the fakes are dropped by the victim
// before any worker runs them; the fake under a real chunk's id is refused
// by the stream (same dedup id) or by the victim (not the chunk it
// published: counted as forged).
func TestSecurityFakeChunksNeitherRunNorShadow(t *testing.T) {
	srv := secureServer(t)
	ex, _, _ := producerAs(t, srv, "producer")
	anc, aerrs := connectAs(t, srv, "producer2", "producer2-secret")
	ajs := jetstreamOf(t, anc)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	const tasks = "jetpool.batch.tasks.square"
	fake := func(id uint64, arg int, msgID string) *jetstream.PubAck {
		t.Helper()
		data, err := wire.Encode(&wire.Chunk{Executor: ex.ID(), ID: id, Kind: Square.Kind(),
			Control: "jetpool.batch.ctl." + ex.ID(), Items: []wire.Item{{Seq: 0, Args: msgpackOf(t, arg)}}})
		if err != nil {
			t.Fatal(err)
		}
		m := &nats.Msg{Subject: tasks, Data: data, Header: nats.Header{}}
		m.Header.Set(jetstream.MsgIDHeader, msgID)
		pa, err := ajs.PublishMsg(ctx, m)
		if err != nil {
			t.Fatalf("publish a fake chunk: %v", err)
		}
		return pa
	}
	const fakes = 50
	for n := uint64(1); n <= fakes; n++ {
		if pa := fake(n, 1000+int(n), wire.MsgID(ex.ID(), n)); pa.Duplicate {
			t.Fatalf("fake chunk %d was a duplicate before the victim published anything", n)
		}
	}

	first := []int{1, 2, 3, 4, 5}
	futs := submitSquares(t, ex, first...)
	r := newRogue(t, srv, broker.PoolConfig{AckWait: time.Minute})
	held := r.pull(t, fakes+len(first))
	var copied pulled // one of the victim's own chunks, which the rogue keeps
	for i, p := range held {
		if p.chunk.ID > fakes {
			copied = p
			held = slices.Delete(held, i, i+1)
			break
		}
	}
	if copied.msg == nil {
		t.Fatal("the rogue pulled none of the victim's chunks")
	}
	giveBack(t, held)
	if pa := fake(copied.chunk.ID, 2000, wire.MsgID(ex.ID(), copied.chunk.ID)); !pa.Duplicate {
		t.Error("a fake under the dedup id of a chunk the victim published was stored")
	}
	fake(copied.chunk.ID, 3000, "producer2.1") // stored: only the victim can tell it is not its chunk

	second := []int{6, 7, 8, 9, 10}
	futs = append(futs, submitSquares(t, ex, second...)...)
	rec := &recorder{}
	serve(t, srv, rec, worker.Config{Concurrency: 2})
	// The copied chunk is still held by the rogue, so the victim still
	// waits for it when a worker asks to start the fake of the same id.
	waitUntil(t, func() bool { return ex.Forged() >= 1 }, "the fake under a real chunk's id refused")
	giveBack(t, []pulled{copied})
	wantSquares(t, futs, append(first, second...)...)
	waitUntil(t, func() bool { return streamMsgsOf(t, r.js) == 0 }, "every chunk, real and fake, gone from the stream")
	for _, n := range rec.inputs() {
		if n >= 1000 {
			t.Errorf("a worker ran the attacker's input %d", n)
		}
	}
	select {
	case err := <-aerrs:
		t.Fatalf("the second producer hit %v publishing chunks", err)
	default:
	}
}

func streamMsgsOf(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	return streamState(t, js, "JETPOOL_BATCH").Msgs
}

// TestSecurityForgedStartsAndLeases: a rogue worker that was delivered the
// victim's chunks asks to start them for a made-up worker, with a wrong
// digest and with the digest of a copy it altered, and renews leases it was
// never granted. Every start is dropped and every lease counted as forged;
// no future becomes running, so a pending one can still be cancelled, and
// the rest resolve on time once a real worker serves them.
func TestSecurityForgedStartsAndLeases(t *testing.T) {
	srv := secureServer(t)
	ex, _, _ := producerAs(t, srv, "producer")
	inputs := []int{1, 2, 3}
	futs := submitSquares(t, ex, inputs...)
	r := newRogue(t, srv, broker.PoolConfig{AckWait: time.Minute})
	held := r.pull(t, len(inputs))

	var forgeries int64
	for _, p := range held {
		c := p.chunk
		altered := c
		altered.Items = []wire.Item{{Seq: 0, Args: msgpackOf(t, 99)}}
		data, err := wire.Encode(&altered)
		if err != nil {
			t.Fatal(err)
		}
		alteredDigest := wire.Digest(data)
		start := wire.Start{Chunk: c.ID, Worker: "made-up", Inbox: r.inbox, Delivery: 1, Ack: p.msg.Reply()}
		var starts []wire.Start
		for _, digest := range [][]byte{nil, make([]byte, 32), alteredDigest[:]} {
			start.Digest = digest
			starts = append(starts, start)
		}
		for i, v := range r.askStart(t, c.Control, starts...) {
			if v.Verdict != wire.VerdictDrop || v.Grant != 0 || len(v.Items) != 0 {
				t.Fatalf("forged start %d of chunk %d answered %+v, want a plain drop", i, c.ID, v)
			}
		}
		forgeries += int64(len(starts))
		for _, g := range []uint64{0, 1, c.ID, rand.Uint64()} {
			r.publish(t, c.Control+broker.LeaseSuffix, &wire.Lease{Chunk: c.ID, Grant: g})
			forgeries++
		}
	}
	r.nc.Flush()
	waitUntil(t, func() bool { return ex.Forged() >= forgeries }, "every forged start and lease counted")
	wantPending(t, futs)
	if !futs[0].Cancel() {
		t.Fatal("Cancel() = false for a future no real worker was granted")
	}

	giveBack(t, held)
	rec := &recorder{}
	serve(t, srv, rec, worker.Config{Concurrency: 2})
	wantSquares(t, futs[1:], inputs[1:]...)
	if _, err := futs[0].Result(t.Context()); !errors.Is(err, executor.ErrCancelled) {
		t.Fatalf("cancelled future: %v, want ErrCancelled", err)
	}
	waitUntil(t, func() bool { return streamMsgsOf(t, r.js) == 0 }, "every chunk gone from the stream")
	if slices.Contains(rec.inputs(), inputs[0]) {
		t.Error("the cancelled task ran")
	}
}

// TestSecurityReplayedStartGetsNoGrant: a rogue worker that was delivered a
// chunk before the worker now running it, and so holds its digest, repeats
// the running attempt's start request (same worker id, same delivery
// count) from its own inbox. A repeated start request is how a worker
// retries one whose answer it lost; it must get the grant only from the
// inbox that was granted, or the rogue could take the grant and resolve the
// futures with results of its own.
func TestSecurityReplayedStartGetsNoGrant(t *testing.T) {
	srv := secureServer(t)
	ex, _, _ := producerAs(t, srv, "producer")
	futs := submitSquares(t, ex, 4)
	r := newRogue(t, srv, broker.PoolConfig{AckWait: time.Minute})
	held := r.pull(t, 1)
	c, digest := held[0].chunk, wire.Digest(held[0].msg.Data())
	giveBack(t, held)

	started := make(chan struct{})
	release := make(chan struct{})
	nc, _ := connectAs(t, srv, "worker", "worker-secret")
	reg := task.NewRegistry()
	task.Handle(reg, Square, func(ctx context.Context, n int) (int, error) {
		close(started)
		<-release
		return n * n, nil
	})
	startWorker(t, nc, reg, worker.Config{Pool: "batch", ID: "worker-a", Concurrency: 1})
	select {
	case <-started:
	case <-time.After(settleBound):
		t.Fatal("the real worker never started the chunk")
	}
	for delivery := uint64(1); delivery <= 3; delivery++ {
		replay := wire.Start{Chunk: c.ID, Worker: "worker-a", Inbox: r.inbox, Delivery: delivery, Digest: digest[:]}
		v := r.askStart(t, c.Control, replay)[0]
		if v.Verdict == wire.VerdictGo || v.Grant != 0 {
			r.publish(t, c.Control+broker.ResultSuffix, &wire.Result{Chunk: c.ID, Worker: "worker-a", Final: true,
				Grant: v.Grant, Items: []wire.ItemResult{{Seq: 0, Value: msgpackOf(t, -1)}}})
			t.Errorf("a replayed start of delivery %d got %+v", delivery, v)
		}
	}
	close(release)
	wantSquares(t, futs, 4)
}

// TestSecurityNobodyReadsAnotherPartysSubjects: the server refuses a rogue
// worker credential and a second producer every subject where the victim's
// starts, results, leases, grants or arguments travel, and the second
// producer the stream's messages; the victim's future is untouched.
func TestSecurityNobodyReadsAnotherPartysSubjects(t *testing.T) {
	srv := secureServer(t)
	ex, _, _ := producerAs(t, srv, "producer")
	futs := submitSquares(t, ex, 6)
	control := "jetpool.batch.ctl." + ex.ID()

	wnc, werrs := connectAs(t, srv, "worker2", "worker2-secret")
	pnc, perrs := connectAs(t, srv, "producer2", "producer2-secret")
	for _, c := range []struct {
		who     string
		nc      *nats.Conn
		errs    <-chan error
		subject string
	}{
		{"a worker", wnc, werrs, control + ".>"},
		{"a worker", wnc, werrs, "jetpool.batch.ctl.>"},
		{"a worker", wnc, werrs, "_INBOX.worker.>"},
		{"a worker", wnc, werrs, "_INBOX.producer.>"},
		{"a worker", wnc, werrs, "jetpool.batch.tasks.>"},
		{"a producer", pnc, perrs, control + ".>"},
		{"a producer", pnc, perrs, "jetpool.batch.ctl.*.*.result"},
		{"a producer", pnc, perrs, "_INBOX.producer.>"},
		{"a producer", pnc, perrs, "_INBOX.worker.>"},
	} {
		if _, err := c.nc.SubscribeSync(c.subject); err != nil {
			t.Fatal(err)
		}
		c.nc.Flush()
		wantViolation(t, c.errs, c.who+" subscribing to "+c.subject)
	}

	// Nor may the second producer answer the victim's workers, read the
	// victim's queued chunk or remove it.
	pnc.Publish(control+broker.ResultSuffix, []byte("forged"))
	pnc.Flush()
	wantViolation(t, perrs, "a producer publishing to another producer's control subject")
	st, err := jetstreamOf(t, pnc).Stream(t.Context(), "JETPOOL_BATCH")
	if err != nil {
		t.Fatal(err)
	}
	for what, call := range map[string]func(context.Context) error{
		"reading a queued chunk": func(ctx context.Context) error {
			_, err := st.GetMsg(ctx, 1)
			return err
		},
		"removing a queued chunk": func(ctx context.Context) error { return st.DeleteMsg(ctx, 1) },
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		err := call(ctx)
		cancel()
		if err == nil {
			t.Fatalf("a producer succeeded %s", what)
		}
		wantViolation(t, perrs, "a producer "+what)
	}

	serve(t, srv, &recorder{}, worker.Config{Concurrency: 1})
	wantSquares(t, futs, 6)
}

// TestSecurityMaxDeliverWithoutReadingTheStream: under docs/security.conf a
// producer may neither read nor delete the stream's messages, yet a chunk
// that JetStream gives up on still fails its future with max_deliveries,
// here after a rogue worker credential pulled it and gave it back every
// time.
func TestSecurityMaxDeliverWithoutReadingTheStream(t *testing.T) {
	srv := secureServer(t)
	ex, _, _ := producerAs(t, srv, "producer")
	futs := submitSquares(t, ex, 7)
	pc := broker.PoolConfig{AckWait: time.Minute, MaxDeliver: 2}
	r := newRogue(t, srv, pc)
	for range pc.MaxDeliver {
		giveBack(t, r.pull(t, 1))
	}
	// The next pull finds the chunk spent: JetStream tells the pool.
	batch, err := r.cons.Fetch(1, jetstream.FetchMaxWait(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for range batch.Messages() {
		t.Fatal("a chunk was delivered more than MaxDeliver times")
	}
	ctx, cancel := context.WithTimeout(t.Context(), settleBound)
	defer cancel()
	_, err = futs[0].Result(ctx)
	var te *task.Error
	if !errors.As(err, &te) || te.Type != "max_deliveries" {
		t.Fatalf("future error %v, want a max_deliveries task error", err)
	}
}

// TestSecurityResultByReferenceOnlyUnderItsOwnName: a granted worker that
// reports a result by reference naming another value in the bucket (here,
// one someone put there) fails that task with value_lost: the producer
// reads a result only under the name it makes itself, and the other value
// stays where it is.
func TestSecurityResultByReferenceOnlyUnderItsOwnName(t *testing.T) {
	srv := secureServer(t)
	ex, pnc, _ := producerAs(t, srv, "producer")
	subj, _ := broker.NewSubjects(broker.DefaultPrefix, "batch")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	values, err := broker.EnsureValues(ctx, jetstreamOf(t, pnc), subj, broker.PoolConfig{})
	if err != nil {
		t.Fatal(err)
	}
	victim, err := values.PutBytes(ctx, "victim", bytes.Repeat([]byte{7}, 4096))
	if err != nil {
		t.Fatal(err)
	}
	futs := submitSquares(t, ex, 5)
	r := newRogue(t, srv, broker.PoolConfig{AckWait: time.Minute})
	held := r.pull(t, 1)
	c, digest := held[0].chunk, wire.Digest(held[0].msg.Data())
	v := r.askStart(t, c.Control, wire.Start{Chunk: c.ID, Worker: "rogue", Inbox: r.inbox, Delivery: 1, Digest: digest[:]})[0]
	if v.Verdict != wire.VerdictGo {
		t.Fatalf("the rogue, delivered the chunk, was not granted it: %+v", v)
	}
	r.publish(t, c.Control+broker.ResultSuffix, &wire.Result{Chunk: c.ID, Worker: "rogue", Final: true, Grant: v.Grant,
		Items: []wire.ItemResult{{Seq: 0, Ref: &victim}}})
	_, err = futs[0].Result(ctx)
	var te *task.Error
	if !errors.As(err, &te) || te.Type != task.TypeValueLost || !strings.Contains(te.Message, `"victim"`) {
		t.Fatalf("a result naming another value: %v, want a value_lost error naming it", err)
	}
	if got, err := values.Get(ctx, victim); err != nil || len(got) != 4096 {
		t.Fatalf("the other value after the producer was pointed at it: %d bytes, %v", len(got), err)
	}
	held[0].msg.Ack()
}
