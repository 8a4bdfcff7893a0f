package task

import (
	"context"
	"time"
)

// Defaults of a [RetryPolicy] whose fields are zero.
const (
	DefaultAttempts   = 3
	DefaultBackoff    = 100 * time.Millisecond
	DefaultMaxBackoff = 10 * time.Second
)

// RetryPolicy says how often a runner calls a handler again after it returns
// an error marked [Retryable]; an error not so marked is never retried. The
// zero value is the default of every executor and worker: at most
// [DefaultAttempts] calls, [DefaultBackoff] before the first retry, doubling
// up to [DefaultMaxBackoff]. RetryPolicy{Attempts: 1} retries nothing.
type RetryPolicy struct {
	// Attempts is the most calls made in all, including the first; zero
	// means DefaultAttempts, a negative value 1.
	Attempts int
	// Backoff is the wait before the first retry; it doubles for each next one
	// up to MaxBackoff. Zero means DefaultBackoff.
	Backoff time.Duration
	// MaxBackoff caps the wait between attempts. Zero means DefaultMaxBackoff.
	MaxBackoff time.Duration
}

// MaxAttempts is the most calls p makes in all, the first included.
func (p RetryPolicy) MaxAttempts() int {
	switch {
	case p.Attempts == 0:
		return DefaultAttempts
	case p.Attempts < 0:
		return 1
	}
	return p.Attempts
}

// Do calls fn until it succeeds, returns an error not marked retryable, the
// attempts run out, or ctx ends during a backoff (then the last error is
// returned). It returns fn's last result.
func (p RetryPolicy) Do(ctx context.Context, fn func() error) error {
	attempts, backoff, maxBackoff := p.MaxAttempts(), p.Backoff, p.MaxBackoff
	if backoff <= 0 {
		backoff = DefaultBackoff
	}
	if maxBackoff <= 0 {
		maxBackoff = DefaultMaxBackoff
	}
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil || attempt >= attempts || !IsRetryable(err) {
			return err
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}
