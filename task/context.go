package task

import "context"

type workerKey struct{}

// WithWorker returns a context that names the worker running a task. Runners
// call it; handlers read the name with [WorkerID].
func WithWorker(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, workerKey{}, id)
}

// WorkerID returns the name of the worker running the task, or "" outside a
// runner.
func WorkerID(ctx context.Context) string {
	id, _ := ctx.Value(workerKey{}).(string)
	return id
}
