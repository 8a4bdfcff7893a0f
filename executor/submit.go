package executor

import (
	"context"
	"time"

	"github.com/jetpool/jetpool/task"
)

type submitConfig struct {
	deadline time.Time
}

// Submit schedules t on ex with input in and returns its future. ctx bounds
// the submission only, not the task; give the task a deadline with
// [SubmitDeadline] or [SubmitTimeout]. It fails with [ErrShutdown] after Shutdown,
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
