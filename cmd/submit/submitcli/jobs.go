package submitcli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/jetpool/jetpool/executor"
	"github.com/jetpool/jetpool/task"
)

const jobsUsage = `
Usage: submit jobs [flags]

Lists the named jobs of a producer (--name, or the default owner): per job
its tasks, how many are done, failed, cancelled, running and queued, the
rate, the time left at that rate, and whether a producer is attached.
'submit map KIND --job NAME' makes a job; it runs on when its producer is
gone.

Examples:
  submit jobs --server nats://127.0.0.1:4222
  submit jobs --name nightly-etl --json
`

const jobUsage = `
Usage: submit job NAME [flags]

Shows one named job's progress: tasks done, failed, cancelled, running and
queued, the rate, the time left at that rate, and whether a producer is
attached. With --watch it redraws until the job is finished (every task has
an outcome and no producer is attached, which could add more) or the
command is interrupted.

Examples:
  submit job nightly-2026-12-01 --server nats://127.0.0.1:4222
  submit job nightly-2026-12-01 --watch
`

const resultsUsage = `
Usage: submit results NAME [flags]

Prints a named job's results in input order, one JSON line per task as
'submit map' does, each as soon as it is stored: also while the job runs,
with or without a producer attached. It ends after the last task once no
producer is attached. The exit code is the one 'submit map' would have
given: 1 if a task failed, 3 if a task's deadline passed before it ran, 5
if one was cancelled; or 8 if the job's input did not end: its producer
stopped before it had published all of it (run its map again to resume).

Examples:
  submit results nightly-2026-12-01 --server nats://127.0.0.1:4222 > out.jsonl
`

const deleteUsage = `
Usage: submit delete NAME [flags]

Deletes a named job: its queued chunks, its records and its results. Delete
a job once it is finished, or cancelled with 'submit cancel --job NAME': a
chunk that a worker runs while the job is deleted may still store its last
results.

Examples:
  submit delete nightly-2026-12-01 --server nats://127.0.0.1:4222
`

// jobFlags are the flags of the commands that read or change named jobs:
// the pool's, and the producer name that owns the jobs.
type jobFlags struct {
	poolFlags
	owner string
}

func (j *jobFlags) register(fs *flag.FlagSet) {
	j.poolFlags.register(fs)
	fs.StringVar(&j.owner, "name", os.Getenv(envName), "the producer name that owns the jobs, as given to 'submit map --name' (env "+envName+")")
}

func (j *jobFlags) validate(fs *flag.FlagSet) error {
	if err := j.poolFlags.validate(fs); err != nil {
		return err
	}
	if j.owner != "" {
		if err := task.ValidateName(j.owner); err != nil {
			return settingErr(fs, "name", envName, "", nameWhy(err))
		}
	}
	return nil
}

// parseJob parses the command line of a job command that takes the job's
// name (one == true) or no argument. It says why it cannot on io.Err and
// returns false with the exit code.
func parseJob(name, usage string, args []string, io IO, one bool, more func(*flag.FlagSet)) (j jobFlags, job string, ok bool, code int) {
	fs := newFlagSet(name, usage, io.Err)
	j.register(fs)
	if more != nil {
		more(fs)
	}
	pos, err := parseInterspersed(fs, args)
	switch {
	case err != nil:
		return j, "", false, usageErr(err)
	case one && len(pos) != 1:
		fmt.Fprintf(io.Err, "submit %s: want one job NAME\n", name)
		fs.Usage()
		return j, "", false, ExitUsage
	case !one && len(pos) > 0:
		fmt.Fprintf(io.Err, "submit %s: takes no arguments\n", name)
		return j, "", false, ExitUsage
	}
	if err := j.validate(fs); err != nil {
		fmt.Fprintf(io.Err, "submit %s: %v\n", name, err)
		return j, "", false, ExitUsage
	}
	if one {
		job = pos[0]
		if err := task.ValidateName(job); err != nil {
			fmt.Fprintf(io.Err, "submit %s: job %q: %s\n", name, job, nameWhy(err))
			return j, "", false, ExitUsage
		}
	}
	return j, job, true, ExitOK
}

// openJobs connects and returns an executor of the jobs' owner, through
// which the job commands read and change its jobs, and a func that closes
// both. On failure it has printed why and returns nil and the exit code.
func openJobs(ctx context.Context, j *jobFlags, io IO, cmd string) (*executor.NATS, func(), int) {
	nc, code := connect(&j.poolFlags, io, cmd)
	if nc == nil {
		return nil, nil, code
	}
	opts := []executor.NATSOption{executor.NATSPool(j.pool), executor.NATSPrefix(j.prefix)}
	if j.owner != "" {
		opts = append(opts, executor.NATSName(j.owner))
	}
	ex, err := executor.NewNATS(ctx, nc, opts...)
	if err != nil {
		nc.Close()
		fmt.Fprintf(io.Err, "submit %s: %v\n", cmd, err)
		return nil, nil, ExitUnavailable
	}
	return ex, func() {
		ex.Shutdown(ctx, false, false)
		nc.Close()
	}, ExitOK
}

// jobErr prints err of a job command and returns its exit code: a job the
// pool does not hold is a bad argument.
func jobErr(io IO, cmd string, err error) int {
	fmt.Fprintf(io.Err, "submit %s: %v\n", cmd, err)
	if errors.Is(err, executor.ErrNoJob) || errors.Is(err, executor.ErrJobAttached) {
		return ExitUsage
	}
	return ExitUnavailable
}

// JobJSON is one job as 'submit jobs --json' and 'submit job --json' print
// it: the table's columns, in lower case with underscores, times in RFC
// 3339 and durations in seconds.
type JobJSON struct {
	Name      string    `json:"name"`
	Created   time.Time `json:"created"`
	Retention float64   `json:"retention_seconds"` // 0: kept until deleted
	Attached  bool      `json:"attached"`
	Producer  string    `json:"producer,omitempty"`
	Chunks    int       `json:"chunks"`
	Tasks     int       `json:"tasks"`
	Done      int       `json:"done"` // with a result, a value or an error
	Failed    int       `json:"failed"`
	Cancelled int       `json:"cancelled"`
	Running   int       `json:"running"`
	Queued    int       `json:"queued"`
	Rate      float64   `json:"rate"`                  // tasks done per second
	ETA       float64   `json:"eta_seconds,omitempty"` // at that rate; 0: finished or unknown
	// InputEnded: a producer said the job's input ended with the tasks
	// published (a map that read all of its input).
	InputEnded bool `json:"input_ended"`
	Finished   bool `json:"finished"`
}

func jobJSON(st executor.JobStatus) JobJSON {
	return JobJSON{
		Name: st.Name, Created: st.Created, Retention: st.Retention.Seconds(), Attached: st.Attached, Producer: st.Producer,
		Chunks: st.Chunks, Tasks: st.Tasks, Done: st.Done, Failed: st.Failed, Cancelled: st.Cancelled,
		Running: st.Running, Queued: st.Queued, Rate: st.Rate, ETA: eta(st).Seconds(), InputEnded: st.InputEnded, Finished: finished(st),
	}
}

// finished reports whether every task of the job has its outcome and no
// producer is attached to add more.
func finished(st executor.JobStatus) bool {
	return !st.Attached && st.Done+st.Cancelled >= st.Tasks
}

// eta is the time the job's tasks without an outcome take at its rate; 0
// when finished or the rate is not known yet.
func eta(st executor.JobStatus) time.Duration {
	left := st.Tasks - st.Done - st.Cancelled
	if left <= 0 || st.Rate <= 0 {
		return 0
	}
	return (time.Duration(float64(left)/st.Rate*1e3) * time.Millisecond).Round(time.Second)
}

func runJobs(ctx context.Context, args []string, io IO) int {
	var asJSON bool
	j, _, ok, code := parseJob("jobs", jobsUsage, args, io, false, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print one JSON array")
	})
	if !ok {
		return code
	}
	ex, closeAll, code := openJobs(ctx, &j, io, "jobs")
	if ex == nil {
		return code
	}
	defer closeAll()
	jobs, err := ex.Jobs(ctx)
	if err != nil {
		return jobErr(io, "jobs", err)
	}
	all := make([]JobJSON, 0, len(jobs))
	for _, info := range jobs {
		st, err := ex.JobStatus(ctx, info.Name)
		if errors.Is(err, executor.ErrNoJob) {
			continue // deleted meanwhile
		}
		if err != nil {
			return jobErr(io, "jobs", err)
		}
		all = append(all, jobJSON(st))
	}
	if asJSON {
		b, _ := json.MarshalIndent(all, "", "  ")
		fmt.Fprintln(io.Out, string(b))
		return ExitOK
	}
	if len(all) == 0 {
		fmt.Fprintln(io.Out, "no jobs")
		return ExitOK
	}
	tw := tabwriter.NewWriter(io.Out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTASKS\tDONE\tFAILED\tCANCELLED\tRUNNING\tQUEUED\tRATE\tETA\tPRODUCER\tCREATED")
	for _, st := range all {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\n", st.Name, st.Tasks, st.Done, st.Failed, st.Cancelled,
			st.Running, st.Queued, rateText(st), etaText(st), producerText(st), st.Created.Local().Format(time.DateTime))
	}
	tw.Flush()
	return ExitOK
}

func rateText(st JobJSON) string {
	if st.Rate <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f/s", st.Rate)
}

func etaText(st JobJSON) string {
	switch {
	case st.Finished:
		return "finished"
	case st.ETA <= 0:
		return "?"
	}
	return (time.Duration(st.ETA) * time.Second).String()
}

func producerText(st JobJSON) string {
	if !st.Attached {
		return "none"
	}
	return st.Producer
}

// statusLine is one job's progress in a line.
func statusLine(st JobJSON) string {
	var b strings.Builder
	if st.Tasks > 0 {
		const width = 30
		filled := width * min(st.Done+st.Cancelled, st.Tasks) / st.Tasks
		fmt.Fprintf(&b, "[%s%s] ", strings.Repeat("#", filled), strings.Repeat(".", width-filled))
	}
	fmt.Fprintf(&b, "%d/%d done  failed %d  cancelled %d  running %d  queued %d  %s  ETA %s  producer %s",
		st.Done, st.Tasks, st.Failed, st.Cancelled, st.Running, st.Queued, rateText(st), etaText(st), producerText(st))
	switch {
	case st.InputEnded:
		b.WriteString("  input ended")
	case !st.Attached:
		b.WriteString("  input not ended")
	}
	return b.String()
}

// watchEvery is how often 'submit job --watch' reads the job again.
const watchEvery = time.Second

func runJob(ctx context.Context, args []string, io IO) int {
	var asJSON, watch bool
	j, name, ok, code := parseJob("job", jobUsage, args, io, true, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print one JSON document (with --watch: one per read)")
		fs.BoolVar(&watch, "watch", false, "redraw until the job is finished")
	})
	if !ok {
		return code
	}
	ex, closeAll, code := openJobs(ctx, &j, io, "job")
	if ex == nil {
		return code
	}
	defer closeAll()
	// On a terminal the watch redraws one line; elsewhere it prints a
	// line per read, which a log keeps.
	redraw := watch && !asJSON && isTerminal(io.Out)
	tick := time.NewTicker(watchEvery)
	defer tick.Stop()
	for {
		st, err := ex.JobStatus(ctx, name)
		if err != nil {
			if watch && ctx.Err() != nil {
				break // interrupted: the watch's end
			}
			return jobErr(io, "job", err)
		}
		js := jobJSON(st)
		switch {
		case asJSON:
			b, _ := json.Marshal(js)
			fmt.Fprintln(io.Out, string(b))
		case redraw:
			fmt.Fprintf(io.Out, "\r\033[K%s", statusLine(js))
		case watch:
			fmt.Fprintln(io.Out, statusLine(js))
		default:
			printJob(io, js)
		}
		if !watch || js.Finished || !waitTick(ctx, tick) {
			break
		}
	}
	if redraw {
		fmt.Fprintln(io.Out)
	}
	return ExitOK
}

// waitTick waits for the ticker's next tick and reports false if ctx ended
// first.
func waitTick(ctx context.Context, tick *time.Ticker) bool {
	select {
	case <-tick.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func printJob(io IO, st JobJSON) {
	tw := tabwriter.NewWriter(io.Out, 0, 0, 2, ' ', 0)
	retention := "until deleted"
	if st.Retention > 0 {
		retention = (time.Duration(st.Retention) * time.Second).String()
	}
	for _, row := range [][2]string{
		{"job", st.Name},
		{"created", st.Created.Local().Format(time.DateTime)},
		{"kept", retention},
		{"producer", producerText(st)},
		{"tasks", fmt.Sprintf("%d in %d chunks", st.Tasks, st.Chunks)},
		{"input", inputText(st)},
		{"done", fmt.Sprintf("%d (%d failed)", st.Done, st.Failed)},
		{"cancelled", fmt.Sprint(st.Cancelled)},
		{"running", fmt.Sprint(st.Running)},
		{"queued", fmt.Sprint(st.Queued)},
		{"rate", rateText(st)},
		{"eta", etaText(st)},
	} {
		fmt.Fprintf(tw, "%s\t%s\n", row[0], row[1])
	}
	tw.Flush()
}

// inputText says whether the job's input ended.
func inputText(st JobJSON) string {
	switch {
	case st.InputEnded:
		return "ended"
	case st.Attached:
		return "open: the producer attached may add more"
	}
	return "not ended: its producer stopped before it published all of it; run its map again to resume"
}

func runResults(ctx context.Context, args []string, io IO) int {
	j, name, ok, code := parseJob("results", resultsUsage, args, io, true, nil)
	if !ok {
		return code
	}
	ex, closeAll, code := openJobs(ctx, &j, io, "results")
	if ex == nil {
		return code
	}
	defer closeAll()
	out := newLineWriter(io.Out)
	var failed, cancelled, timedOut bool
	for r, err := range ex.JobResults(ctx, name) {
		if err != nil {
			out.close()
			return jobErr(io, "results", err)
		}
		var te *task.Error
		switch {
		case r.Err == nil:
			var v any
			if err := msgpack.Unmarshal(r.Value, &v); err != nil {
				failed = true
				out.writeJSON(map[string]any{"error": map[string]any{"kind": r.Kind, "type": task.TypeBadOutput, "message": err.Error()}})
				continue
			}
			out.writeJSON(v)
		case errors.As(r.Err, &te):
			failed = true
			timedOut = timedOut || errors.Is(r.Err, context.DeadlineExceeded)
			out.writeJSON(map[string]any{"error": errorJSON(te)})
		case errors.Is(r.Err, executor.ErrCancelled):
			cancelled = true
			out.writeJSON(map[string]any{"error": cancelledJSON(r.Kind)})
		default:
			// A deadline that passed before the task ran.
			failed, timedOut = true, timedOut || errors.Is(r.Err, context.DeadlineExceeded)
			out.writeJSON(map[string]any{"error": map[string]any{"kind": r.Kind, "type": task.TypeDeadline, "message": r.Err.Error()}})
		}
	}
	if err := out.close(); err != nil {
		fmt.Fprintln(io.Err, "submit results:", err)
		return ExitOutput
	}
	code = outcome(failed, cancelled, timedOut)
	st, err := ex.JobStatus(ctx, name)
	if err != nil {
		return jobErr(io, "results", err)
	}
	if !st.InputEnded {
		fmt.Fprintf(io.Err, "submit results: job %s's input did not end: its producer stopped before it had published all of it (%d tasks so far); run its map again to resume\n", name, st.Tasks)
		if code == ExitOK {
			code = ExitIncomplete
		}
	}
	return code
}

func runDelete(ctx context.Context, args []string, io IO) int {
	j, name, ok, code := parseJob("delete", deleteUsage, args, io, true, nil)
	if !ok {
		return code
	}
	ex, closeAll, code := openJobs(ctx, &j, io, "delete")
	if ex == nil {
		return code
	}
	defer closeAll()
	if err := ex.DeleteJob(ctx, name); err != nil {
		return jobErr(io, "delete", err)
	}
	fmt.Fprintf(io.Out, "job %s deleted\n", name)
	return ExitOK
}

// cancelJob is 'submit cancel --job NAME'.
func cancelJob(ctx context.Context, j *jobFlags, name string, io IO) int {
	ex, closeAll, code := openJobs(ctx, j, io, "cancel")
	if ex == nil {
		return code
	}
	defer closeAll()
	n, err := ex.CancelJob(ctx, name)
	if err != nil {
		return jobErr(io, "cancel", err)
	}
	fmt.Fprintf(io.Out, "job %s: %d tasks cancelled; running ones finish\n", name, n)
	return ExitOK
}

// attachJob attaches the session's NATS executor to the job name, for
// 'submit map --job', and says on io.Err how far a job it resumes had come.
func attachJob(ctx context.Context, ex *executor.NATS, name string, retention time.Duration, io IO) (*executor.Job, error) {
	var opts []executor.JobOption
	if retention > 0 {
		opts = append(opts, executor.JobRetention(retention))
	}
	job, err := ex.Job(ctx, name, opts...)
	if err != nil {
		return nil, err
	}
	if st, err := ex.JobStatus(ctx, name); err == nil && st.Tasks > 0 {
		fmt.Fprintf(io.Err, "submit: resuming job %s: %d of %d tasks published so far are done, %d cancelled\n",
			name, st.Done, st.Tasks, st.Cancelled)
	}
	return job, nil
}
