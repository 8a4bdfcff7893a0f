package worker

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nuid"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/task"
)

// ErrInvalidConfig is matched by errors for Config values out of range.
var ErrInvalidConfig = errors.New("worker: invalid config")

// Config configures a [Worker]. Every zero field means its documented default.
type Config struct {
	// Prefix of the pool's subjects; default broker.DefaultPrefix.
	Prefix string
	// Pool to serve; default broker.DefaultPool.
	Pool string
	// ID names the worker in start requests, results and logs, and its
	// interrupt inbox: a name as task.ValidateName has it, 1 to
	// task.MaxNameLen letters, digits, '-' and '_'. Default: the host name
	// (reduced to those characters), the pid and a random suffix.
	ID string
	// User names the worker in the records it writes for named jobs (see
	// broker/wire's job flow): a name like ID's. A server can let each user
	// write only the records under its own name (docs/security.conf), so it
	// should be the NATS user the worker connects as; workers that share it
	// decide among themselves by compare-and-set. Default: ID.
	User string
	// Concurrency is how many chunks run at once across all kinds; default
	// GOMAXPROCS. The items of one chunk run one after another.
	Concurrency int
	// Kinds to serve, a subset of the registry's; default all of them.
	Kinds []string
	// PoolConfig provisions the stream and consumers if they do not exist,
	// and sets the grace period for producers that do not answer. An
	// existing consumer keeps its own AckWait, which the worker then follows.
	PoolConfig broker.PoolConfig
	// Retry says how handler errors marked task.Retryable are retried; the
	// zero value is task's default (3 calls at most, backoff from 100ms to
	// 10s); Attempts 1 retries nothing.
	Retry task.RetryPolicy
	// Logger receives the worker's logs; default slog.Default().
	Logger *slog.Logger
	// ResultInterval is how long finished items of a running chunk may wait
	// before they are sent; default 100ms.
	ResultInterval time.Duration
}

// Validate reports the first setting of c that [New] would reject for reg,
// as an error matching ErrInvalidConfig, without connecting anywhere; a
// command line checks its flags with it before it dials the server.
func (c Config) Validate(reg *task.Registry) error {
	_, _, err := c.withDefaults(reg)
	return err
}

// withDefaults validates c against reg and fills in its defaults.
func (c Config) withDefaults(reg *task.Registry) (Config, broker.Subjects, error) {
	if reg == nil {
		return c, broker.Subjects{}, fmt.Errorf("%w: nil registry", ErrInvalidConfig)
	}
	if c.Prefix == "" {
		c.Prefix = broker.DefaultPrefix
	}
	if c.Pool == "" {
		c.Pool = broker.DefaultPool
	}
	subj, err := broker.NewSubjects(c.Prefix, c.Pool)
	if err != nil {
		return c, subj, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if c.ID == "" {
		c.ID = defaultID()
	} else if err := task.ValidateName(c.ID); err != nil {
		return c, subj, fmt.Errorf("%w: id %q: %w", ErrInvalidConfig, c.ID, err)
	}
	if c.User == "" {
		c.User = c.ID
	} else if err := task.ValidateName(c.User); err != nil {
		return c, subj, fmt.Errorf("%w: user %q: %w", ErrInvalidConfig, c.User, err)
	}
	switch {
	case c.Concurrency < 0:
		return c, subj, fmt.Errorf("%w: concurrency %d below 0", ErrInvalidConfig, c.Concurrency)
	case c.Concurrency == 0:
		c.Concurrency = runtime.GOMAXPROCS(0)
	}
	if err := c.PoolConfig.Validate(); err != nil {
		return c, subj, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	c.PoolConfig = c.PoolConfig.WithDefaults()
	switch {
	case c.ResultInterval < 0:
		return c, subj, fmt.Errorf("%w: result interval %v below 0", ErrInvalidConfig, c.ResultInterval)
	case c.ResultInterval == 0:
		c.ResultInterval = 100 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if len(c.Kinds) == 0 {
		c.Kinds = reg.Kinds()
	} else {
		c.Kinds = append([]string(nil), c.Kinds...)
	}
	if len(c.Kinds) == 0 {
		return c, subj, fmt.Errorf("%w: no kinds to serve: the registry is empty", ErrInvalidConfig)
	}
	seen := make(map[string]bool, len(c.Kinds))
	for _, k := range c.Kinds {
		if _, ok := reg.Lookup(k); !ok {
			return c, subj, fmt.Errorf("%w: no handler for kind %q", ErrInvalidConfig, k)
		}
		if seen[k] {
			return c, subj, fmt.Errorf("%w: kind %q listed twice", ErrInvalidConfig, k)
		}
		seen[k] = true
	}
	return c, subj, nil
}

// defaultID is host-pid-random, cut to a valid subject token.
func defaultID() string {
	host, _ := os.Hostname()
	var b strings.Builder
	for _, r := range host {
		if r < 128 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			b.WriteRune(r)
		}
	}
	h := b.String()
	if h == "" {
		h = "worker"
	}
	if len(h) > 32 {
		h = h[:32]
	}
	n := nuid.Next()
	return h + "-" + strconv.Itoa(os.Getpid()) + "-" + n[len(n)-6:]
}
