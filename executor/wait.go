package executor

import (
	"context"
	"fmt"
	"iter"
)

// Awaitable is a future of any result type, as taken by [Wait] and
// [AsCompleted]. Every *Future[T] is one.
type Awaitable interface {
	Done() <-chan struct{}
	state() *state
}

// WaitMode says when [Wait] returns, like Python's return_when.
type WaitMode int

const (
	// AllCompleted returns when every future is done. It is the zero value.
	AllCompleted WaitMode = iota
	// FirstCompleted returns when any future is done.
	FirstCompleted
	// FirstException returns when any future fails; with no failure it waits
	// for all, like AllCompleted. A cancelled future is not a failure.
	FirstException
)

// String returns the Python name of the mode.
func (m WaitMode) String() string {
	switch m {
	case AllCompleted:
		return "ALL_COMPLETED"
	case FirstCompleted:
		return "FIRST_COMPLETED"
	case FirstException:
		return "FIRST_EXCEPTION"
	}
	return fmt.Sprintf("WaitMode(%d)", int(m))
}

// Wait blocks until the futures meet mode or ctx ends, then returns the
// futures that are done and those that are not, each in input order.
// Duplicates in fs are reported once. If ctx ends first, Wait returns what is
// done at that moment; it never fails. It starts no goroutines.
func Wait[F Awaitable](ctx context.Context, fs []F, mode WaitMode) (done, notDone []F) {
	fs = unique(fs)
	if !satisfied(fs, mode) {
		ch := make(chan *state, len(fs))
		for _, f := range fs {
			s := f.state()
			remove := s.addCallback(func() { ch <- s })
			defer remove()
		}
	loop:
		for left := len(fs); left > 0; left-- {
			select {
			case s := <-ch:
				if mode == FirstCompleted || mode == FirstException && s.failed() {
					break loop
				}
			case <-ctx.Done():
				break loop
			}
		}
	}
	for _, f := range fs {
		select {
		case <-f.Done():
			done = append(done, f)
		default:
			notDone = append(notDone, f)
		}
	}
	return done, notDone
}

func satisfied[F Awaitable](fs []F, mode WaitMode) bool {
	all := true
	for _, f := range fs {
		s := f.state()
		if !s.isDone() {
			all = false
			continue
		}
		if mode == FirstCompleted || mode == FirstException && s.failed() {
			return true
		}
	}
	return all
}

// AsCompleted yields the futures as they complete: those already done first,
// in input order, then the others in completion order; duplicates once. If ctx
// ends first it yields one last pair, a zero F and an error naming how many
// futures were unfinished that matches ctx's error. Breaking out of the loop
// is safe and leaves the futures untouched.
func AsCompleted[F Awaitable](ctx context.Context, fs []F) iter.Seq2[F, error] {
	return func(yield func(F, error) bool) {
		fs := unique(fs)
		var rest []F
		for _, f := range fs {
			select {
			case <-f.Done():
				if !yield(f, nil) {
					return
				}
			default:
				rest = append(rest, f)
			}
		}
		if len(rest) == 0 {
			return
		}
		ch := make(chan int, len(rest))
		for i, f := range rest {
			remove := f.state().addCallback(func() { ch <- i })
			defer remove()
		}
		for left := len(rest); left > 0; left-- {
			select {
			case i := <-ch:
				if !yield(rest[i], nil) {
					return
				}
			case <-ctx.Done():
				var zero F
				yield(zero, fmt.Errorf("executor: %d of %d futures unfinished: %w", left, len(fs), ctx.Err()))
				return
			}
		}
	}
}

func unique[F Awaitable](fs []F) []F {
	seen := make(map[*state]bool, len(fs))
	out := make([]F, 0, len(fs))
	for _, f := range fs {
		if s := f.state(); !seen[s] {
			seen[s] = true
			out = append(out, f)
		}
	}
	return out
}
