package broker

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetpool/jetpool/broker/embedded"
)

// newJetStream starts an embedded server and returns a JetStream client on
// it and a context that ends with the test.
func newJetStream(t *testing.T) (context.Context, jetstream.JetStream) {
	t.Helper()
	srv := startServer(t, embedded.Config{})
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx, js
}

func countNames(t *testing.T, names interface {
	Name() <-chan string
	Err() error
}) int {
	t.Helper()
	n := 0
	for range names.Name() {
		n++
	}
	if err := names.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPoolConfigDefaults(t *testing.T) {
	want := PoolConfig{Replicas: 1, AckWait: 30 * time.Second, MaxDeliver: 10, MaxAckPending: 4096, DuplicateWindow: 2 * time.Minute, Grace: 30 * time.Second, ValueTTL: DefaultValueTTL, ValueThreshold: DefaultValueThreshold}
	if got := (PoolConfig{}).WithDefaults(); got != want {
		t.Fatalf("WithDefaults() = %+v, want %+v", got, want)
	}
	set := PoolConfig{Replicas: 3, AckWait: time.Second, MaxDeliver: 2, MaxAckPending: 5, DuplicateWindow: time.Hour, Grace: time.Minute, ValueTTL: time.Hour, ValueThreshold: 4096}
	if got := set.WithDefaults(); got != set {
		t.Fatalf("WithDefaults() changed set fields: %+v", got)
	}
}

func TestPoolConfigValidate(t *testing.T) {
	valid := []PoolConfig{
		{},
		{Replicas: 1},
		{Replicas: 3},
		{AckWait: 100 * time.Millisecond},
		{MaxDeliver: 1},
		{MaxAckPending: 1},
		{DuplicateWindow: time.Second},
		{Grace: 100 * time.Millisecond},
		{ValueTTL: time.Second},
	}
	for _, c := range valid {
		if err := c.Validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
	invalid := []struct {
		name  string
		cfg   PoolConfig
		field string
	}{
		{"two replicas", PoolConfig{Replicas: 2}, "replicas"},
		{"five replicas", PoolConfig{Replicas: 5}, "replicas"},
		{"negative replicas", PoolConfig{Replicas: -1}, "replicas"},
		{"ack wait below 100ms", PoolConfig{AckWait: 99 * time.Millisecond}, "ack wait"},
		{"negative ack wait", PoolConfig{AckWait: -time.Second}, "ack wait"},
		{"negative max deliver", PoolConfig{MaxDeliver: -1}, "max deliver"},
		{"negative max ack pending", PoolConfig{MaxAckPending: -5}, "max ack pending"},
		{"duplicate window below 1s", PoolConfig{DuplicateWindow: 999 * time.Millisecond}, "duplicate window"},
		{"negative duplicate window", PoolConfig{DuplicateWindow: -time.Minute}, "duplicate window"},
		{"grace below 100ms", PoolConfig{Grace: 99 * time.Millisecond}, "grace"},
		{"negative grace", PoolConfig{Grace: -time.Second}, "grace"},
		{"value TTL below 1s", PoolConfig{ValueTTL: time.Millisecond}, "value TTL"},
		{"value threshold below 1 KiB", PoolConfig{ValueThreshold: 1023}, "value threshold"},
	}
	for _, c := range invalid {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.Validate()
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), c.field) {
				t.Fatalf("Validate() = %v, want ErrInvalidConfig naming %q", err, c.field)
			}
		})
	}
}

// TestProvisioningIsIdempotent: the stream and each kind's consumer are
// created once with the pool's settings, and found again after.
func TestProvisioningIsIdempotent(t *testing.T) {
	ctx, js := newJetStream(t)
	s, _ := NewSubjects(DefaultPrefix, "prov")
	pc := PoolConfig{AckWait: 5 * time.Second, MaxDeliver: 4, MaxAckPending: 7, DuplicateWindow: 90 * time.Second}
	kinds := []string{"square", "say-hi", "copy_file"}
	for range 2 {
		st, err := EnsureStream(ctx, js, s, pc)
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if c := info.Config; c.Name != s.Stream() || c.Retention != jetstream.WorkQueuePolicy || c.Storage != jetstream.FileStorage ||
			c.Replicas != 1 || c.Duplicates != 90*time.Second || len(c.Subjects) != 1 || c.Subjects[0] != s.AllTasks() {
			t.Fatalf("stream config %+v", c)
		}
		for _, kind := range kinds {
			cons, err := EnsureConsumer(ctx, js, s, kind, pc)
			if err != nil {
				t.Fatal(err)
			}
			ci, err := cons.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if c := ci.Config; c.Durable != kind || c.AckWait != 5*time.Second || c.MaxDeliver != 4 || c.MaxAckPending != 7 ||
				c.FilterSubject != s.Tasks(kind) || c.AckPolicy != jetstream.AckExplicitPolicy || c.DeliverPolicy != jetstream.DeliverAllPolicy {
				t.Fatalf("consumer config %+v", c)
			}
		}
	}
	if n := countNames(t, js.StreamNames(ctx)); n != 1 {
		t.Fatalf("%d streams, want 1", n)
	}
	st, _ := js.Stream(ctx, s.Stream())
	if n := countNames(t, st.ConsumerNames(ctx)); n != len(kinds) {
		t.Fatalf("%d consumers, want one for each of %d kinds", n, len(kinds))
	}
}

// TestConsumersSplitKinds: each kind's consumer sees its own kind's chunks
// and no other's.
func TestConsumersSplitKinds(t *testing.T) {
	ctx, js := newJetStream(t)
	s, _ := NewSubjects(DefaultPrefix, "split")
	if _, err := EnsureStream(ctx, js, s, PoolConfig{}); err != nil {
		t.Fatal(err)
	}
	pending := map[string]uint64{"a": 1, "b": 2}
	for kind, n := range pending {
		for range n {
			if _, err := js.Publish(ctx, s.Tasks(kind), []byte(kind)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for kind, n := range pending {
		cons, err := EnsureConsumer(ctx, js, s, kind, PoolConfig{})
		if err != nil {
			t.Fatal(err)
		}
		ci, err := cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ci.NumPending != n {
			t.Errorf("consumer %s has %d pending, want %d", kind, ci.NumPending, n)
		}
	}
}

// TestProvisioningKeepsExistingSettings: a stream or consumer that exists is
// used as it is, whatever the later caller's settings.
func TestProvisioningKeepsExistingSettings(t *testing.T) {
	ctx, js := newJetStream(t)
	s, _ := NewSubjects(DefaultPrefix, "keep")
	first := PoolConfig{AckWait: 2 * time.Second, DuplicateWindow: 10 * time.Second}
	if _, err := EnsureStream(ctx, js, s, first); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureConsumer(ctx, js, s, "square", first); err != nil {
		t.Fatal(err)
	}
	second := PoolConfig{AckWait: time.Minute, DuplicateWindow: time.Hour}
	st, err := EnsureStream(ctx, js, s, second)
	if err != nil {
		t.Fatal(err)
	}
	if d := st.CachedInfo().Config.Duplicates; d != 10*time.Second {
		t.Errorf("duplicate window %v, want the first caller's 10s", d)
	}
	cons, err := EnsureConsumer(ctx, js, s, "square", second)
	if err != nil {
		t.Fatal(err)
	}
	if w := cons.CachedInfo().Config.AckWait; w != 2*time.Second {
		t.Errorf("ack wait %v, want the first caller's 2s", w)
	}
}

// TestProvisioningRaces: many processes provisioning one pool at once all
// succeed and make one stream and one consumer.
func TestProvisioningRaces(t *testing.T) {
	ctx, js := newJetStream(t)
	s, _ := NewSubjects(DefaultPrefix, "race")
	const racers = 8
	errs := make(chan error, racers)
	var wg sync.WaitGroup
	for range racers {
		wg.Go(func() {
			if _, err := EnsureStream(ctx, js, s, PoolConfig{}); err != nil {
				errs <- err
				return
			}
			_, err := EnsureConsumer(ctx, js, s, "square", PoolConfig{})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	st, err := js.Stream(ctx, s.Stream())
	if err != nil {
		t.Fatal(err)
	}
	if n := countNames(t, st.ConsumerNames(ctx)); n != 1 {
		t.Fatalf("%d consumers, want 1", n)
	}
}

func TestProvisioningRefusesInvalidConfig(t *testing.T) {
	ctx, js := newJetStream(t)
	s, _ := NewSubjects(DefaultPrefix, "bad")
	for name, bad := range map[string]PoolConfig{
		"replicas 2": {Replicas: 2}, "negative ack wait": {AckWait: -time.Second},
		"max deliver below 1": {MaxDeliver: -1}, "short dedup window": {DuplicateWindow: time.Millisecond},
		"negative max ack pending": {MaxAckPending: -1}, "short grace": {Grace: time.Millisecond},
	} {
		if _, err := EnsureStream(ctx, js, s, bad); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("EnsureStream with %s: %v, want ErrInvalidConfig", name, err)
		}
		if _, err := EnsureConsumer(ctx, js, s, "square", bad); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("EnsureConsumer with %s: %v, want ErrInvalidConfig", name, err)
		}
	}
	if n := countNames(t, js.StreamNames(ctx)); n != 0 {
		t.Fatalf("%d streams made from invalid configs", n)
	}
}

// TestProvisioningErrorsNameTheObject: what the server refuses comes back as
// an error naming the stream or consumer.
func TestProvisioningErrorsNameTheObject(t *testing.T) {
	ctx, js := newJetStream(t)
	s, _ := NewSubjects(DefaultPrefix, "errs")
	if _, err := EnsureStream(ctx, js, s, PoolConfig{Replicas: 3}); err == nil || !strings.Contains(err.Error(), "create stream "+s.Stream()) {
		t.Errorf("three replicas on one server: %v", err)
	}
	if _, err := EnsureConsumer(ctx, js, s, "square", PoolConfig{}); err == nil || !strings.Contains(err.Error(), "square") {
		t.Errorf("a consumer without its stream: %v", err)
	}
}

// TestStreamTakesOnlyReadableSubjects: the stream stores a chunk only on a
// subject some kind's consumer can read; a deeper one is refused at publish
// instead of staying in the stream forever. A stream made with the older,
// wider filter is narrowed.
func TestStreamTakesOnlyReadableSubjects(t *testing.T) {
	ctx, js := newJetStream(t)
	s, _ := NewSubjects(DefaultPrefix, "narrow")
	_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: s.Stream(), Subjects: []string{s.legacyAllTasks()},
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, s.Tasks("square")+".extra.tokens", []byte{0x90}); err != nil {
		t.Fatalf("the legacy filter refused a deep subject: %v", err)
	}
	st, err := EnsureStream(ctx, js, s, PoolConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if got := st.CachedInfo().Config.Subjects; len(got) != 1 || got[0] != s.AllTasks() {
		t.Fatalf("stream subjects %v, want [%s]", got, s.AllTasks())
	}
	if _, err := js.Publish(ctx, s.Tasks("square")+".extra.tokens", []byte{0x90}); !errors.Is(err, jetstream.ErrNoStreamResponse) && !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("publish to a subject below a kind: %v, want no stream to take it", err)
	}
	if _, err := js.Publish(ctx, s.Tasks("square"), []byte{0x90}); err != nil {
		t.Fatalf("publish to a kind's subject: %v", err)
	}
}
