package submitcli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/broker/embedded"
	"github.com/jetpool/jetpool/builtin"
	"github.com/jetpool/jetpool/executor"
	"github.com/jetpool/jetpool/task"
	"github.com/jetpool/jetpool/worker"
)

// testMainEnv makes this test binary the submit command, for the processes
// that bench --runs starts.
const testMainEnv = "SUBMITCLI_TEST_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(testMainEnv) == "1" {
		os.Exit(Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	goleak.VerifyTestMain(m)
}

// testPool keeps fault paths short.
var testPool = broker.PoolConfig{AckWait: 2 * time.Second, Grace: 2 * time.Second}

// run runs the command line with stdin and returns its exit code and output.
func run(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

// startBroker starts an embedded server for one test and points NATS_URL
// at it.
func startBroker(t *testing.T) string {
	t.Helper()
	srv, err := embedded.Start(embedded.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	t.Setenv("NATS_URL", srv.ClientURL())
	return srv.ClientURL()
}

func conn(t *testing.T, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// startWorker serves the built-in tasks on url until the test ends.
func startWorker(t *testing.T, url string) *worker.Worker {
	t.Helper()
	reg := task.NewRegistry()
	builtin.Register(reg, builtin.Config{})
	w, err := worker.New(conn(t, url), reg, worker.Config{Concurrency: 4, PoolConfig: testPool})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("worker did not stop")
		}
	})
	return w
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestUsageErrors: bad command lines and settings exit with 2 and say what
// is wrong, before anything connects.
func TestUsageErrors(t *testing.T) {
	t.Setenv("NATS_URL", "nats://127.0.0.1:1") // nothing listens: usage must fail first
	cases := []struct {
		name string
		args []string
		want string // in stderr
	}{
		{"no command", nil, "Usage"},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"unknown flag", []string{"map", "square", "1", "--bogus"}, "flag provided but not defined: -bogus"},
		{"map without kind", []string{"map"}, "missing KIND"},
		{"invalid kind", []string{"map", "sq uare", "1"}, "invalid kind"},
		{"empty kind", []string{"run", "", "1"}, "invalid kind"},
		{"chunksize zero", []string{"map", "square", "1", "--chunksize", "0"}, "--chunksize"},
		{"chunksize negative", []string{"map", "square", "1", "--chunksize", "-1"}, "--chunksize"},
		{"chunksize not a number", []string{"map", "square", "1", "--chunksize", "abc"}, "invalid value \"abc\""},
		{"timeout not a duration", []string{"map", "square", "1", "--timeout", "soon"}, "invalid value \"soon\""},
		{"negative timeout", []string{"run", "square", "1", "--timeout", "-1s"}, "--timeout"},
		{"run without argument", []string{"run", "square"}, "want KIND and one JSON ARG"},
		{"run with bad JSON", []string{"run", "square", "{"}, `argument 1 "{": not JSON`},
		{"map with bad JSON argument", []string{"map", "square", "[1,"}, "argument 1"},
		{"embedded with no workers", []string{"map", "square", "1", "--embedded", "--workers", "0"}, "--workers 0: want 1 to 256"},
		{"embedded with too many workers", []string{"map", "square", "1", "--embedded", "--workers", "100000"}, "--workers 100000: want 1 to 256"},
		{"server port out of range", []string{"map", "square", "1", "--server", "nats://127.0.0.1:99999"}, "out of range"},
		{"server with a bad scheme", []string{"run", "square", "1", "-s", "http://127.0.0.1:4222"}, "want nats, tls, ws or wss"},
		{"creds file missing", []string{"run", "square", "1", "--creds", "/nonexistent/user.creds"}, "creds file"},
		{"cert without key", []string{"run", "square", "1", "--tlscert", "/etc/hostname"}, "needs its key"},
		{"download without --to", []string{"download", "http://127.0.0.1/a"}, "missing --to"},
		{"copy without --to", []string{"copy", "/etc/hostname"}, "missing --to"},
		{"download with nothing to do", []string{"download", "--to", "/tmp"}, "nothing to do"},
		{"status with an argument", []string{"status", "extra"}, "takes no arguments"},
		{"status with no wait", []string{"status", "--wait", "0s"}, "--wait 0s: want more than 0"},
		{"status of an invalid pool", []string{"status", "--pool", "a.b"}, "--pool: not a valid name"},
		{"cancel of an invalid kind", []string{"cancel", "--kind", "a b"}, "invalid kind"},
		{"cancel --purge of one producer", []string{"cancel", "--purge", "--producer", "abc"}, "cannot be limited"},
		{"bench with no tasks", []string{"bench", "--tasks", "0"}, "must be positive"},
		{"bench with no runs", []string{"bench", "--runs", "0"}, "must be positive"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := run(t, "", c.args...)
			if code != ExitUsage {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, ExitUsage, errOut)
			}
			if !strings.Contains(errOut, c.want) {
				t.Fatalf("stderr does not say %q:\n%s", c.want, errOut)
			}
			if out != "" {
				t.Fatalf("stdout not empty: %q", out)
			}
		})
	}
}

func TestHelpShowsExamples(t *testing.T) {
	for _, cmd := range []string{"map", "run", "download", "copy", "status", "cancel", "kinds", "bench"} {
		code, _, errOut := run(t, "", cmd, "--help")
		if code != ExitOK || !strings.Contains(errOut, "Examples:") || !strings.Contains(errOut, "submit "+cmd) {
			t.Errorf("%s --help: exit %d\n%s", cmd, code, errOut)
		}
	}
}

// TestBenchRuns: --runs measures everything that many times, each run in a
// process of its own, and ends with one summary line per figure, ratios
// included, in the order measured.
func TestBenchRuns(t *testing.T) {
	t.Setenv(testMainEnv, "1")
	code, out, errs := run(t, "", "bench", "--runs", "2", "--tasks", "50", "--map-items", "200",
		"--chunksize", "10", "--latency-samples", "20", "--memory-items", "0", "--concurrency", "8")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	runs := strings.Count(out, "# run ")
	_, summary, ok := strings.Cut(out, "# median (min-max) of 2 runs\n")
	if runs != 2 || !ok {
		t.Fatalf("want two runs and a summary, got:\n%s", out)
	}
	lines := strings.Split(strings.TrimSpace(summary), "\n")
	want := []string{
		"raw ceiling: publish->pull->ack->reply", "raw ceiling latency p50", "raw ceiling latency p99",
		"submit->result, chunk 1", "submit->result, NATSAutoBatch(10)", "map 200 ints, chunksize 10",
		"raw ceiling, 10 items a message",
		"submit->result latency p50", "submit->result latency p99",
		"named job: submit->result, chunk 1", "named job: map 200 ints, chunksize 10",
		"resume 180 of 200 done, chunksize 10: first stored result", "resume 180 of 200 done, chunksize 10: first new result",
		"resume 180 of 200 done, chunksize 10: all results", "resume 180 of 200 done, chunksize 10: tasks run again",
		"submit throughput / raw ceiling", "latency p50 / raw ceiling p50", "map throughput / batched raw ceiling",
		"named job submit / submit", "named job map / map",
	}
	if len(lines) != len(want) {
		t.Fatalf("summary has %d lines, want %d:\n%s", len(lines), len(want), summary)
	}
	for i, name := range want {
		if !strings.HasPrefix(lines[i], name+" ") || !strings.HasSuffix(lines[i], ")") {
			t.Errorf("summary line %d = %q, want %q with its range", i, lines[i], name)
		}
	}
}

// TestHelpShowsNoSecret: with every secret the connection reads in the
// environment, no help shows one; the connection flags say what is set.
func TestHelpShowsNoSecret(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{
		"NATS_URL":      "nats://alice:s3cret@127.0.0.1:4222",
		"NATS_PASSWORD": "hunter2-password",
		"NATS_TOKEN":    "t0ken-value",
		"NATS_NKEY":     filepath.Join(dir, "seed.nk"),
		"NATS_CREDS":    filepath.Join(dir, "user.creds"),
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	secrets := []string{"alice", "s3cret", env["NATS_PASSWORD"], env["NATS_TOKEN"], env["NATS_NKEY"], env["NATS_CREDS"], dir}
	helps := [][]string{{"--help"}, {"-h"}, {"help"}}
	for _, c := range commands() {
		helps = append(helps, []string{c.name, "--help"}, []string{c.name, "-h"})
	}
	for _, args := range helps {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, out, errOut := run(t, "", args...)
			if code != ExitOK {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, ExitOK, errOut)
			}
			for _, s := range secrets {
				if strings.Contains(out+errOut, s) {
					t.Errorf("the help shows %q:\n%s%s", s, out, errOut)
				}
			}
			if !strings.Contains(errOut, "-password") {
				return // a command that does not connect
			}
			for _, want := range []string{"NATS_URL; default nats://xxxxx@127.0.0.1:4222", "NATS_PASSWORD; set", "NATS_TOKEN; set", "NATS_NKEY; set", "NATS_CREDS; set"} {
				if !strings.Contains(errOut, want) {
					t.Errorf("the help does not say %q:\n%s", want, errOut)
				}
			}
		})
	}
}

func TestPasswordNeverPrinted(t *testing.T) {
	startBroker(t) // no users configured: the password is refused or ignored, never echoed
	_, out, errOut := run(t, "", "run", "square", "1", "--server", "nats://ada:hunter2@127.0.0.1:99999")
	if strings.Contains(out+errOut, "hunter2") {
		t.Fatalf("the password appears in the output:\n%s%s", out, errOut)
	}
}

// TestMapAndRun runs the commands against a broker and a worker as a user
// would and checks outputs and exit codes.
func TestMapAndRun(t *testing.T) {
	url := startBroker(t)
	startWorker(t, url)

	code, out, errOut := run(t, "", "map", "square", "1", "2", "3", "--chunksize", "2")
	if code != ExitOK || out != "1\n4\n9\n" {
		t.Fatalf("map square 1 2 3: exit %d, out %q, err %s", code, out, errOut)
	}
	var lines strings.Builder
	var want strings.Builder
	for i := 1; i <= 200; i++ {
		fmt.Fprintln(&lines, i)
		fmt.Fprintln(&want, i*i)
	}
	code, out, errOut = run(t, lines.String(), "map", "square", "--chunksize", "16")
	if code != ExitOK || out != want.String() {
		t.Fatalf("map from stdin: exit %d, %d bytes out, err %s", code, len(out), errOut)
	}
	code, out, _ = run(t, "", "run", "square", "7")
	if code != ExitOK || out != "49\n" {
		t.Fatalf("run square 7: exit %d, out %q", code, out)
	}
	code, out, _ = run(t, "", "run", "say-hi", "ada")
	var hi map[string]any
	if code != ExitOK || json.Unmarshal([]byte(out), &hi) != nil || !strings.Contains(fmt.Sprint(hi), "ada") {
		t.Fatalf("run say-hi ada: exit %d, out %q", code, out)
	}

	// A task that fails: its line is an error object, the others print, exit 1.
	code, out, _ = run(t, "", "map", "sleep", "--", "2", "-1", "4")
	outLines := strings.Split(strings.TrimSpace(out), "\n")
	if code != ExitTaskFailed || len(outLines) != 3 || outLines[0] != "2" || outLines[2] != "4" || !strings.Contains(outLines[1], `"type":"bad_input"`) {
		t.Fatalf("map with a bad input: exit %d, out %q", code, out)
	}
	// Timeouts exit 3.
	if code, _, errOut := run(t, "", "run", "sleep", "5000", "--timeout", "300ms"); code != ExitTimeout {
		t.Fatalf("run sleep past its timeout: exit %d, %s", code, errOut)
	}
	if code, _, errOut := run(t, "", "map", "sleep", "1", "5000", "--timeout", "500ms"); code != ExitTimeout || !strings.Contains(errOut, "timed out") {
		t.Fatalf("map sleep past its timeout: exit %d, %s", code, errOut)
	}
	// Bad JSON in the middle of stdin: what came before prints, exit 2.
	code, out, errOut = run(t, "1\n2\n{oops\n4\n", "map", "square")
	if code != ExitUsage || out != "1\n4\n" || !strings.Contains(errOut, "line 3") {
		t.Fatalf("map with bad stdin: exit %d, out %q, err %s", code, out, errOut)
	}
	// An invalid pool name is refused before anything is submitted.
	if code, _, errOut := run(t, "", "map", "square", "1", "--pool", "a b"); code != ExitUsage {
		t.Fatalf("invalid pool: exit %d, %s", code, errOut)
	}
}

// TestDownloadAndCopy runs the file flows against a loopback HTTP server and
// temporary directories.
func TestDownloadAndCopy(t *testing.T) {
	url := startBroker(t)
	startWorker(t, url)
	big := bytes.Repeat([]byte("0123456789"), 10_000)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/a.txt":
			w.Write([]byte("hello"))
		case "/big.bin":
			w.Write(big)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(web.Close)

	dir := t.TempDir()
	code, out, errOut := run(t, "", "download", web.URL+"/a.txt", web.URL+"/missing.txt", web.URL+"/big.bin", "--to", dir)
	if code != ExitTaskFailed {
		t.Fatalf("download: exit %d, want 1 for the missing file; %s", code, errOut)
	}
	var got []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		got = append(got, m)
	}
	if len(got) != 3 || got[0]["source"] != web.URL+"/a.txt" || got[0]["bytes"] != 5.0 ||
		got[1]["error"] == nil || got[2]["bytes"] != float64(len(big)) {
		t.Fatalf("download lines: %v", got)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "a.txt")); err != nil || string(b) != "hello" {
		t.Fatalf("a.txt = %q, %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "big.bin")); err != nil || !bytes.Equal(b, big) {
		t.Fatalf("big.bin: %d bytes, %v", len(b), err)
	}

	src := t.TempDir()
	for name, body := range map[string]string{"x.csv": "1,2\n", "y.csv": "3,4\n"} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dst := t.TempDir()
	stdin := filepath.Join(src, "x.csv") + "\n" + filepath.Join(src, "nope.csv") + "\n" + filepath.Join(src, "y.csv") + "\n"
	code, out, errOut = run(t, stdin, "copy", "--to", dst)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != ExitTaskFailed || len(lines) != 3 || !strings.Contains(lines[1], `"error"`) || !strings.Contains(lines[2], `"bytes":4`) {
		t.Fatalf("copy: exit %d, out %q, err %s", code, out, errOut)
	}
	for name, body := range map[string]string{"x.csv": "1,2\n", "y.csv": "3,4\n"} {
		if b, err := os.ReadFile(filepath.Join(dst, name)); err != nil || string(b) != body {
			t.Fatalf("%s = %q, %v", name, b, err)
		}
	}
	if code, out, _ := run(t, "", "copy", filepath.Join(src, "x.csv"), "--to", t.TempDir()); code != ExitOK || !strings.Contains(out, `"sha256"`) {
		t.Fatalf("copy of one good file: exit %d, out %q", code, out)
	}
}

// fileLines decodes the JSON lines download and copy print.
func fileLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var got []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		got = append(got, m)
	}
	return got
}

// checkWritten fails the test unless line reports path, and path holds body
// with the reported size and digest.
func checkWritten(t *testing.T, line map[string]any, path, body string) {
	t.Helper()
	b, err := os.ReadFile(path)
	sum := sha256.Sum256(b)
	if err != nil || string(b) != body || line["path"] != path || line["bytes"] != float64(len(b)) || line["sha256"] != hex.EncodeToString(sum[:]) {
		t.Fatalf("line %v; %s holds %q (%x), %v; want %q", line, path, b, sum, err, body)
	}
}

// errorType is the type of the error a line reports, or "".
func errorType(line map[string]any) string {
	e, _ := line["error"].(map[string]any)
	typ, _ := e["type"].(string)
	return typ
}

// TestFilesGoIntoADirectory: the case from the field. Sources with one base
// name and a --to that does not exist: the directory is made, the second
// source of a name is refused with an error line and exit 1, and every line
// that reports a file matches the file on disk. download follows the same
// rules.
func TestFilesGoIntoADirectory(t *testing.T) {
	url := startBroker(t)
	startWorker(t, url)
	src := t.TempDir()
	for name, body := range map[string]string{"x1/f": "one", "x2/f": "two", "www/hello.txt": "hello"} {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	x1, x2, hello := filepath.Join(src, "x1", "f"), filepath.Join(src, "x2", "f"), filepath.Join(src, "www", "hello.txt")
	dir := filepath.Join(t.TempDir(), "new")

	code, out, errOut := run(t, "", "copy", x1, x2, hello, "--to", dir)
	lines := fileLines(t, out)
	if code != ExitTaskFailed || len(lines) != 3 {
		t.Fatalf("copy: exit %d, want 1; out %q, err %s", code, out, errOut)
	}
	checkWritten(t, lines[0], filepath.Join(dir, "f"), "one")
	if errorType(lines[1]) != "duplicate_name" || lines[1]["source"] != x2 || !strings.Contains(fmt.Sprint(lines[1]), x1) {
		t.Fatalf("second source named f: %v, want duplicate_name naming the first", lines[1])
	}
	checkWritten(t, lines[2], filepath.Join(dir, "hello.txt"), "hello")
	if names, _ := os.ReadDir(dir); len(names) != 2 {
		t.Fatalf("%s holds %d entries, want f and hello.txt", dir, len(names))
	}

	// A later job does not replace the file with other bytes; the same bytes
	// again are fine.
	code, out, _ = run(t, "", "copy", x2, x1, "--to", dir)
	if lines := fileLines(t, out); code != ExitTaskFailed || len(lines) != 2 || errorType(lines[0]) != "exists" || errorType(lines[1]) != "duplicate_name" {
		t.Fatalf("copy over a file: exit %d, out %q", code, out)
	}
	code, out, _ = run(t, "", "copy", x1, "--to", dir)
	if code != ExitOK {
		t.Fatalf("copy of the same file again: exit %d, out %q", code, out)
	}
	checkWritten(t, fileLines(t, out)[0], filepath.Join(dir, "f"), "one")

	// A --to that is a file is refused for every source, and left alone.
	code, out, _ = run(t, "", "copy", x1, hello, "--to", hello)
	if lines := fileLines(t, out); code != ExitTaskFailed || len(lines) != 2 || errorType(lines[0]) != "not_directory" || errorType(lines[1]) != "not_directory" {
		t.Fatalf("copy --to a file: exit %d, out %q", code, out)
	}
	if b, _ := os.ReadFile(hello); string(b) != "hello" {
		t.Fatalf("the file given as --to now holds %q", b)
	}

	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(r.URL.Path)) }))
	t.Cleanup(web.Close)
	into := filepath.Join(t.TempDir(), "a", "b")
	code, out, errOut = run(t, "", "download", web.URL+"/p/data.csv", web.URL+"/q/data.csv", web.URL+"/r/other.csv", "--to", into)
	lines = fileLines(t, out)
	if code != ExitTaskFailed || len(lines) != 3 || errorType(lines[1]) != "duplicate_name" {
		t.Fatalf("download into a missing directory: exit %d, out %q, err %s", code, out, errOut)
	}
	checkWritten(t, lines[0], filepath.Join(into, "data.csv"), "/p/data.csv")
	checkWritten(t, lines[2], filepath.Join(into, "other.csv"), "/r/other.csv")
	code, out, _ = run(t, "", "download", web.URL+"/s.csv", "--to", hello)
	if lines := fileLines(t, out); code != ExitTaskFailed || len(lines) != 1 || errorType(lines[0]) != "not_directory" {
		t.Fatalf("download --to a file: exit %d, out %q", code, out)
	}
}

// TestStatusListsWorkersAndQueues: status shows the stream, each kind's
// consumer and the workers online through service discovery.
func TestStatusListsWorkersAndQueues(t *testing.T) {
	url := startBroker(t)
	code, out, _ := run(t, "", "status")
	if code != ExitOK || !strings.Contains(out, "no stream JETPOOL_DEFAULT yet") || !strings.Contains(out, "0 workers online") {
		t.Fatalf("status of an empty broker: exit %d\n%s", code, out)
	}
	w := startWorker(t, url)
	if code, _, errOut := run(t, "", "map", "square", "1", "2"); code != ExitOK {
		t.Fatalf("map: %d %s", code, errOut)
	}
	code, out, errOut := run(t, "", "status", "--json")
	if code != ExitOK {
		t.Fatalf("status --json: exit %d, %s", code, errOut)
	}
	var st Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	if !st.Exists || len(st.Workers) != 1 || st.Workers[0].Worker != w.ID() || st.Workers[0].Slots != 4 || st.Workers[0].Succeeded != 2 {
		t.Fatalf("status: %+v", st)
	}
	kinds := map[string]bool{}
	for _, k := range st.Kinds {
		kinds[k.Kind] = true
	}
	if !kinds["square"] || !kinds["sleep"] || !strings.Contains(strings.Join(st.Workers[0].Kinds, ","), "download") {
		t.Fatalf("kinds %v, worker kinds %v", kinds, st.Workers[0].Kinds)
	}
	code, out, _ = run(t, "", "status")
	if code != ExitOK || !strings.Contains(out, "1 workers online") || !strings.Contains(out, w.ID()) || !strings.Contains(out, "SLOTS") {
		t.Fatalf("status:\n%s", out)
	}
	// Another pool's status does not list this pool's worker.
	if code, out, _ := run(t, "", "status", "--pool", "other"); code != ExitOK || !strings.Contains(out, "0 workers online") {
		t.Fatalf("status --pool other:\n%s", out)
	}
}

// TestCancelPendingWork: with no worker running, a producer's queued tasks
// are cancelled on request; a worker started afterwards drops them without
// running them, and --purge empties the stream of what is left.
func TestCancelPendingWork(t *testing.T) {
	url := startBroker(t)
	nc := conn(t, url)
	ex, err := executor.NewNATS(t.Context(), nc, executor.NATSPoolConfig(testPool))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ex.Shutdown(context.Background(), false, true) })
	var fs []*executor.Future[int]
	for i := range 30 {
		f, err := executor.Submit(t.Context(), ex, builtin.Sleep, 5000+i)
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, f)
	}
	keep, err := executor.Submit(t.Context(), ex, builtin.Square, 3)
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, "", "cancel", "--kind", "sleep")
	if code != ExitOK || !strings.Contains(out, "30 tasks cancelled, 0 running") || !strings.Contains(out, ex.ID()) {
		t.Fatalf("cancel: exit %d\n%s%s", code, out, errOut)
	}
	for i, f := range fs {
		if !f.Cancelled() {
			t.Fatalf("future %d not cancelled", i)
		}
	}
	if keep.Cancelled() {
		t.Fatal("a task of another kind was cancelled")
	}
	w := startWorker(t, url)
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	if v, err := keep.Result(ctx); err != nil || v != 9 {
		t.Fatalf("square(3) = %d, %v", v, err)
	}
	eventually(t, "the cancelled chunks dropped", func() bool { return w.Stats().ChunksDropped == 30 })
	if got := w.Stats().ChunksStarted; got != 1 {
		t.Fatalf("%d chunks started, want only the square", got)
	}

	// Orphaned chunks: a producer that is gone left them queued.
	if err := ex.Shutdown(t.Context(), false, false); err != nil {
		t.Fatal(err)
	}
	js, _ := nc.JetStream()
	for range 5 {
		if _, err := js.Publish("jetpool.default.tasks.orphan", []byte{0xc0}); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errOut = run(t, "", "cancel", "--purge")
	if code != ExitOK || !strings.Contains(out, "5 queued chunks removed") {
		t.Fatalf("cancel --purge: exit %d\n%s%s", code, out, errOut)
	}
}

// TestSubmitUnderLeastPrivilege runs `submit run` and `submit map` as a
// producer user of docs/security.conf, which may read only its own control
// subjects and inbox: --name and --inbox-prefix make the CLI use those.
func TestSubmitUnderLeastPrivilege(t *testing.T) {
	srv, err := embedded.Start(embedded.Config{ConfigFile: "../../../docs/security.conf"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	wnc, err := broker.Connect(broker.ConnectOptions{URL: srv.ClientURL(), User: "worker", Password: "worker-secret", InboxPrefix: "_INBOX.worker"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(wnc.Close)
	reg := task.NewRegistry()
	builtin.Register(reg, builtin.Config{})
	w, err := worker.New(wnc, reg, worker.Config{Pool: "batch", Concurrency: 2, PoolConfig: testPool})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	t.Setenv("NATS_URL", srv.ClientURL())
	t.Setenv("NATS_USER", "producer")
	t.Setenv("NATS_PASSWORD", "producer-secret")
	t.Setenv("NATS_INBOX_PREFIX", "_INBOX.producer")
	t.Setenv("JETPOOL_POOL", "batch")
	code, out, errOut := run(t, "", "run", "square", "7", "--name", "producer")
	if code != ExitOK || out != "49\n" {
		t.Fatalf("run square 7 --name producer: exit %d, out %q, err %s", code, out, errOut)
	}
	t.Setenv("JETPOOL_NAME", "producer")
	code, out, errOut = run(t, "", "map", "square", "1", "2", "3")
	if code != ExitOK || out != "1\n4\n9\n" {
		t.Fatalf("map square 1 2 3 with JETPOOL_NAME: exit %d, out %q, err %s", code, out, errOut)
	}
	// Without the name, its control subjects are not the user's to read.
	t.Setenv("JETPOOL_NAME", "")
	if code, _, errOut := run(t, "", "run", "square", "7", "--timeout", "5s"); code == ExitOK {
		t.Fatalf("run without --name under a user scoped to its name succeeded: %s", errOut)
	}
}
