package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// PoolConfig is what a pool's stream and consumers are provisioned with.
// Producers and workers of one pool should agree on it; the zero value of
// each field means its default.
type PoolConfig struct {
	// Replicas of the stream: 1 (default) or 3 for a cluster.
	Replicas int
	// AckWait is how long a delivered chunk may go without an ack or an
	// InProgress before JetStream redelivers it; it is also the lease of a
	// running attempt. Default 30s.
	AckWait time.Duration
	// MaxDeliver is how many times a chunk is delivered before its futures
	// fail. Default 10. A named job's chunk runs at most MaxDeliver-1 times
	// when MaxDeliver is above one: its last delivery stores its tasks'
	// failure in JetStream instead (see broker/wire's job flow).
	MaxDeliver int
	// MaxAckPending bounds the chunks of one kind delivered and not yet
	// acked, across all workers: the pool's backpressure. Default 4096.
	MaxAckPending int
	// DuplicateWindow is how long a chunk id is remembered to drop a
	// republished chunk. Default 2m.
	DuplicateWindow time.Duration
	// Grace is how long workers keep asking a producer that does not answer
	// before dropping its chunk, how long a producer cut off from the broker
	// waits before failing its pending futures, and how long it keeps
	// publishing again a chunk whose publish may have been lost before
	// failing its futures. Default 30s.
	Grace time.Duration
	// ValueTTL is how long the pool's values bucket keeps a value too large
	// for a message (see Values), when the bucket is created: what a
	// producer or worker that died left there is removed after it. A value
	// still needed then is lost: reading it fails with ErrValueLost.
	// Default DefaultValueTTL.
	ValueTTL time.Duration
	// ValueThreshold is the encoded size in bytes above which an input or
	// a result travels by reference to the values bucket rather than in
	// its message; never more than half the server's maximum payload (see
	// SpillAbove). Default DefaultValueThreshold; at least 1 KiB.
	ValueThreshold int64
}

// WithDefaults returns c with every zero field set to its default.
func (c PoolConfig) WithDefaults() PoolConfig {
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.AckWait == 0 {
		c.AckWait = 30 * time.Second
	}
	if c.MaxDeliver == 0 {
		c.MaxDeliver = 10
	}
	if c.MaxAckPending == 0 {
		c.MaxAckPending = 4096
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = 2 * time.Minute
	}
	if c.Grace == 0 {
		c.Grace = 30 * time.Second
	}
	if c.ValueTTL == 0 {
		c.ValueTTL = DefaultValueTTL
	}
	if c.ValueThreshold == 0 {
		c.ValueThreshold = DefaultValueThreshold
	}
	return c
}

// ErrInvalidConfig is matched by errors for PoolConfig values out of range.
var ErrInvalidConfig = errors.New("broker: invalid pool config")

// Validate reports a field out of range.
func (c PoolConfig) Validate() error {
	c = c.WithDefaults()
	switch {
	case c.Replicas != 1 && c.Replicas != 3:
		return fmt.Errorf("%w: replicas %d, want 1 or 3", ErrInvalidConfig, c.Replicas)
	case c.AckWait < 100*time.Millisecond:
		return fmt.Errorf("%w: ack wait %v below 100ms", ErrInvalidConfig, c.AckWait)
	case c.MaxDeliver < 1:
		return fmt.Errorf("%w: max deliver %d below 1", ErrInvalidConfig, c.MaxDeliver)
	case c.MaxAckPending < 1:
		return fmt.Errorf("%w: max ack pending %d below 1", ErrInvalidConfig, c.MaxAckPending)
	case c.DuplicateWindow < time.Second:
		return fmt.Errorf("%w: duplicate window %v below 1s", ErrInvalidConfig, c.DuplicateWindow)
	case c.Grace < 100*time.Millisecond:
		return fmt.Errorf("%w: grace %v below 100ms", ErrInvalidConfig, c.Grace)
	case c.ValueTTL < time.Second:
		return fmt.Errorf("%w: value TTL %v below 1s", ErrInvalidConfig, c.ValueTTL)
	case c.ValueThreshold < 1<<10:
		return fmt.Errorf("%w: value threshold %d below 1 KiB", ErrInvalidConfig, c.ValueThreshold)
	}
	return nil
}

// EnsureStream returns the pool's stream, creating it if it does not exist:
// WorkQueue retention, file storage, cfg.Replicas, the dedup window. An
// existing stream is used as it is, so producers and workers started with
// other settings never fight over it. It is safe to race from many processes.
func EnsureStream(ctx context.Context, js jetstream.JetStream, s Subjects, cfg PoolConfig) (jetstream.Stream, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	if st, err := js.Stream(ctx, s.Stream()); err == nil {
		return ownStream(ctx, js, st, s)
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("broker: look up stream %s: %w", s.Stream(), err)
	}
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:       s.Stream(),
		Subjects:   []string{s.AllTasks()},
		Retention:  jetstream.WorkQueuePolicy,
		Storage:    jetstream.FileStorage,
		Replicas:   cfg.Replicas,
		Duplicates: cfg.DuplicateWindow,
		Discard:    jetstream.DiscardOld,
	})
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		if st, err = js.Stream(ctx, s.Stream()); err == nil {
			return ownStream(ctx, js, st, s)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("broker: create stream %s: %w", s.Stream(), err)
	}
	return st, nil
}

// ownStream returns st if it holds s's task subjects. Stream names fold case
// and join prefix and pool with '_', so two pools (prefix "a_b" and pool "c",
// prefix "a" and pool "b_c"; pools "Batch" and "batch") can name the same
// stream; the second is refused instead of publishing into a stream that
// does not take its subjects. A stream of this pool made with the older,
// wider filter is narrowed to AllTasks.
func ownStream(ctx context.Context, js jetstream.JetStream, st jetstream.Stream, s Subjects) (jetstream.Stream, error) {
	info := st.CachedInfo()
	subjects := info.Config.Subjects
	if slices.Contains(subjects, s.AllTasks()) {
		return st, nil
	}
	if slices.Equal(subjects, []string{s.legacyAllTasks()}) {
		// A chunk on a deeper subject would be stored where no consumer
		// reads it, and stay there forever.
		cfg := info.Config
		cfg.Subjects = []string{s.AllTasks()}
		st, err := js.UpdateStream(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("broker: narrow stream %s to %s: %w", s.Stream(), s.AllTasks(), err)
		}
		return st, nil
	}
	return nil, fmt.Errorf("%w: stream %s belongs to another pool (subjects %v, not %s); choose another pool or prefix name",
		ErrInvalidName, s.Stream(), subjects, s.AllTasks())
}

// EnsureConsumer returns the durable pull consumer of kind shared by all the
// pool's workers of that kind, creating it if it does not exist: explicit
// ack, AckWait, MaxDeliver, MaxAckPending. An existing consumer is used as it
// is. It is safe to race from many processes.
func EnsureConsumer(ctx context.Context, js jetstream.JetStream, s Subjects, kind string, cfg PoolConfig) (jetstream.Consumer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	if c, err := js.Consumer(ctx, s.Stream(), s.Consumer(kind)); err == nil {
		return c, nil
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("broker: look up consumer %s: %w", kind, err)
	}
	// CreateConsumer succeeds when an identical consumer was created
	// meanwhile by another worker.
	c, err := js.CreateConsumer(ctx, s.Stream(), jetstream.ConsumerConfig{
		Durable:       s.Consumer(kind),
		FilterSubject: s.Tasks(kind),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxDeliver:    cfg.MaxDeliver,
		MaxAckPending: cfg.MaxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if errors.Is(err, jetstream.ErrConsumerExists) {
		c, err = js.Consumer(ctx, s.Stream(), s.Consumer(kind))
	}
	if err != nil {
		return nil, fmt.Errorf("broker: create consumer %s: %w", kind, err)
	}
	return c, nil
}

// EnsureJobs returns the pool's jobs bucket (see broker/wire's job flow),
// creating it if it does not exist: a key-value bucket of one record per
// key, file storage, cfg.Replicas, direct gets, per-message TTLs. It is
// made as a stream, so that a producer needs no permission beyond that
// stream's own API; an existing one is used as it is. It is safe to race
// from many processes.
func EnsureJobs(ctx context.Context, js jetstream.JetStream, s Subjects, cfg PoolConfig) (jetstream.Stream, error) {
	cfg = cfg.WithDefaults()
	return ensureStream(ctx, js, jetstream.StreamConfig{
		Name:              s.JobsStream(),
		Subjects:          []string{"$KV." + s.JobsBucket() + ".>"},
		MaxMsgsPerSubject: 1,
		MaxBytes:          -1,
		MaxMsgs:           -1,
		MaxMsgSize:        -1,
		MaxConsumers:      -1,
		Storage:           jetstream.FileStorage,
		Replicas:          cfg.Replicas,
		AllowRollup:       true,
		DenyDelete:        true,
		AllowDirect:       true,
		AllowMsgTTL:       true,
		Duplicates:        cfg.DuplicateWindow,
		Discard:           jetstream.DiscardNew,
	})
}

// EnsureResults returns owner's results stream, creating it if it does not
// exist: file storage, cfg.Replicas, per-message TTLs, no direct gets (only
// the owner reads it, through the stream's own API) and no rollups. It is
// safe to race from many processes.
func EnsureResults(ctx context.Context, js jetstream.JetStream, s Subjects, owner string, cfg PoolConfig) (jetstream.Stream, error) {
	cfg = cfg.WithDefaults()
	return ensureStream(ctx, js, jetstream.StreamConfig{
		Name:        s.ResultsStream(owner),
		Subjects:    []string{s.AllResults(owner)},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		AllowMsgTTL: true,
		Duplicates:  cfg.DuplicateWindow,
		Discard:     jetstream.DiscardOld,
	})
}

// ensureStream looks the stream of cfg up, and creates it if it does not
// exist.
func ensureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	if st, err := js.Stream(ctx, cfg.Name); err == nil {
		return st, nil
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("broker: look up stream %s: %w", cfg.Name, err)
	}
	st, err := js.CreateStream(ctx, cfg)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		st, err = js.Stream(ctx, cfg.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("broker: create stream %s: %w", cfg.Name, err)
	}
	return st, nil
}
