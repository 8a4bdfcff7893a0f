package worker

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/internal/child"
	"github.com/jetpool/jetpool/task"
)

// Environment variables a worker is configured from (see [ConfigFromEnv]).
// Connection settings use the NATS ecosystem's own (NATS_URL, NATS_CREDS, ...).
const (
	EnvChild       = child.EnvChild // set to 1 in processes started by a process pool
	EnvID          = child.EnvID
	EnvPool        = child.EnvPool
	EnvPrefix      = child.EnvPrefix
	EnvConcurrency = child.EnvConcurrency
	EnvKinds       = child.EnvKinds
	EnvAckWait     = child.EnvAckWait
	EnvGrace       = child.EnvGrace
	EnvReplicas    = child.EnvReplicas
	// Config.Retry: attempts in all, the first backoff and its cap.
	EnvRetryAttempts   = child.EnvRetryAttempts
	EnvRetryBackoff    = child.EnvRetryBackoff
	EnvRetryMaxBackoff = child.EnvRetryMaxBackoff
)

// ConfigFromEnv reads a Config from the JETPOOL_* environment variables;
// unset ones keep their zero value (and so their default). A malformed value
// is an error naming the variable.
func ConfigFromEnv() (Config, error) {
	var c Config
	c.ID = os.Getenv(EnvID)
	c.Pool = os.Getenv(EnvPool)
	c.Prefix = os.Getenv(EnvPrefix)
	var err error
	if c.Concurrency, err = envInt(EnvConcurrency); err != nil {
		return c, err
	}
	if c.PoolConfig.Replicas, err = envInt(EnvReplicas); err != nil {
		return c, err
	}
	if c.PoolConfig.AckWait, err = envDuration(EnvAckWait); err != nil {
		return c, err
	}
	if c.PoolConfig.Grace, err = envDuration(EnvGrace); err != nil {
		return c, err
	}
	if c.Retry.Attempts, err = envInt(EnvRetryAttempts); err != nil {
		return c, err
	}
	if c.Retry.Backoff, err = envDuration(EnvRetryBackoff); err != nil {
		return c, err
	}
	if c.Retry.MaxBackoff, err = envDuration(EnvRetryMaxBackoff); err != nil {
		return c, err
	}
	if v := os.Getenv(EnvKinds); v != "" {
		c.Kinds = splitList(v)
	}
	return c, nil
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func envInt(key string) (int, error) {
	v := os.Getenv(key)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("worker: %s=%q: want a non-negative integer", key, v)
	}
	return n, nil
}

func envDuration(key string) (time.Duration, error) {
	v := os.Getenv(key)
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("worker: %s=%q: want a duration such as 30s", key, v)
	}
	return d, nil
}

// IsChild reports whether this process was started by a process pool.
func IsChild() bool { return child.Is() }

// ServeIfChild makes a program its own process pool's worker: called first
// thing in main, it does nothing in a normal run, and in a process started
// by processpool.New (executor/processpool) it serves reg until SIGTERM or
// the loss of the broker, then exits the process.
func ServeIfChild(reg *task.Registry) {
	if !IsChild() {
		return
	}
	if err := ServeChild(reg); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// ServeChild runs a worker configured from the environment until SIGTERM or
// SIGINT (then it drains) or until its connection to the broker is closed.
func ServeChild(reg *task.Registry) error {
	cfg, err := ConfigFromEnv()
	if err != nil {
		return err
	}
	// A pool's workers speak up only about trouble: their parent's output is
	// the user's.
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	opts := broker.OptionsFromEnv()
	opts.Name = "jetpool-worker"
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	closed := make(chan struct{})
	nc, err := broker.Connect(opts)
	if err != nil {
		return err
	}
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	defer nc.Close()
	w, err := New(nc, reg, cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	return w.Run(ctx)
}
