package main

import (
	"encoding/json"
	"io"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jetpool/jetpool/broker/embedded"
	"github.com/jetpool/jetpool/cmd/submit/submitcli"
	"github.com/jetpool/jetpool/worker"
)

// jobStatus runs 'submit job NAME --json' and decodes its line.
func jobStatus(t *testing.T, env []string, name string) submitcli.JobJSON {
	t.Helper()
	r := submit(t, "", env, "job", name, "--json")
	var st submitcli.JobJSON
	if r.code != 0 || json.Unmarshal([]byte(r.out), &st) != nil {
		t.Fatalf("job %s --json: exit %d\n%s%s", name, r.code, r.out, r.stderr)
	}
	return st
}

// waitJob runs 'submit job NAME --json' until ok holds for what it prints.
func waitJob(t *testing.T, env []string, name, what string, ok func(submitcli.JobJSON) bool) submitcli.JobJSON {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		// The job may not be made yet.
		r := submit(t, "", env, "job", name, "--json")
		var st submitcli.JobJSON
		if r.code == 0 && json.Unmarshal([]byte(r.out), &st) == nil && ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: %+v after 30s; want %s", name, st, what)
		}
		time.Sleep(100 * time.Millisecond) // a poll: each try is a process
	}
}

// startMap starts 'submit map' with args and returns a func that waits for
// its end and returns its exit code and output.
func startMap(t *testing.T, env []string, args ...string) (cmd *exec.Cmd, wait func() (int, string)) {
	t.Helper()
	cmd = mainCmd(append([]string{"map"}, args...)...)
	cmd.Env = append(cmd.Env, env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	type end struct {
		code int
		out  string
	}
	ended := make(chan end, 1)
	go func() {
		out, _ := io.ReadAll(stdout)
		cmd.Wait()
		ended <- end{cmd.ProcessState.ExitCode(), string(out)}
	}()
	var got *end
	wait = func() (int, string) {
		if got == nil {
			select {
			case e := <-ended:
				got = &e
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
				e := <-ended
				got = &e
				t.Errorf("submit map %s: still running after 30s", strings.Join(args, " "))
			}
		}
		return got.code, got.out
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		wait()
	})
	return cmd, wait
}

// TestNamedJobCommands runs a named job from the command line as its users
// do: a map interrupted while its first task runs cancels nothing, the job
// runs on without it, 'submit job --watch' follows it to its end, the same
// command run again prints every result without running a task again,
// 'submit results' prints them too, another input under the name is
// refused, 'submit cancel --job' cancels what has not started, and 'submit
// delete' removes the jobs.
func TestNamedJobCommands(t *testing.T) {
	url := startBroker(t, embedded.Config{})
	g, _ := startGateWorker(t, url, worker.Config{Concurrency: 1}, nil)
	env := []string{"NATS_URL=" + url}

	run1, wait1 := startMap(t, env, "gate", "100", "101", "102", "--job", "nightly", "--quiet")
	// One task runs, whichever chunk came first; the worker's one slot
	// holds it.
	var first int
	select {
	case first = <-g.entered:
	case <-time.After(30 * time.Second):
		t.Fatal("no task of the job started in 30s")
	}
	st := waitJob(t, env, "nightly", "3 tasks, 1 running, 2 queued, attached", func(st submitcli.JobJSON) bool {
		return st.Tasks == 3 && st.Running == 1 && st.Queued == 2 && st.Attached
	})
	if st.Finished || st.Done != 0 {
		t.Fatalf("job before any result: %+v", st)
	}
	if err := run1.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code, out := wait1(); code != 130 || out != "" {
		t.Fatalf("interrupted map: exit %d, stdout %q; want 130 and nothing", code, out)
	}
	st = jobStatus(t, env, "nightly")
	if st.Attached || st.Cancelled != 0 || st.Running != 1 || st.Queued != 2 {
		t.Fatalf("job after its producer's interrupt: %+v; want no producer, nothing cancelled, 1 running, 2 queued", st)
	}

	g.release()
	g.waitEnteredAll(t, slices.DeleteFunc([]int{100, 101, 102}, func(n int) bool { return n == first })...)
	r := submit(t, "", env, "job", "nightly", "--watch")
	lines := strings.Split(strings.TrimSpace(r.out), "\n")
	if last := lines[len(lines)-1]; r.code != 0 || !strings.Contains(last, "3/3 done") || !strings.Contains(last, "ETA finished") ||
		!strings.HasSuffix(last, "input not ended") {
		t.Fatalf("job --watch: exit %d\n%s%s", r.code, r.out, r.stderr)
	}

	// The interrupted map never said that its input ended: its results
	// are all there, but nothing tells them from the first part of a
	// longer input.
	r = submit(t, "", env, "results", "nightly")
	if r.code != submitcli.ExitIncomplete || r.out != "100\n101\n102\n" || !strings.Contains(r.stderr, "job nightly's input did not end") {
		t.Fatalf("results of the job whose map was interrupted: exit %d\n%s%s", r.code, r.out, r.stderr)
	}
	if st := jobStatus(t, env, "nightly"); st.InputEnded {
		t.Fatalf("job whose map was interrupted: %+v; want its input not ended", st)
	}

	r = submit(t, "", env, "map", "gate", "100", "101", "102", "--job", "nightly", "--quiet")
	if r.code != 0 || r.out != "100\n101\n102\n" || !strings.Contains(r.stderr, "resuming job nightly: 3 of 3") {
		t.Fatalf("map run again: exit %d\n%s%s", r.code, r.out, r.stderr)
	}
	r = submit(t, "", env, "results", "nightly")
	if r.code != 0 || r.out != "100\n101\n102\n" || r.stderr != "" {
		t.Fatalf("results: exit %d\n%s%s", r.code, r.out, r.stderr)
	}
	if r = submit(t, "", env, "job", "nightly"); r.code != 0 || !regexp.MustCompile(`(?m)^input +ended$`).MatchString(r.out) {
		t.Fatalf("job of a finished map: exit %d\n%s%s; want its input ended", r.code, r.out, r.stderr)
	}
	r = submit(t, "", env, "map", "gate", "100", "999", "--job", "nightly", "--quiet")
	if r.code != 2 || !strings.Contains(r.stderr, "job nightly was made with other inputs") {
		t.Fatalf("map of other inputs under the name: exit %d\n%s%s", r.code, r.out, r.stderr)
	}
	select {
	case n := <-g.entered:
		t.Fatalf("task %d ran again", n)
	default:
	}

	// No worker serves "idle": its tasks stay queued until cancelled.
	_, waitHeld := startMap(t, env, "idle", "1", "2", "--job", "held", "--quiet")
	waitJob(t, env, "held", "2 tasks queued", func(st submitcli.JobJSON) bool { return st.Tasks == 2 && st.Queued == 2 })
	r = submit(t, "", env, "cancel", "--job", "held")
	if r.code != 0 || r.out != "job held: 2 tasks cancelled; running ones finish\n" {
		t.Fatalf("cancel --job: exit %d\n%s%s", r.code, r.out, r.stderr)
	}
	if code, out := waitHeld(); code != 5 || strings.Count(out, `"type":"cancelled"`) != 2 {
		t.Fatalf("map of the cancelled job: exit %d\n%s; want 5 and two cancelled lines", code, out)
	}
	r = submit(t, "", env, "results", "held")
	if r.code != 5 || strings.Count(r.out, `"type":"cancelled"`) != 2 {
		t.Fatalf("results of the cancelled job: exit %d\n%s%s", r.code, r.out, r.stderr)
	}

	r = submit(t, "", env, "jobs", "--json")
	var all []submitcli.JobJSON
	if r.code != 0 || json.Unmarshal([]byte(r.out), &all) != nil || len(all) != 2 {
		t.Fatalf("jobs --json: exit %d\n%s%s", r.code, r.out, r.stderr)
	}
	for _, st := range all {
		if !st.Finished || st.Attached || st.Tasks != st.Done+st.Cancelled {
			t.Errorf("jobs --json: %+v, want finished", st)
		}
	}
	r = submit(t, "", env, "jobs")
	if r.code != 0 || !strings.HasPrefix(r.out, "NAME ") || !strings.Contains(r.out, "\nheld ") || !strings.Contains(r.out, "\nnightly ") {
		t.Fatalf("jobs: exit %d\n%s%s", r.code, r.out, r.stderr)
	}
	for _, name := range []string{"held", "nightly"} {
		if r := submit(t, "", env, "delete", name); r.code != 0 || r.out != "job "+name+" deleted\n" {
			t.Fatalf("delete %s: exit %d\n%s%s", name, r.code, r.out, r.stderr)
		}
	}
	if r := submit(t, "", env, "jobs"); r.code != 0 || r.out != "no jobs\n" {
		t.Errorf("jobs after deleting them: exit %d\n%s%s", r.code, r.out, r.stderr)
	}
	if r := submit(t, "", env, "job", "nightly"); r.code != 2 || !strings.Contains(r.stderr, "no such job") {
		t.Errorf("job of a deleted job: exit %d\n%s%s", r.code, r.out, r.stderr)
	}
}

// TestJobCommandsRefuseBadLines: a job command with a setting it cannot
// use exits 2 before it connects, naming the flag.
func TestJobCommandsRefuseBadLines(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"map", "square", "1", "--job", "x", "--embedded"}, "--job with --embedded needs --store DIR"},
		{[]string{"map", "square", "1", "--retention", "1h"}, "--retention: only with --job"},
		{[]string{"map", "square", "1", "--job", "x", "--retention", "-1s"}, "--retention -1s"},
		{[]string{"map", "square", "1", "--job", "x", "--retention", "500ms"}, "--retention 500ms: want 0 (until deleted) or at least 1s"},
		{[]string{"map", "square", "1", "--job", "a.b"}, `--job "a.b"`},
		{[]string{"cancel", "--job", "x", "--kind", "square"}, "--kind: not with --job"},
		{[]string{"cancel", "--name", "etl"}, "--name: only with --job"},
		{[]string{"job"}, "want one job NAME"},
		{[]string{"results", "a", "b"}, "want one job NAME"},
		{[]string{"delete", "a*"}, `job "a*"`},
		{[]string{"jobs", "x"}, "takes no arguments"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := submit(t, "", nowhere, tt.args...)
			if r.code != 2 || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("exit %d\n%s%s; want 2 and %q", r.code, r.out, r.stderr, tt.want)
			}
		})
	}
}

// TestNamedJobOnAnEmbeddedStore: with --embedded and --store, a named job
// is kept between runs on one host: the same command run again resumes it
// and prints every result, and another input under the name is refused.
func TestNamedJobOnAnEmbeddedStore(t *testing.T) {
	store := t.TempDir()
	args := []string{"map", "square", "1", "2", "3", "--embedded", "--workers", "1", "--store", store, "--job", "sq", "--quiet"}
	if r := submit(t, "", nil, args...); r.code != 0 || r.out != "1\n4\n9\n" {
		t.Fatalf("first run: exit %d\n%s%s", r.code, r.out, r.stderr)
	}
	r := submit(t, "", nil, args...)
	if r.code != 0 || r.out != "1\n4\n9\n" || !strings.Contains(r.stderr, "resuming job sq: 3 of 3") {
		t.Fatalf("run again: exit %d\n%s%s", r.code, r.out, r.stderr)
	}
	other := append([]string{"map", "square", "1", "2", "5"}, args[5:]...)
	if r := submit(t, "", nil, other...); r.code != 2 || !strings.Contains(r.stderr, "job sq was made with other inputs") {
		t.Fatalf("another input: exit %d\n%s%s", r.code, r.out, r.stderr)
	}

	// A refused input puts nothing after it into the job: the input that
	// goes on from the job's own runs resumes.
	flags := []string{"--embedded", "--workers", "1", "--store", store, "--chunksize", "1", "--quiet"}
	if r := submit(t, "", nil, append([]string{"map", "square", "1", "2", "--job", "q"}, flags...)...); r.code != 0 {
		t.Fatalf("job q: exit %d\n%s%s", r.code, r.out, r.stderr)
	}
	if r := submit(t, "", nil, append([]string{"map", "square", "1", "5", "6", "7", "--job", "q"}, flags...)...); r.code != 2 {
		t.Fatalf("job q, other inputs: exit %d\n%s%s", r.code, r.out, r.stderr)
	}
	r = submit(t, "", nil, append([]string{"map", "square", "1", "2", "6", "7", "--job", "q"}, flags...)...)
	if r.code != 0 || r.out != "1\n4\n36\n49\n" || !strings.Contains(r.stderr, "resuming job q: 2 of 2") {
		t.Fatalf("job q resumed after a refused run: exit %d\n%s%s", r.code, r.out, r.stderr)
	}

	// A bad line leaves the chunk it is in out of the job.
	flags[len(flags)-2] = "2" // --chunksize 2
	if r := submit(t, "1\nx\n", nil, append([]string{"map", "square", "--job", "b"}, flags...)...); r.code != 2 {
		t.Fatalf("job b with a bad line: exit %d\n%s%s", r.code, r.out, r.stderr)
	}
	if r := submit(t, "1\n2\n", nil, append([]string{"map", "square", "--job", "b"}, flags...)...); r.code != 0 || r.out != "1\n4\n" {
		t.Fatalf("job b with the line corrected: exit %d\n%s%s", r.code, r.out, r.stderr)
	}
}

// TestNamedMapTimeoutCancelsNothing: --timeout on a named map ends the
// command's wait with exit 3, and the task runs on: the next run prints its
// result.
func TestNamedMapTimeoutCancelsNothing(t *testing.T) {
	url := startBroker(t, embedded.Config{})
	g, _ := startGateWorker(t, url, worker.Config{Concurrency: 1}, nil)
	env := []string{"NATS_URL=" + url}
	done := make(chan submitResult, 1)
	go func() {
		done <- submit(t, "", env, "map", "gate", "100", "--job", "late", "--timeout", "1s", "--quiet")
	}()
	g.waitEntered(t, 100)
	r := <-done
	if r.code != 3 || !strings.Contains(r.stderr, "timed out") {
		t.Fatalf("named map past its timeout: exit %d\n%s%s", r.code, r.out, r.stderr)
	}
	if st := jobStatus(t, env, "late"); st.Cancelled != 0 || st.Running != 1 {
		t.Fatalf("job after the timeout: %+v; want its task running, none cancelled", st)
	}
	g.release()
	if r := submit(t, "", env, "map", "gate", "100", "--job", "late", "--quiet"); r.code != 0 || r.out != "100\n" {
		t.Fatalf("named map run again: exit %d\n%s%s", r.code, r.out, r.stderr)
	}
}

// TestNamedMapRetentionOfAJobThatExists: a job keeps the retention it was
// made with; a map of it with another --retention exits 2 and says which
// it keeps, and one with the same runs.
func TestNamedMapRetentionOfAJobThatExists(t *testing.T) {
	url := startBroker(t, embedded.Config{})
	startGateWorker(t, url, worker.Config{Concurrency: 1}, nil)
	env := []string{"NATS_URL=" + url}
	if r := submit(t, "", env, "map", "gate", "1", "2", "--job", "kept", "--retention", "1h", "--quiet"); r.code != 0 || r.out != "1\n2\n" {
		t.Fatalf("map: exit %d\n%s%s", r.code, r.out, r.stderr)
	}
	r := submit(t, "", env, "map", "gate", "1", "2", "--job", "kept", "--retention", "2h", "--quiet")
	if r.code != submitcli.ExitUsage || r.out != "" || !strings.Contains(r.stderr, `job "kept" exists and keeps its records for 1h0m0s`) {
		t.Fatalf("map with another retention: exit %d\n%s%s", r.code, r.out, r.stderr)
	}
	if r := submit(t, "", env, "map", "gate", "1", "2", "--job", "kept", "--retention", "1h", "--quiet"); r.code != 0 || r.out != "1\n2\n" {
		t.Fatalf("map with the same retention: exit %d\n%s%s", r.code, r.out, r.stderr)
	}
	if st := jobStatus(t, env, "kept"); st.Retention != 3600 || !st.InputEnded || !st.Finished {
		t.Fatalf("job: %+v; want kept 1h, its input ended, finished", st)
	}
}
