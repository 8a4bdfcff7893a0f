package processpool

import (
	"fmt"
	"os"

	"github.com/jetpool/jetpool/executor"
	"github.com/jetpool/jetpool/task"
)

// An Option configures [New]. This package's options are Options, and so is
// every executor.PoolOption: executor.NATSPoolConfig, NATSName, NATSLogger
// and NATSAutoBatch configure the NATS executor the pool runs (and
// NATSPoolConfig its workers' lease and grace period too).
type Option interface {
	Apply(executor.NATSConfigHolder) error
}

// option is an Option of this package. It configures New's configuration
// alone: applied to any other holder it fails.
type option func(*config) error

// Apply applies o to h, which must be New's configuration; for any other it
// returns an error matching executor.ErrInvalidOption.
func (o option) Apply(h executor.NATSConfigHolder) error {
	c, ok := h.(*config)
	if !ok {
		return fmt.Errorf("%w: processpool: option applied to a %T, not to New's configuration", executor.ErrInvalidOption, h)
	}
	return o(c)
}

type config struct {
	nats        executor.NATSConfig
	command     []string
	concurrency int
	storeDir    string
	retry       task.RetryPolicy
	stdout      *os.File
	stderr      *os.File
}

// NATSConfig returns the configuration of the pool's NATS executor, for the
// executor.PoolOptions among New's options to set.
func (c *config) NATSConfig() *executor.NATSConfig { return &c.nats }

// Command runs the workers as path with args instead of re-executing this
// program; the command must serve a worker configured from the environment,
// as cmd/worker and any program calling worker.ServeIfChild do.
func Command(path string, args ...string) Option {
	return option(func(c *config) error {
		if path == "" {
			return fmt.Errorf("%w: processpool: empty command", executor.ErrInvalidOption)
		}
		c.command = append([]string{path}, args...)
		return nil
	})
}

// Concurrency sets how many tasks each worker process runs at once; the
// default is 1, like a Python process pool.
func Concurrency(n int) Option {
	return option(func(c *config) error {
		if n < 1 {
			return fmt.Errorf("%w: processpool.Concurrency(%d) must be at least 1", executor.ErrInvalidOption, n)
		}
		c.concurrency = n
		return nil
	})
}

// StoreDir keeps the embedded broker's JetStream store in dir instead of a
// temporary directory removed at Shutdown.
func StoreDir(dir string) Option {
	return option(func(c *config) error { c.storeDir = dir; return nil })
}

// Retry has the worker processes retry handler errors marked
// [task.Retryable] as p says; the default is the zero [task.RetryPolicy]:
// at most 3 calls, with backoff. Negative
// settings are an error matching executor.ErrInvalidOption.
func Retry(p task.RetryPolicy) Option {
	return option(func(c *config) error {
		if p.Attempts < 0 || p.Backoff < 0 || p.MaxBackoff < 0 {
			return fmt.Errorf("%w: processpool.Retry(%+v) has a negative setting", executor.ErrInvalidOption, p)
		}
		c.retry = p
		return nil
	})
}

// Stdout sends the worker processes' standard output to f; the default is
// this process's (os.Stdout when New is called), and nil discards it.
func Stdout(f *os.File) Option {
	return option(func(c *config) error { c.stdout = f; return nil })
}

// Stderr sends the worker processes' standard error to f; the default is
// this process's (os.Stderr when New is called), and nil discards it.
func Stderr(f *os.File) Option {
	return option(func(c *config) error { c.stderr = f; return nil })
}
