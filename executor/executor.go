// Package executor runs tasks and hands back futures, with the API of Python's
// concurrent.futures: [Submit], [Map], [Wait], [AsCompleted] and
// [Executor.Shutdown], over a local goroutine pool ([Local]) or worker
// processes on many hosts reached through NATS JetStream ([NATS]). Python's
// ProcessPoolExecutor, worker processes on this host over an embedded
// broker, is package executor/processpool: only a program that imports it
// links the NATS server.
//
// A NATS executor's work may belong to a named job ([NATS.Job]), whose
// state lives in JetStream rather than in the producer: it runs on without
// its producer, and a producer started again with the same name and input
// resumes it. [NATS.Jobs], [NATS.JobStatus], [NATS.JobResults],
// [NATS.CancelJob] and [NATS.DeleteJob] manage jobs without attaching.
package executor

import (
	"context"
	"time"

	"github.com/jetpool/jetpool/task"
)

// Executor runs batches of tasks and resolves their futures. The
// implementations are [*Local] and [*NATS] (and executor/processpool's
// Pool, which runs a NATS executor); submit work with the generic functions
// [Submit] and [Map].
type Executor interface {
	// Shutdown stops the executor from taking new work: later submits fail
	// with ErrShutdown. With cancelFutures it cancels every future that has
	// not started. With wait it blocks until every outstanding future is done
	// and the executor's goroutines are gone, or ctx ends (then it returns
	// ctx's error); without wait it returns at once and outstanding futures
	// still resolve. It is safe to call more than once.
	Shutdown(ctx context.Context, wait, cancelFutures bool) error

	// enqueue hands a batch to the executor. It fails with ErrShutdown after
	// Shutdown, or with an error saying why the batch cannot run; on error no
	// future of the batch has been resolved.
	enqueue(ctx context.Context, b *batch) error
}

// call is one task invocation: its future's state and its input.
type call struct {
	s   *state
	arg any
}

// batch is a chunk: calls of one kind that travel and run together.
type batch struct {
	codec    task.Codec
	calls    []call
	deadline time.Time // zero: none
	submit   bool      // one Submit's call, which an executor may gather with others
	one      [1]call   // a Submit's call, so that its batch is one allocation
}

// enqueueError is the outcome of the futures of a Map's chunk that an
// executor took (enqueue returned nil) but could not submit after all, as a
// named job's chunk whose record turned out to hold another input: Map ends
// with err, as if enqueue had returned it.
type enqueueError struct{ err error }

func (e *enqueueError) Error() string { return e.err.Error() }
func (e *enqueueError) Unwrap() error { return e.err }

// expired reports whether the batch's deadline has passed at now.
func (b *batch) expired(now time.Time) bool {
	return !b.deadline.IsZero() && !now.Before(b.deadline)
}

// errExpired is the error of a task whose deadline passed before it started.
func errExpired(kind string) error {
	return &task.Error{Kind: kind, Type: task.TypeDeadline, Message: "deadline passed before the task started"}
}
