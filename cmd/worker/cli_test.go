package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetpool/jetpool/broker/embedded"
	"github.com/jetpool/jetpool/builtin"
	"github.com/jetpool/jetpool/executor"
	"github.com/jetpool/jetpool/worker"
)

// The variables worker.Main reads besides the NATS_* and worker.Config ones.
const (
	envMetrics   = worker.EnvMetrics
	envLogFormat = worker.EnvLogFormat
	envLogLevel  = worker.EnvLogLevel
)

// waitFor bounds every wait of these tests.
const waitFor = 15 * time.Second

// secret is a password no output may ever show.
const secret = "hunter2-s3cr3t"

// clearEnv unsets, for one test, every variable the command reads.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{
		"NATS_URL", "NATS_CREDS", "NATS_NKEY", "NATS_USER", "NATS_PASSWORD", "NATS_TOKEN", "NATS_CA", "NATS_CERT", "NATS_KEY", "NATS_INBOX_PREFIX",
		"JETPOOL_CHILD", "JETPOOL_WORKER_ID", "JETPOOL_POOL", "JETPOOL_PREFIX", "JETPOOL_CONCURRENCY", "JETPOOL_KINDS",
		"JETPOOL_ACK_WAIT", "JETPOOL_GRACE", "JETPOOL_REPLICAS",
		"JETPOOL_RETRY_ATTEMPTS", "JETPOOL_RETRY_BACKOFF", "JETPOOL_RETRY_MAX_BACKOFF", envMetrics, envLogFormat, envLogLevel, envRoot,
	} {
		t.Setenv(k, "")
	}
}

func TestUsageErrors(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string // in the message
	}{
		{"concurrency not a number", []string{"--concurrency", "many"}, nil, `invalid value "many" for flag -concurrency: want a non-negative integer`},
		{"negative concurrency", []string{"--concurrency=-2"}, nil, `flag -concurrency: want a non-negative integer`},
		{"concurrency env", nil, map[string]string{"JETPOOL_CONCURRENCY": "lots"}, `JETPOOL_CONCURRENCY="lots": want a non-negative integer`},
		{"ack wait without unit", []string{"--ack-wait", "5"}, nil, `invalid value "5" for flag -ack-wait: want a duration`},
		{"negative grace", []string{"--grace", "-3s"}, nil, `flag -grace: want a duration`},
		{"grace too short", []string{"--grace", "10ms"}, nil, `grace 10ms below 100ms`},
		{"ack wait env", nil, map[string]string{"JETPOOL_ACK_WAIT": "soon"}, `JETPOOL_ACK_WAIT="soon": want a duration`},
		{"retry attempts env", nil, map[string]string{"JETPOOL_RETRY_ATTEMPTS": "-1"}, `JETPOOL_RETRY_ATTEMPTS="-1": want a non-negative integer`},
		{"retry backoff env", nil, map[string]string{"JETPOOL_RETRY_BACKOFF": "soon"}, `JETPOOL_RETRY_BACKOFF="soon": want a duration`},
		{"negative retry attempts", []string{"--retry-attempts=-1"}, nil, `flag -retry-attempts: want a non-negative integer`},
		{"retry backoff without unit", []string{"--retry-backoff", "100"}, nil, `invalid value "100" for flag -retry-backoff: want a duration`},
		{"negative retry max backoff", []string{"--retry-max-backoff=-1s"}, nil, `flag -retry-max-backoff: want a duration`},
		{"replicas", []string{"--replicas", "2"}, nil, `replicas 2, want 1 or 3`},
		{"log format", []string{"--log-format", "xml"}, nil, `--log-format "xml": want text or json`},
		{"log format env", nil, map[string]string{envLogFormat: "yaml"}, `JETPOOL_LOG_FORMAT "yaml": want text or json`},
		{"log level", []string{"--log-level", "loud"}, nil, `--log-level "loud": want debug, info, warn or error`},
		{"log level env", nil, map[string]string{envLogLevel: "verbose"}, `JETPOOL_LOG_LEVEL "verbose": want debug, info, warn or error`},
		{"metrics without port", []string{"--metrics", "localhost"}, nil, `--metrics "localhost": want host:port`},
		{"metrics port out of range", nil, map[string]string{envMetrics: ":99999"}, `JETPOOL_METRICS ":99999": port "99999" is not a number`},
		{"metrics port taken", []string{"--metrics", taken.Addr().String()}, nil, `--metrics "` + taken.Addr().String() + `": listen tcp`},
		{"server scheme", nil, map[string]string{"NATS_URL": "ftp://broker:4222"}, `NATS_URL: ftp://broker:4222: scheme "ftp", want nats, tls, ws or wss`},
		{"server port with password", []string{"--server", "nats://alice:" + secret + "@broker:99999"}, nil, `--server: nats://xxxxx@broker:99999: port "99999" out of range`},
		{"server unparsable with token", []string{"-s", "nats://" + secret + "@bro ker:4222"}, nil, `--server: nats://xxxxx@bro ker:4222: not a URL`},
		{"server websocket mixed", nil, map[string]string{"NATS_URL": "nats://a:4222, ws://b:8080"}, `NATS_URL: websocket and non-websocket URLs mixed`},
		{"server list empty", []string{"--server", " , "}, nil, `--server: no server URL`},
		{"missing creds file", []string{"--creds", "/nonexistent/worker.creds"}, nil, `creds file`},
		{"unknown kind", []string{"--kinds", "square,nope"}, nil, `no handler for kind "nope"`},
		{"bad id", []string{"--id", "a.b"}, nil, `id "a.b"`},
		{"unknown flag", []string{"--bogus"}, nil, `flag provided but not defined: -bogus`},
		{"argument", []string{"square"}, nil, `unexpected argument "square"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			ctx, cancel := context.WithTimeout(t.Context(), waitFor)
			defer cancel()
			var out bytes.Buffer
			code := run(ctx, tt.args, &out)
			if code != 2 {
				t.Errorf("exit code %d, want 2; output:\n%s", code, out.String())
			}
			if !strings.Contains(out.String(), tt.want) {
				t.Errorf("output %q does not say %q", out.String(), tt.want)
			}
			if strings.Contains(out.String(), secret) {
				t.Errorf("output shows the secret: %q", out.String())
			}
		})
	}
}

func TestHelp(t *testing.T) {
	clearEnv(t)
	t.Setenv("NATS_PASSWORD", secret)
	t.Setenv("NATS_URL", "nats://alice:"+secret+"@broker:4222")
	var out bytes.Buffer
	if code := run(t.Context(), []string{"--help"}, &out); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	for _, want := range []string{"Usage: worker", "-metrics", "/readyz", "-log-format", "JETPOOL_METRICS"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help does not mention %s", want)
		}
	}
	if strings.Contains(out.String(), secret) {
		t.Error("help shows a secret from the environment as a default")
	}
}

// TestHelpShowsNoSecret: with every secret the connection reads in the
// environment, the help shows none; the connection flags say what is set.
func TestHelpShowsNoSecret(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	env := map[string]string{
		"NATS_URL":      "nats://alice:s3cret@127.0.0.1:4222",
		"NATS_PASSWORD": secret,
		"NATS_TOKEN":    "t0ken-value",
		"NATS_NKEY":     filepath.Join(dir, "seed.nk"),
		"NATS_CREDS":    filepath.Join(dir, "worker.creds"),
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	for _, args := range [][]string{{"--help"}, {"-h"}} {
		var out bytes.Buffer
		if code := run(t.Context(), args, &out); code != 0 {
			t.Fatalf("%s: exit code %d, want 0; output:\n%s", args[0], code, out.String())
		}
		for _, s := range []string{"alice", "s3cret", secret, env["NATS_TOKEN"], env["NATS_NKEY"], env["NATS_CREDS"], dir} {
			if strings.Contains(out.String(), s) {
				t.Errorf("%s shows %q:\n%s", args[0], s, out.String())
			}
		}
		for _, want := range []string{"NATS_URL; default nats://xxxxx@127.0.0.1:4222", "NATS_PASSWORD; set", "NATS_TOKEN; set", "NATS_NKEY; set", "NATS_CREDS; set"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%s does not say %q:\n%s", args[0], want, out.String())
			}
		}
	}
}

// syncBuffer is the command's stderr, read by the test while it runs.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// records decodes the JSON log records written so far.
func (b *syncBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if line == "" {
			continue
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		recs = append(recs, r)
	}
	return recs
}

// eventually polls cond until it holds or fails the test after waitFor.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(waitFor)
	for !cond() {
		select {
		case <-tick.C:
		case <-timeout:
			t.Fatalf("%s: not within %v", what, waitFor)
		}
	}
}

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitFor):
		t.Fatalf("no %s within %v", what, waitFor)
		panic("unreachable")
	}
}

// command is a run of the worker command the test owns.
type command struct {
	t      *testing.T
	stderr *syncBuffer
	cancel context.CancelFunc
	code   chan int
	addr   string // of the metrics server
	http   *http.Client
}

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// start runs the command with args and --metrics on a free port until the
// test cancels it, and waits for its metrics server.
func start(t *testing.T, args ...string) *command {
	t.Helper()
	clearEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	c := &command{
		t: t, stderr: &syncBuffer{}, cancel: cancel, code: make(chan int, 1), addr: freeAddr(t),
		http: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}},
	}
	args = append(args, "--metrics", c.addr)
	go func() { c.code <- run(ctx, args, c.stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-c.code:
		case <-time.After(waitFor):
			t.Error("the command did not return")
		}
	})
	eventually(t, "metrics server up", func() bool {
		select {
		case code := <-c.code:
			t.Fatalf("the command exited with %d:\n%s", code, c.stderr.String())
		default:
		}
		code, _ := c.get("/healthz")
		return code == http.StatusOK
	})
	return c
}

// get returns the status code and body of path, or 0 if the server did not
// answer.
func (c *command) get(path string) (int, string) {
	resp, err := c.http.Get("http://" + c.addr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func (c *command) wantStatus(path string, want int) {
	c.t.Helper()
	eventually(c.t, path+" answering "+http.StatusText(want), func() bool {
		code, _ := c.get(path)
		return code == want
	})
}

// newExecutor returns a NATS executor on its own connection to url, shut
// down at the end of the test.
func newExecutor(t *testing.T, url string) *executor.NATS {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	ex, err := executor.NewNATS(ctx, nc, executor.NATSLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		ex.Shutdown(ctx, true, true)
	})
	return ex
}

func startEmbedded(t *testing.T) *embedded.Server {
	t.Helper()
	srv, err := embedded.Start(embedded.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

// withUser puts user:password into a nats:// URL.
func withUser(url, user, password string) string {
	return strings.Replace(url, "nats://", "nats://"+user+":"+password+"@", 1)
}

func TestServesMetricsAndHealth(t *testing.T) {
	srv := startEmbedded(t)
	ex := newExecutor(t, srv.ClientURL())
	c := start(t, "--server", withUser(srv.ClientURL(), "alice", secret), "--user", "alice", "--password", secret,
		"--log-format", "json", "--log-level", "debug",
		"--id", "cli-1", "--kinds", "square,sleep", "--ack-wait", "2s", "--grace", "2s")

	if code, body := c.get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d %s, want 200", code, body)
	}
	c.wantStatus("/readyz", http.StatusOK)

	ctx, cancel := context.WithTimeout(t.Context(), waitFor)
	defer cancel()
	for i := range 3 {
		f, err := executor.Submit(ctx, ex, builtin.Square, i+2)
		if err != nil {
			t.Fatal(err)
		}
		if v, err := f.Result(ctx); err != nil || v != (i+2)*(i+2) {
			t.Fatalf("square(%d) = %d, %v", i+2, v, err)
		}
	}
	code, body := c.get("/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	for _, want := range []string{
		`jetpool_worker_tasks_started_total{kind="square",pool="default"} 3`,
		`jetpool_worker_tasks_succeeded_total{kind="square",pool="default"} 3`,
		`jetpool_worker_tasks_failed_total{kind="square",pool="default"} 0`,
		`jetpool_worker_chunks_started_total{kind="square",pool="default"} 3`,
		`jetpool_worker_task_duration_seconds_count{kind="square",pool="default"} 3`,
		`jetpool_worker_tasks_started_total{kind="sleep",pool="default"} 0`,
		`jetpool_build_info{version="`,
		"\ngo_goroutines ",
		"\nprocess_start_time_seconds ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// A long task keeps the drain going: not ready, still alive.
	sleep, err := executor.Submit(ctx, ex, builtin.Sleep, 60_000)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "sleep in flight", func() bool {
		_, body := c.get("/metrics")
		return sleep.Running() && strings.Contains(body, `jetpool_worker_chunks_in_flight{kind="sleep",pool="default"} 1`)
	})
	c.cancel()
	c.wantStatus("/readyz", http.StatusServiceUnavailable)
	if code, body := c.get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz while draining: %d %s, want 200", code, body)
	}
	select {
	case code := <-c.code:
		t.Fatalf("exited with %d while a task ran", code)
	default:
	}
	if !sleep.Interrupt() {
		t.Fatal("the sleep was not running")
	}
	if _, err := sleep.Result(ctx); err == nil {
		t.Error("the interrupted sleep succeeded")
	}
	if code := recv(t, c.code, "exit"); code != 0 {
		t.Errorf("exit code %d after the drain, want 0:\n%s", code, c.stderr.String())
	}
	c.code <- 0 // for the cleanup
	if code, _ := c.get("/healthz"); code != 0 {
		t.Errorf("the metrics server still answers after exit: %d", code)
	}

	logs := c.stderr.String()
	if strings.Contains(logs, secret) {
		t.Errorf("the logs show the password:\n%s", logs)
	}
	var started map[string]any
	for _, r := range c.stderr.records(t) {
		if r["msg"] == "worker starting" {
			started = r
		}
	}
	if started == nil || started["auth"] != "user alice" || started["id"] != "cli-1" || started["level"] != "INFO" {
		t.Errorf("start record %v, want auth \"user alice\" and id cli-1 at INFO", started)
	}
	if !strings.Contains(logs, `"msg":"metrics server listening","addr":"`+c.addr+`"`) {
		t.Errorf("no record of the metrics server's address %s", c.addr)
	}
	if !strings.Contains(logs, `"msg":"worker: chunk started"`) {
		t.Error("no debug record of a chunk start at --log-level debug")
	}
}

func TestReadyzWhileDisconnected(t *testing.T) {
	srv := startEmbedded(t)
	c := start(t, "--server", srv.ClientURL(), "--log-format", "json", "--log-level", "warn")
	c.wantStatus("/readyz", http.StatusOK)
	srv.Shutdown()
	c.wantStatus("/readyz", http.StatusServiceUnavailable)
	if code, body := c.get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz while disconnected: %d %s, want 200", code, body)
	}
	for _, r := range c.stderr.records(t) {
		if r["level"] == "INFO" || r["level"] == "DEBUG" {
			t.Errorf("record below --log-level warn: %v", r)
		}
	}
}
