package executor

import (
	"context"
	"log/slog"

	"github.com/nats-io/nats.go"

	"github.com/jetpool/jetpool/broker"
)

// NATSConfig is a NATS executor's configuration as its options leave it.
// [NewNATS] builds one from its options and needs none from its caller; it
// is exported for a package that runs a NATS executor of its own and takes
// [PoolOption]s among its options, as executor/processpool does. Such a
// package keeps a NATSConfig in its own configuration, which it makes a
// [NATSConfigHolder], applies the PoolOptions it is given with
// [PoolOption.Apply], reads what they set with [NATSConfig.PoolConfig] and
// [NATSConfig.Logger], and starts the executor with [NATSConfig.NewNATS].
// The zero value is NewNATS's defaults.
type NATSConfig struct {
	prefix, pool string // "": broker.DefaultPrefix, broker.DefaultPool
	name         string // "": none
	pc           broker.PoolConfig
	log          *slog.Logger // nil: slog.Default()
	autoBatch    int          // 0: off
}

// A NATSConfigHolder holds a NATS executor's configuration, for
// [PoolOption.Apply] to set: NATSConfig returns it, the same each call.
type NATSConfigHolder interface {
	NATSConfig() *NATSConfig
}

// PoolConfig returns the pool settings that [NATSPoolConfig] set, as given:
// a zero field keeps its default (see broker.PoolConfig.WithDefaults). With
// no NATSPoolConfig it is the zero PoolConfig.
func (c NATSConfig) PoolConfig() broker.PoolConfig { return c.pc }

// Logger returns where the executor logs: the logger that [NATSLogger] set,
// or slog.Default().
func (c NATSConfig) Logger() *slog.Logger {
	if c.log == nil {
		return slog.Default()
	}
	return c.log
}

// NewNATS is [NewNATS] with the options that set c: it returns an executor
// publishing over nc to the default pool under the default subject prefix
// (no PoolOption sets either), creating the pool's stream if needed. The executor does not own nc: close
// it after Shutdown. It fails with the broker's error if the stream cannot
// be provisioned.
func (c NATSConfig) NewNATS(ctx context.Context, nc *nats.Conn) (*NATS, error) {
	if c.prefix == "" {
		c.prefix = broker.DefaultPrefix
	}
	if c.pool == "" {
		c.pool = broker.DefaultPool
	}
	c.log = c.Logger()
	return newNATS(ctx, nc, c)
}
