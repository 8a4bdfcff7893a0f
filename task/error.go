package task

import (
	"context"
	"errors"
	"fmt"
)

// Error types the framework gives, with a meaning of their own on both
// sides of the wire. A handler's own errors carry their Go type name or
// their ErrorType() instead.
const (
	// TypePanic marks a handler that panicked; Stack holds its goroutine stack.
	TypePanic = "panic"
	// TypeDeadline marks a handler stopped by its task's deadline.
	TypeDeadline = "deadline_exceeded"
	// TypeInterrupted marks a running handler whose context was cancelled by
	// an interrupt from the producer.
	TypeInterrupted = "interrupted"
	// TypeBadInput marks arguments the worker could not decode for the kind,
	// or that the handler refused.
	TypeBadInput = "bad_input"
	// TypeUnknownKind marks a chunk that reached a worker with no handler.
	TypeUnknownKind = "unknown_kind"
	// TypeEncode marks a handler's output that could not be encoded.
	TypeEncode = "encode"
	// TypeBadOutput marks a result the producer could not decode into the
	// task's output type.
	TypeBadOutput = "bad_output"
	// TypeResultTooLarge marks a result that did not fit in one message
	// under the server's maximum payload where it cannot travel by
	// reference (a named job's result); the value is dropped.
	TypeResultTooLarge = "result_too_large"
	// TypeValueLost marks a task whose input or result travelled by
	// reference and could not be read back or stored: the pool's values
	// bucket lost it (its TTL swept it, or it was deleted, changed or cut
	// short) or could not be reached within the pool's grace period.
	TypeValueLost = "value_lost"
	// TypeMaxDeliveries marks the tasks of a chunk that JetStream delivered
	// as often as the pool allows without it completing.
	TypeMaxDeliveries = "max_deliveries"
)

// Error is the failure of one task, as the producer sees it. It carries the
// remote error's type, message and, for panics, the stack. When the task ran
// in the same process the original error is kept and reachable through
// [errors.Unwrap].
//
// An Error of type [TypeDeadline] matches context.DeadlineExceeded and one of
// type [TypeInterrupted] matches context.Canceled, on either side of the wire.
type Error struct {
	Kind      string // the task's kind
	Type      string // the error's type: a Go type name, an ErrorType(), or one of the Type constants
	Message   string
	Stack     string // the handler's stack, for panics
	Retryable bool   // the handler marked it retryable and retries were exhausted
	cause     error
}

// Error formats the failure as "task KIND: TYPE: MESSAGE".
func (e *Error) Error() string {
	return fmt.Sprintf("task %s: %s: %s", e.Kind, e.Type, e.Message)
}

// Unwrap returns the original error when the task ran in this process.
func (e *Error) Unwrap() error { return e.cause }

// Is matches context.DeadlineExceeded and context.Canceled by Type, so the
// match survives the wire.
func (e *Error) Is(target error) bool {
	switch target {
	case context.DeadlineExceeded:
		return e.Type == TypeDeadline
	case context.Canceled:
		return e.Type == TypeInterrupted
	}
	return false
}

// ErrorTyper lets an error name its own type in an [Error]; without it the Go
// type name (as printed by %T) is used.
type ErrorTyper interface {
	ErrorType() string
}

// NewError converts err, returned by the handler of kind, into an *Error.
// An *Error is returned unchanged; a context error caused by the handler's
// own deadline or interruption gets [TypeDeadline] or [TypeInterrupted].
func NewError(kind string, err error) *Error {
	var te *Error
	if errors.As(err, &te) {
		return te
	}
	e := &Error{Kind: kind, Message: err.Error(), Retryable: IsRetryable(err), cause: err}
	var typer ErrorTyper
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		e.Type = TypeDeadline
	case errors.Is(err, context.Canceled):
		e.Type = TypeInterrupted
	case errors.As(err, &typer):
		e.Type = typer.ErrorType()
	default:
		e.Type = fmt.Sprintf("%T", unwrapRetryable(err))
	}
	return e
}

type retryable struct{ err error }

func (r retryable) Error() string { return r.err.Error() }
func (r retryable) Unwrap() error { return r.err }

// Retryable marks err as worth retrying: the runner calls the handler again
// with backoff, up to its retry limit, before failing the future. A nil err
// stays nil.
func Retryable(err error) error {
	if err == nil {
		return nil
	}
	return retryable{err}
}

// IsRetryable reports whether err, or any error it wraps, was marked with
// [Retryable].
func IsRetryable(err error) bool {
	var r retryable
	return errors.As(err, &r)
}

func unwrapRetryable(err error) error {
	if r, ok := err.(retryable); ok {
		return r.err
	}
	return err
}
