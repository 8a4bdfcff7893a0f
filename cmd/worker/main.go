// Command worker serves jetpool's built-in tasks to a pool: see 'worker --help'.
// It is [worker.Main] over the tasks of package builtin, with --root for
// download and copy.
package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"os"

	"github.com/jetpool/jetpool/builtin"
	"github.com/jetpool/jetpool/task"
	"github.com/jetpool/jetpool/worker"
)

const usage = `
Usage: worker [flags]

Serves the built-in tasks (square, say-hi, sleep, download, copy) to a jetpool
pool until SIGTERM or SIGINT, then drains: it stops pulling, finishes what it
runs and exits. Every flag has an environment variable; flags win.

With --metrics ADDR it serves over HTTP on ADDR:
  /metrics  Prometheus metrics
  /healthz  200 while the process runs
  /readyz   200 while connected and serving; 503 while starting, draining or
            disconnected

Examples:
  worker --server nats://127.0.0.1:4222 --concurrency 16 --metrics :9090
  NATS_URL=nats://n1:4222,nats://n2:4222 JETPOOL_POOL=batch worker --kinds square,sleep
  worker --creds /etc/jetpool/worker.creds --tlsca /etc/jetpool/ca.pem --log-format json
`

// envRoot is the variable of --root.
const envRoot = "JETPOOL_ROOT"

func main() {
	os.Exit(worker.Main(task.NewRegistry(), options()...))
}

// run is main with its inputs given, for the tests.
func run(ctx context.Context, args []string, stderr io.Writer) int {
	return worker.RunMain(ctx, args, stderr, task.NewRegistry(), options()...)
}

// options make a worker program of the built-in tasks, whose download and
// copy stay inside --root.
func options() []worker.MainOption {
	var root string
	return []worker.MainOption{
		worker.MainName("worker"),
		worker.MainUsage(usage),
		worker.MainFlags(func(fs *flag.FlagSet) {
			fs.StringVar(&root, "root", os.Getenv(envRoot), "download and copy only inside this directory (env JETPOOL_ROOT)")
		}),
		worker.MainSetup(func(reg *task.Registry, _ *slog.Logger) error {
			builtin.Register(reg, builtin.Config{AllowedRoot: root})
			return nil
		}),
	}
}
