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
	// ErrInWorker is returned by NewProcessPool in a worker process of a
	// process pool: a program that is its own pool's worker reaches it only
	// when main does not call worker.ServeIfChild first, and every worker
	// would otherwise start a pool of its own.
	ErrInWorker = errors.New("executor: NewProcessPool called in a worker process: call worker.ServeIfChild(reg) first thing in main")
)
