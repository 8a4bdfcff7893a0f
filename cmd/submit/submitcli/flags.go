package submitcli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/executor/processpool"
	"github.com/jetpool/jetpool/task"
	"github.com/jetpool/jetpool/worker"
)

// Environment variables of the settings that submit shares with the worker
// (see worker.ConfigFromEnv); a flag wins over its variable.
const (
	envPool     = "JETPOOL_POOL"
	envPrefix   = "JETPOOL_PREFIX"
	envName     = "JETPOOL_NAME"
	envAckWait  = "JETPOOL_ACK_WAIT"
	envGrace    = "JETPOOL_GRACE"
	envReplicas = "JETPOOL_REPLICAS"
)

// poolFlags are the flags of every command that talks to a pool: how to reach
// its broker, following the nats CLI's names and environment variables, and
// which pool it is.
type poolFlags struct {
	conn   broker.ConnectOptions
	pool   string
	prefix string
}

func (p *poolFlags) register(fs *flag.FlagSet) {
	p.conn.RegisterFlags(fs)
	fs.StringVar(&p.pool, "pool", envOr(envPool, broker.DefaultPool), "pool name (env "+envPool+")")
	fs.StringVar(&p.prefix, "prefix", envOr(envPrefix, broker.DefaultPrefix), "subject prefix (env "+envPrefix+")")
}

// validate checks the pool name and prefix; fs tells whether a value came
// from its flag or its variable, so that the message names the one that is
// wrong.
func (p *poolFlags) validate(fs *flag.FlagSet) error {
	if err := task.ValidateName(p.pool); err != nil {
		return settingErr(fs, "pool", envPool, "", nameWhy(err))
	}
	if err := task.ValidateName(p.prefix); err != nil {
		return settingErr(fs, "prefix", envPrefix, "", nameWhy(err))
	}
	return nil
}

// common holds the flags of the commands that submit tasks: the pool's and,
// for a producer, its name, the pool settings it creates the stream with,
// and the embedded pool it may run instead of connecting.
type common struct {
	poolFlags
	name      string
	embedded  bool
	workers   int
	perWorker int
	storeDir  string
	ackWait   time.Duration
	grace     time.Duration
	replicas  int

	envErr error // a malformed JETPOOL_* variable, reported by validate
}

func (c *common) register(fs *flag.FlagSet) {
	c.poolFlags.register(fs)
	fs.StringVar(&c.name, "name", os.Getenv(envName), "the producer's name: its control subjects are <prefix>.<pool>.ctl.<name>.*, which a server can keep to this producer's user (env "+envName+"; see docs/security.md)")
	fs.BoolVar(&c.embedded, "embedded", false, "run an embedded NATS server and local worker processes instead of connecting")
	fs.IntVar(&c.workers, "workers", 4, fmt.Sprintf("with --embedded: worker processes to start, 1 to %d", processpool.MaxProcesses))
	fs.IntVar(&c.perWorker, "worker-concurrency", 1, "with --embedded: tasks each worker process runs at once, at least 1")
	fs.StringVar(&c.storeDir, "store", "", "with --embedded: JetStream store directory (default: a temporary one)")
	c.ackWait = c.envDuration(envAckWait)
	c.grace = c.envDuration(envGrace)
	c.replicas = c.envInt(envReplicas)
	fs.DurationVar(&c.ackWait, "ack-wait", c.ackWait, "lease of a running chunk before it is redelivered, at least 100ms (env "+envAckWait+"; 0: the default, 30s)")
	fs.DurationVar(&c.grace, "grace", c.grace, "how long an unreachable producer or broker is waited for, at least 100ms (env "+envGrace+"; 0: the default, 30s)")
	fs.IntVar(&c.replicas, "replicas", c.replicas, "stream replicas if this creates the pool's stream: 1 or 3 (env "+envReplicas+"; 0: the default, 1)")
}

func (c *common) envDuration(key string) time.Duration {
	v := os.Getenv(key)
	if v == "" {
		return 0
	}
	d, err := time.ParseDuration(v)
	if err != nil && c.envErr == nil {
		c.envErr = fmt.Errorf("%s=%q: not a duration such as 30s", key, v)
	}
	return d
}

func (c *common) envInt(key string) int {
	v := os.Getenv(key)
	if v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil && c.envErr == nil {
		c.envErr = fmt.Errorf("%s=%q: not an integer", key, v)
	}
	return n
}

// validate checks every setting in c before anything connects and returns
// an error that names the one flag or variable that is wrong.
func (c *common) validate(fs *flag.FlagSet) error {
	if c.envErr != nil {
		return c.envErr
	}
	if err := c.poolFlags.validate(fs); err != nil {
		return err
	}
	if c.name != "" {
		if err := task.ValidateName(c.name); err != nil {
			return settingErr(fs, "name", envName, "", nameWhy(err))
		}
	}
	switch {
	case c.replicas != 0 && c.replicas != 1 && c.replicas != 3:
		return settingErr(fs, "replicas", envReplicas, strconv.Itoa(c.replicas), "want 1 or 3")
	case c.ackWait != 0 && c.ackWait < 100*time.Millisecond:
		return settingErr(fs, "ack-wait", envAckWait, c.ackWait.String(), "want at least 100ms, or 0 for the default")
	case c.grace != 0 && c.grace < 100*time.Millisecond:
		return settingErr(fs, "grace", envGrace, c.grace.String(), "want at least 100ms, or 0 for the default")
	case c.workers < 1 || c.workers > processpool.MaxProcesses:
		return settingErr(fs, "workers", "", strconv.Itoa(c.workers), fmt.Sprintf("want 1 to %d worker processes", processpool.MaxProcesses))
	case c.perWorker < 1:
		return settingErr(fs, "worker-concurrency", "", strconv.Itoa(c.perWorker), "want at least 1")
	}
	// A setting this command does not use is not silently ignored.
	if c.embedded {
		for _, name := range []string{"server", "s", "pool", "prefix", "name"} {
			if isSet(fs, name) {
				return fmt.Errorf("%s: an --embedded pool has its own broker and its default pool", flagText(name))
			}
		}
	}
	if !c.embedded {
		for _, name := range []string{"workers", "worker-concurrency", "store"} {
			if isSet(fs, name) {
				return fmt.Errorf("--%s: only with --embedded", name)
			}
		}
	}
	if err := c.poolConfig().Validate(); err != nil {
		return err // every field was checked above; this keeps the two in step
	}
	return nil
}

func (c *common) poolConfig() broker.PoolConfig {
	return broker.PoolConfig{AckWait: c.ackWait, Grace: c.grace, Replicas: c.replicas}
}

// settingErr says that value (if not "") is wrong and why, naming the flag
// if it was given and otherwise the environment variable it came from.
func settingErr(fs *flag.FlagSet, flagName, env, value, why string) error {
	if env != "" && !isSet(fs, flagName) && os.Getenv(env) != "" {
		return fmt.Errorf("%s=%q: %s", env, os.Getenv(env), why)
	}
	name := "--" + flagName
	if value != "" {
		name += " " + value
	}
	return fmt.Errorf("%s: %s", name, why)
}

// nameWhy is what makes a name invalid, without the package's prefix.
func nameWhy(err error) string {
	msg := err.Error()
	if errors.Is(err, task.ErrInvalidName) {
		msg = strings.TrimPrefix(msg, task.ErrInvalidName.Error()+": ")
	}
	return "not a valid name: " + msg
}

// flagText is how a flag is written on the command line.
func flagText(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// isSet reports whether the flag was given on the command line.
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// parseInterspersed parses flags wherever they stand among the positional
// arguments, so `map square 1 2 --chunksize 2` works as users expect. A "--"
// ends flag parsing.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		// Parse stops at the first argument that is not a flag, or after
		// a "--", which it takes.
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// newFlagSet returns a flag set that reports errors instead of exiting and
// prints usage with examples to w.
func newFlagSet(name, usage string, w io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(w)
	fs.Usage = func() {
		fmt.Fprintln(w, strings.TrimSpace(usage))
		fmt.Fprintln(w, "\nFlags:")
		fs.PrintDefaults()
	}
	return fs
}

// parseDiscovery parses the command line of a command that takes no
// arguments and asks the workers online: the pool's flags, --wait, and the
// flags more defines. It says why it cannot on io.Err and returns false,
// with the exit code, or true to go on.
func parseDiscovery(name, usage string, args []string, io IO, more func(*flag.FlagSet)) (p poolFlags, wait time.Duration, ok bool, code int) {
	fs := newFlagSet(name, usage, io.Err)
	p.register(fs)
	fs.DurationVar(&wait, "wait", worker.DiscoverWait, "how long to collect workers' answers")
	if more != nil {
		more(fs)
	}
	pos, err := parseInterspersed(fs, args)
	switch {
	case err != nil:
		return p, 0, false, usageErr(err)
	case len(pos) > 0:
		fmt.Fprintf(io.Err, "submit %s: takes no arguments\n", name)
		return p, 0, false, ExitUsage
	case wait <= 0:
		fmt.Fprintf(io.Err, "submit %s: --wait %v: want more than 0\n", name, wait)
		return p, 0, false, ExitUsage
	}
	if err := p.validate(fs); err != nil {
		fmt.Fprintf(io.Err, "submit %s: %v\n", name, err)
		return p, 0, false, ExitUsage
	}
	return p, wait, true, ExitOK
}
