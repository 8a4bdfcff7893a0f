package bench

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jetpool/jetpool/builtin"
	"github.com/jetpool/jetpool/executor"
)

// jobName is a job name of its own for one figure.
func jobName(what string) string {
	return "bench-" + what + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
}

// inJob runs measure on a named job of ex made for it, then detaches and
// deletes the job.
func inJob(ctx context.Context, ex *executor.NATS, what string, measure func(*executor.Job) (Figure, error)) (Figure, error) {
	name := jobName(what)
	job, err := ex.Job(ctx, name)
	if err != nil {
		return Figure{}, err
	}
	f, err := measure(job)
	if serr := job.Shutdown(ctx, true, true); err == nil {
		err = serr
	}
	if derr := ex.DeleteJob(ctx, name); err == nil {
		err = derr
	}
	f.Name = "named job: " + f.Name
	return f, err
}

// JobSubmitThroughput is SubmitThroughput on a named job.
func JobSubmitThroughput(ctx context.Context, ex *executor.NATS, n int) (Figure, error) {
	return inJob(ctx, ex, "submit", func(job *executor.Job) (Figure, error) { return SubmitThroughput(ctx, job, n) })
}

// JobMapThroughput is MapThroughput on a named job.
func JobMapThroughput(ctx context.Context, ex *executor.NATS, n, chunk int) (Figure, error) {
	return inJob(ctx, ex, "map", func(job *executor.Job) (Figure, error) { return MapThroughput(ctx, job, n, chunk) })
}

// JobResume measures a resumed job: one producer maps square over the first
// done of 0..n-1 as a named job, in chunks, and shuts down; a second, on a
// connection of its own, maps all n under the same name. It reports how
// long the second took to yield its first result (stored) and its first
// new one (at place done), its whole time, and how many tasks the worker
// ran again, which is 0 unless something repeated. Every value is checked.
func JobResume(ctx context.Context, e *Env, n, done, chunk int) ([]Figure, error) {
	if done%chunk != 0 || done >= n {
		return nil, fmt.Errorf("bench: resume after %d of %d in chunks of %d: want a whole number of chunks, fewer than all", done, n, chunk)
	}
	name := jobName("resume")
	first, err := e.NewExecutor(ctx)
	if err != nil {
		return nil, err
	}
	job, err := first.Job(ctx, name)
	if err != nil {
		return nil, err
	}
	if _, err := MapThroughput(ctx, job, done, chunk); err != nil {
		return nil, err
	}
	if err := job.Shutdown(ctx, true, false); err != nil {
		return nil, err
	}
	ran := e.Worker.Stats().TasksSucceeded

	second, err := e.NewExecutor(ctx)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	job, err = second.Job(ctx, name)
	if err != nil {
		return nil, err
	}
	var firstStored, firstNew time.Duration
	i := 0
	for v, err := range executor.Map(ctx, job, builtin.Square, count(n), executor.MapChunksize(chunk)) {
		if err != nil {
			return nil, err
		}
		if v != i*i {
			return nil, fmt.Errorf("bench: resumed square(%d) = %d", i, v)
		}
		switch i {
		case 0:
			firstStored = time.Since(start)
		case done:
			firstNew = time.Since(start)
		}
		i++
	}
	total := time.Since(start)
	if err := job.Shutdown(ctx, true, false); err != nil {
		return nil, err
	}
	again := e.Worker.Stats().TasksSucceeded - ran - int64(n-done)
	if err := second.DeleteJob(ctx, name); err != nil {
		return nil, err
	}
	what := fmt.Sprintf("resume %d of %d done, chunksize %d", done, n, chunk)
	return []Figure{
		{what + ": first stored result", float64(firstStored.Microseconds()) / 1e3, "ms"},
		{what + ": first new result", float64(firstNew.Microseconds()) / 1e3, "ms"},
		{what + ": all results", float64(total.Microseconds()) / 1e3, "ms"},
		{what + ": tasks run again", float64(again), "tasks"},
	}, nil
}
