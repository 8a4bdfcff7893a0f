package processpool_test

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/executor"
	"github.com/jetpool/jetpool/executor/processpool"
)

// pipe returns an os.Pipe and what is written to it until its writer is
// closed, read as it comes so that no writer blocks on a full pipe.
func pipe(t *testing.T) (*os.File, <-chan string) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	go func() {
		defer r.Close()
		b, _ := io.ReadAll(r)
		got <- string(b)
	}()
	t.Cleanup(func() { w.Close() })
	return w, got
}

// TestProcessPoolStdout: what a worker process writes to its standard output
// reaches the Stdout option's file, by default this process's standard
// output, and what it writes to its standard error the Stderr option's.
func TestProcessPoolStdout(t *testing.T) {
	for _, byDefault := range []bool{false, true} {
		name := map[bool]string{false: "Stdout", true: "os.Stdout"}[byDefault]
		t.Run(name, func(t *testing.T) {
			outW, out := pipe(t)
			errW, errs := pipe(t)
			opts := []processpool.Option{processpool.Stderr(errW), executor.NATSPoolConfig(faultPoolConfig)}
			if !byDefault {
				opts = append(opts, processpool.Stdout(outW))
			}
			stdout := os.Stdout
			if byDefault {
				os.Stdout = outW
			}
			p, err := processpool.New(t.Context(), 1, opts...)
			os.Stdout = stdout
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			f, err := executor.Submit(ctx, p, Say, "hello")
			if err != nil {
				t.Fatal(err)
			}
			if v, err := f.Result(ctx); err != nil || v != "hello" {
				t.Fatalf("Say(hello) = %q, %v", v, err)
			}
			// Once Shutdown has waited for the worker process, this
			// process holds the pipes' last writers.
			if err := p.Shutdown(ctx, true, false); err != nil {
				t.Fatal(err)
			}
			outW.Close()
			errW.Close()
			stdoutText, stderrText := <-out, <-errs
			if !strings.Contains(stdoutText, "out: hello\n") || strings.Contains(stdoutText, "err: hello") {
				t.Errorf("the workers' standard output is %q, want the line out: hello and not err: hello", stdoutText)
			}
			if !strings.Contains(stderrText, "err: hello\n") || strings.Contains(stderrText, "out: hello") {
				t.Errorf("the workers' standard error is %q, want the line err: hello and not out: hello", stderrText)
			}
		})
	}
}

// TestProcessPoolAckWait: a pool's lease is AckWait unless NATSPoolConfig
// sets one; a PoolConfig that leaves AckWait zero still gets AckWait, not
// the pool default. The workers' consumers are created with it.
func TestProcessPoolAckWait(t *testing.T) {
	cases := []struct {
		name string
		opts []processpool.Option
		want time.Duration
	}{
		{"no NATSPoolConfig", nil, processpool.AckWait},
		{"NATSPoolConfig without AckWait", []processpool.Option{executor.NATSPoolConfig(broker.PoolConfig{Grace: 5 * time.Second})}, processpool.AckWait},
		{"NATSPoolConfig with AckWait", []processpool.Option{executor.NATSPoolConfig(broker.PoolConfig{AckWait: 3 * time.Second})}, 3 * time.Second},
	}
	subj, err := broker.NewSubjects(broker.DefaultPrefix, broker.DefaultPool)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := processpool.New(t.Context(), 1, c.opts...)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				if err := p.Shutdown(ctx, true, true); err != nil {
					t.Errorf("Shutdown: %v", err)
				}
			})
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			f, err := executor.Submit(ctx, p, SlowSquare, 3)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Result(ctx); err != nil {
				t.Fatal(err)
			}
			js, err := jetstream.New(connect(t, p.URL()))
			if err != nil {
				t.Fatal(err)
			}
			cons, err := js.Consumer(ctx, subj.Stream(), subj.Consumer(SlowSquare.Kind()))
			if err != nil {
				t.Fatal(err)
			}
			if got := cons.CachedInfo().Config.AckWait; got != c.want {
				t.Errorf("the workers' consumer has AckWait %v, want %v", got, c.want)
			}
		})
	}
}

// holder is a NATS executor configuration that is not New's.
type holder struct{ c executor.NATSConfig }

func (h *holder) NATSConfig() *executor.NATSConfig { return &h.c }

// TestOptionOfAnotherHolder: an option of this package applied to a
// configuration other than New's fails; it does not panic.
func TestOptionOfAnotherHolder(t *testing.T) {
	for name, o := range map[string]processpool.Option{
		"Concurrency": processpool.Concurrency(2),
		"StoreDir":    processpool.StoreDir(t.TempDir()),
		"Stdout":      processpool.Stdout(os.Stdout),
	} {
		if err := o.Apply(&holder{}); !errors.Is(err, executor.ErrInvalidOption) {
			t.Errorf("%s applied to another holder = %v, want ErrInvalidOption", name, err)
		}
	}
}
