package submitcli

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/executor"
)

// common holds the flags every command takes: where the pool is and how to
// reach it, following the nats CLI's names and environment variables.
type common struct {
	conn      broker.ConnectOptions
	pool      string
	prefix    string
	name      string
	embedded  bool
	workers   int
	perWorker int
	storeDir  string
	ackWait   time.Duration
	grace     time.Duration
	replicas  int
}

func (c *common) register(fs *flag.FlagSet) {
	c.conn.RegisterFlags(fs)
	fs.StringVar(&c.pool, "pool", envOr("JETPOOL_POOL", broker.DefaultPool), "pool name (env JETPOOL_POOL)")
	fs.StringVar(&c.prefix, "prefix", envOr("JETPOOL_PREFIX", broker.DefaultPrefix), "subject prefix (env JETPOOL_PREFIX)")
	fs.StringVar(&c.name, "name", os.Getenv("JETPOOL_NAME"), "the producer's name: its control subjects are <prefix>.<pool>.ctl.<name>.*, which a server can keep to this producer's user (env JETPOOL_NAME; see docs/security.md)")
	fs.BoolVar(&c.embedded, "embedded", false, "run an embedded NATS server and local worker processes instead of connecting")
	fs.IntVar(&c.workers, "workers", 4, fmt.Sprintf("with --embedded: worker processes to start, at most %d", executor.MaxProcesses))
	fs.IntVar(&c.perWorker, "worker-concurrency", 1, "with --embedded: tasks each worker process runs at once")
	fs.StringVar(&c.storeDir, "store", "", "with --embedded: JetStream store directory (default: a temporary one)")
	fs.DurationVar(&c.ackWait, "ack-wait", 0, "lease of a running chunk before it is redelivered (default 30s)")
	fs.DurationVar(&c.grace, "grace", 0, "how long an unreachable producer or broker is waited for (default 30s)")
	fs.IntVar(&c.replicas, "replicas", 0, "stream replicas if this creates the pool's stream: 1 or 3 (default 1)")
}

func (c *common) poolConfig() broker.PoolConfig {
	return broker.PoolConfig{AckWait: c.ackWait, Grace: c.grace, Replicas: c.replicas}
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
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
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
