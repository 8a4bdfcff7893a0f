package executor

import (
	"fmt"
	"log/slog"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/task"
)

// NATSOption configures [NewNATS].
type NATSOption func(*natsConfig) error

type natsConfig struct {
	prefix, pool string
	name         string // "": none
	pc           broker.PoolConfig
	log          *slog.Logger
	autoBatch    int // 0: off
}

// WithPool names the pool to submit to; the default is broker.DefaultPool.
func WithPool(name string) NATSOption {
	return func(c *natsConfig) error { c.pool = name; return nil }
}

// WithPrefix sets the subject prefix; the default is broker.DefaultPrefix.
func WithPrefix(prefix string) NATSOption {
	return func(c *natsConfig) error { c.prefix = prefix; return nil }
}

// WithPoolConfig sets the pool's stream settings, lease and grace period;
// workers of the pool should use the same.
func WithPoolConfig(pc broker.PoolConfig) NATSOption {
	return func(c *natsConfig) error {
		if err := pc.Validate(); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidOption, err)
		}
		c.pc = pc
		return nil
	}
}

// WithName makes the executor's ID name.<random> instead of <random>, and so
// its control subjects <prefix>.<pool>.ctl.<name>.<random>.*: a server can
// then let each producer user subscribe only to its own control subjects
// (docs/security.conf), so that no other producer of the pool can read or
// answer its workers. name is a token like a pool name: letters, digits,
// '-' and '_'.
func WithName(name string) NATSOption {
	return func(c *natsConfig) error {
		if err := task.ValidateKind(name); err != nil {
			return fmt.Errorf("%w: name: %v", ErrInvalidOption, err)
		}
		c.name = name
		return nil
	}
}

// WithLogger sets where the executor logs; the default is slog.Default().
func WithLogger(l *slog.Logger) NATSOption {
	return func(c *natsConfig) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", ErrInvalidOption)
		}
		c.log = l
		return nil
	}
}
