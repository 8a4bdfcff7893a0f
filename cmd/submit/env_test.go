package main

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/broker/embedded"
	"github.com/jetpool/jetpool/builtin"
	"github.com/jetpool/jetpool/task"
	"github.com/jetpool/jetpool/worker"
)

// testPool keeps fault paths short.
var testPool = broker.PoolConfig{AckWait: 2 * time.Second, Grace: 2 * time.Second}

// startBroker starts an embedded server for one test and returns its URL.
func startBroker(t *testing.T, cfg embedded.Config) string {
	t.Helper()
	srv, err := embedded.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv.ClientURL()
}

// startWorker serves reg (the built-in tasks if nil) on url until the test
// ends.
func startWorker(t *testing.T, url string, reg *task.Registry, cfg worker.Config) *worker.Worker {
	t.Helper()
	if reg == nil {
		reg = task.NewRegistry()
		builtin.Register(reg, builtin.Config{})
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	cfg.PoolConfig = testPool
	w, err := worker.New(nc, reg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("worker did not stop")
		}
	})
	return w
}

// gate is a task kind, "gate", that returns its input at once if it is
// below 100 and otherwise waits until the gate opens (or its ctx ends):
// tests use it to hold a job part way through.
type gate struct {
	entered chan int      // each input >= 100 as its handler starts
	open    chan struct{} // closed by release
}

// startGateWorker starts a worker on url that serves the gate kind, and
// whatever more adds to its registry, and opens the gate before the worker
// stops, which waits for its running handlers.
func startGateWorker(t *testing.T, url string, cfg worker.Config, more func(*task.Registry)) (*gate, *worker.Worker) {
	t.Helper()
	g := &gate{entered: make(chan int, 1000), open: make(chan struct{})}
	reg := task.NewRegistry()
	task.Handle(reg, task.New[int, int]("gate"), func(ctx context.Context, n int) (int, error) {
		if n < 100 {
			return n, nil
		}
		g.entered <- n
		select {
		case <-g.open:
			return n, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	})
	if more != nil {
		more(reg)
	}
	w := startWorker(t, url, reg, cfg)
	t.Cleanup(g.release)
	return g, w
}

// waitOnline waits until service discovery finds n workers on url.
func waitOnline(t *testing.T, url string, n int) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ws, err := worker.Discover(context.Background(), nc, broker.DefaultPool, 200*time.Millisecond)
		if err == nil && len(ws) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d workers online after 30s (%v), want %d", len(ws), err, n)
		}
	}
}

func (g *gate) release() {
	select {
	case <-g.open:
	default:
		close(g.open)
	}
}

// waitEnteredAll waits until the handlers of the inputs ns have started, in
// any order: the chunks of a map are not bound to run in input order.
func (g *gate) waitEnteredAll(t *testing.T, ns ...int) {
	t.Helper()
	left := slices.Clone(ns)
	timeout := time.After(30 * time.Second)
	for len(left) > 0 {
		select {
		case m := <-g.entered:
			left = slices.DeleteFunc(left, func(n int) bool { return n == m })
		case <-timeout:
			t.Fatalf("the tasks of inputs %v did not start in 30s", left)
		}
	}
}

// waitEntered waits for the handler of input n to start.
func (g *gate) waitEntered(t *testing.T, n int) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case m := <-g.entered:
			if m == n {
				return
			}
		case <-timeout:
			t.Fatalf("the task of input %d did not start in 30s", n)
		}
	}
}

// submitResult is how one run of the submit binary ended.
type submitResult struct {
	code        int
	out, stderr string
}

// submit runs the submit binary with stdin and env (KEY=value) and waits
// for it.
func submit(t *testing.T, stdin string, env []string, args ...string) submitResult {
	t.Helper()
	cmd := mainCmd(args...)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	code := 0
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return submitResult{code: code, out: out.String(), stderr: errb.String()}
}
