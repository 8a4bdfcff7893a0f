package executortest

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jetpool/jetpool/task"
)

// The suite's tasks. Executors under test must run the handlers that
// [Harness.Register] puts in the registry given to their factory.
var (
	SayHi  = task.New[string, Greeting]("conformance-say-hi")
	Square = task.New[Num, int]("conformance-square")
	Gate   = task.New[string, string]("conformance-gate")
	Record = task.New[string, string]("conformance-record")
	Fail   = task.New[FailSpec, int]("conformance-fail")
)

// Greeting is SayHi's result: who was greeted and which worker did it.
type Greeting struct {
	Text   string `msgpack:"text"`
	Worker string `msgpack:"worker"`
}

// Num is Square's input: N to square, after sleeping SleepMs (or until the
// handler's context ends).
type Num struct {
	N       int `msgpack:"n"`
	SleepMs int `msgpack:"sleep_ms"`
}

// FailSpec makes Fail fail in a chosen way.
type FailSpec struct {
	Key       string `msgpack:"key"`       // counts attempts
	Type      string `msgpack:"type"`      // the error's ErrorType
	Message   string `msgpack:"message"`   // the error's message
	Panic     bool   `msgpack:"panic"`     // panic with Message instead
	Retryable int    `msgpack:"retryable"` // fail retryably this many times, then return 42
}

type typedError struct{ typ, msg string }

func (e typedError) Error() string     { return e.msg }
func (e typedError) ErrorType() string { return e.typ }

// Harness holds the state the suite's handlers share with the test: gates a
// Gate task blocks on, which tasks started, and how often each Fail key ran.
// Handlers added by [Harness.Register] reach it directly, in the test's
// process; handlers in other processes reach it over NATS (see
// [Harness.Serve] and [RegisterRemote]).
type Harness struct {
	mu       sync.Mutex
	gates    map[string]chan struct{}
	started  map[string]chan struct{}
	ran      map[string]int
	attempts map[string]int
}

// NewHarness returns an empty harness.
func NewHarness() *Harness {
	return &Harness{
		gates:    map[string]chan struct{}{},
		started:  map[string]chan struct{}{},
		ran:      map[string]int{},
		attempts: map[string]int{},
	}
}

// Register adds the suite's handlers to reg; they record in h and wait on its
// gates directly, so the workers that run them must be in this process.
func (h *Harness) Register(reg *task.Registry) { register(reg, direct{h}) }

// state is what the handlers record and wait on: a Harness in this process
// ([direct]) or one served over NATS ([remote]).
type state interface {
	markRan(ctx context.Context, id string) error
	// attempt counts one more attempt of key and returns the count.
	attempt(ctx context.Context, key string) (int, error)
	// start marks id started and returns nil once its gate is open, or
	// ctx's error once ctx ends.
	start(ctx context.Context, id string) error
}

func register(reg *task.Registry, st state) {
	task.Handle(reg, SayHi, func(ctx context.Context, name string) (Greeting, error) {
		return Greeting{Text: "hi " + name, Worker: task.WorkerID(ctx)}, nil
	})
	task.Handle(reg, Square, func(ctx context.Context, in Num) (int, error) {
		if in.SleepMs > 0 {
			t := time.NewTimer(time.Duration(in.SleepMs) * time.Millisecond)
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}
		return in.N * in.N, nil
	})
	task.Handle(reg, Gate, func(ctx context.Context, id string) (string, error) {
		if err := st.markRan(ctx, id); err != nil {
			return "", err
		}
		if err := st.start(ctx, id); err != nil {
			return "", err
		}
		return id, nil
	})
	task.Handle(reg, Record, func(ctx context.Context, id string) (string, error) {
		if err := st.markRan(ctx, id); err != nil {
			return "", err
		}
		return id, nil
	})
	task.Handle(reg, Fail, func(ctx context.Context, s FailSpec) (int, error) {
		n, err := st.attempt(ctx, s.Key)
		if err != nil {
			return 0, err
		}
		switch {
		case s.Panic:
			panic(s.Message)
		case s.Retryable > 0 && n <= s.Retryable:
			return 0, task.Retryable(typedError{s.Type, fmt.Sprintf("%s (attempt %d)", s.Message, n)})
		case s.Retryable > 0:
			return 42, nil
		}
		return 0, typedError{s.Type, s.Message}
	})
}

// direct is a Harness reached in this process; it never fails.
type direct struct{ h *Harness }

func (d direct) markRan(_ context.Context, id string) error { d.h.markRan(id); return nil }

func (d direct) attempt(_ context.Context, key string) (int, error) {
	return d.h.attempt(key), nil
}

func (d direct) start(ctx context.Context, id string) error {
	d.h.markStarted(id)
	select {
	case <-d.h.gate(id):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *Harness) gate(id string) chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	g, ok := h.gates[id]
	if !ok {
		g = make(chan struct{})
		h.gates[id] = g
	}
	return g
}

func (h *Harness) startedChan(id string) chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	c, ok := h.started[id]
	if !ok {
		c = make(chan struct{})
		h.started[id] = c
	}
	return c
}

func (h *Harness) markStarted(id string) {
	c := h.startedChan(id)
	h.mu.Lock()
	defer h.mu.Unlock()
	select {
	case <-c:
	default:
		close(c)
	}
}

func (h *Harness) markRan(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ran[id]++
}

func (h *Harness) attempt(key string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.attempts[key]++
	return h.attempts[key]
}

// Open releases every Gate task with this id, running or to come.
func (h *Harness) Open(id string) {
	g := h.gate(id)
	h.mu.Lock()
	defer h.mu.Unlock()
	select {
	case <-g:
	default:
		close(g)
	}
}

// Started returns a channel closed once a Gate task with this id starts.
func (h *Harness) Started(id string) <-chan struct{} { return h.startedChan(id) }

// Ran reports how many times the body of a Gate or Record task with this id ran.
func (h *Harness) Ran(id string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ran[id]
}

// Attempts reports how many times Fail ran with this key.
func (h *Harness) Attempts(key string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.attempts[key]
}
