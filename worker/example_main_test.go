package worker_test

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetpool/jetpool/broker/embedded"
	"github.com/jetpool/jetpool/executor"
	"github.com/jetpool/jetpool/task"
	"github.com/jetpool/jetpool/worker"
)

// Resize is a task kind of the program's own, declared in a package its
// producers import too.
var Resize = task.New[int, int]("resize")

// The main function of a worker program with a kind of its own and a flag
// of its own: the handler is built once the flags are parsed. Everything
// else, from the connection flags to /metrics and the drain on SIGTERM, is
// worker.Main's.
func ExampleMain() {
	reg := task.NewRegistry()
	var scale int
	os.Exit(worker.Main(reg,
		worker.MainName("resizer"),
		worker.MainFlags(func(fs *flag.FlagSet) {
			fs.IntVar(&scale, "scale", 2, "the `factor` to resize by")
		}),
		worker.MainSetup(func(reg *task.Registry, log *slog.Logger) error {
			if scale < 1 {
				return fmt.Errorf("--scale %d: want 1 or more", scale)
			}
			task.Handle(reg, Resize, func(_ context.Context, n int) (int, error) { return n * scale, nil })
			log.Info("resizing", "scale", scale)
			return nil
		}),
	))
}

// RunMain runs a worker program in-process, as a test does: the end of its
// context stands for SIGTERM, and it returns the exit code.
func ExampleRunMain() {
	srv, err := embedded.Start(embedded.Config{})
	if err != nil {
		panic(err)
	}
	defer srv.Shutdown()

	reg := task.NewRegistry()
	task.Handle(reg, Resize, func(_ context.Context, n int) (int, error) { return n * 3, nil })
	ctx, stop := context.WithCancel(context.Background())
	exit := make(chan int, 1)
	var logs strings.Builder
	go func() {
		exit <- worker.RunMain(ctx, []string{"--server", srv.ClientURL(), "--log-level", "error"}, &logs, reg, worker.MainName("resizer"))
	}()

	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		panic(err)
	}
	defer nc.Close()
	wait, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ex, err := executor.NewNATS(wait, nc, executor.NATSLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		panic(err)
	}
	f, err := executor.Submit(wait, ex, Resize, 14)
	if err != nil {
		panic(err)
	}
	fmt.Println(f.Result(wait))
	ex.Shutdown(wait, true, false)

	stop()
	fmt.Println("exit code:", <-exit)
	fmt.Printf("logs: %q\n", logs.String())

	// A bad flag is refused before anything connects.
	logs.Reset()
	code := worker.RunMain(context.Background(), []string{"--concurrency", "many"}, &logs, reg, worker.MainName("resizer"))
	fmt.Println("exit code:", code)
	fmt.Print(logs.String())
	// Output:
	// 42 <nil>
	// exit code: 0
	// logs: ""
	// exit code: 2
	// invalid value "many" for flag -concurrency: want a non-negative integer
	// Run 'resizer --help' for usage.
}
