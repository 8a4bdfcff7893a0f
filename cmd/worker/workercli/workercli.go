// Package workercli is the worker command line, cmd/worker: a worker process
// serving the built-in tasks to a pool.
package workercli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/builtin"
	"github.com/jetpool/jetpool/internal/version"
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

// Environment variables of the command besides worker.ConfigFromEnv's and
// the NATS_* connection settings.
const (
	envMetrics   = "JETPOOL_METRICS"
	envLogFormat = "JETPOOL_LOG_FORMAT"
	envLogLevel  = "JETPOOL_LOG_LEVEL"
	envRoot      = "JETPOOL_ROOT"
)

// Main runs the worker command and returns its exit code: 0 after a clean
// drain, 2 for bad flags or environment, 1 for anything else.
func Main(args []string, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	return run(ctx, args, stderr)
}

// run is Main until ctx ends, which stands for the signal.
func run(ctx context.Context, args []string, stderr io.Writer) int {
	cfg, err := worker.ConfigFromEnv()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	var conn broker.ConnectOptions
	var kinds, logFormat, logLevel, root, metricsAddr string
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	// A mistake gets its message and a hint, not the whole help.
	fs.Usage = func() {}
	conn.RegisterFlags(fs)
	fs.StringVar(&cfg.Pool, "pool", cfg.Pool, "pool name (env JETPOOL_POOL; default \"default\")")
	fs.StringVar(&cfg.Prefix, "prefix", cfg.Prefix, "subject prefix (env JETPOOL_PREFIX; default \"jetpool\")")
	fs.StringVar(&cfg.ID, "id", cfg.ID, "worker id (env JETPOOL_WORKER_ID; default host-pid-random)")
	intFlag(fs, &cfg.Concurrency, "concurrency", "chunks run at once (env JETPOOL_CONCURRENCY; default GOMAXPROCS)")
	fs.StringVar(&kinds, "kinds", strings.Join(cfg.Kinds, ","), "comma-separated kinds to serve (env JETPOOL_KINDS; default all)")
	durationFlag(fs, &cfg.PoolConfig.AckWait, "ack-wait", "lease of a running chunk (env JETPOOL_ACK_WAIT; default 30s)")
	durationFlag(fs, &cfg.PoolConfig.Grace, "grace", "how long an unanswering producer is retried (env JETPOOL_GRACE; default 30s)")
	intFlag(fs, &cfg.PoolConfig.Replicas, "replicas", "stream replicas, 1 or 3 (env JETPOOL_REPLICAS; default 1)")
	fs.StringVar(&root, "root", os.Getenv(envRoot), "download and copy only inside this directory (env JETPOOL_ROOT)")
	fs.StringVar(&metricsAddr, "metrics", os.Getenv(envMetrics), "serve /metrics, /healthz and /readyz over HTTP on this host:port, e.g. :9090 (env JETPOOL_METRICS; default off)")
	fs.StringVar(&logFormat, "log-format", envOr(envLogFormat, "text"), "log format: text or json (env JETPOOL_LOG_FORMAT)")
	fs.StringVar(&logLevel, "log-level", envOr(envLogLevel, "info"), "log level: debug, info, warn, error (env JETPOOL_LOG_LEVEL)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, strings.TrimSpace(usage))
			fmt.Fprintln(stderr, "\nFlags:")
			fs.PrintDefaults()
			return 0
		}
		fmt.Fprintln(stderr, "Run 'worker --help' for usage.")
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "worker: unexpected argument %q\nRun 'worker --help' for usage.\n", fs.Arg(0))
		return 2
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	src := func(flag, env string) string {
		if set[flag] {
			return "--" + flag
		}
		return env
	}
	usageErr := func(err error) int {
		fmt.Fprintln(stderr, "worker:", err)
		return 2
	}

	level, ok := parseLevel(logLevel)
	if !ok {
		return usageErr(fmt.Errorf("%s %q: want debug, info, warn or error", src("log-level", envLogLevel), logLevel))
	}
	if logFormat != "text" && logFormat != "json" {
		return usageErr(fmt.Errorf("%s %q: want text or json", src("log-format", envLogFormat), logFormat))
	}
	logger := newLogger(stderr, logFormat, level)
	if err := broker.CheckServers(conn.URL); err != nil {
		name := "NATS_URL"
		if set["server"] || set["s"] {
			name = "--server"
		}
		return usageErr(fmt.Errorf("%s: %w", name, err))
	}
	if metricsAddr != "" {
		if err := checkAddr(metricsAddr); err != nil {
			return usageErr(fmt.Errorf("%s %q: %w", src("metrics", envMetrics), metricsAddr, err))
		}
	}
	cfg.Logger = logger
	cfg.Kinds = nil
	for _, k := range strings.Split(kinds, ",") {
		if k = strings.TrimSpace(k); k != "" {
			cfg.Kinds = append(cfg.Kinds, k)
		}
	}
	reg := task.NewRegistry()
	builtin.Register(reg, builtin.Config{AllowedRoot: root})
	if err := cfg.Validate(reg); err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}

	// Listening before dialling the server makes a taken port fail at once.
	var ln net.Listener
	if metricsAddr != "" {
		if ln, err = net.Listen("tcp", metricsAddr); err != nil {
			return usageErr(fmt.Errorf("%s %q: %w", src("metrics", envMetrics), metricsAddr, err))
		}
		defer ln.Close()
	}

	conn.Name = "jetpool-worker"
	conn.Logger = logger
	nc, err := broker.Connect(conn)
	if err != nil {
		fmt.Fprintln(stderr, "worker:", err)
		if errors.Is(err, broker.ErrInvalidConnect) {
			return 2
		}
		return 1
	}
	defer nc.Close()
	w, err := worker.New(nc, reg, cfg)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if ln != nil {
		obs, err := serveObservability(ln, w, logger)
		if err != nil {
			fmt.Fprintln(stderr, "worker:", err)
			return 1
		}
		defer obs.shutdown()
	}
	logger.Info("worker starting", "id", w.ID(), "version", version.Version, "server", nc.ConnectedUrlRedacted(),
		"auth", authMethod(conn), "pool", cfg.Pool, "kinds", w.Kinds(), "metrics", metricsAddr)
	if err := w.Run(ctx); err != nil {
		logger.Error("worker stopped", "err", err)
		return 1
	}
	logger.Info("worker drained and stopped", "id", w.ID())
	return 0
}

// intFlag defines a flag for a non-negative integer, initially *p.
func intFlag(fs *flag.FlagSet, p *int, name, help string) {
	fs.Func(name, help, func(s string) error {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return errors.New("want a non-negative integer")
		}
		*p = n
		return nil
	})
}

// durationFlag defines a flag for a duration, initially *p.
func durationFlag(fs *flag.FlagSet, p *time.Duration, name, help string) {
	fs.Func(name, help, func(s string) error {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return errors.New("want a duration such as 30s or 1m30s")
		}
		*p = d
		return nil
	})
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// authMethod names how the worker authenticates, never with what.
func authMethod(o broker.ConnectOptions) string {
	switch {
	case o.Creds != "":
		return "creds"
	case o.NKey != "":
		return "nkey"
	case o.User != "":
		return "user " + o.User
	case o.Token != "":
		return "token"
	}
	return "none"
}
