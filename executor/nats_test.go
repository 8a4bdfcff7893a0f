package executor_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/broker/embedded"
	"github.com/jetpool/jetpool/executor"
	"github.com/jetpool/jetpool/executor/executortest"
	"github.com/jetpool/jetpool/task"
	"github.com/jetpool/jetpool/worker"
)

// testPool is the pool settings of the NATS tests: a short lease and grace so
// fault paths finish quickly.
var testPool = broker.PoolConfig{AckWait: 2 * time.Second, Grace: 2 * time.Second}

// startBroker starts an embedded server for one test and connects to it.
func startBroker(t *testing.T) (*embedded.Server, *nats.Conn) {
	t.Helper()
	srv, err := embedded.Start(embedded.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv, connect(t, srv.ClientURL())
}

func connect(t *testing.T, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// startWorker runs an in-process worker until the test ends.
func startWorker(t *testing.T, nc *nats.Conn, reg *task.Registry, cfg worker.Config) *worker.Worker {
	t.Helper()
	if cfg.PoolConfig == (broker.PoolConfig{}) {
		cfg.PoolConfig = testPool
	}
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
		case err := <-done:
			if err != nil {
				t.Errorf("worker Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("worker did not drain within 30s")
		}
	})
	return w
}

func newNATS(t *testing.T, nc *nats.Conn, opts ...executor.NATSOption) *executor.NATS {
	t.Helper()
	opts = append([]executor.NATSOption{executor.NATSPoolConfig(testPool)}, opts...)
	ex, err := executor.NewNATS(context.Background(), nc, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := ex.Shutdown(ctx, true, true); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return ex
}

func TestNATSConformance(t *testing.T) {
	executortest.Run(t, func(t *testing.T, cfg executortest.Config) executor.Executor {
		_, nc := startBroker(t)
		ex := newNATS(t, nc)
		startWorker(t, connect(t, nc.ConnectedUrl()), cfg.Registry, worker.Config{Concurrency: cfg.Workers, Retry: cfg.Retry})
		return ex
	})
}

// TestNATSConformanceAutoBatch runs the suite with Submits gathered into
// chunks: every guarantee holds per task.
func TestNATSConformanceAutoBatch(t *testing.T) {
	executortest.Run(t, func(t *testing.T, cfg executortest.Config) executor.Executor {
		_, nc := startBroker(t)
		ex := newNATS(t, nc, executor.NATSAutoBatch(64))
		startWorker(t, connect(t, nc.ConnectedUrl()), cfg.Registry, worker.Config{Concurrency: cfg.Workers, Retry: cfg.Retry})
		return ex
	})
}

// TestNATSConformanceTwoWorkers runs the suite with the executor's slots
// split over two workers (one when there is one slot), so that every rule,
// the scheduling rule among them, holds across workers.
func TestNATSConformanceTwoWorkers(t *testing.T) {
	executortest.Run(t, func(t *testing.T, cfg executortest.Config) executor.Executor {
		_, nc := startBroker(t)
		ex := newNATS(t, nc)
		for _, slots := range []int{cfg.Workers / 2, cfg.Workers - cfg.Workers/2} {
			if slots > 0 {
				startWorker(t, connect(t, nc.ConnectedUrl()), cfg.Registry, worker.Config{Concurrency: slots, Retry: cfg.Retry})
			}
		}
		return ex
	})
}

func jetstreamOf(t *testing.T, nc *nats.Conn) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func streamMsgs(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	return streamState(t, js, "JETPOOL_DEFAULT").Msgs
}

// streamState reads the state of stream, as opts ask for it.
func streamState(t *testing.T, js jetstream.JetStream, stream string, opts ...jetstream.StreamInfoOpt) jetstream.StreamState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return info.State
}
