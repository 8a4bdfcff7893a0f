package executor_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/broker/embedded"
	"github.com/jetpool/jetpool/executor"
	"github.com/jetpool/jetpool/task"
)

func TestMain(m *testing.M) {
	// The fault tests start this test binary as a producer process and as
	// a broker process to kill.
	if url := os.Getenv(envTestProducer); url != "" {
		os.Exit(runDoomedProducer(url))
	}
	if spec := os.Getenv(envTestBroker); spec != "" {
		os.Exit(runBroker(spec))
	}
	if spec := os.Getenv(envTestJobProducer); spec != "" {
		os.Exit(runJobProducer(spec))
	}
	if url := os.Getenv(envTestValuesWorker); url != "" {
		os.Exit(runValuesWorker(url))
	}
	if url := os.Getenv(envTestValuesProducer); url != "" {
		os.Exit(runValuesProducer(url))
	}
	goleak.VerifyTestMain(m)
}

// Tasks run by the workers of the fault tests.
var (
	SlowSquare = task.New[int, int]("slow-square")
	Nap        = task.New[int, int]("nap")
	// PauseSquare squares after a pause of 2ms, long enough for a chunk of
	// 50 to send several result messages.
	PauseSquare = task.New[int, int]("pause-square")
)

func childRegistry() *task.Registry {
	reg := task.NewRegistry()
	task.Handle(reg, SlowSquare, func(ctx context.Context, n int) (int, error) {
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
	task.Handle(reg, PauseSquare, func(ctx context.Context, n int) (int, error) {
		time.Sleep(2 * time.Millisecond)
		return n * n, nil
	})
	return reg
}

const (
	envTestBroker   = "JETPOOL_TEST_BROKER" // port:store dir
	envTestProducer = "JETPOOL_TEST_PRODUCER"
)

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
