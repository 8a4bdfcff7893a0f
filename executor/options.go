package executor

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/task"
)

// LocalOption configures [NewLocal].
type LocalOption func(*Local) error

// LocalMaxWorkers sets how many tasks a [Local] pool runs at once. The default is
// Python's: min(32, GOMAXPROCS+4).
func LocalMaxWorkers(n int) LocalOption {
	return func(l *Local) error {
		if n < 1 {
			return fmt.Errorf("%w: LocalMaxWorkers(%d) must be at least 1", ErrInvalidOption, n)
		}
		l.max = n
		return nil
	}
}

// LocalRetry sets how handlers' errors marked [task.Retryable] are retried;
// the default is the zero [task.RetryPolicy]: at most 3 calls, with backoff.
// Negative settings are an error matching [ErrInvalidOption].
func LocalRetry(p task.RetryPolicy) LocalOption {
	return func(l *Local) error {
		if p.Attempts < 0 || p.Backoff < 0 || p.MaxBackoff < 0 {
			return fmt.Errorf("%w: LocalRetry(%+v) has a negative setting", ErrInvalidOption, p)
		}
		l.retry = p
		return nil
	}
}

// MapOption configures one [Map].
type MapOption func(*mapConfig) error

// MapChunksize batches n inputs into one chunk: one message, one start, run in
// order by one worker. The default is 1. Larger chunks cut per-task overhead
// for small tasks.
func MapChunksize(n int) MapOption {
	return func(c *mapConfig) error {
		if n < 1 {
			return fmt.Errorf("%w: MapChunksize(%d) must be at least 1", ErrInvalidOption, n)
		}
		c.chunksize = n
		return nil
	}
}

// MapBuffersize bounds how many chunks are submitted and not yet consumed by the
// caller (Python 3.14's buffersize); inputs are read only as results are
// consumed, so memory stays flat however long the input is. The default is
// [DefaultBuffersize].
func MapBuffersize(n int) MapOption {
	return func(c *mapConfig) error {
		if n < 1 {
			return fmt.Errorf("%w: MapBuffersize(%d) must be at least 1", ErrInvalidOption, n)
		}
		c.buffersize = n
		return nil
	}
}

// MapTimeout bounds the whole Map, counted from the call of Map, not per item.
// It is also every task's deadline, carried to the workers: a task not
// started by then never starts, and a running handler's context ends.
func MapTimeout(d time.Duration) MapOption {
	return func(c *mapConfig) error {
		if d <= 0 {
			return fmt.Errorf("%w: MapTimeout(%v) must be positive", ErrInvalidOption, d)
		}
		c.timeout = d
		return nil
	}
}

// SubmitOption configures one [Submit].
type SubmitOption func(*submitConfig) error

// SubmitDeadline gives the task a deadline carried to its worker: a task whose
// deadline has passed is never started (its future fails with an error
// matching context.DeadlineExceeded), and a running handler's context ends at
// the deadline.
func SubmitDeadline(t time.Time) SubmitOption {
	return func(c *submitConfig) error {
		if t.IsZero() {
			return fmt.Errorf("%w: zero deadline", ErrInvalidOption)
		}
		c.deadline = t
		return nil
	}
}

// SubmitTimeout is SubmitDeadline(time.Now().Add(d)), counted from the Submit call.
func SubmitTimeout(d time.Duration) SubmitOption {
	return func(c *submitConfig) error {
		if d <= 0 {
			return fmt.Errorf("%w: timeout %v must be positive", ErrInvalidOption, d)
		}
		c.deadline = time.Now().Add(d)
		return nil
	}
}

// NATSOption configures [NewNATS]. Each option's name says the call it
// configures: Local* configure [NewLocal], Map* [Map], Submit* [Submit] and
// NATS* [NewNATS]. A [PoolOption], a NATS* option that also applies to a
// process pool (package executor/processpool, which runs a NATS executor),
// configures that pool too.
type NATSOption interface{ applyNATS(*NATSConfig) error }

// natsOption is a NATSOption of NewNATS alone.
type natsOption func(*NATSConfig) error

func (o natsOption) applyNATS(c *NATSConfig) error { return o(c) }

// PoolOption configures both [NewNATS] and the process pool of package
// executor/processpool.
type PoolOption func(*NATSConfig) error

func (o PoolOption) applyNATS(c *NATSConfig) error { return o(c) }

// Apply sets in the NATS executor configuration that h holds what o sets in
// NewNATS's. It is how a package that runs a NATS executor of its own and
// takes PoolOptions among its options, as executor/processpool does, applies
// them (see [NATSConfig]). For an invalid setting it returns an error
// matching [ErrInvalidOption] and leaves h's configuration as it was.
func (o PoolOption) Apply(h NATSConfigHolder) error { return o(h.NATSConfig()) }

// NATSPool names the pool to submit to; the default is broker.DefaultPool.
func NATSPool(name string) NATSOption {
	return natsOption(func(c *NATSConfig) error { c.pool = name; return nil })
}

// NATSPrefix sets the subject prefix; the default is broker.DefaultPrefix.
func NATSPrefix(prefix string) NATSOption {
	return natsOption(func(c *NATSConfig) error { c.prefix = prefix; return nil })
}

// NATSPoolConfig sets the pool's stream settings, lease and grace period;
// workers of the pool should use the same. A process pool's lease (AckWait)
// defaults to executor/processpool's AckWait (2s) rather than the pool
// default: its broker is on this host, so the heartbeats that keep a running
// chunk alive cost little, and a chunk a killed process had fetched but not
// yet started runs again that soon. (A chunk it had started runs again at
// once: the pool sees the process exit.) Invalid settings are an error
// matching [ErrInvalidOption].
func NATSPoolConfig(pc broker.PoolConfig) PoolOption {
	return func(c *NATSConfig) error {
		if err := pc.Validate(); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidOption, err)
		}
		c.pc = pc
		return nil
	}
}

// NATSName makes the executor's ID name.<random> instead of <random>, and so
// its control subjects <prefix>.<pool>.ctl.<name>.<random>.*: a server can
// then let each producer user subscribe only to its own control subjects
// (docs/security.conf), so that no other producer of the pool can read or
// answer its workers. name is a token like a pool name: letters, digits,
// '-' and '_'.
func NATSName(name string) PoolOption {
	return func(c *NATSConfig) error {
		if err := task.ValidateName(name); err != nil {
			return fmt.Errorf("%w: name: %w", ErrInvalidOption, err)
		}
		c.name = name
		return nil
	}
}

// NATSLogger sets where the executor logs; the default is slog.Default().
func NATSLogger(l *slog.Logger) PoolOption {
	return func(c *NATSConfig) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", ErrInvalidOption)
		}
		c.log = l
		return nil
	}
}

// NATSAutoBatch makes the executor gather concurrent Submits (not Map's
// chunks, which keep their MapChunksize) into chunks of up to max tasks. A
// Submit of a kind and deadline whose previous chunk is still on its way to
// the stream (its PubAck not in) waits in a batch that goes out as one chunk
// when that PubAck arrives or the batch is full, so a lone Submit goes at
// once and a flood of them goes hundreds to a message. Every future keeps
// its own semantics: Cancel is true only if the task never runs, deadlines
// hold per task, and results come per task. A gathered chunk carries the
// trace context of its first Submit.
//
// The cost: tasks of one chunk run one after another on one worker slot, and
// all of them count as running (Cancel returns false) from the moment the
// chunk starts, so give long tasks their own chunks by leaving this off. A
// publish error reaches the futures of a gathered chunk, not the Submit
// call. max must be at least 2.
func NATSAutoBatch(max int) PoolOption {
	return func(c *NATSConfig) error {
		if max < 2 {
			return fmt.Errorf("%w: auto-batch of %d tasks, want at least 2", ErrInvalidOption, max)
		}
		c.autoBatch = max
		return nil
	}
}
