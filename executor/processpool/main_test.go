package processpool_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/executor/executortest"
	"github.com/jetpool/jetpool/task"
	"github.com/jetpool/jetpool/worker"
)

func TestMain(m *testing.M) {
	// The tests start this test binary as worker processes; the guard test
	// as a program that forgets worker.ServeIfChild, and so also as that
	// program's workers.
	if starts := os.Getenv(envTestForgetful); starts != "" {
		os.Exit(runForgetfulMain(starts))
	}
	worker.ServeIfChild(childRegistry())
	goleak.VerifyTestMain(m)
}

// Tasks run by the worker processes of the tests.
var (
	SlowSquare = task.New[int, int]("slow-square")
	Nap        = task.New[int, int]("nap")
	// Procs returns the worker process's GOMAXPROCS.
	Procs = task.New[int, int]("procs")
	// Say writes "out: s" to the worker process's standard output and
	// "err: s" to its standard error, and returns s.
	Say = task.New[string, string]("say")
	// Digest returns the hex SHA-256 of its input; Fill returns n bytes
	// of fillByte(i) at each i.
	Digest = task.New[[]byte, string]("digest")
	Fill   = task.New[int, []byte]("fill")
)

func digestOf(b []byte) string {
	d := sha256.Sum256(b)
	return hex.EncodeToString(d[:])
}

func fill(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>12)
	}
	return b
}

func childRegistry() *task.Registry {
	reg := task.NewRegistry()
	if worker.IsChild() && os.Getenv(envTestConformance) != "" {
		// The conformance suite's harness is served by the test process on
		// the pool's broker.
		executortest.RegisterRemote(reg, connectOrDie(os.Getenv("NATS_URL")))
	}
	ranLog := openRanLog()
	task.Handle(reg, SlowSquare, func(ctx context.Context, n int) (int, error) {
		if ranLog != nil {
			fmt.Fprintln(ranLog, n)
		}
		time.Sleep(200 * time.Microsecond)
		return n * n, nil
	})
	task.Handle(reg, Nap, func(ctx context.Context, ms int) (int, error) {
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
			return ms, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	})
	task.Handle(reg, Digest, func(_ context.Context, b []byte) (string, error) { return digestOf(b), nil })
	task.Handle(reg, Fill, func(_ context.Context, n int) ([]byte, error) { return fill(n), nil })
	task.Handle(reg, Procs, func(context.Context, int) (int, error) { return runtime.GOMAXPROCS(0), nil })
	task.Handle(reg, Say, func(_ context.Context, s string) (string, error) {
		if _, err := fmt.Fprintln(os.Stdout, "out: "+s); err != nil {
			return "", err
		}
		if _, err := fmt.Fprintln(os.Stderr, "err: "+s); err != nil {
			return "", err
		}
		return s, nil
	})
	return reg
}

const (
	envRanLog        = "JETPOOL_TEST_RAN_LOG"
	envTestForgetful = "JETPOOL_TEST_FORGETFUL"
	// envTestConformance makes worker processes serve the conformance
	// suite's tasks.
	envTestConformance = "JETPOOL_TEST_CONFORMANCE"
)

// openRanLog opens the file where worker processes of a fault test record
// every execution, one line per run, so duplicates can be counted.
func openRanLog() *os.File {
	path := os.Getenv(envRanLog)
	if path == "" || !worker.IsChild() {
		return nil
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return nil
	}
	return f
}

func connectOrDie(url string) *nats.Conn {
	nc, err := broker.Connect(broker.ConnectOptions{URL: url})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	return nc
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
