// Package workercli is the worker command line, cmd/worker: a worker process
// serving the built-in tasks to a pool.
package workercli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/builtin"
	"github.com/jetpool/jetpool/task"
	"github.com/jetpool/jetpool/worker"
)

const usage = `
Usage: worker [flags]

Serves the built-in tasks (square, say-hi, sleep, download, copy) to a jetpool
pool until SIGTERM or SIGINT, then drains: it stops pulling, finishes what it
runs and exits. Every flag has an environment variable; flags win.

Examples:
  worker --server nats://127.0.0.1:4222 --concurrency 16
  NATS_URL=nats://n1:4222,nats://n2:4222 JETPOOL_POOL=batch worker --kinds square,sleep
  worker --creds /etc/jetpool/worker.creds --tlsca /etc/jetpool/ca.pem
`

// Main runs the worker command and returns its exit code: 0 after a clean
// drain, 2 for bad flags or environment, 1 for anything else.
func Main(args []string, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	return run(ctx, args, stderr)
}

func run(ctx context.Context, args []string, stderr io.Writer) int {
	cfg, err := worker.ConfigFromEnv()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	conn := broker.OptionsFromEnv()
	var kinds, logFormat, logLevel, root string
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, strings.TrimSpace(usage))
		fmt.Fprintln(stderr, "\nFlags:")
		fs.PrintDefaults()
	}
	fs.StringVar(&conn.URL, "server", conn.URL, "NATS server URLs, comma separated (env NATS_URL)")
	fs.StringVar(&conn.URL, "s", conn.URL, "shorthand for --server")
	fs.StringVar(&conn.Creds, "creds", conn.Creds, "user credentials file (env NATS_CREDS)")
	fs.StringVar(&conn.NKey, "nkey", conn.NKey, "nkey seed file (env NATS_NKEY)")
	fs.StringVar(&conn.User, "user", conn.User, "user name (env NATS_USER)")
	fs.StringVar(&conn.Password, "password", conn.Password, "password (env NATS_PASSWORD)")
	fs.StringVar(&conn.Token, "token", conn.Token, "authentication token (env NATS_TOKEN)")
	fs.StringVar(&conn.TLSCA, "tlsca", conn.TLSCA, "CA file to verify the server (env NATS_CA)")
	fs.StringVar(&conn.TLSCert, "tlscert", conn.TLSCert, "client certificate file (env NATS_CERT)")
	fs.StringVar(&conn.TLSKey, "tlskey", conn.TLSKey, "client private key file (env NATS_KEY)")
	fs.StringVar(&cfg.Pool, "pool", cfg.Pool, "pool name (env JETPOOL_POOL; default \"default\")")
	fs.StringVar(&cfg.Prefix, "prefix", cfg.Prefix, "subject prefix (env JETPOOL_PREFIX; default \"jetpool\")")
	fs.StringVar(&cfg.ID, "id", cfg.ID, "worker id (env JETPOOL_WORKER_ID; default host-pid-random)")
	fs.IntVar(&cfg.Concurrency, "concurrency", cfg.Concurrency, "chunks run at once (env JETPOOL_CONCURRENCY; default GOMAXPROCS)")
	fs.StringVar(&kinds, "kinds", strings.Join(cfg.Kinds, ","), "comma-separated kinds to serve (env JETPOOL_KINDS; default all)")
	fs.DurationVar(&cfg.PoolConfig.AckWait, "ack-wait", cfg.PoolConfig.AckWait, "lease of a running chunk (env JETPOOL_ACK_WAIT; default 30s)")
	fs.DurationVar(&cfg.PoolConfig.Grace, "grace", cfg.PoolConfig.Grace, "how long an unanswering producer is retried (env JETPOOL_GRACE; default 30s)")
	fs.IntVar(&cfg.PoolConfig.Replicas, "replicas", cfg.PoolConfig.Replicas, "stream replicas, 1 or 3 (env JETPOOL_REPLICAS; default 1)")
	fs.StringVar(&root, "root", os.Getenv("JETPOOL_ROOT"), "download and copy only inside this directory (env JETPOOL_ROOT)")
	fs.StringVar(&logFormat, "log-format", envOr("JETPOOL_LOG_FORMAT", "text"), "log format: text or json (env JETPOOL_LOG_FORMAT)")
	fs.StringVar(&logLevel, "log-level", envOr("JETPOOL_LOG_LEVEL", "info"), "log level: debug, info, warn, error (env JETPOOL_LOG_LEVEL)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "worker: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	logger, err := newLogger(stderr, logFormat, logLevel)
	if err != nil {
		fmt.Fprintln(stderr, "worker:", err)
		return 2
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
		fmt.Fprintln(stderr, "worker:", err)
		return 2
	}
	logger.Info("worker starting", "id", w.ID(), "server", nc.ConnectedUrlRedacted(), "kinds", w.Kinds())
	if err := w.Run(ctx); err != nil {
		logger.Error("worker stopped", "err", err)
		return 1
	}
	logger.Info("worker drained and stopped", "id", w.ID())
	return 0
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
