package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// envRunMain makes the test binary run main instead of the tests.
const envRunMain = "JETPOOL_TEST_RUN_SUBMIT_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(envRunMain) == "1" {
		main()
		return
	}
	goleak.VerifyTestMain(m)
}

// mainCmd runs this binary as the submit command.
func mainCmd(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), envRunMain+"=1")
	return cmd
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--help"}, 0, "Usage: submit COMMAND"},
		{[]string{}, 2, "Commands:"},
		{[]string{"map", "square", "1", "--chunksize", "x"}, 2, `invalid value "x" for flag -chunksize`},
		{[]string{"map", "square", "3", "--embedded", "--workers", "1"}, 0, "9"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, err := mainCmd(tt.args...).CombinedOutput()
			code := 0
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				code = exit.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.code || !strings.Contains(string(out), tt.want) {
				t.Errorf("exit %d with %q, want %d with %q", code, out, tt.code, tt.want)
			}
		})
	}
}

// TestSIGTERMEndsTheEmbeddedPool sends SIGTERM to submit while its embedded
// pool's worker runs a download that never ends: submit exits at once with
// 130, and its worker process is gone before it.
func TestSIGTERMEndsTheEmbeddedPool(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("finds the worker processes in /proc")
	}
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case arrived <- struct{}{}:
		default:
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(web.Close)
	t.Cleanup(func() { close(release) })

	stderr, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	cmd := mainCmd("download", web.URL+"/never", "--to", t.TempDir(), "--embedded", "--workers", "1", "--quiet")
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	var workers []int
	t.Cleanup(func() {
		select {
		case <-waited:
		default:
			cmd.Process.Kill()
			<-waited
		}
		for _, pid := range workers {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})

	select {
	case <-arrived:
	case err := <-waited:
		waited <- err
		t.Fatalf("submit exited before its download started: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("the download did not start in a minute")
	}
	workers = childPids(t, cmd.Process.Pid)
	if len(workers) != 1 {
		t.Fatalf("submit runs %d worker processes (%v), want 1", len(workers), workers)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-waited:
		waited <- err
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 130 {
			out, _ := os.ReadFile(stderr.Name())
			t.Errorf("submit ended with %v after SIGTERM, want exit 130; stderr:\n%s", err, out)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("submit still runs 20s after SIGTERM")
	}
	for _, pid := range workers {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("worker process %d outlived submit (kill 0: %v)", pid, err)
		}
	}
}

// childPids returns the running processes that pid started, from /proc.
func childPids(t *testing.T, pid int) []int {
	t.Helper()
	files, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue // the thread has ended
		}
		for _, field := range strings.Fields(string(data)) {
			n, err := strconv.Atoi(field)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			pids = append(pids, n)
		}
	}
	return pids
}

// tmuxPane runs script in a shell in a detached tmux session of its own and
// returns a function that reads the session's screen. The server is killed
// when the test ends.
func tmuxPane(t *testing.T, name, script string) (screen func() string) {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("tmux is required for the terminal test when CI=true")
		}
		t.Skip("no tmux")
	}
	socket := "jetpool-test-" + strconv.Itoa(os.Getpid()) + "-" + name
	tmux := func(args ...string) (string, error) {
		out, err := exec.Command("tmux", append([]string{"-L", socket}, args...)...).CombinedOutput()
		return string(out), err
	}
	if out, err := tmux("new-session", "-d", "-s", name, "-x", "150", "-y", "20", "sh", "-c", script); err != nil {
		t.Fatalf("tmux: %v\n%s", err, out)
	}
	t.Cleanup(func() { tmux("kill-server") })
	return func() string {
		out, err := tmux("capture-pane", "-p", "-t", name)
		if err != nil {
			t.Fatalf("capture-pane: %v\n%s", err, out)
		}
		return out
	}
}

// TestProgressBarInATerminal runs a map in a real terminal (tmux) and reads
// the screen: the bar draws with counts, rate and ETA while the job runs, and
// ends on its own line at the final count, leaving the terminal clean.
func TestProgressBarInATerminal(t *testing.T) {
	const n = 60
	args := make([]string, n)
	for i := range args {
		args[i] = "150"
	}
	script := fmt.Sprintf("%s=1 %s map sleep %s --embedded --workers 2 --worker-concurrency 3 > /dev/null; echo EXIT=$?; sleep 60",
		envRunMain, os.Args[0], strings.Join(args, " "))
	capture := tmuxPane(t, "bar", script)

	running := regexp.MustCompile(`\[#*\.+\] (\d+)/60  failed 0  \d+/s  ETA \S+`)
	final := regexp.MustCompile(`(?m)^\[#{30}\] 60/60  failed 0  \d+/s  ETA 0s\s*\nEXIT=0\s*$`)
	sawRunning := false
	deadline := time.Now().Add(60 * time.Second)
	var screen string
	for time.Now().Before(deadline) {
		screen = capture()
		if m := running.FindStringSubmatch(screen); m != nil {
			if done, _ := strconv.Atoi(m[1]); done > 0 && done < n {
				sawRunning = true
			}
		}
		if strings.Contains(screen, "EXIT=") {
			break
		}
		time.Sleep(50 * time.Millisecond) // the screen has no way to say it changed
	}
	if !sawRunning {
		t.Errorf("never saw the bar part way through; last screen:\n%s", screen)
	}
	if !final.MatchString(strings.TrimRight(screen, "\n ")) {
		t.Fatalf("the bar did not end cleanly at 60/60 followed by the exit line; screen:\n%s", screen)
	}
}

// TestProgressBarFromStdin: with the inputs on standard input, the bar
// shows what is done and the rate while the input is still open, results
// included (they do not wait for the input to end), and the total and ETA
// once it has ended.
func TestProgressBarFromStdin(t *testing.T) {
	dir := t.TempDir()
	more := filepath.Join(dir, "more")
	// 30 inputs, then the input stays open until the test creates the
	// file "more", then 30 more and the end of the input.
	script := fmt.Sprintf(`(i=0; while [ $i -lt 30 ]; do echo 150; i=$((i+1)); done; `+
		`while [ ! -e %s ]; do sleep 0.05; done; `+
		`i=0; while [ $i -lt 30 ]; do echo 150; i=$((i+1)); done) | `+
		`%s=1 %s map sleep --embedded --workers 2 --worker-concurrency 3 > %s; echo EXIT=$?; sleep 60`,
		more, envRunMain, os.Args[0], filepath.Join(dir, "out"))
	capture := tmuxPane(t, "stdin", script)

	open := regexp.MustCompile(`(\d+) done  failed 0  \d+/s  \(input still open\)`)
	final := regexp.MustCompile(`(?m)^\[#{30}\] 60/60  failed 0  \d+/s  ETA 0s\s*\nEXIT=0\s*$`)
	deadline := time.Now().Add(60 * time.Second)
	var screen string
	for {
		screen = capture()
		if m := open.FindStringSubmatch(screen); m != nil && m[1] == "30" {
			break // every input so far is done, and the input is open
		}
		if time.Now().After(deadline) {
			t.Fatalf("never saw 30 done with the input still open; last screen:\n%s", screen)
		}
		time.Sleep(50 * time.Millisecond) // the screen has no way to say it changed
	}
	if out, err := os.ReadFile(filepath.Join(dir, "out")); err != nil || strings.Count(string(out), "150\n") != 30 {
		t.Errorf("with 30 done and the input open, the output holds %q (%v), want 30 results", out, err)
	}
	if err := os.WriteFile(more, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for !strings.Contains(screen, "EXIT=") {
		if time.Now().After(deadline) {
			t.Fatalf("the map did not end; last screen:\n%s", screen)
		}
		time.Sleep(50 * time.Millisecond)
		screen = capture()
	}
	if !final.MatchString(strings.TrimRight(screen, "\n ")) {
		t.Fatalf("the bar did not end at 60/60 with its ETA once the input ended; screen:\n%s", screen)
	}
}
