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
	// ErrJobInput is matched by the error of a Submit or Map on a named job
	// whose tasks at that place of the job's input were given another input
	// before: a job resumes only the input it was started with.
	ErrJobInput = errors.New("executor: the job holds another input at this place")
	// ErrNoJob is matched by errors for a job name the pool does not hold.
	ErrNoJob = errors.New("executor: no such job")
	// ErrJobAttached is returned by DeleteJob for a job that this executor
	// has a Job of that is not shut down.
	ErrJobAttached = errors.New("executor: the job is attached to this executor")
)
