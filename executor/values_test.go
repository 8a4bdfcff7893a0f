package executor_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/broker/embedded"
	"github.com/jetpool/jetpool/executor"
	"github.com/jetpool/jetpool/task"
	"github.com/jetpool/jetpool/worker"
)

// Kinds of the values tests: digest hashes its input; grow makes a result of
// the size asked, from a seed, so that both sides can tell it by digest.
var (
	digestKind = task.New[[]byte, string]("digest")
	growKind   = task.New[grown, []byte]("grow")
	sizeKind   = task.New[[]byte, int]("size")
)

type grown struct {
	Size int
	Seed uint64
}

// bytesOf is the value grow makes for g.
func bytesOf(g grown) []byte {
	b := make([]byte, g.Size)
	r := rand.NewChaCha8([32]byte{byte(g.Seed), byte(g.Seed >> 8), byte(g.Seed >> 16)})
	r.Read(b)
	return b
}

func digestOf(b []byte) string {
	d := sha256.Sum256(b)
	return hex.EncodeToString(d[:])
}

func valuesRegistry() *task.Registry {
	reg := task.NewRegistry()
	task.Handle(reg, digestKind, func(_ context.Context, b []byte) (string, error) { return digestOf(b), nil })
	task.Handle(reg, growKind, func(_ context.Context, g grown) ([]byte, error) { return bytesOf(g), nil })
	task.Handle(reg, sizeKind, func(_ context.Context, b []byte) (int, error) { return len(b), nil })
	return reg
}

// valuesPool is a broker with an executor and, unless told otherwise, a
// worker of the values kinds.
type valuesPool struct {
	t   *testing.T
	nc  *nats.Conn
	url string
	ex  *executor.NATS
}

func newValuesPool(t *testing.T, cfg embedded.Config, withWorker bool) *valuesPool {
	t.Helper()
	srv, err := embedded.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	p := &valuesPool{t: t, url: srv.ClientURL(), nc: connect(t, srv.ClientURL())}
	p.ex = newNATS(t, p.nc)
	if withWorker {
		p.worker()
	}
	return p
}

func (p *valuesPool) worker() {
	startWorker(p.t, connect(p.t, p.url), valuesRegistry(), worker.Config{Concurrency: 2})
}

// values is the pool's values bucket, as a test reads it.
func (p *valuesPool) values() *broker.Values {
	p.t.Helper()
	subj, _ := broker.NewSubjects(broker.DefaultPrefix, broker.DefaultPool)
	v, err := broker.EnsureValues(context.Background(), jetstreamOf(p.t, p.nc), subj, testPool)
	if err != nil {
		p.t.Fatal(err)
	}
	return v
}

// waitEmpty waits until the values bucket holds nothing: every value was
// removed once it was no longer needed.
func (p *valuesPool) waitEmpty() {
	p.t.Helper()
	v := p.values()
	var names []string
	waitUntil(p.t, func() bool {
		var err error
		names, err = v.Names(context.Background())
		return err == nil && len(names) == 0
	}, "the values bucket to be empty")
}

// TestLargeValuesTravelByReference: a 50 MB input and a 200 MB result go
// through the pool's values bucket and arrive whole, checked by digest, and
// the bucket is empty afterwards.
func TestLargeValuesTravelByReference(t *testing.T) {
	p := newValuesPool(t, embedded.Config{}, true)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	in := bytesOf(grown{Size: 50 << 20, Seed: 1})
	f, err := executor.Submit(ctx, p.ex, digestKind, in)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := f.Result(ctx); err != nil || got != digestOf(in) {
		t.Fatalf("digest of a 50 MB input: %q, %v; want %q", got, err, digestOf(in))
	}
	in = nil

	g := grown{Size: 200 << 20, Seed: 2}
	out, err := executor.Submit(ctx, p.ex, growKind, g)
	if err != nil {
		t.Fatal(err)
	}
	got, err := out.Result(ctx)
	if err != nil || len(got) != g.Size || digestOf(got) != digestOf(bytesOf(g)) {
		t.Fatalf("a 200 MB result: %d bytes, %v; want %d bytes of its digest", len(got), err, g.Size)
	}
	p.waitEmpty()
}

// TestMapOfMediumValues: Map of 1000 items of 2 MB each, five to a chunk,
// yields every digest in order; the bucket is empty afterwards.
func TestMapOfMediumValues(t *testing.T) {
	if raceDetector {
		t.Skip("moves 2 GB, for minutes under the race detector: scripts/test.sh runs it without")
	}
	p := newValuesPool(t, embedded.Config{}, true)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const items, size = 1000, 2 << 20
	value := func(i int) []byte {
		b := make([]byte, size)
		copy(b, strconv.Itoa(i))
		return b
	}
	inputs := func(yield func([]byte) bool) {
		for i := range items {
			if !yield(value(i)) {
				return
			}
		}
	}
	i := 0
	for got, err := range executor.Map(ctx, p.ex, digestKind, inputs, executor.MapChunksize(5)) {
		if err != nil {
			t.Fatalf("item %d: %v", i, err)
		}
		if want := digestOf(value(i)); got != want {
			t.Fatalf("item %d: digest %s, want %s", i, got, want)
		}
		i++
	}
	if i != items {
		t.Fatalf("%d results, want %d", i, items)
	}
	p.waitEmpty()
}

// TestChunkOfManyInputsSpills: a chunk whose inputs are each below the
// threshold but together larger than a message has its largest inputs
// spilled until it fits, and every result comes back in order.
func TestChunkOfManyInputsSpills(t *testing.T) {
	p := newValuesPool(t, embedded.Config{MaxPayload: 256 << 10}, true)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var inputs [][]byte
	for i := range 60 {
		inputs = append(inputs, bytesOf(grown{Size: 10<<10 + i*100, Seed: uint64(i)}))
	}
	i := 0
	for got, err := range executor.Map(ctx, p.ex, digestKind, slices.Values(inputs), executor.MapChunksize(60)) {
		if err != nil || got != digestOf(inputs[i]) {
			t.Fatalf("item %d: %q, %v; want %q", i, got, err, digestOf(inputs[i]))
		}
		i++
	}
	if i != len(inputs) {
		t.Fatalf("%d results, want %d", i, len(inputs))
	}
	p.waitEmpty()
}

// TestLostInputFailsItsTask: an input whose value is gone from the bucket
// before a worker reads it fails its task with value_lost, and only that
// task.
func TestLostInputFailsItsTask(t *testing.T) {
	p := newValuesPool(t, embedded.Config{}, false)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	lost, err := executor.Submit(ctx, p.ex, digestKind, bytesOf(grown{Size: 1 << 20, Seed: 3}))
	if err != nil {
		t.Fatal(err)
	}
	v := p.values()
	names, err := v.Names(ctx)
	if err != nil || len(names) != 1 {
		t.Fatalf("the bucket holds %q, %v; want the one input", names, err)
	}
	if err := v.Delete(ctx, names[0]); err != nil {
		t.Fatal(err)
	}
	kept := bytesOf(grown{Size: 1 << 20, Seed: 4})
	ok, err := executor.Submit(ctx, p.ex, digestKind, kept)
	if err != nil {
		t.Fatal(err)
	}
	p.worker()
	_, err = lost.Result(ctx)
	var te *task.Error
	if !errors.As(err, &te) || te.Type != task.TypeValueLost {
		t.Fatalf("the task whose input is gone: %v, want a %s task error", err, task.TypeValueLost)
	}
	if got, err := ok.Result(ctx); err != nil || got != digestOf(kept) {
		t.Fatalf("the other task: %q, %v", got, err)
	}
	p.waitEmpty()
}

// BenchmarkValues moves values of 1, 10 and 100 MB through the pool: by
// Submit of a task that takes one and returns its size (a put by the
// producer, a get by the worker), and, as the ceiling, by a bare object
// store put and get of the same bytes on the same broker.
func BenchmarkValues(b *testing.B) {
	srv, err := embedded.Start(embedded.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown()
	pnc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	defer pnc.Close()
	wnc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	defer wnc.Close()
	ctx := context.Background()
	ex, err := executor.NewNATS(ctx, pnc)
	if err != nil {
		b.Fatal(err)
	}
	defer ex.Shutdown(ctx, true, true)
	w, err := worker.New(wnc, valuesRegistry(), worker.Config{Concurrency: 2})
	if err != nil {
		b.Fatal(err)
	}
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	defer func() { stop(); <-done }()

	js, err := jetstream.New(pnc)
	if err != nil {
		b.Fatal(err)
	}
	obs, err := js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: "CEILING", Storage: jetstream.FileStorage})
	if err != nil {
		b.Fatal(err)
	}
	for _, mb := range []int{1, 10, 100} {
		value := bytesOf(grown{Size: mb << 20, Seed: uint64(mb)})
		b.Run(fmt.Sprintf("%dMB/ceiling", mb), func(b *testing.B) {
			b.SetBytes(int64(len(value)))
			for b.Loop() {
				if _, err := obs.PutBytes(ctx, "v", value); err != nil {
					b.Fatal(err)
				}
				got, err := obs.GetBytes(ctx, "v")
				if err != nil || len(got) != len(value) {
					b.Fatalf("get: %d bytes, %v", len(got), err)
				}
			}
		})
		b.Run(fmt.Sprintf("%dMB/submit", mb), func(b *testing.B) {
			b.SetBytes(int64(len(value)))
			for b.Loop() {
				f, err := executor.Submit(ctx, ex, sizeKind, value)
				if err != nil {
					b.Fatal(err)
				}
				if got, err := f.Result(ctx); err != nil || got != len(value) {
					b.Fatalf("size %d, %v", got, err)
				}
			}
		})
	}
}

// TestBrokerKilledMidTransfer SIGKILLs the broker, a process of its own,
// while a 64 MB input is on its way into the values bucket and again while
// a 64 MB result is, and starts it again on its store each time: both
// futures resolve with their own values, checked by digest, and the bucket
// is empty afterwards.
func TestBrokerKilledMidTransfer(t *testing.T) {
	port, dir := freePort(t), t.TempDir()
	b := startBrokerProcess(t, port, dir)
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	pc := broker.PoolConfig{AckWait: 5 * time.Second, Grace: 20 * time.Second}
	nc := connect(t, url)
	ex := newNATS(t, nc, executor.NATSPoolConfig(pc))
	reg := task.NewRegistry()
	task.Handle(reg, digestKind, func(_ context.Context, b []byte) (string, error) { return digestOf(b), nil })
	returned := make(chan struct{}, 1)
	task.Handle(reg, growKind, func(_ context.Context, g grown) ([]byte, error) {
		defer func() {
			select {
			case returned <- struct{}{}:
			default: // a run again after the restart
			}
		}()
		return bytesOf(g), nil
	})
	startWorker(t, connect(t, url), reg, worker.Config{Concurrency: 2, PoolConfig: pc})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// The input: the broker dies once the bucket holds a part of it.
	js := jetstreamOf(t, nc)
	in := bytesOf(grown{Size: 64 << 20, Seed: 5})
	type submitted struct {
		f   *executor.Future[string]
		err error
	}
	sub := make(chan submitted, 1)
	go func() {
		f, err := executor.Submit(ctx, ex, digestKind, in)
		sub <- submitted{f, err}
	}()
	waitUntil(t, func() bool {
		st, err := js.Stream(ctx, "OBJ_JETPOOL_DEFAULT_VALUES")
		if err != nil {
			return false
		}
		info, err := st.Info(ctx)
		return err == nil && info.State.Bytes > 4<<20
	}, "a part of the input to be in the bucket")
	b.kill()
	t.Log("killed mid-input")
	s := <-sub
	t.Log("submitted")
	if s.err != nil {
		t.Fatalf("Submit of a 64 MB input across a broker restart: %v", s.err)
	}
	if got, err := s.f.Result(ctx); err != nil || got != digestOf(in) {
		t.Fatalf("digest of the input: %q, %v; want %q", got, err, digestOf(in))
	}

	// The result: the broker dies as the worker begins to store it.
	g := grown{Size: 64 << 20, Seed: 6}
	f, err := executor.Submit(ctx, ex, growKind, g)
	if err != nil {
		t.Fatal(err)
	}
	<-returned
	b.kill()
	t.Log("killed mid-result")
	got, err := f.Result(ctx)
	t.Log("result in")
	if err != nil || digestOf(got) != digestOf(bytesOf(g)) {
		t.Fatalf("a 64 MB result across a broker restart: %d bytes, %v", len(got), err)
	}
	subj, _ := broker.NewSubjects(broker.DefaultPrefix, broker.DefaultPool)
	v, err := broker.EnsureValues(ctx, js, subj, pc)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool {
		names, err := v.Names(ctx)
		return err == nil && len(names) == 0
	}, "the values bucket to be empty")
}

// The processes of the sweep test: a worker of the values kinds and a
// producer that asks for a large result, each to be killed while it moves a
// value.
const (
	envTestValuesWorker   = "JETPOOL_TEST_VALUES_WORKER"
	envTestValuesProducer = "JETPOOL_TEST_VALUES_PRODUCER"
)

// sweptPool is the pool of the sweep test: its values bucket keeps a value
// for five seconds, time enough to move the test's.
var sweptPool = broker.PoolConfig{AckWait: 2 * time.Second, Grace: 2 * time.Second, ValueTTL: 5 * time.Second}

func runValuesWorker(url string) int {
	w, err := worker.New(connectOrDie(url), valuesRegistry(), worker.Config{Concurrency: 1, PoolConfig: sweptPool})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := w.Run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func runValuesProducer(url string) int {
	ex, err := executor.NewNATS(context.Background(), connectOrDie(url), executor.NATSPoolConfig(sweptPool))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	f, err := executor.Submit(context.Background(), ex, growKind, grown{Size: 16 << 20, Seed: 8})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	f.Result(context.Background())
	return 0
}

// startChild starts this test binary as the process env names, killed with
// SIGKILL when the test ends if it is still there.
func startChild(t *testing.T, env string) *exec.Cmd {
	t.Helper()
	cmd, _ := startSelf(t, env)
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// TestSweepRemovesWhatTheDeadLeft SIGKILLs a worker process while it stores a
// 16 MB result, and a producer process while it reads one: the task of the
// dead worker runs again on another and its future gets the whole value,
// and once the bucket's TTL has passed the bucket holds nothing, not even
// the parts of the value the dead worker had stored.
func TestSweepRemovesWhatTheDeadLeft(t *testing.T) {
	srv, err := embedded.Start(embedded.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	url := srv.ClientURL()
	nc := connect(t, url)
	ex := newNATS(t, nc, executor.NATSPoolConfig(sweptPool))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	js := jetstreamOf(t, nc)
	stored := func() jetstream.StreamState {
		st, err := js.Stream(ctx, "OBJ_JETPOOL_DEFAULT_VALUES")
		if err != nil {
			return jetstream.StreamState{}
		}
		info, err := st.Info(ctx)
		if err != nil {
			return jetstream.StreamState{}
		}
		return info.State
	}

	// The worker dies with a part of its result in the bucket.
	dying := startChild(t, envTestValuesWorker+"="+url)
	g := grown{Size: 16 << 20, Seed: 7}
	f, err := executor.Submit(ctx, ex, growKind, g)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { return stored().Bytes > 4<<20 }, "a part of the result to be in the bucket")
	dying.Process.Kill()
	dying.Wait()
	startWorker(t, connect(t, url), valuesRegistry(), worker.Config{Concurrency: 1, PoolConfig: sweptPool})
	got, err := f.Result(ctx)
	if err != nil || digestOf(got) != digestOf(bytesOf(g)) {
		t.Fatalf("the result of the dead worker's task: %d bytes, %v", len(got), err)
	}

	// The producer dies once its result is whole in the bucket.
	subj, _ := broker.NewSubjects(broker.DefaultPrefix, broker.DefaultPool)
	values, err := broker.EnsureValues(ctx, js, subj, sweptPool)
	if err != nil {
		t.Fatal(err)
	}
	producer := startChild(t, envTestValuesProducer+"="+url)
	waitUntil(t, func() bool {
		names, err := values.Names(ctx)
		return err == nil && slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, "out.") })
	}, "the producer's result to be whole in the bucket")
	producer.Process.Kill()
	producer.Wait()

	waitUntil(t, func() bool { return stored().Msgs == 0 }, "the bucket's TTL to sweep it")
}

// TestFullStoreRefusesTheSubmit: an input the values bucket has no room for
// fails its Submit with the server's error, and nothing is published.
func TestFullStoreRefusesTheSubmit(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "small.conf")
	if err := os.WriteFile(conf, []byte("jetstream { max_file_store: 8388608 }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := newValuesPool(t, embedded.Config{ConfigFile: conf}, false)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := executor.Submit(ctx, p.ex, digestKind, bytesOf(grown{Size: 16 << 20, Seed: 9}))
	if err == nil || !strings.Contains(err.Error(), "values bucket") {
		t.Fatalf("Submit of an input larger than the store: %v, want the values bucket's error", err)
	}
	if n := streamMsgs(t, jetstreamOf(t, p.nc)); n != 0 {
		t.Fatalf("%d chunks in the stream after a refused Submit", n)
	}
	// What fits still goes.
	small := bytesOf(grown{Size: 1 << 20, Seed: 10})
	f, err := executor.Submit(ctx, p.ex, digestKind, small)
	if err != nil {
		t.Fatal(err)
	}
	p.worker()
	if got, err := f.Result(ctx); err != nil || got != digestOf(small) {
		t.Fatalf("a 1 MB input after the refusal: %q, %v", got, err)
	}
	p.waitEmpty()
}
