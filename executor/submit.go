package executor

import (
	"context"
	"fmt"
	"time"

	"github.com/jetpool/jetpool/task"
)

// SubmitOption configures one [Submit].
type SubmitOption func(*submitConfig) error

type submitConfig struct {
	deadline time.Time
}

// WithDeadline gives the task a deadline carried to its worker: a task whose
// deadline has passed is never started (its future fails with an error
// matching context.DeadlineExceeded), and a running handler's context ends at
// the deadline.
func WithDeadline(t time.Time) SubmitOption {
	return func(c *submitConfig) error {
		if t.IsZero() {
			return fmt.Errorf("%w: zero deadline", ErrInvalidOption)
		}
		c.deadline = t
		return nil
	}
}

// WithTimeout is WithDeadline(time.Now().Add(d)), counted from the Submit call.
func WithTimeout(d time.Duration) SubmitOption {
	return func(c *submitConfig) error {
		if d <= 0 {
			return fmt.Errorf("%w: timeout %v must be positive", ErrInvalidOption, d)
		}
		c.deadline = time.Now().Add(d)
		return nil
	}
}

// Submit schedules t on ex with input in and returns its future. ctx bounds
// the submission only, not the task; give the task a deadline with
// [WithDeadline] or [WithTimeout]. It fails with [ErrShutdown] after Shutdown,
// [ErrInvalidOption] for a bad option, or an error saying why the task cannot
// be queued (its input does not encode, it is larger than the broker takes);
// then no future is returned.
func Submit[In, Out any](ctx context.Context, ex Executor, t task.Task[In, Out], in In, opts ...SubmitOption) (*Future[Out], error) {
	cfg, err := submitOptions(opts)
	if err != nil {
		return nil, err
	}
	f := newFuture[Out]()
	b := &batch{codec: t.Codec(), deadline: cfg.deadline, submit: true}
	b.one[0] = call{s: &f.s, arg: in}
	b.calls = b.one[:]
	if err := ex.enqueue(ctx, b); err != nil {
		return nil, err
	}
	return f, nil
}

// submitOptions applies opts. Without options nothing is allocated: the
// options' closures make the config they fill escape.
func submitOptions(opts []SubmitOption) (submitConfig, error) {
	if len(opts) == 0 {
		return submitConfig{}, nil
	}
	cfg := new(submitConfig)
	for _, o := range opts {
		if err := o(cfg); err != nil {
			return submitConfig{}, err
		}
	}
	return *cfg, nil
}
