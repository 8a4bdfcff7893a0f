// Package executortest is the conformance suite every executor must pass: one
// test per row of the semantics contract of concurrent.futures, run against a
// constructor the caller supplies.
package executortest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jetpool/jetpool/executor"
	"github.com/jetpool/jetpool/task"
)

// Config is what a [Factory] must honour.
type Config struct {
	// Registry holds the suite's handlers, bound to Harness in this process;
	// workers in the test's process run them.
	Registry *task.Registry
	// Harness is the state the handlers share with the test. A factory
	// whose workers run in other processes serves it to them with
	// [Harness.Serve] on their NATS server, and those processes register
	// [RegisterRemote]'s handlers instead of Registry's.
	Harness *Harness
	// Workers is how many tasks the executor runs at once: exactly this many.
	Workers int
	// Retry is how retryable handler errors must be retried. The suite
	// passes the zero policy, task's default, which every executor must
	// honour without being told: at most task.DefaultAttempts calls.
	Retry task.RetryPolicy
}

// Factory builds an executor for one test and registers its own cleanup with
// t.Cleanup. The suite shuts the executor down itself as well.
type Factory func(t *testing.T, cfg Config) executor.Executor

// patience bounds every wait in the suite; a conforming executor is far
// quicker, so reaching it means a hang.
const patience = 20 * time.Second

// Run runs the whole suite as subtests of t.
func Run(t *testing.T, newExecutor Factory) {
	tests := []struct {
		name string
		fn   func(*testing.T, *env)
	}{
		{"SayHi", testSayHi},
		{"SubmitResult", testSubmitResult},
		{"MapInOrder", testMapInOrder},
		{"MapTimeout", testMapTimeout},
		{"MapEarlyStopCancelsPending", testMapEarlyStop},
		{"MapBoundedInFlight", testMapBounded},
		{"MapErrorsInPlace", testMapErrorsInPlace},
		{"InvalidOptions", testInvalidOptions},
		{"CancelPendingWhenSaturated", testCancelPending},
		{"RunningOnlyOnceStarted", testRunning},
		{"DoneCallbacks", testCallbacks},
		{"TaskErrors", testTaskErrors},
		{"Retries", testRetries},
		{"ResultDeadline", testResultDeadline},
		{"Wait", testWait},
		{"AsCompleted", testAsCompleted},
		{"ShutdownWait", testShutdownWait},
		{"ShutdownNoWait", testShutdownNoWait},
		{"ShutdownCancelFutures", testShutdownCancelFutures},
		{"TaskDeadline", testTaskDeadline},
		{"QueuedDeadline", testQueuedDeadline},
		{"Interrupt", testInterrupt},
		{"CancelRace", testCancelRace},
		{"IdleSlotsTakePending", testIdleSlots},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, &env{newExecutor: newExecutor})
		})
	}
}

// env builds executors for one subtest.
type env struct {
	newExecutor Factory
	h           *Harness
}

func (e *env) start(t *testing.T, workers int) executor.Executor {
	t.Helper()
	e.h = NewHarness()
	reg := task.NewRegistry()
	e.h.Register(reg)
	ex := e.newExecutor(t, Config{
		Registry: reg,
		Harness:  e.h,
		Workers:  workers,
		// The zero policy: every executor must retry by task's default.
		Retry: task.RetryPolicy{},
	})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		defer cancel()
		if err := ex.Shutdown(ctx, true, true); err != nil {
			t.Errorf("Shutdown at cleanup: %v", err)
		}
	})
	return ex
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	t.Cleanup(cancel)
	return ctx
}

func submit[In, Out any](t *testing.T, ex executor.Executor, tk task.Task[In, Out], in In, opts ...executor.SubmitOption) *executor.Future[Out] {
	t.Helper()
	f, err := executor.Submit(ctxT(t), ex, tk, in, opts...)
	if err != nil {
		t.Fatalf("Submit(%s, %v): %v", tk.Kind(), in, err)
	}
	return f
}

func result[T any](t *testing.T, f *executor.Future[T]) (T, error) {
	t.Helper()
	v, err := f.Result(ctxT(t))
	if errors.Is(err, context.DeadlineExceeded) && !isDone(f) {
		t.Fatalf("future not done after %v", patience)
	}
	return v, err
}

func mustResult[T any](t *testing.T, f *executor.Future[T]) T {
	t.Helper()
	v, err := result(t, f)
	if err != nil {
		t.Fatalf("Result: %v", err)
	}
	return v
}

func isDone[T any](f *executor.Future[T]) bool {
	select {
	case <-f.Done():
		return true
	default:
		return false
	}
}

func within(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(patience):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func shutdown(t *testing.T, ex executor.Executor, wait, cancelFutures bool) {
	t.Helper()
	if err := ex.Shutdown(ctxT(t), wait, cancelFutures); err != nil {
		t.Fatalf("Shutdown(wait=%v, cancelFutures=%v): %v", wait, cancelFutures, err)
	}
}

func testSayHi(t *testing.T, e *env) {
	ex := e.start(t, 3)
	var fs []*executor.Future[Greeting]
	for i := range 9 {
		fs = append(fs, submit(t, ex, SayHi, fmt.Sprintf("task-%d", i)))
	}
	workers := map[string]int{}
	for i, f := range fs {
		g := mustResult(t, f)
		if want := fmt.Sprintf("hi task-%d", i); g.Text != want {
			t.Errorf("result %d = %q, want %q", i, g.Text, want)
		}
		if g.Worker == "" {
			t.Errorf("result %d does not name its worker", i)
		}
		workers[g.Worker]++
	}
	t.Logf("workers used: %v", workers)
}

func testSubmitResult(t *testing.T, e *env) {
	ex := e.start(t, 4)
	var fs []*executor.Future[int]
	for i := range 200 {
		fs = append(fs, submit(t, ex, Square, Num{N: i}))
	}
	for i, f := range fs {
		if v := mustResult(t, f); v != i*i {
			t.Fatalf("Square(%d) = %d", i, v)
		}
		if f.Running() || f.Cancelled() || f.Cancel() {
			t.Fatalf("finished future %d: Running=%v Cancelled=%v, Cancel succeeded", i, f.Running(), f.Cancelled())
		}
	}
}

func nums(n, sleepOn, sleepMs int) []Num {
	out := make([]Num, n)
	for i := range out {
		out[i] = Num{N: i + 1}
		if i+1 == sleepOn {
			out[i].SleepMs = sleepMs
		}
	}
	return out
}

func testMapInOrder(t *testing.T, e *env) {
	ex := e.start(t, 4)
	for _, chunk := range []int{1, 3, 50} {
		var got []int
		for v, err := range executor.Map(ctxT(t), ex, Square, slices.Values(nums(100, 0, 0)), executor.MapChunksize(chunk), executor.MapBuffersize(2)) {
			if err != nil {
				t.Fatalf("chunksize %d: %v", chunk, err)
			}
			got = append(got, v)
		}
		if len(got) != 100 {
			t.Fatalf("chunksize %d: %d results, want 100", chunk, len(got))
		}
		for i, v := range got {
			if v != (i+1)*(i+1) {
				t.Fatalf("chunksize %d: result %d = %d, want %d", chunk, i, v, (i+1)*(i+1))
			}
		}
	}
}

// testMapTimeout is the seed's scenario: map(square, 1..10, chunksize=1,
// timeout=2s) where item 5 sleeps 10 s yields 1, 4, 9, 16 and a timeout error.
func testMapTimeout(t *testing.T, e *env) {
	ex := e.start(t, 2)
	start := time.Now()
	var got []int
	var gotErr error
	for v, err := range executor.Map(ctxT(t), ex, Square, slices.Values(nums(10, 5, 10_000)), executor.MapChunksize(1), executor.MapTimeout(2*time.Second)) {
		if err != nil {
			gotErr = err
			continue
		}
		got = append(got, v)
	}
	elapsed := time.Since(start)
	if !slices.Equal(got, []int{1, 4, 9, 16}) {
		t.Errorf("results %v, want [1 4 9 16]", got)
	}
	if !errors.Is(gotErr, context.DeadlineExceeded) {
		t.Errorf("final error %v, want one matching context.DeadlineExceeded", gotErr)
	}
	if elapsed < 2*time.Second || elapsed > 8*time.Second {
		t.Errorf("map returned after %v, want about 2s", elapsed)
	}
}

func testMapEarlyStop(t *testing.T, e *env) {
	ex := e.start(t, 1)
	ids := []string{"g0", "g1", "g2", "g3", "g4", "g5", "g6", "g7"}
	e.h.Open("g0")
	for v, err := range executor.Map(ctxT(t), ex, Gate, slices.Values(ids), executor.MapBuffersize(len(ids))) {
		if err != nil || v != "g0" {
			t.Fatalf("first result (%q, %v), want (g0, nil)", v, err)
		}
		break
	}
	for _, id := range ids {
		e.h.Open(id)
	}
	shutdown(t, ex, true, false)
	for _, id := range ids[2:] {
		if n := e.h.Ran(id); n != 0 {
			t.Errorf("task %s ran %d times after the map was stopped before it started", id, n)
		}
	}
}

func testMapBounded(t *testing.T, e *env) {
	ex := e.start(t, 2)
	const n, chunk, buffer = 5000, 10, 4
	var mu sync.Mutex
	produced, maxAhead := 0, 0
	consumed := 0
	inputs := func(yield func(Num) bool) {
		for i := 1; i <= n; i++ {
			mu.Lock()
			produced++
			maxAhead = max(maxAhead, produced-consumed)
			mu.Unlock()
			if !yield(Num{N: i}) {
				return
			}
		}
	}
	for v, err := range executor.Map(ctxT(t), ex, Square, inputs, executor.MapChunksize(chunk), executor.MapBuffersize(buffer)) {
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		consumed++
		i := consumed
		mu.Unlock()
		if v != i*i {
			t.Fatalf("result %d = %d", i, v)
		}
	}
	if consumed != n {
		t.Fatalf("consumed %d, want %d", consumed, n)
	}
	if limit := chunk * (buffer + 1); maxAhead > limit {
		t.Errorf("inputs ran %d ahead of the consumer, want at most %d", maxAhead, limit)
	}
}

func testMapErrorsInPlace(t *testing.T, e *env) {
	ex := e.start(t, 2)
	specs := []FailSpec{{Key: "a", Retryable: 1}, {Key: "b", Type: "Boom", Message: "boom"}, {Key: "c", Retryable: 1}}
	var vals []int
	var errs []error
	for v, err := range executor.Map(ctxT(t), ex, Fail, slices.Values(specs)) {
		vals = append(vals, v)
		errs = append(errs, err)
	}
	if len(vals) != 3 || vals[0] != 42 || vals[2] != 42 || errs[0] != nil || errs[2] != nil {
		t.Fatalf("got values %v errors %v, want 42, error, 42", vals, errs)
	}
	var te *task.Error
	if !errors.As(errs[1], &te) || te.Type != "Boom" {
		t.Fatalf("error in place = %v, want a *task.Error of type Boom", errs[1])
	}
}

func testInvalidOptions(t *testing.T, e *env) {
	ex := e.start(t, 1)
	for _, opt := range []executor.MapOption{executor.MapChunksize(0), executor.MapBuffersize(-1), executor.MapTimeout(0)} {
		n := 0
		for _, err := range executor.Map(ctxT(t), ex, Square, slices.Values(nums(3, 0, 0)), opt) {
			n++
			if !errors.Is(err, executor.ErrInvalidOption) {
				t.Errorf("Map with an invalid option yielded %v, want ErrInvalidOption", err)
			}
		}
		if n != 1 {
			t.Errorf("Map with an invalid option yielded %d pairs, want 1", n)
		}
	}
	if _, err := executor.Submit(ctxT(t), ex, Square, Num{}, executor.SubmitTimeout(-time.Second)); !errors.Is(err, executor.ErrInvalidOption) {
		t.Errorf("Submit with a negative timeout: %v, want ErrInvalidOption", err)
	}
}

func testCancelPending(t *testing.T, e *env) {
	ex := e.start(t, 2)
	busy := []*executor.Future[string]{submit(t, ex, Gate, "busy-0"), submit(t, ex, Gate, "busy-1")}
	within(t, e.h.Started("busy-0"), "busy-0 to start")
	within(t, e.h.Started("busy-1"), "busy-1 to start")
	f := submit(t, ex, Record, "victim")
	if f.Running() {
		t.Fatal("queued future reports Running")
	}
	if !f.Cancel() {
		t.Fatal("Cancel of a pending future returned false")
	}
	if !f.Cancel() {
		t.Fatal("second Cancel of a cancelled future returned false")
	}
	if !f.Cancelled() || !isDone(f) {
		t.Fatal("cancelled future not Cancelled and done")
	}
	if _, err := result(t, f); !errors.Is(err, executor.ErrCancelled) {
		t.Fatalf("Result of a cancelled future: %v, want ErrCancelled", err)
	}
	if busy[0].Cancel() {
		t.Fatal("Cancel of a running future returned true")
	}
	e.h.Open("busy-0")
	e.h.Open("busy-1")
	for _, b := range busy {
		mustResult(t, b)
	}
	if busy[0].Cancel() {
		t.Fatal("Cancel of a finished future returned true")
	}
	shutdown(t, ex, true, false)
	if n := e.h.Ran("victim"); n != 0 {
		t.Fatalf("cancelled task ran %d times", n)
	}
}

func testRunning(t *testing.T, e *env) {
	ex := e.start(t, 1)
	first := submit(t, ex, Gate, "first")
	second := submit(t, ex, Gate, "second")
	within(t, e.h.Started("first"), "first to start")
	waitFor(t, first.Running, "first to report Running")
	if second.Running() {
		t.Fatal("queued future reports Running while the only worker is busy")
	}
	e.h.Open("first")
	mustResult(t, first)
	if first.Running() {
		t.Fatal("finished future reports Running")
	}
	within(t, e.h.Started("second"), "second to start")
	waitFor(t, second.Running, "second to report Running")
	e.h.Open("second")
	mustResult(t, second)
}

// waitFor polls cond, for states that become true a message after the event
// a test can see.
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func testCallbacks(t *testing.T, e *env) {
	ex := e.start(t, 1)
	block := submit(t, ex, Gate, "block")
	within(t, e.h.Started("block"), "block to start")

	var mu sync.Mutex
	calls := map[string]int{}
	note := func(name string) { mu.Lock(); calls[name]++; mu.Unlock() }
	finished := make(chan struct{})
	block.AddDoneCallback(func(*executor.Future[string]) { panic("callback panics") })
	block.AddDoneCallback(func(f *executor.Future[string]) {
		if f != block {
			t.Error("callback got another future")
		}
		note("finish")
		close(finished)
	})
	pendingF := submit(t, ex, Record, "never")
	cancelled := make(chan struct{})
	pendingF.AddDoneCallback(func(f *executor.Future[string]) {
		if !f.Cancelled() {
			t.Error("cancel callback sees a future that is not cancelled")
		}
		note("cancel")
		close(cancelled)
	})
	if !pendingF.Cancel() {
		t.Fatal("Cancel of pending future failed")
	}
	within(t, cancelled, "cancel callback")
	e.h.Open("block")
	within(t, finished, "finish callback after a panicking one")
	ranNow := false
	block.AddDoneCallback(func(*executor.Future[string]) { ranNow = true })
	if !ranNow {
		t.Fatal("callback added to a done future did not run at once")
	}
	mu.Lock()
	defer mu.Unlock()
	if calls["finish"] != 1 || calls["cancel"] != 1 {
		t.Fatalf("callbacks ran %v, want each once", calls)
	}
}

func testTaskErrors(t *testing.T, e *env) {
	ex := e.start(t, 2)
	tests := []struct {
		spec      FailSpec
		wantType  string
		wantMsg   string
		wantStack bool
	}{
		{FailSpec{Key: "typed", Type: "ValueError", Message: "bad value"}, "ValueError", "bad value", false},
		{FailSpec{Key: "panic", Panic: true, Message: "kaboom"}, task.TypePanic, "kaboom", true},
	}
	for _, tc := range tests {
		_, err := result(t, submit(t, ex, Fail, tc.spec))
		var te *task.Error
		if !errors.As(err, &te) {
			t.Fatalf("%s: error %v (%T), want *task.Error", tc.spec.Key, err, err)
		}
		if te.Kind != Fail.Kind() || te.Type != tc.wantType || te.Message != tc.wantMsg {
			t.Errorf("%s: got {%s %s %q}, want {%s %s %q}", tc.spec.Key, te.Kind, te.Type, te.Message, Fail.Kind(), tc.wantType, tc.wantMsg)
		}
		if got := te.Stack != ""; got != tc.wantStack {
			t.Errorf("%s: has stack %v, want %v", tc.spec.Key, got, tc.wantStack)
		}
		if tc.wantStack && !strings.Contains(te.Stack, "executortest") {
			t.Errorf("%s: stack does not name the handler:\n%s", tc.spec.Key, te.Stack)
		}
		if err2 := mustErr(t, submit(t, ex, Fail, tc.spec)); err2 == nil {
			t.Errorf("%s: Err returned nil for a failed task", tc.spec.Key)
		}
	}
	if n := e.h.Attempts("typed"); n != 2 {
		t.Errorf("a non-retryable error was tried %d times over 2 submits, want 2", n)
	}
}

func mustErr[T any](t *testing.T, f *executor.Future[T]) error {
	t.Helper()
	return f.Err(ctxT(t))
}

func testRetries(t *testing.T, e *env) {
	ex := e.start(t, 1)
	if v := mustResult(t, submit(t, ex, Fail, FailSpec{Key: "twice", Retryable: 2, Type: "Flaky"})); v != 42 {
		t.Fatalf("retried task = %d, want 42", v)
	}
	if n := e.h.Attempts("twice"); n != 3 {
		t.Fatalf("task failing retryably twice ran %d times, want 3", n)
	}
	_, err := result(t, submit(t, ex, Fail, FailSpec{Key: "always", Retryable: 100, Type: "Flaky", Message: "flaky"}))
	var te *task.Error
	if !errors.As(err, &te) || te.Type != "Flaky" || !te.Retryable {
		t.Fatalf("exhausted retries: %v, want a retryable *task.Error of type Flaky", err)
	}
	if n := e.h.Attempts("always"); n != task.DefaultAttempts {
		t.Fatalf("task failing retryably ran %d times, want the %d attempts of the default policy", n, task.DefaultAttempts)
	}
}

func testResultDeadline(t *testing.T, e *env) {
	ex := e.start(t, 1)
	f := submit(t, ex, Gate, "slow")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := f.Result(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Result with an expired ctx: %v, want context.DeadlineExceeded", err)
	}
	if err := f.Err(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Err with an expired ctx: %v, want context.DeadlineExceeded", err)
	}
	if isDone(f) || f.Cancelled() {
		t.Fatal("a Result deadline changed the future")
	}
	e.h.Open("slow")
	if v := mustResult(t, f); v != "slow" {
		t.Fatalf("Result = %q", v)
	}
}

func testWait(t *testing.T, e *env) {
	ex := e.start(t, 3)
	fast := submit(t, ex, Gate, "fast")
	slow := submit(t, ex, Gate, "slow")
	e.h.Open("fast")
	fs := []*executor.Future[string]{slow, fast, fast}

	done, notDone := executor.Wait(ctxT(t), fs, executor.FirstCompleted)
	if len(done) != 1 || done[0] != fast || len(notDone) != 1 || notDone[0] != slow {
		t.Fatalf("FirstCompleted: done %d notDone %d, want fast done and slow not", len(done), len(notDone))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	done, notDone = executor.Wait(ctx, fs, executor.AllCompleted)
	cancel()
	if len(done) != 1 || len(notDone) != 1 {
		t.Fatalf("AllCompleted with a timeout: done %d notDone %d, want 1 and 1", len(done), len(notDone))
	}

	// FirstException with no failure waits for all.
	go func() { time.Sleep(20 * time.Millisecond); e.h.Open("slow") }()
	done, notDone = executor.Wait(ctxT(t), fs, executor.FirstException)
	if len(done) != 2 || len(notDone) != 0 {
		t.Fatalf("FirstException without failure: done %d notDone %d, want 2 and 0", len(done), len(notDone))
	}

	failing := submit(t, ex, Fail, FailSpec{Key: "x", Type: "E", Message: "m"})
	held := submit(t, ex, Gate, "held")
	done2, notDone2 := executor.Wait(ctxT(t), []*executor.Future[int]{failing}, executor.FirstException)
	if len(done2) != 1 || len(notDone2) != 0 {
		t.Fatal("FirstException did not return on the failure")
	}
	short, cancelShort := context.WithTimeout(context.Background(), 30*time.Millisecond)
	_, heldNot := executor.Wait(short, []*executor.Future[string]{held}, executor.FirstCompleted)
	cancelShort()
	if len(heldNot) != 1 {
		t.Fatal("a future blocked on its gate reported done")
	}
	e.h.Open("held")
	done, notDone = executor.Wait(ctxT(t), []*executor.Future[string]{held, slow}, executor.AllCompleted)
	if len(done) != 2 || len(notDone) != 0 {
		t.Fatalf("AllCompleted: done %d notDone %d", len(done), len(notDone))
	}
}

func testAsCompleted(t *testing.T, e *env) {
	ex := e.start(t, 3)
	a := submit(t, ex, Gate, "a")
	e.h.Open("a")
	mustResult(t, a)
	b := submit(t, ex, Gate, "b")
	c := submit(t, ex, Gate, "c")
	within(t, e.h.Started("b"), "b to start")
	within(t, e.h.Started("c"), "c to start")

	var order []string
	it := executor.AsCompleted(ctxT(t), []*executor.Future[string]{c, a, b, a})
	for f, err := range it {
		if err != nil {
			t.Fatal(err)
		}
		v := mustResult(t, f)
		order = append(order, v)
		switch v {
		case "a":
			e.h.Open("b")
		case "b":
			e.h.Open("c")
		}
	}
	if !slices.Equal(order, []string{"a", "b", "c"}) {
		t.Fatalf("AsCompleted order %v, want [a b c]", order)
	}

	d := submit(t, ex, Gate, "d")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	var gotErr error
	n := 0
	for f, err := range executor.AsCompleted(ctx, []*executor.Future[string]{a, d}) {
		n++
		if err != nil {
			gotErr = err
			if f != nil {
				t.Error("error pair carries a future")
			}
		}
	}
	if n != 2 || gotErr == nil || !strings.Contains(gotErr.Error(), "1 of 2 futures unfinished") || !errors.Is(gotErr, context.DeadlineExceeded) {
		t.Fatalf("AsCompleted timeout: %d pairs, error %v; want 2 pairs and an error naming 1 of 2 unfinished", n, gotErr)
	}
	e.h.Open("d")
}

func testShutdownWait(t *testing.T, e *env) {
	ex := e.start(t, 2)
	f := submit(t, ex, Gate, "w")
	within(t, e.h.Started("w"), "w to start")
	go func() { time.Sleep(50 * time.Millisecond); e.h.Open("w") }()
	shutdown(t, ex, true, false)
	if !isDone(f) {
		t.Fatal("Shutdown(wait) returned before the running future was done")
	}
	if _, err := executor.Submit(ctxT(t), ex, Square, Num{N: 1}); !errors.Is(err, executor.ErrShutdown) {
		t.Fatalf("Submit after Shutdown: %v, want ErrShutdown", err)
	}
	for _, err := range executor.Map(ctxT(t), ex, Square, slices.Values(nums(2, 0, 0))) {
		if !errors.Is(err, executor.ErrShutdown) {
			t.Fatalf("Map after Shutdown yielded %v, want ErrShutdown", err)
		}
	}
	shutdown(t, ex, true, false) // twice is safe
}

func testShutdownNoWait(t *testing.T, e *env) {
	ex := e.start(t, 1)
	running := submit(t, ex, Gate, "r")
	queued := submit(t, ex, Record, "q")
	within(t, e.h.Started("r"), "r to start")
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		if err := ex.Shutdown(context.Background(), false, false); err != nil {
			t.Errorf("Shutdown(wait=false): %v", err)
		}
	}()
	within(t, returned, "Shutdown(wait=false) to return while a task runs")
	if isDone(running) {
		t.Fatal("running future done before its gate opened")
	}
	e.h.Open("r")
	if v := mustResult(t, running); v != "r" {
		t.Fatalf("running = %q", v)
	}
	if v := mustResult(t, queued); v != "q" {
		t.Fatalf("queued future after Shutdown(wait=false) = %q, want it to run", v)
	}
}

func testShutdownCancelFutures(t *testing.T, e *env) {
	ex := e.start(t, 1)
	running := submit(t, ex, Gate, "r")
	within(t, e.h.Started("r"), "r to start")
	var queued []*executor.Future[string]
	for i := range 5 {
		queued = append(queued, submit(t, ex, Record, fmt.Sprintf("q%d", i)))
	}
	go func() { time.Sleep(50 * time.Millisecond); e.h.Open("r") }()
	shutdown(t, ex, true, true)
	if v := mustResult(t, running); v != "r" {
		t.Fatalf("running task = %q; Shutdown must not cancel it", v)
	}
	for i, f := range queued {
		if !f.Cancelled() {
			t.Errorf("queued future %d not cancelled by Shutdown(cancelFutures)", i)
		}
		if n := e.h.Ran(fmt.Sprintf("q%d", i)); n != 0 {
			t.Errorf("cancelled task q%d ran", i)
		}
	}
}

func testTaskDeadline(t *testing.T, e *env) {
	ex := e.start(t, 1)
	block := submit(t, ex, Gate, "block")
	within(t, e.h.Started("block"), "block to start")
	late := submit(t, ex, Record, "late", executor.SubmitTimeout(50*time.Millisecond))
	time.Sleep(100 * time.Millisecond)
	e.h.Open("block")
	mustResult(t, block)
	if _, err := result(t, late); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("task whose deadline passed in the queue: %v, want context.DeadlineExceeded", err)
	}
	if n := e.h.Ran("late"); n != 0 {
		t.Fatalf("expired task ran %d times", n)
	}
	_, err := result(t, submit(t, ex, Square, Num{N: 2, SleepMs: 10_000}, executor.SubmitTimeout(200*time.Millisecond)))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("handler past its deadline: %v, want context.DeadlineExceeded", err)
	}
}

// testQueuedDeadline fills the executor's one slot and checks that a task
// queued behind it fails at its own deadline, not when the slot frees.
func testQueuedDeadline(t *testing.T, e *env) {
	const timeout = 300 * time.Millisecond
	const slack = 3 * time.Second // generous for a loaded machine, far below the blocker's wait
	ex := e.start(t, 1)
	block := submit(t, ex, Gate, "block")
	within(t, e.h.Started("block"), "block to start")
	start := time.Now()
	late := submit(t, ex, Record, "late", executor.SubmitTimeout(timeout))
	ctx, cancel := context.WithTimeout(ctxT(t), timeout+slack)
	defer cancel()
	_, err := late.Result(ctx)
	elapsed := time.Since(start)
	switch {
	case !isDone(late):
		t.Errorf("queued task with a %v timeout still pending after %v while the slot is busy", timeout, elapsed)
	case !errors.Is(err, context.DeadlineExceeded):
		t.Errorf("queued task past its deadline: %v, want context.DeadlineExceeded", err)
	case elapsed < timeout:
		t.Errorf("queued task failed after %v, before its %v deadline", elapsed, timeout)
	case isDone(block):
		t.Error("the blocking task finished before its gate opened")
	}
	e.h.Open("block")
	mustResult(t, block)
	shutdown(t, ex, true, false)
	if n := e.h.Ran("late"); n != 0 {
		t.Errorf("expired task ran %d times", n)
	}
}

func testInterrupt(t *testing.T, e *env) {
	ex := e.start(t, 1)
	f := submit(t, ex, Gate, "stuck")
	queued := submit(t, ex, Record, "queued")
	if queued.Interrupt() {
		t.Fatal("Interrupt of a pending future returned true")
	}
	within(t, e.h.Started("stuck"), "stuck to start")
	waitFor(t, f.Running, "stuck to report Running")
	if !f.Interrupt() {
		t.Fatal("Interrupt of a running future returned false")
	}
	if _, err := result(t, f); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted task: %v, want context.Canceled", err)
	}
	mustResult(t, queued)
}

// testCancelRace hammers Cancel against start and checks that no task whose
// Cancel returned true ever ran, and that every future resolved.
func testCancelRace(t *testing.T, e *env) {
	const n = 2000
	ex := e.start(t, 4)
	fs := make([]*executor.Future[string], n)
	won := make([]bool, n)
	var wg sync.WaitGroup
	for i := range n {
		fs[i] = submit(t, ex, Record, fmt.Sprintf("race-%d", i))
		if i%2 == 0 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				won[i] = fs[i].Cancel()
			}()
		}
	}
	wg.Wait()
	shutdown(t, ex, true, false)
	cancelled, ran := 0, 0
	for i, f := range fs {
		if !isDone(f) {
			t.Fatalf("future %d not done after Shutdown(wait)", i)
		}
		id := fmt.Sprintf("race-%d", i)
		if won[i] {
			cancelled++
			if !f.Cancelled() {
				t.Fatalf("future %d: Cancel returned true but Cancelled is false", i)
			}
			if e.h.Ran(id) != 0 {
				t.Fatalf("task %s ran although its Cancel returned true", id)
			}
			continue
		}
		if v := mustResult(t, f); v != id {
			t.Fatalf("future %d = %q", i, v)
		}
		ran++
		if c := e.h.Ran(id); c < 1 {
			t.Fatalf("task %s finished without running", id)
		}
	}
	t.Logf("%d tasks: %d cancelled before start, %d ran", n, cancelled, ran)
}

// testIdleSlots checks the scheduling rule that a pending task never waits
// while a slot that serves its kind is idle: it submits one blocking task at
// a time, each once the one before is known to run, so every submit finds a
// slot idle, wherever the executor's slots are; all must run at once.
func testIdleSlots(t *testing.T, e *env) {
	const n = 4
	ex := e.start(t, n)
	var fs []*executor.Future[string]
	for i := range n {
		id := fmt.Sprintf("slot-%d", i)
		start := time.Now()
		fs = append(fs, submit(t, ex, Gate, id))
		within(t, e.h.Started(id), fmt.Sprintf("%s to start with %d of %d slots busy and none released", id, i, n))
		t.Logf("%s started %v after its submit", id, time.Since(start))
	}
	for i := range n {
		e.h.Open(fmt.Sprintf("slot-%d", i))
	}
	for i, f := range fs {
		if v := mustResult(t, f); v != fmt.Sprintf("slot-%d", i) {
			t.Fatalf("result %d = %q", i, v)
		}
	}
}
