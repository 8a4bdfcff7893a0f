package task

import (
	"context"
	"time"
)

// RetryPolicy says how often a runner calls a handler again after it returns
// an error marked [Retryable]. The zero value retries nothing.
type RetryPolicy struct {
	// Attempts is the most calls made in all, including the first; values
	// below 1 mean 1.
	Attempts int
	// Backoff is the wait before the first retry; it doubles for each next one
	// up to MaxBackoff. Zero means 100ms.
	Backoff time.Duration
	// MaxBackoff caps the wait between attempts. Zero means 10s.
	MaxBackoff time.Duration
}

// Do calls fn until it succeeds, returns an error not marked retryable, the
// attempts run out, or ctx ends during a backoff (then the last error is
// returned). It returns fn's last result.
func (p RetryPolicy) Do(ctx context.Context, fn func() error) error {
	backoff, maxBackoff := p.Backoff, p.MaxBackoff
	if backoff <= 0 {
		backoff = 100 * time.Millisecond
	}
	if maxBackoff <= 0 {
		maxBackoff = 10 * time.Second
	}
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil || attempt >= p.Attempts || !IsRetryable(err) {
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
