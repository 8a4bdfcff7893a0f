package executortest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/jetpool/jetpool/broker/embedded"
	"github.com/jetpool/jetpool/executor"
	"github.com/jetpool/jetpool/executor/executortest"
	"github.com/jetpool/jetpool/task"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// remoteLocal is a Local executor whose handlers reach h over NATS, as a
// process pool's workers do, with the harness served by this process.
func remoteLocal(t *testing.T, h *executortest.Harness, workers int, retry task.RetryPolicy) executor.Executor {
	t.Helper()
	srv, err := embedded.Start(embedded.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	reg := task.NewRegistry()
	executortest.RegisterRemote(reg, connect(t, srv.ClientURL()))
	stop, err := h.Serve(connect(t, srv.ClientURL()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	ex, err := executor.NewLocal(reg, executor.LocalMaxWorkers(workers), executor.LocalRetry(retry))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ex.Shutdown(context.Background(), true, true) })
	return ex
}

func connect(t *testing.T, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// TestRemoteHarness runs the suite with every handler reaching the harness
// over NATS.
func TestRemoteHarness(t *testing.T) {
	executortest.Run(t, func(t *testing.T, cfg executortest.Config) executor.Executor {
		return remoteLocal(t, cfg.Harness, cfg.Workers, cfg.Retry)
	})
}

// TestServeStopAnswersWaits stops serving while a Gate task waits for its
// gate: the task fails, saying the harness stopped, and stop returns.
func TestServeStopAnswersWaits(t *testing.T) {
	h := executortest.NewHarness()
	srv, err := embedded.Start(embedded.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	reg := task.NewRegistry()
	executortest.RegisterRemote(reg, connect(t, srv.ClientURL()))
	stop, err := h.Serve(connect(t, srv.ClientURL()))
	if err != nil {
		t.Fatal(err)
	}
	ex, err := executor.NewLocal(reg, executor.LocalMaxWorkers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Shutdown(context.Background(), true, true)
	f, err := executor.Submit(t.Context(), ex, executortest.Gate, "held")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.Started("held"):
	case <-time.After(20 * time.Second):
		t.Fatal("held did not start")
	}
	stop()
	stop() // twice is safe
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if _, err := f.Result(ctx); err == nil || !strings.Contains(err.Error(), "stopped") {
		t.Fatalf("Gate task waiting when serving stopped: %v, want an error saying the harness stopped", err)
	}
	if n := h.Ran("held"); n != 1 {
		t.Fatalf("Ran(held) = %d, want 1", n)
	}
}
