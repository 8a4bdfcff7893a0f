package executor_test

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/broker/embedded"
	"github.com/jetpool/jetpool/executor"
	"github.com/jetpool/jetpool/task"
	"github.com/jetpool/jetpool/worker"
)

// faultPoolConfig gives the fault tests a short lease and grace period so a
// lost worker or producer is noticed in seconds.
var faultPoolConfig = broker.PoolConfig{AckWait: 2 * time.Second, Grace: 2 * time.Second}

const doomedTasks = 200

func ints(n int) func(func(int) bool) {
	return func(yield func(int) bool) {
		for i := range n {
			if !yield(i) {
				return
			}
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestBrokerRestartLosesNothing stops the embedded broker twice in the middle
// of a map and starts it again on the same store directory: every result
// arrives.
func TestBrokerRestartLosesNothing(t *testing.T) {
	cfg := embedded.Config{Port: freePort(t), StoreDir: t.TempDir()}
	srv, err := embedded.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown() })
	nc := connect(t, srv.ClientURL())
	ex := newNATS(t, nc, executor.NATSPoolConfig(faultPoolConfig))
	startWorker(t, connect(t, srv.ClientURL()), childRegistry(), worker.Config{Concurrency: 4, PoolConfig: faultPoolConfig})

	const n = 3000
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	got := 0
	for v, err := range executor.Map(ctx, ex, SlowSquare, ints(n), executor.MapChunksize(5), executor.MapBuffersize(32)) {
		if err != nil {
			t.Fatalf("result %d: %v", got, err)
		}
		if v != got*got {
			t.Fatalf("result %d = %d, want %d", got, v, got*got)
		}
		got++
		if got == n/3 || got == 2*n/3 {
			srv.Shutdown()
			t.Logf("broker stopped after %d results", got)
			time.Sleep(500 * time.Millisecond)
			if srv, err = embedded.Start(cfg); err != nil {
				t.Fatal(err)
			}
			t.Log("broker started again on the same store")
		}
	}
	if got != n {
		t.Fatalf("%d results, want %d", got, n)
	}
}

// TestSubmitsSurviveBrokerRestart keeps submitting while the embedded broker
// is stopped and started again on its store, with a chunk per Submit and
// with Submits gathered into chunks: chunks whose PubAck the restart
// swallowed are published again, and every future still resolves, right.
func TestSubmitsSurviveBrokerRestart(t *testing.T) {
	t.Run("chunk per Submit", func(t *testing.T) { submitsAcrossRestart(t) })
	t.Run("NATSAutoBatch", func(t *testing.T) { submitsAcrossRestart(t, executor.NATSAutoBatch(100)) })
}

func submitsAcrossRestart(t *testing.T, opts ...executor.NATSOption) {
	cfg := embedded.Config{Port: freePort(t), StoreDir: t.TempDir()}
	srv, err := embedded.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown() })
	var republished atomic.Int64
	log := slog.New(countingHandler{msg: "executor: publishing a chunk again", n: &republished})
	opts = append(opts, executor.NATSPoolConfig(faultPoolConfig), executor.NATSLogger(log))
	ex := newNATS(t, connect(t, srv.ClientURL()), opts...)
	startWorker(t, connect(t, srv.ClientURL()), childRegistry(), worker.Config{Concurrency: 16, PoolConfig: faultPoolConfig})

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stop := make(chan struct{})
	submitted := make(chan []*executor.Future[int])
	go func() {
		var fs []*executor.Future[int]
		defer func() { submitted <- fs }()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			f, err := executor.Submit(ctx, ex, SlowSquare, i)
			if err != nil {
				t.Errorf("Submit %d: %v", i, err)
				return
			}
			fs = append(fs, f)
			if i%20 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	time.Sleep(time.Second)
	srv.Shutdown()
	time.Sleep(500 * time.Millisecond)
	if srv, err = embedded.Start(cfg); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	close(stop)
	fs := <-submitted
	failed := 0
	for i, f := range fs {
		if v, err := f.Result(ctx); err != nil || v != i*i {
			if failed++; failed <= 5 {
				t.Errorf("future %d: %d, %v", i, v, err)
			}
		}
	}
	t.Logf("%d futures across the restart, %d chunks published again, %d failed", len(fs), republished.Load(), failed)
	if republished.Load() == 0 {
		t.Error("the restart swallowed no PubAck: the test did not exercise publishing again")
	}
}

// countingHandler counts the log records with message msg.
type countingHandler struct {
	msg string
	n   *atomic.Int64
}

func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.n.Add(1)
	}
	return nil
}
func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countingHandler) WithGroup(string) slog.Handler      { return h }

// TestProducerGoneLeavesNoWork kills a producer process that has queued 200
// tasks: within the grace period the workers drop what is left, and no task
// starts once the drops began.
func TestProducerGoneLeavesNoWork(t *testing.T) {
	srv, nc := startBroker(t)
	var ran atomic.Int64
	reg := task.NewRegistry()
	task.Handle(reg, Nap, func(ctx context.Context, ms int) (int, error) {
		ran.Add(1)
		time.Sleep(time.Duration(ms) * time.Millisecond)
		return ms, nil
	})
	// Provision the stream with the test's settings before the producer does.
	newNATS(t, nc, executor.NATSPoolConfig(faultPoolConfig))

	cmd := startDoomedProducer(t, srv.ClientURL())

	w := startWorker(t, connect(t, srv.ClientURL()), reg, worker.Config{Concurrency: 2, PoolConfig: faultPoolConfig})
	waitUntil(t, func() bool { return ran.Load() >= 4 }, "the worker to run some tasks")
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	killedAt := time.Now()
	ranAtKill := ran.Load()

	// Every queued chunk is dropped within the grace period plus a few
	// request timeouts.
	js := jetstreamOf(t, nc)
	waitUntil(t, func() bool { return streamMsgs(t, js) == 0 }, "the stream to empty")
	emptied := time.Since(killedAt)
	final := ran.Load()
	st := w.Stats()
	t.Logf("tasks=%d ran before kill=%d ran after kill=%d terminated=%d, stream empty %v after the kill",
		doomedTasks, ranAtKill, final-ranAtKill, st.ChunksTerminated, emptied.Round(time.Millisecond))
	// At most the tasks already granted when the producer died (one per
	// slot) may still run.
	if final-ranAtKill > 2 {
		t.Errorf("%d tasks started after their producer was killed", final-ranAtKill)
	}
	if st.ChunksTerminated < doomedTasks-final {
		t.Errorf("%d chunks terminated, want at least %d", st.ChunksTerminated, doomedTasks-final)
	}
	if limit := faultPoolConfig.Grace + 10*time.Second; emptied > limit {
		t.Errorf("stream emptied %v after the kill, want within %v", emptied, limit)
	}
}

func waitUntil(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// brokerProcess is an embedded broker in a process of its own, to kill.
type brokerProcess struct {
	t    *testing.T
	spec string
	cmd  *exec.Cmd
}

// startBrokerProcess starts this test binary as a broker on port with its
// store in dir and waits until it serves.
func startBrokerProcess(t *testing.T, port int, dir string) *brokerProcess {
	t.Helper()
	b := &brokerProcess{t: t, spec: strconv.Itoa(port) + ":" + dir}
	b.start()
	t.Cleanup(func() {
		b.cmd.Process.Kill()
		b.cmd.Wait()
	})
	return b
}

func (b *brokerProcess) start() {
	b.t.Helper()
	self, err := os.Executable()
	if err != nil {
		b.t.Fatal(err)
	}
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), envTestBroker+"="+b.spec)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
		cmd.Process.Kill()
		cmd.Wait()
		b.t.Fatalf("broker process said %q, %v", line, err)
	}
	b.cmd = cmd
}

// kill SIGKILLs the broker and starts it again on the same store.
func (b *brokerProcess) kill() {
	b.t.Helper()
	if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		b.t.Fatal(err)
	}
	b.cmd.Wait()
	b.start()
}

// tally counts how a fault test's futures ended.
type tally struct {
	tasks, correct, wrong, failed, hung, repeated int
}

func (t tally) String() string {
	return "tasks=" + strconv.Itoa(t.tasks) + " correct=" + strconv.Itoa(t.correct) + " wrong=" + strconv.Itoa(t.wrong) +
		" failed=" + strconv.Itoa(t.failed) + " hung=" + strconv.Itoa(t.hung) + " run-more-than-once=" + strconv.Itoa(t.repeated)
}

// TestBrokerKilledLosesNothing SIGKILLs the broker, a process of its own,
// three times during a map at chunksize 50 of tasks long enough that each
// chunk sends several result messages, and starts it again on its store
// each time: every future resolves once, with its own value.
func TestBrokerKilledLosesNothing(t *testing.T) {
	port, dir := freePort(t), t.TempDir()
	b := startBrokerProcess(t, port, dir)
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	pc := broker.PoolConfig{AckWait: 5 * time.Second, Grace: 20 * time.Second}
	ex := newNATS(t, connect(t, url), executor.NATSPoolConfig(pc))
	const n = 4000
	runs := make([]atomic.Int32, n)
	reg := task.NewRegistry()
	task.Handle(reg, PauseSquare, func(ctx context.Context, i int) (int, error) {
		runs[i].Add(1)
		time.Sleep(2 * time.Millisecond)
		return i * i, nil
	})
	startWorker(t, connect(t, url), reg, worker.Config{Concurrency: 8, PoolConfig: pc, ResultInterval: 20 * time.Millisecond})

	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	res := tally{tasks: n}
	kills, i := 0, 0
	start := time.Now()
	for v, err := range executor.Map(ctx, ex, PauseSquare, ints(n), executor.MapChunksize(50), executor.MapBuffersize(16)) {
		switch {
		case err != nil && ctx.Err() != nil:
			res.hung = n - i
		case err != nil:
			res.failed++
			if res.failed <= 5 {
				t.Errorf("result %d: %v", i, err)
			}
		case v != i*i:
			res.wrong++
		default:
			res.correct++
		}
		if err != nil && ctx.Err() != nil {
			break
		}
		i++
		if kills < 3 && i == (kills+1)*n/4 {
			b.kill()
			kills++
			t.Logf("broker killed and started again after %d results", i)
		}
	}
	for i := range runs {
		if runs[i].Load() > 1 {
			res.repeated++
		}
	}
	t.Logf("FAULTS broker SIGKILL x%d, chunksize 50: %v in %v", kills, res, time.Since(start).Round(time.Millisecond))
	if res.correct != n {
		t.Fatalf("%v", res)
	}
}

// TestKilledProducerCostsOthersNothing SIGKILLs a producer in the middle of
// its work, on a pool whose worker has two slots, while another producer
// runs a job of 200 tasks of 10ms: the job takes about as long as without
// the dead producer, not the grace period.
func TestKilledProducerCostsOthersNothing(t *testing.T) {
	srv, nc := startBroker(t)
	pc := broker.PoolConfig{AckWait: 30 * time.Second, Grace: 30 * time.Second}
	ex := newNATS(t, nc, executor.NATSPoolConfig(pc))
	reg := task.NewRegistry()
	task.Handle(reg, Nap, func(ctx context.Context, ms int) (int, error) {
		time.Sleep(time.Duration(ms) * time.Millisecond)
		return ms, nil
	})
	cmd := startDoomedProducer(t, srv.ClientURL())
	w := startWorker(t, connect(t, srv.ClientURL()), reg, worker.Config{Concurrency: 2, PoolConfig: pc})
	waitUntil(t, func() bool { return w.Stats().ChunksStarted >= 4 }, "the worker to run some of the doomed producer's tasks")
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	const n = 200
	naps := make([]int, n)
	for i := range naps {
		naps[i] = 10
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*pc.Grace)
	defer cancel()
	start := time.Now()
	res := tally{tasks: n}
	for v, err := range executor.Map(ctx, ex, Nap, slices.Values(naps)) {
		switch {
		case err != nil && ctx.Err() != nil:
			res.hung = n - res.correct - res.failed - res.wrong
		case err != nil:
			res.failed++
		case v != 10:
			res.wrong++
		default:
			res.correct++
		}
		if ctx.Err() != nil {
			break
		}
	}
	took := time.Since(start)
	t.Logf("FAULTS producer SIGKILL during another's job of %d naps of 10ms on 2 slots: %v, the job took %v",
		n, res, took.Round(time.Millisecond))
	if res.correct != n {
		t.Fatalf("%v", res)
	}
	// 200 naps of 10ms on two slots is one second of work.
	if took > pc.Grace/3 {
		t.Fatalf("the job took %v: the dead producer's chunks held the slots", took)
	}
}

// startSelf starts this test binary, running no test, with env added to its
// environment, and returns it with its standard output.
func startSelf(t *testing.T, env string) (*exec.Cmd, io.ReadCloser) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), env)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, out
}

// startDoomedProducer starts this test binary as a producer that submits
// doomedTasks naps to the broker at url, and returns once they are
// submitted; the test kills it.
func startDoomedProducer(t *testing.T, url string) *exec.Cmd {
	t.Helper()
	cmd, out := startSelf(t, envTestProducer+"="+url)
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "submitted\n" {
		t.Fatalf("producer said %q, %v", line, err)
	}
	return cmd
}
