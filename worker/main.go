package worker

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/internal/version"
	"github.com/jetpool/jetpool/task"
)

// Environment variables of a worker program ([Main]) besides
// [ConfigFromEnv]'s and the NATS_* connection settings.
const (
	EnvMetrics   = "JETPOOL_METRICS"    // --metrics: host:port of /metrics, /healthz and /readyz
	EnvLogFormat = "JETPOOL_LOG_FORMAT" // --log-format: text or json
	EnvLogLevel  = "JETPOOL_LOG_LEVEL"  // --log-level: debug, info, warn or error
)

// MainOption configures [Main] and [RunMain]: the program's name, its help
// text, flags of its own and what it does once they are parsed.
type MainOption func(*mainSettings)

type mainSettings struct {
	name  string
	usage string
	flags []func(*flag.FlagSet)
	setup []func(*task.Registry, *slog.Logger) error
}

// MainName names the program in its help and messages ("NAME: ...",
// "Run 'NAME --help' for usage."). The default, and what an empty name
// means, is the base name of os.Args[0].
func MainName(name string) MainOption {
	return func(s *mainSettings) { s.name = name }
}

// MainUsage sets the text --help prints before the list of flags, in place
// of the default, which names the program and the registry's kinds and
// describes the drain and the HTTP endpoints. It should begin with a
// "Usage:" line. Leading and trailing blank space is trimmed; an empty text
// means the default.
func MainUsage(text string) MainOption {
	return func(s *mainSettings) { s.usage = text }
}

// MainFlags lets the program define flags of its own on the flag set
// before it is parsed; their values are set once [MainSetup]'s functions
// and the handlers run. Each MainFlags adds a function, called in order; a
// nil one is skipped. Defining a flag the worker program already defines
// panics, as it does on any flag.FlagSet.
func MainFlags(define func(fs *flag.FlagSet)) MainOption {
	return func(s *mainSettings) {
		if define != nil {
			s.flags = append(s.flags, define)
		}
	}
}

// MainSetup adds a function called once every flag and variable has been
// parsed and checked and before the kinds to serve are checked against the
// registry: it may register handlers that depend on the program's own flags
// and check those flags. It gets the registry given to Main and the logger
// the worker logs with (--log-format, --log-level, secrets redacted). An
// error it returns is printed as "NAME: err" and makes Main return 2, as a
// bad flag does; later setup functions are not called then. Each MainSetup
// adds a function, called in order; a nil one is skipped.
func MainSetup(setup func(reg *task.Registry, log *slog.Logger) error) MainOption {
	return func(s *mainSettings) {
		if setup != nil {
			s.setup = append(s.setup, setup)
		}
	}
}

// Main is the whole of a worker program serving reg: it reads the flags in
// os.Args and the environment, connects to the broker, runs a [Worker]
// until SIGTERM or SIGINT and then drains it (it stops pulling, hands back
// what it holds but has not started, lets running chunks finish and sends
// their results), and returns the exit code for os.Exit:
//
//	0  after a clean drain, or after --help
//	2  bad flags, arguments or environment, a setup error, a metrics address
//	   that cannot be listened on, or connect options that cannot work
//	   (a missing creds file, a certificate without its key)
//	1  anything else: a nil registry, a failure to connect or to serve
//
// A program with its own kinds is, in full:
//
//	func main() {
//		reg := task.NewRegistry()
//		task.Handle(reg, Resize, resize)
//		os.Exit(worker.Main(reg))
//	}
//
// Every flag has an environment variable; a flag given wins over its
// variable, and a variable over the default:
//
//	flag            environment                default
//	--server, -s    NATS_URL                   nats://127.0.0.1:4222 (comma-separated list)
//	--creds         NATS_CREDS                 none
//	--nkey          NATS_NKEY                  none
//	--user          NATS_USER                  none
//	--password      NATS_PASSWORD              none
//	--token         NATS_TOKEN                 none
//	--tlsca         NATS_CA                    none
//	--tlscert       NATS_CERT                  none
//	--tlskey        NATS_KEY                   none
//	--inbox-prefix  NATS_INBOX_PREFIX          _INBOX
//	--pool          JETPOOL_POOL               default
//	--prefix        JETPOOL_PREFIX             jetpool
//	--id            JETPOOL_WORKER_ID          host-pid-random
//	--concurrency   JETPOOL_CONCURRENCY        GOMAXPROCS (chunks run at once)
//	--kinds         JETPOOL_KINDS              every kind of reg (comma-separated)
//	--ack-wait      JETPOOL_ACK_WAIT           30s (lease of a running chunk)
//	--grace         JETPOOL_GRACE              30s (an unanswering producer is retried so long)
//	--replicas      JETPOOL_REPLICAS           1 (stream replicas when it creates the stream: 1 or 3)
//	--metrics       JETPOOL_METRICS            off (host:port, e.g. :9090)
//	--log-format    JETPOOL_LOG_FORMAT         text (or json)
//	--log-level     JETPOOL_LOG_LEVEL          info (or debug, warn, error)
//	--retry-attempts     JETPOOL_RETRY_ATTEMPTS     3 (calls in all of a task failing with task.Retryable errors; 1: no retry)
//	--retry-backoff      JETPOOL_RETRY_BACKOFF      100ms (the wait before the first retry, doubling)
//	--retry-max-backoff  JETPOOL_RETRY_MAX_BACKOFF  10s (the largest wait between calls)
//
// The connection flags are those of [broker.ConnectOptions.RegisterFlags];
// the worker settings are [Config]'s, read by [ConfigFromEnv]. --help names each
// variable and says whether it is set but shows no secret; no log record
// holds a password, token, seed or creds, and server URLs are logged with
// their user information hidden. Logs go to stderr as text or JSON records
// (durations as "1.5s"). Every value is checked before anything connects.
//
// With --metrics ADDR the program serves over HTTP on ADDR:
//
//	/metrics  the worker's Prometheus metrics (Worker.Collector),
//	          jetpool_build_info, and the Go runtime's and the process's
//	/healthz  200 while the process runs
//	/readyz   200 while Worker.Ready: connected and serving; 503 while
//	          starting, draining or disconnected
//
// and the worker registers as the NATS service [ServiceName] as every
// worker does, so `submit status` and `nats micro ls` list it.
//
// A program adds flags of its own with [MainFlags], reads them in
// [MainSetup] (to register handlers built from them) or in its handlers,
// and names itself with [MainName] and [MainUsage]; cmd/worker is Main over
// the built-in tasks with a --root flag of its own (JETPOOL_ROOT) read so.
// Positional arguments are refused. See [RunMain] for the same with the arguments, stderr and
// the signal given, as a test wants them.
func Main(reg *task.Registry, opts ...MainOption) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	return RunMain(ctx, os.Args[1:], os.Stderr, reg, opts...)
}

// RunMain is [Main] with its inputs given: args are the arguments after the
// program name, stderr receives the help, the messages and the logs, and
// the end of ctx stands for SIGTERM: the worker drains and RunMain returns
// 0 once it has. A test runs a worker program with it, in-process, and
// reads its exit code. It reads the environment as Main does.
func RunMain(ctx context.Context, args []string, stderr io.Writer, reg *task.Registry, opts ...MainOption) int {
	var s mainSettings
	for _, o := range opts {
		o(&s)
	}
	if s.name == "" {
		s.name = defaultName()
	}
	if reg == nil {
		fmt.Fprintln(stderr, s.name+": nil task registry")
		return 1
	}
	cfg, err := ConfigFromEnv()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	var conn broker.ConnectOptions
	var kinds, logFormat, logLevel, metricsAddr string
	fs := flag.NewFlagSet(s.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	// A mistake gets its message and a hint, not the whole help.
	fs.Usage = func() {}
	conn.RegisterFlags(fs)
	fs.StringVar(&cfg.Pool, "pool", cfg.Pool, "pool name (env JETPOOL_POOL; default \"default\")")
	fs.StringVar(&cfg.Prefix, "prefix", cfg.Prefix, "subject prefix (env JETPOOL_PREFIX; default \"jetpool\")")
	fs.StringVar(&cfg.ID, "id", cfg.ID, "worker id (env JETPOOL_WORKER_ID; default host-pid-random)")
	intFlag(fs, &cfg.Concurrency, "concurrency", "chunks run at once (env JETPOOL_CONCURRENCY; default GOMAXPROCS)")
	fs.StringVar(&kinds, "kinds", strings.Join(cfg.Kinds, ","), "comma-separated kinds to serve (env JETPOOL_KINDS; default all)")
	durationFlag(fs, &cfg.PoolConfig.AckWait, "ack-wait", "lease of a running chunk (env JETPOOL_ACK_WAIT; default 30s)")
	durationFlag(fs, &cfg.PoolConfig.Grace, "grace", "how long an unanswering producer is retried (env JETPOOL_GRACE; default 30s)")
	intFlag(fs, &cfg.PoolConfig.Replicas, "replicas", "stream replicas, 1 or 3 (env JETPOOL_REPLICAS; default 1)")
	intFlag(fs, &cfg.Retry.Attempts, "retry-attempts", "calls in all of a task failing with retryable errors; 1: no retry (env JETPOOL_RETRY_ATTEMPTS; default 3)")
	durationFlag(fs, &cfg.Retry.Backoff, "retry-backoff", "wait before the first retry, doubling for each next (env JETPOOL_RETRY_BACKOFF; default 100ms)")
	durationFlag(fs, &cfg.Retry.MaxBackoff, "retry-max-backoff", "largest wait between retries (env JETPOOL_RETRY_MAX_BACKOFF; default 10s)")
	fs.StringVar(&metricsAddr, "metrics", os.Getenv(EnvMetrics), "serve /metrics, /healthz and /readyz over HTTP on this host:port, e.g. :9090 (env JETPOOL_METRICS; default off)")
	fs.StringVar(&logFormat, "log-format", envOr(EnvLogFormat, "text"), "log format: text or json (env JETPOOL_LOG_FORMAT)")
	fs.StringVar(&logLevel, "log-level", envOr(EnvLogLevel, "info"), "log level: debug, info, warn, error (env JETPOOL_LOG_LEVEL)")
	for _, define := range s.flags {
		define(fs)
	}
	hint := "Run '" + s.name + " --help' for usage."
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, strings.TrimSpace(s.helpText(reg)))
			fmt.Fprintln(stderr, "\nFlags:")
			fs.PrintDefaults()
			return 0
		}
		fmt.Fprintln(stderr, hint)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n%s\n", s.name, fs.Arg(0), hint)
		return 2
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	src := func(flag, env string) string {
		if set[flag] {
			return "--" + flag
		}
		return env
	}
	usageErr := func(err error) int {
		fmt.Fprintln(stderr, s.name+":", err)
		return 2
	}

	level, ok := parseLevel(logLevel)
	if !ok {
		return usageErr(fmt.Errorf("%s %q: want debug, info, warn or error", src("log-level", EnvLogLevel), logLevel))
	}
	if logFormat != "text" && logFormat != "json" {
		return usageErr(fmt.Errorf("%s %q: want text or json", src("log-format", EnvLogFormat), logFormat))
	}
	logger := newLogger(stderr, logFormat, level)
	if err := broker.CheckServers(conn.URL); err != nil {
		name := "NATS_URL"
		if set["server"] || set["s"] {
			name = "--server"
		}
		return usageErr(fmt.Errorf("%s: %w", name, err))
	}
	if metricsAddr != "" {
		if err := checkAddr(metricsAddr); err != nil {
			return usageErr(fmt.Errorf("%s %q: %w", src("metrics", EnvMetrics), metricsAddr, err))
		}
	}
	cfg.Logger = logger
	cfg.Kinds = splitList(kinds)
	if cfg.User == "" && task.ValidateName(conn.User) == nil {
		// The records of named jobs name the user the worker connects as.
		cfg.User = conn.User
	}
	for _, setup := range s.setup {
		if err := setup(reg, logger); err != nil {
			return usageErr(err)
		}
	}
	if err := cfg.Validate(reg); err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}

	// Listening before dialling the server makes a taken port fail at once.
	var ln net.Listener
	if metricsAddr != "" {
		if ln, err = net.Listen("tcp", metricsAddr); err != nil {
			return usageErr(fmt.Errorf("%s %q: %w", src("metrics", EnvMetrics), metricsAddr, err))
		}
		defer ln.Close()
	}

	conn.Name = ServiceName
	conn.Logger = logger
	nc, err := broker.Connect(conn)
	if err != nil {
		fmt.Fprintln(stderr, s.name+":", err)
		if errors.Is(err, broker.ErrInvalidConnect) {
			return 2
		}
		return 1
	}
	defer nc.Close()
	w, err := New(nc, reg, cfg)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if ln != nil {
		obs, err := serveObservability(ln, w, logger)
		if err != nil {
			fmt.Fprintln(stderr, s.name+":", err)
			return 1
		}
		defer obs.shutdown()
	}
	logger.Info("worker starting", "id", w.ID(), "version", version.Version, "server", nc.ConnectedUrlRedacted(),
		"auth", authMethod(conn), "pool", cfg.Pool, "kinds", w.Kinds(), "metrics", metricsAddr)
	if err := w.Run(ctx); err != nil {
		logger.Error("worker stopped", "err", err)
		return 1
	}
	logger.Info("worker drained and stopped", "id", w.ID())
	return 0
}

// defaultName is the program's file name, or "worker" without one.
func defaultName() string {
	if len(os.Args) > 0 {
		if n := filepath.Base(os.Args[0]); n != "." && n != string(filepath.Separator) {
			return n
		}
	}
	return "worker"
}

// helpText is the program's usage text, or the default one: the kinds reg
// holds when --help is read, which are all of them unless a MainSetup
// registers more.
func (s *mainSettings) helpText(reg *task.Registry) string {
	if strings.TrimSpace(s.usage) != "" {
		return s.usage
	}
	what := "its tasks"
	if kinds := reg.Kinds(); len(kinds) > 0 {
		what = "the tasks " + strings.Join(kinds, ", ")
	}
	return fmt.Sprintf(`Usage: %s [flags]

Serves %s to a jetpool pool until SIGTERM or SIGINT, then drains: it stops
pulling, finishes what it runs and exits. Every flag has an environment
variable; flags win.

With --metrics ADDR it serves over HTTP on ADDR:
  /metrics  Prometheus metrics
  /healthz  200 while the process runs
  /readyz   200 while connected and serving; 503 while starting, draining or
            disconnected

Example:
  %s --server nats://127.0.0.1:4222 --concurrency 16 --metrics :9090`, s.name, what, s.name)
}

// intFlag defines a flag for a non-negative integer, initially *p.
func intFlag(fs *flag.FlagSet, p *int, name, help string) {
	fs.Func(name, help, func(s string) error {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return errors.New("want a non-negative integer")
		}
		*p = n
		return nil
	})
}

// durationFlag defines a flag for a duration, initially *p.
func durationFlag(fs *flag.FlagSet, p *time.Duration, name, help string) {
	fs.Func(name, help, func(s string) error {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return errors.New("want a duration such as 30s or 1m30s")
		}
		*p = d
		return nil
	})
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// checkAddr checks a host:port to listen on; the port may be 0 for any.
func checkAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("want host:port, such as :9090 or 127.0.0.1:9090")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return errors.New("port " + strconv.Quote(port) + " is not a number from 0 to 65535")
	}
	return nil
}

// authMethod names how the worker authenticates, never with what.
func authMethod(o broker.ConnectOptions) string {
	switch {
	case o.Creds != "":
		return "creds"
	case o.NKey != "":
		return "nkey"
	case o.User != "":
		return "user " + o.User
	case o.Token != "":
		return "token"
	}
	return "none"
}
