package executor_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/executor"
	"github.com/jetpool/jetpool/task"
	"github.com/jetpool/jetpool/worker"
)

// The access-control tests run an embedded server with docs/security.conf:
// producers, workers and operators of the pool "batch" hold only the subjects
// they need.

func secureServer(t *testing.T) *broker.Embedded {
	t.Helper()
	srv, err := broker.StartEmbedded(broker.EmbeddedConfig{ConfigFile: "../docs/security.conf"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

// connectAs connects as user and collects the server's asynchronous errors
// (permission violations) on the returned channel.
func connectAs(t *testing.T, srv *broker.Embedded, user, password string) (*nats.Conn, <-chan error) {
	t.Helper()
	errs := make(chan error, 16)
	nc, err := broker.Connect(broker.ConnectOptions{URL: srv.ClientURL(), User: user, Password: password})
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

func TestSecurityPoolRunsWithLeastPrivilege(t *testing.T) {
	srv := secureServer(t)
	pnc, perrs := connectAs(t, srv, "producer", "producer-secret")
	wnc, werrs := connectAs(t, srv, "worker", "worker-secret")
	reg := task.NewRegistry()
	task.Handle(reg, Square, func(ctx context.Context, n int) (int, error) { return n * n, nil })
	startWorker(t, wnc, reg, worker.Config{Pool: "batch", Concurrency: 2})
	ex := newNATS(t, pnc, executor.WithPool("batch"))
	i := 0
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for v, err := range executor.Map(ctx, ex, Square, slices.Values([]int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}), executor.Chunksize(3)) {
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
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := js.CreateConsumer(ctx, "JETPOOL_OTHER", jetstream.ConsumerConfig{Durable: "x"}); err == nil {
		t.Fatal("a worker created a consumer on another pool's stream")
	}
}

func TestSecurityProducerCannotConsumeTasks(t *testing.T) {
	srv := secureServer(t)
	nc, errs := connectAs(t, srv, "producer", "producer-secret")
	ex := newNATS(t, nc, executor.WithPool("batch")) // creates the stream
	_ = ex
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
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
