package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jetpool/jetpool/broker/embedded"
	"github.com/jetpool/jetpool/task"
	"github.com/jetpool/jetpool/worker"
)

// nowhere is a server address nothing listens on: a command that tried to
// connect would exit 4, so an exit 2 shows it refused its input first.
var nowhere = []string{"NATS_URL=nats://127.0.0.1:1"}

// TestInputErrorsInWords: arguments that a built-in kind cannot take are
// refused before anything connects, with exit 2, naming the argument, what
// the kind takes and what it was given.
func TestInputErrorsInWords(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"map", "square", "x"}, `submit: argument 1 "x": square takes an integer, got a string`},
		{[]string{"map", "square", "1", "2", `"two"`}, `submit: argument 3 "\"two\"": square takes an integer, got a string`},
		{[]string{"run", "sleep", "1.5"}, `submit: argument 1 "1.5": sleep takes an integer, got the number 1.5`},
		{[]string{"run", "square", "null"}, `submit: argument 1 "null": square takes an integer, got null`},
		{[]string{"map", "say-hi", "ada", "42"}, `submit: argument 2 "42": say-hi takes a string, got a number`},
		{[]string{"map", "copy", `{"src":"/a","dest":"/b","mode":1}`},
			`submit: argument 1 "{\"src\":\"/a\",\"dest\":\"/b\",\"mode\":1}": copy takes an object with the fields "src", "dest", which has no field "mode"`},
		{[]string{"run", "download", `{"url":5,"dest":"/d"}`},
			`submit: argument 1 "{\"url\":5,\"dest\":\"/d\"}": download takes an object with the fields "url", "dest", "name": its "url" is a string, got a number`},
		{[]string{"map", "square", "[1,"}, `submit: argument 1 "[1,": not JSON: it ends too soon`},
		{[]string{"map", "nosuch", "1", "{oops"}, `submit: argument 2 "{oops": not JSON: invalid character 'o' looking for beginning of object key string`},
		{[]string{"map", "nosuch", "1 2"}, `submit: argument 1 "1 2": more than one JSON value`},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			r := submit(t, "", nowhere, c.args...)
			if r.code != 2 || strings.TrimSpace(r.stderr) != c.want || r.out != "" {
				t.Fatalf("exit %d, stdout %q, stderr:\n%s\nwant exit 2, no output and:\n%s", r.code, r.out, r.stderr, c.want)
			}
		})
	}
}

// TestJSONInputsHonourJSONTags: a struct input written as users write JSON
// arrives whole, and a line of standard input of the wrong type stops the
// map after the results before it, naming the line.
func TestJSONInputsHonourJSONTags(t *testing.T) {
	url := startBroker(t, embedded.Config{})
	startWorker(t, url, nil, worker.Config{Concurrency: 2})
	env := []string{"NATS_URL=" + url}
	src := filepath.Join(t.TempDir(), "in.txt")
	if err := os.WriteFile(src, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	r := submit(t, "", env, "run", "copy", fmt.Sprintf(`{"src": %q, "dest": %q}`, src, dst))
	var res map[string]any
	if r.code != 0 || json.Unmarshal([]byte(r.out), &res) != nil || res["path"] != filepath.Join(dst, "in.txt") || res["bytes"] != 4.0 {
		t.Fatalf("run copy: exit %d, stdout %q, stderr %s", r.code, r.out, r.stderr)
	}
	r = submit(t, "1\n\n\"x\"\n3\n", env, "map", "square")
	if r.code != 2 || r.out != "1\n" || strings.TrimSpace(r.stderr) != `submit: line 3 "\"x\"": square takes an integer, got a string` {
		t.Fatalf("map with a string on line 3: exit %d, stdout %q, stderr:\n%s", r.code, r.out, r.stderr)
	}
}

// TestBadSettingsExit2: a bad setting exits 2 before anything connects or
// starts, and the message names the one flag or variable that is wrong.
// A pool name is called a pool, never a kind.
func TestBadSettingsExit2(t *testing.T) {
	for _, c := range []struct {
		env  []string
		args []string
		want string
	}{
		{nil, []string{"map", "square", "1", "--replicas", "2", "--embedded"}, "submit map: --replicas 2: want 1 or 3"},
		{nil, []string{"map", "square", "1", "--grace", "-1s", "--embedded"}, "submit map: --grace -1s: want at least 100ms, or 0 for the default"},
		{nil, []string{"run", "square", "1", "--ack-wait", "1ms"}, "submit run: --ack-wait 1ms: want at least 100ms, or 0 for the default"},
		{[]string{"JETPOOL_REPLICAS=2"}, []string{"map", "square", "1"}, `submit map: JETPOOL_REPLICAS="2": want 1 or 3`},
		{[]string{"JETPOOL_GRACE=soon"}, []string{"map", "square", "1"}, `submit map: JETPOOL_GRACE="soon": not a duration such as 30s`},
		{nil, []string{"map", "square", "1", "--chunksize", "0"}, "submit map: --chunksize 0: want at least 1"},
		{nil, []string{"map", "square", "1", "--buffersize", "-3"}, "submit map: --buffersize -3: want at least 1"},
		{nil, []string{"map", "square", "1", "--timeout", "-1s"}, "submit map: --timeout -1s: want 0 (none) or more"},
		{nil, []string{"map", "square", "1", "--embedded", "--workers", "0"}, "submit map: --workers 0: want 1 to 256 worker processes"},
		{nil, []string{"map", "square", "1", "--workers", "2"}, "submit map: --workers: only with --embedded"},
		{nil, []string{"map", "square", "1", "--embedded", "--pool", "batch"}, "submit map: --pool: an --embedded pool has its own broker and its default pool"},
		{nil, []string{"map", "square", "1", "--name", "a.b"}, `submit map: --name: not a valid name: "a.b" has '.' at 1 (allowed: letters, digits, '-', '_')`},
		{nil, []string{"status", "--wait", "0s"}, "submit status: --wait 0s: want more than 0"},
		{nil, []string{"cancel", "--kind", "a b"}, `submit cancel: --kind: task: invalid kind: "a b" has ' ' at 1 (allowed: letters, digits, '-', '_')`},
	} {
		t.Run(strings.Join(append(c.env, c.args...), " "), func(t *testing.T) {
			r := submit(t, "", append(c.env, nowhere...), c.args...)
			if r.code != 2 || strings.TrimSpace(r.stderr) != c.want {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit 2 and:\n%s", r.code, r.stderr, c.want)
			}
		})
	}
	for _, cmd := range [][]string{{"map", "square", "1"}, {"run", "square", "1"}, {"status"}, {"cancel"}, {"kinds"},
		{"download", "http://x/a", "--to", "/tmp"}} {
		for _, pool := range []string{"a b", "a.b", "", strings.Repeat("p", 65)} {
			r := submit(t, "", nowhere, append(cmd, "--pool", pool)...)
			msg := strings.TrimPrefix(r.stderr, "submit "+cmd[0]+": ")
			if r.code != 2 || !strings.HasPrefix(msg, "--pool: not a valid name") || strings.Contains(msg, "kind") {
				t.Errorf("%s --pool %q: exit %d, stderr:\n%s\nwant exit 2 and a message about the pool that does not call it a kind", cmd[0], pool, r.code, r.stderr)
			}
		}
	}
}

// TestLargeInputs: unnamed work takes inputs larger than a message, which
// travel by reference, and gives their results back whole; a named job
// refuses an input larger than a chunk can carry, naming it, its size and
// the limit, with the first above the second, and one chunk too large
// together.
func TestLargeInputs(t *testing.T) {
	url := startBroker(t, embedded.Config{MaxPayload: 64 << 10})
	startWorker(t, url, nil, worker.Config{Concurrency: 2})
	env := []string{"NATS_URL=" + url}
	big := strings.Repeat("x", 100<<10)
	const limit = "the limit is 63 KiB (the server's max_payload less 1 KiB for the chunk around it)"

	greeting := regexp.MustCompile(`"text":"hi (x+)"`)
	greeted := func(out string) []int {
		var sizes []int
		for _, m := range greeting.FindAllStringSubmatch(out, -1) {
			sizes = append(sizes, len(m[1]))
		}
		return sizes
	}
	r := submit(t, "", env, "map", "say-hi", "x", big)
	if got := greeted(r.out); r.code != 0 || !slices.Equal(got, []int{1, len(big)}) {
		t.Errorf("map with a large argument: exit %d, greetings of %v x's, stderr:\n%s\nwant exit 0 and greetings of 1 and %d", r.code, got, r.stderr, len(big))
	}
	r = submit(t, "", env, "run", "say-hi", big)
	if got := greeted(r.out); r.code != 0 || !slices.Equal(got, []int{len(big)}) {
		t.Errorf("run with a large argument: exit %d, greetings of %v x's, stderr:\n%s", r.code, got, r.stderr)
	}

	job := []string{"--job", "large", "--quiet"}
	r = submit(t, "", env, append([]string{"map", "say-hi", "ada", big}, job...)...)
	if want := "submit: argument 2 is too large: its input is 100 KiB, " + limit; r.code != 2 || r.out != "" || strings.TrimSpace(r.stderr) != want {
		t.Errorf("a job's map with a large argument: exit %d, stdout %q, stderr:\n%s\nwant exit 2, nothing printed and:\n%s", r.code, r.out, r.stderr, want)
	}
	r = submit(t, "ada\n"+big+"\nbob\n", env, "map", "say-hi", "--chunksize", "1", "--job", "large-lines", "--quiet")
	if want := "submit: line 2 is too large: its input is 100 KiB, " + limit; r.code != 2 || strings.Count(r.out, "\n") != 1 || strings.TrimSpace(r.stderr) != want {
		t.Errorf("a job's map with a large line: exit %d, stdout %q, stderr:\n%s\nwant exit 2, line 1's result and:\n%s", r.code, r.out, r.stderr, want)
	}
	half := strings.Repeat("y", 40<<10)
	r = submit(t, "", env, "map", "say-hi", "ada", "bob", half, half, "--chunksize", "2", "--job", "large-chunk", "--quiet")
	want := regexp.MustCompile(`^submit: arguments 3 to 4, one chunk of --chunksize 2, are too large together: .*message too large: .*; a smaller --chunksize fits them$`)
	if r.code != 2 || !want.MatchString(strings.TrimSpace(r.stderr)) {
		t.Errorf("a job's map with a chunk too large: exit %d, stdout %q, stderr:\n%s\nwant exit 2 and a match of %s", r.code, r.out, r.stderr, want)
	}
}

// TestCancelledMapExits5: a map whose pending tasks 'submit cancel'
// cancels prints the results of the tasks that ran and a cancelled error
// line for each of the others, in order, and exits 5.
func TestCancelledMapExits5(t *testing.T) {
	url := startBroker(t, embedded.Config{})
	g, _ := startGateWorker(t, url, worker.Config{Concurrency: 1}, nil)
	env := []string{"NATS_URL=" + url}

	cmd := mainCmd("map", "gate", "100", "101", "102", "103", "104", "105", "--quiet")
	cmd.Env = append(cmd.Env, env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	finished := make(chan struct{})
	cancelledLines := 0
	go func() {
		out, _ := io.ReadAll(stdout)
		err := cmd.Wait()
		stdout := string(out)
		if err == nil {
			t.Errorf("map exited 0 after its tasks were cancelled; stdout:\n%s", stdout)
		} else if code := cmd.ProcessState.ExitCode(); code != 5 {
			t.Errorf("map exited %d after its tasks were cancelled, want 5; stdout:\n%s", code, stdout)
		}
		lines := strings.Split(strings.TrimSpace(stdout), "\n")
		if len(lines) != 6 || lines[0] != "100" {
			t.Errorf("stdout:\n%s\nwant 100 and a line for each of the five others", stdout)
		}
		for i, l := range lines[1:] {
			if l != strconv.Itoa(101+i) && !strings.Contains(l, `"type":"cancelled"`) {
				t.Errorf("line %q, want %d or a cancelled error", l, 101+i)
			}
			if strings.Contains(l, `"type":"cancelled"`) {
				cancelledLines++
			}
		}
		close(finished)
	}()
	t.Cleanup(func() {
		g.release()
		select {
		case <-finished:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-finished
		}
	})

	g.waitEntered(t, 100) // the first task runs; the worker's one slot holds it
	r := submit(t, "", env, "cancel")
	m := regexp.MustCompile(`1 producers answered: ([1-5]) tasks cancelled, 1 running to their end`).FindStringSubmatch(r.out)
	if r.code != 0 || m == nil {
		t.Fatalf("cancel: exit %d\n%s%s", r.code, r.out, r.stderr)
	}
	g.release()
	select {
	case <-finished:
	case <-time.After(30 * time.Second):
		t.Fatal("map did not end 30s after its tasks were cancelled")
	}
	if strconv.Itoa(cancelledLines) != m[1] {
		t.Errorf("%d cancelled lines, want the %s tasks cancel cancelled", cancelledLines, m[1])
	}
}

// TestKindsFromDiscovery: kinds lists what the workers online serve, built
// in or not, with how many workers serve each; with none it says so and
// exits 6.
func TestKindsFromDiscovery(t *testing.T) {
	url := startBroker(t, embedded.Config{})
	env := []string{"NATS_URL=" + url}
	r := submit(t, "", env, "kinds")
	if r.code != 6 || r.out != "" || !strings.Contains(r.stderr, `no worker of pool "default" answered`) {
		t.Fatalf("kinds with no worker: exit %d, stdout %q, stderr %s; want 6 and a message", r.code, r.out, r.stderr)
	}
	r = submit(t, "", env, "kinds", "--json")
	if r.code != 6 || strings.Join(strings.Fields(r.out), " ") != `{ "pool": "default", "workers": 0, "kinds": [] }` {
		t.Fatalf("kinds --json with no worker: exit %d, stdout %q", r.code, r.out)
	}

	startWorker(t, url, nil, worker.Config{Concurrency: 4})
	startGateWorker(t, url, worker.Config{Concurrency: 2}, func(reg *task.Registry) {
		task.Handle(reg, task.New[int, int]("square"), func(_ context.Context, n int) (int, error) { return n * n, nil })
	})
	waitOnline(t, url, 2)
	r = submit(t, "", env, "kinds")
	if r.code != 0 {
		t.Fatalf("kinds: exit %d, %s", r.code, r.stderr)
	}
	rows := map[string][]string{}
	for _, l := range strings.Split(strings.TrimSpace(r.out), "\n")[1:] {
		f := strings.Fields(l)
		rows[f[0]] = f[1:]
	}
	if got := strings.Fields(strings.Split(r.out, "\n")[0]); !slices.Equal(got, []string{"KIND", "WORKERS", "SLOTS", "DESCRIPTION"}) {
		t.Errorf("header %q", got)
	}
	for kind, want := range map[string]string{"square": "2 6 N -> N*N", "gate": "1 2", "sleep": "1 4 MS", "copy": "1 4", "download": "1 4", "say-hi": "1 4"} {
		if got := strings.Join(rows[kind], " "); !strings.HasPrefix(got, want) {
			t.Errorf("kind %s: %q, want %q...; table:\n%s", kind, got, want, r.out)
		}
	}
	if len(rows) != 6 {
		t.Errorf("%d kinds listed, want 6:\n%s", len(rows), r.out)
	}
	r = submit(t, "", env, "kinds", "--json")
	type served struct {
		Kind    string `json:"kind"`
		Workers int    `json:"workers"`
		Slots   int    `json:"slots"`
	}
	var doc struct {
		Workers int      `json:"workers"`
		Kinds   []served `json:"kinds"`
	}
	if err := json.Unmarshal([]byte(r.out), &doc); r.code != 0 || err != nil || doc.Workers != 2 || len(doc.Kinds) != 6 {
		t.Fatalf("kinds --json: exit %d, %v:\n%s", r.code, err, r.out)
	}
	i := slices.IndexFunc(doc.Kinds, func(k served) bool { return k.Kind == "square" })
	if i < 0 || doc.Kinds[i].Workers != 2 || doc.Kinds[i].Slots != 6 {
		t.Errorf("kinds --json: %+v, want square with 2 workers and 6 slots", doc.Kinds)
	}
}

// columns returns a table's header names as JSON field names: lower case,
// spaces as underscores. Header names are separated by two or more spaces.
func columns(header string) []string {
	var cols []string
	for _, h := range regexp.MustCompile(`\s{2,}`).Split(strings.TrimSpace(header), -1) {
		cols = append(cols, strings.ReplaceAll(strings.ToLower(h), " ", "_"))
	}
	return cols
}

// TestStatusJSONIsTheTable: status --json has a field for each column of
// the table, named as the column, and its counts are JSON numbers.
func TestStatusJSONIsTheTable(t *testing.T) {
	url := startBroker(t, embedded.Config{})
	startWorker(t, url, nil, worker.Config{Concurrency: 3})
	env := []string{"NATS_URL=" + url}
	if r := submit(t, "", env, "map", "square", "1", "2"); r.code != 0 {
		t.Fatalf("map: exit %d, %s", r.code, r.stderr)
	}
	table := submit(t, "", env, "status")
	var kindHeader, workerHeader string
	for _, l := range strings.Split(table.out, "\n") {
		switch {
		case strings.HasPrefix(l, "KIND "):
			kindHeader = l
		case strings.HasPrefix(l, "WORKER "):
			workerHeader = l
		}
	}
	r := submit(t, "", env, "status", "--json")
	var doc struct {
		Kinds   []map[string]any `json:"kinds"`
		Workers []map[string]any `json:"workers"`
	}
	if table.code != 0 || r.code != 0 || json.Unmarshal([]byte(r.out), &doc) != nil || len(doc.Kinds) == 0 || len(doc.Workers) != 1 {
		t.Fatalf("status: exit %d and %d:\n%s\n%s", table.code, r.code, table.out, r.out)
	}
	for _, c := range []struct {
		header string
		obj    map[string]any
	}{{kindHeader, doc.Kinds[0]}, {workerHeader, doc.Workers[0]}} {
		cols := columns(c.header)
		var keys []string
		for k := range c.obj {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		sorted := slices.Clone(cols)
		sort.Strings(sorted)
		if !slices.Equal(keys, sorted) {
			t.Errorf("JSON fields %v, table columns %v", keys, cols)
		}
		for _, k := range keys {
			switch v := c.obj[k].(type) {
			case float64:
			case string:
				if _, err := strconv.ParseFloat(v, 64); err == nil {
					t.Errorf("field %s is the string %q, want a number", k, v)
				}
			}
		}
	}
	w := doc.Workers[0]
	if pid, ok := w["pid"].(float64); !ok || int(pid) != os.Getpid() || w["slots"] != 3.0 || w["succeeded"] != 2.0 {
		t.Errorf("worker %v: want pid %d, 3 slots and 2 succeeded as numbers", w, os.Getpid())
	}
}

// TestHelpListsOnlyTheFlagsACommandTakes: every command's --help lists the
// flags it takes and no other; status, cancel and kinds take no producer
// or embedded-pool settings.
func TestHelpListsOnlyTheFlagsACommandTakes(t *testing.T) {
	conn := []string{"creds", "inbox-prefix", "nkey", "password", "pool", "prefix", "s", "server", "tlsca", "tlscert", "tlskey", "token", "user"}
	producer := append(slices.Clone(conn), "ack-wait", "embedded", "grace", "name", "replicas", "store", "worker-concurrency", "workers")
	with := func(base []string, more ...string) []string {
		all := append(slices.Clone(base), more...)
		sort.Strings(all)
		return all
	}
	want := map[string][]string{
		"map":      with(producer, "buffersize", "chunksize", "job", "quiet", "retention", "timeout"),
		"run":      with(producer, "timeout"),
		"download": with(producer, "quiet", "timeout", "to"),
		"copy":     with(producer, "quiet", "timeout", "to"),
		"status":   with(conn, "json", "wait"),
		"cancel":   with(conn, "job", "kind", "name", "producer", "purge", "wait"),
		"jobs":     with(conn, "json", "name"),
		"job":      with(conn, "json", "name", "watch"),
		"results":  with(conn, "name"),
		"delete":   with(conn, "name"),
		"kinds":    with(conn, "json", "wait"),
		"bench":    with(nil, "chunksize", "concurrency", "latency-samples", "map-items", "memory-items", "python", "runs", "scaling", "scaling-tasks", "tasks"),
	}
	flagLine := regexp.MustCompile(`(?m)^  -([a-z-]+)`)
	for cmd, flags := range want {
		r := submit(t, "", nil, cmd, "--help")
		var got []string
		for _, m := range flagLine.FindAllStringSubmatch(r.stderr, -1) {
			got = append(got, m[1])
		}
		sort.Strings(got)
		if r.code != 0 || !slices.Equal(got, flags) {
			t.Errorf("%s --help: exit %d, lists %v, want %v", cmd, r.code, got, flags)
		}
		// Every flag listed is taken: given all of them, the command
		// still gets to --help (a value a flag refuses would stop it too).
		all := []string{cmd}
		for _, f := range got {
			all = append(all, "--"+f+"="+flagValue(r.stderr, f))
		}
		if r := submit(t, "", nil, append(all, "--help")...); r.code != 0 {
			t.Errorf("%s refuses a flag it lists: exit %d, %s", cmd, r.code, r.stderr)
		}
	}
}

// flagValue is a value flag f takes, by the type its line in help shows.
func flagValue(help, f string) string {
	m := regexp.MustCompile(`(?m)^  -` + regexp.QuoteMeta(f) + `(?: (\S+))?$`).FindStringSubmatch(help)
	switch {
	case m == nil || m[1] == "":
		return "true" // a bool flag
	case m[1] == "duration":
		return "1s"
	case m[1] == "int":
		return "1"
	}
	return "x"
}

// TestResultsStreamAndSurviveAKill: with standard output a pipe or a file,
// each result line is out while the map still runs, and killing the
// command leaves only whole lines.
func TestResultsStreamAndSurviveAKill(t *testing.T) {
	for _, to := range []string{"pipe", "file"} {
		t.Run(to, func(t *testing.T) {
			url := startBroker(t, embedded.Config{})
			g, _ := startGateWorker(t, url, worker.Config{Concurrency: 2}, nil)
			args := []string{"map", "gate", "--quiet"}
			for i := range 5 {
				args = append(args, strconv.Itoa(i))
			}
			args = append(args, "100", "101", "6")
			cmd := mainCmd(args...)
			cmd.Env = append(cmd.Env, "NATS_URL="+url)
			var lines func(n int) []string // waits for the first n lines
			var rest func() string         // everything after them, once the command is gone
			switch to {
			case "pipe":
				stdout, err := cmd.StdoutPipe()
				if err != nil {
					t.Fatal(err)
				}
				br := bufio.NewReader(stdout)
				lines = func(n int) []string {
					got := make(chan []string, 1)
					go func() {
						var ls []string
						for range n {
							l, err := br.ReadString('\n')
							if err != nil {
								break
							}
							ls = append(ls, l)
						}
						got <- ls
					}()
					select {
					case ls := <-got:
						return ls
					case <-time.After(30 * time.Second):
						t.Fatalf("not %d lines out in 30s", n)
						return nil
					}
				}
				rest = func() string {
					b, _ := io.ReadAll(br)
					return string(b)
				}
			case "file":
				path := filepath.Join(t.TempDir(), "out")
				f, err := os.Create(path)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				cmd.Stdout = f
				var read int
				lines = func(n int) []string {
					deadline := time.Now().Add(30 * time.Second)
					for {
						b, _ := os.ReadFile(path)
						if ls := strings.SplitAfter(string(b), "\n"); len(ls) > n {
							read = len(strings.Join(ls[:n], ""))
							return ls[:n]
						}
						if time.Now().After(deadline) {
							t.Fatalf("not %d lines in the file in 30s: %q", n, b)
						}
						time.Sleep(10 * time.Millisecond) // the file has no way to say it grew
					}
				}
				rest = func() string {
					b, _ := os.ReadFile(path)
					return string(b[read:])
				}
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan struct{})
			go func() {
				cmd.Wait()
				close(exited)
			}()
			t.Cleanup(func() {
				cmd.Process.Kill()
				<-exited
			})

			g.waitEntered(t, 100)
			got := lines(5)
			for i, l := range got {
				if l != strconv.Itoa(i)+"\n" {
					t.Errorf("line %d = %q, want %d", i, l, i)
				}
			}
			select {
			case <-exited:
				t.Fatal("the command ended while its tasks 100 and 101 were held")
			default:
			}
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			<-exited
			if r := rest(); r != "" {
				t.Errorf("after the first 5 lines and a kill, the output holds %q more; want none: 100 was never released", r)
			}
		})
	}
}
