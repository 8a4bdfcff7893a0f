package worker_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/broker/embedded"
	"github.com/jetpool/jetpool/task"
	"github.com/jetpool/jetpool/worker"
)

// discoverPatience bounds the waits of the discovery tests.
const discoverPatience = 15 * time.Second

// serveKinds runs a worker of pool serving kinds, each a task that returns
// its input, on its own connection to url until the test ends. It returns
// once the server has the worker's service registration.
func serveKinds(t *testing.T, url, pool, id string, kinds ...string) {
	t.Helper()
	reg := task.NewRegistry()
	for _, k := range kinds {
		task.Handle(reg, task.New[int, int](k), func(_ context.Context, n int) (int, error) { return n, nil })
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	w, err := worker.New(nc, reg, worker.Config{Pool: pool, ID: id, Concurrency: 2,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("worker %s: %v", id, err)
			}
		case <-time.After(discoverPatience):
			t.Errorf("worker %s did not stop", id)
		}
	})
	for deadline := time.Now().Add(discoverPatience); !w.Ready(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("worker %s not ready after %v", id, discoverPatience)
		}
	}
	// Ready follows the service registration on nc: once the server has
	// answered a ping sent after it, it has the registration's subscriptions.
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// TestServedKinds: ServedKinds counts per kind the workers of the pool
// online that serve it, and knows nothing of kinds no worker serves or of
// other pools' workers; Discover lists the pool's workers.
func TestServedKinds(t *testing.T) {
	srv, err := embedded.Start(embedded.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	ctx := t.Context()

	served, err := worker.ServedKinds(ctx, nc, broker.DefaultPool)
	if err != nil || len(served) != 0 {
		t.Fatalf("ServedKinds with no workers = %v, %v; want an empty map", served, err)
	}

	serveKinds(t, srv.ClientURL(), broker.DefaultPool, "w-2", "b")
	serveKinds(t, srv.ClientURL(), broker.DefaultPool, "w-1", "a", "b")
	serveKinds(t, srv.ClientURL(), "other", "w-3", "a", "c")

	served, err = worker.ServedKinds(ctx, nc, broker.DefaultPool)
	if want := map[string]int{"a": 1, "b": 2}; err != nil || !maps.Equal(served, want) {
		t.Fatalf("ServedKinds = %v, %v; want %v", served, err, want)
	}
	if n := served["nosuch"]; n != 0 {
		t.Fatalf("a kind no worker serves has %d workers", n)
	}

	workers, err := worker.Discover(ctx, nc, broker.DefaultPool, worker.DiscoverWait)
	if err != nil {
		t.Fatal(err)
	}
	// "" names the default pool, as in worker.Config.
	if unnamed, err := worker.Discover(ctx, nc, "", worker.DiscoverWait); err != nil || len(unnamed) != len(workers) {
		t.Fatalf("Discover of pool \"\": %d workers, %v; want the default pool's %d", len(unnamed), err, len(workers))
	}
	var ids []string
	for _, w := range workers {
		ids = append(ids, w.ID)
		if w.Concurrency != 2 || w.Host == "" || w.PID == "" {
			t.Errorf("worker %s: concurrency %d, host %q, pid %q", w.ID, w.Concurrency, w.Host, w.PID)
		}
	}
	if !slices.Equal(ids, []string{"w-1", "w-2"}) {
		t.Fatalf("Discover listed %v, want [w-1 w-2] in order", ids)
	}
	if !slices.Equal(workers[0].Kinds, []string{"a", "b"}) {
		t.Errorf("w-1 kinds %v, want [a b]", workers[0].Kinds)
	}

	ended, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := worker.ServedKinds(ended, nc, broker.DefaultPool); !errors.Is(err, context.Canceled) {
		t.Fatalf("ServedKinds with an ended context: %v, want context.Canceled", err)
	}
}
