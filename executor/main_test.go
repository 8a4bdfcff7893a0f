package executor_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/broker/embedded"
	"github.com/jetpool/jetpool/executor"
	"github.com/jetpool/jetpool/executor/executortest"
	"github.com/jetpool/jetpool/task"
	"github.com/jetpool/jetpool/worker"
)

func TestMain(m *testing.M) {
	// The fault tests start this test binary as worker processes and as a
	// producer process to kill; the guard test as a program that forgets
	// worker.ServeIfChild, and so also as that program's workers.
	if starts := os.Getenv(envTestForgetful); starts != "" {
		os.Exit(runForgetfulMain(starts))
	}
	worker.ServeIfChild(childRegistry())
	if url := os.Getenv(envTestProducer); url != "" {
		os.Exit(runDoomedProducer(url))
	}
	if spec := os.Getenv(envTestBroker); spec != "" {
		os.Exit(runBroker(spec))
	}
	goleak.VerifyTestMain(m)
}

// Tasks run by the worker processes of the fault tests.
var (
	SlowSquare = task.New[int, int]("slow-square")
	Nap        = task.New[int, int]("nap")
	// Procs returns the worker process's GOMAXPROCS.
	Procs = task.New[int, int]("procs")
	// PauseSquare squares after a pause of 2ms, long enough for a chunk of
	// 50 to send several result messages.
	PauseSquare = task.New[int, int]("pause-square")
)

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
	task.Handle(reg, Procs, func(context.Context, int) (int, error) { return runtime.GOMAXPROCS(0), nil })
	task.Handle(reg, PauseSquare, func(ctx context.Context, n int) (int, error) {
		time.Sleep(2 * time.Millisecond)
		return n * n, nil
	})
	return reg
}

const (
	envTestBroker    = "JETPOOL_TEST_BROKER" // port:store dir
	envTestProducer  = "JETPOOL_TEST_PRODUCER"
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

// runDoomedProducer submits naps to the broker at url, says so on stdout and
// waits to be killed.
func runDoomedProducer(url string) int {
	nc := connectOrDie(url)
	ex, err := executor.NewNATS(context.Background(), nc, executor.NATSPoolConfig(faultPoolConfig))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for range doomedTasks {
		if _, err := executor.Submit(context.Background(), ex, Nap, 100); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	fmt.Println("submitted")
	select {}
}

// runBroker serves an embedded broker on the port and store directory of
// spec ("port:dir"), says so on stdout and waits to be killed.
func runBroker(spec string) int {
	port, dir, _ := strings.Cut(spec, ":")
	n, err := strconv.Atoi(port)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if _, err := embedded.Start(embedded.Config{Port: n, StoreDir: dir}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("ready")
	select {}
}

func connectOrDie(url string) *nats.Conn {
	nc, err := broker.Connect(broker.ConnectOptions{URL: url})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	return nc
}
