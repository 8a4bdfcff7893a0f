package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetpool/jetpool/broker/embedded"
	"github.com/jetpool/jetpool/executor"
	"github.com/jetpool/jetpool/task"
	"github.com/jetpool/jetpool/worker"
)

var (
	Greet = task.New[string, string]("greet")
	Shout = task.New[string, string]("shout")
)

// clearMainEnv unsets, for one test, every variable a worker program reads.
func clearMainEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{
		"NATS_URL", "NATS_CREDS", "NATS_NKEY", "NATS_USER", "NATS_PASSWORD", "NATS_TOKEN", "NATS_CA", "NATS_CERT", "NATS_KEY", "NATS_INBOX_PREFIX",
		worker.EnvChild, worker.EnvID, worker.EnvPool, worker.EnvPrefix, worker.EnvConcurrency, worker.EnvKinds,
		worker.EnvAckWait, worker.EnvGrace, worker.EnvReplicas,
		worker.EnvRetryAttempts, worker.EnvRetryBackoff, worker.EnvRetryMaxBackoff,
		worker.EnvMetrics, worker.EnvLogFormat, worker.EnvLogLevel,
	} {
		t.Setenv(k, "")
	}
}

// greeter is a worker program with flags of its own: greet answers with
// --greeting, and --loud adds the kind shout. setups counts its setup
// functions' calls.
type greeter struct {
	greeting string
	loud     bool
	setups   []string
}

func (g *greeter) options() []worker.MainOption {
	return []worker.MainOption{
		worker.MainName("greeter"),
		worker.MainFlags(func(fs *flag.FlagSet) {
			fs.StringVar(&g.greeting, "greeting", "hello", "the `word` to greet with")
		}),
		worker.MainFlags(func(fs *flag.FlagSet) {
			fs.BoolVar(&g.loud, "loud", false, "serve shout too")
		}),
		worker.MainSetup(func(reg *task.Registry, log *slog.Logger) error {
			g.setups = append(g.setups, "greet")
			if g.greeting == "" {
				return errors.New("--greeting: want a word")
			}
			greeting := g.greeting
			task.Handle(reg, Greet, func(_ context.Context, name string) (string, error) {
				return greeting + ", " + name, nil
			})
			log.Info("greeter set up", "greeting", greeting, "patience", 1500*time.Millisecond)
			return nil
		}),
		worker.MainSetup(func(reg *task.Registry, _ *slog.Logger) error {
			g.setups = append(g.setups, "shout")
			if g.loud {
				task.Handle(reg, Shout, func(_ context.Context, s string) (string, error) {
					return strings.ToUpper(s), nil
				})
			}
			return nil
		}),
	}
}

// lockedBuffer is a program's stderr, read while it runs.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestRunMainServesOwnKinds runs a program with flags of its own and kinds
// registered once they are parsed: a producer gets their results, the
// program is listed as a service with its kinds, its setup logs through the
// worker's JSON logger, and it drains and exits 0 when ctx ends.
func TestRunMainServesOwnKinds(t *testing.T) {
	clearMainEnv(t)
	srv, err := embedded.Start(embedded.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)

	var g greeter
	var stderr lockedBuffer
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	code := make(chan int, 1)
	args := []string{"--server", srv.ClientURL(), "--greeting", "ahoy", "--loud", "--kinds", "greet,shout",
		"--id", "greeter-1", "--log-format", "json", "--grace", "2s"}
	go func() { code <- worker.RunMain(ctx, args, &stderr, task.NewRegistry(), g.options()...) }()

	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	wait, stop := context.WithTimeout(t.Context(), waitFor)
	defer stop()
	ex, err := executor.NewNATS(wait, nc, executor.NATSLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Shutdown(context.Background(), true, true)
	greeted, err := executor.Submit(wait, ex, Greet, "ada")
	if err != nil {
		t.Fatal(err)
	}
	shouted, err := executor.Submit(wait, ex, Shout, "ada")
	if err != nil {
		t.Fatal(err)
	}
	if v, err := greeted.Result(wait); err != nil || v != "ahoy, ada" {
		t.Errorf("greet(ada) = %q, %v; want \"ahoy, ada\"", v, err)
	}
	if v, err := shouted.Result(wait); err != nil || v != "ADA" {
		t.Errorf("shout(ada) = %q, %v; want \"ADA\"", v, err)
	}
	served, err := worker.ServedKinds(wait, nc, "default")
	if err != nil {
		t.Fatal(err)
	}
	if served["greet"] != 1 || served["shout"] != 1 || len(served) != 2 {
		t.Errorf("served kinds %v, want greet and shout by one worker", served)
	}

	cancel()
	if c := recv(t, code, "exit code"); c != 0 {
		t.Fatalf("exit code %d after the drain, want 0:\n%s", c, stderr.String())
	}
	if !slices.Equal(g.setups, []string{"greet", "shout"}) {
		t.Errorf("setups called %v, want greet then shout", g.setups)
	}
	var setUp, starting, drained map[string]any
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		switch r["msg"] {
		case "greeter set up":
			setUp = r
		case "worker starting":
			starting = r
		case "worker drained and stopped":
			drained = r
		}
	}
	if setUp == nil || setUp["greeting"] != "ahoy" || setUp["patience"] != "1.5s" {
		t.Errorf("setup record %v, want greeting ahoy and patience \"1.5s\"", setUp)
	}
	if starting == nil || starting["id"] != "greeter-1" || fmt.Sprint(starting["kinds"]) != "[greet shout]" {
		t.Errorf("start record %v, want id greeter-1 serving greet and shout", starting)
	}
	if drained == nil {
		t.Errorf("no record of the drain in:\n%s", stderr.String())
	}
}

func TestRunMainHelp(t *testing.T) {
	clearMainEnv(t)
	tests := []struct {
		name    string
		reg     func() *task.Registry
		opts    []worker.MainOption
		want    []string
		notWant []string
	}{
		{
			name: "default text",
			reg:  task.NewRegistry,
			want: []string{"Usage: greeter [flags]", "Serves its tasks to a jetpool pool", "/readyz", "greeter --server nats://",
				"Flags:", "-greeting word", "the word to greet with (default \"hello\")", "-loud", "-metrics", "JETPOOL_METRICS", "-log-format"},
		},
		{
			name: "default text with kinds",
			reg: func() *task.Registry {
				reg := task.NewRegistry()
				task.Handle(reg, Shout, func(_ context.Context, s string) (string, error) { return s, nil })
				task.Handle(reg, Greet, func(_ context.Context, s string) (string, error) { return s, nil })
				return reg
			},
			want: []string{"Usage: greeter [flags]", "Serves the tasks greet, shout to a jetpool pool"},
		},
		{
			name:    "own text",
			reg:     task.NewRegistry,
			opts:    []worker.MainOption{worker.MainUsage("\nUsage: greeter [flags]\n\nGreets whoever comes.\n")},
			want:    []string{"Usage: greeter [flags]\n\nGreets whoever comes.\n\nFlags:\n", "-greeting word", "-kinds"},
			notWant: []string{"Serves", "With --metrics ADDR"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var g greeter
			var out bytes.Buffer
			opts := append(g.options(), tt.opts...)
			if code := worker.RunMain(t.Context(), []string{"--help"}, &out, tt.reg(), opts...); code != 0 {
				t.Errorf("exit code %d, want 0", code)
			}
			for _, s := range tt.want {
				if !strings.Contains(out.String(), s) {
					t.Errorf("help lacks %q:\n%s", s, out.String())
				}
			}
			for _, s := range tt.notWant {
				if strings.Contains(out.String(), s) {
					t.Errorf("help has %q:\n%s", s, out.String())
				}
			}
			if !strings.HasPrefix(out.String(), "Usage: greeter [flags]\n") {
				t.Errorf("help does not begin with its usage line:\n%s", out.String())
			}
			if len(g.setups) != 0 {
				t.Errorf("setup ran for --help: %v", g.setups)
			}
		})
	}
}

func TestRunMainUsageErrors(t *testing.T) {
	self := filepath.Base(os.Args[0])
	tests := []struct {
		name   string
		args   []string
		noName bool
		nilReg bool
		code   int
		want   string
		setups []string
	}{
		{name: "setup error", args: []string{"--greeting="}, code: 2, want: "greeter: --greeting: want a word\n", setups: []string{"greet"}},
		{name: "kind registered by no setup", args: []string{"--kinds", "greet,shout"}, code: 2, want: `no handler for kind "shout"`, setups: []string{"greet", "shout"}},
		{name: "own flag's value", args: []string{"--loud=maybe"}, code: 2, want: "invalid boolean value \"maybe\" for -loud: parse error\nRun 'greeter --help' for usage.\n"},
		{name: "unknown flag", args: []string{"--bogus"}, code: 2, want: "flag provided but not defined: -bogus\nRun 'greeter --help' for usage.\n"},
		{name: "argument", args: []string{"ada"}, code: 2, want: "greeter: unexpected argument \"ada\"\nRun 'greeter --help' for usage.\n"},
		{name: "checked before setup", args: []string{"--log-level", "loud"}, code: 2, want: `greeter: --log-level "loud": want debug, info, warn or error`},
		{name: "default name", args: []string{"--bogus"}, noName: true, code: 2, want: "Run '" + self + " --help' for usage.\n"},
		{name: "nil registry", nilReg: true, code: 1, want: "greeter: nil task registry\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearMainEnv(t)
			var g greeter
			opts := g.options()
			if tt.noName {
				opts = append(opts, worker.MainName(""))
			}
			reg := task.NewRegistry()
			if tt.nilReg {
				reg = nil
			}
			var out bytes.Buffer
			code := worker.RunMain(t.Context(), tt.args, &out, reg, opts...)
			if code != tt.code {
				t.Errorf("exit code %d, want %d; output:\n%s", code, tt.code, out.String())
			}
			if !strings.Contains(out.String(), tt.want) {
				t.Errorf("output %q does not say %q", out.String(), tt.want)
			}
			if !slices.Equal(g.setups, tt.setups) {
				t.Errorf("setups called %v, want %v", g.setups, tt.setups)
			}
		})
	}
}

// TestRunMainRetryFlags: --retry-attempts and --retry-backoff set the
// policy for retryable handler errors.
func TestRunMainRetryFlags(t *testing.T) {
	clearMainEnv(t)
	srv, err := embedded.Start(embedded.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	flaky := task.New[string, string]("flaky")
	var mu sync.Mutex
	calls := 0
	reg := task.NewRegistry()
	task.Handle(reg, flaky, func(ctx context.Context, s string) (string, error) {
		mu.Lock()
		calls++
		mu.Unlock()
		return "", task.Retryable(errors.New("not yet"))
	})
	var stderr lockedBuffer
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	code := make(chan int, 1)
	args := []string{"--server", srv.ClientURL(), "--retry-attempts", "5", "--retry-backoff", "1ms", "--retry-max-backoff", "2ms", "--grace", "2s"}
	go func() { code <- worker.RunMain(ctx, args, &stderr, reg) }()

	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	wait, stop := context.WithTimeout(t.Context(), waitFor)
	defer stop()
	ex, err := executor.NewNATS(wait, nc, executor.NATSLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Shutdown(context.Background(), true, true)
	f, err := executor.Submit(wait, ex, flaky, "x")
	if err != nil {
		t.Fatal(err)
	}
	var te *task.Error
	if _, err := f.Result(wait); !errors.As(err, &te) || !te.Retryable {
		t.Fatalf("flaky: %v, want its retryable error", err)
	}
	mu.Lock()
	n := calls
	mu.Unlock()
	if n != 5 {
		t.Errorf("the handler was called %d times, want the 5 of --retry-attempts", n)
	}
	cancel()
	if c := recv(t, code, "exit code"); c != 0 {
		t.Fatalf("exit code %d after the drain, want 0:\n%s", c, stderr.String())
	}
}
