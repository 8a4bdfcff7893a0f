package executor

import "errors"

var (
	// ErrCancelled is the error of a future cancelled before it started.
	ErrCancelled = errors.New("executor: future cancelled")
	// ErrShutdown is returned by Submit and Map after Shutdown.
	ErrShutdown = errors.New("executor: executor is shut down")
	// ErrInvalidOption is matched by errors for option values out of range.
	ErrInvalidOption = errors.New("executor: invalid option")
	// ErrUnknownKind is returned at Submit by an executor that runs tasks in
	// process and has no handler for the task's kind.
	ErrUnknownKind = errors.New("executor: no handler for kind")
)
