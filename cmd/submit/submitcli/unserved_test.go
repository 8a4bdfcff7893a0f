package submitcli

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

// watchWriter keeps what is written to it and closes seen once that holds
// want.
type watchWriter struct {
	mu   sync.Mutex
	b    strings.Builder
	want string
	seen chan struct{}
}

func newWatchWriter(want string) *watchWriter {
	return &watchWriter{want: want, seen: make(chan struct{})}
}

func (w *watchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	had := strings.Contains(w.b.String(), w.want)
	w.b.Write(p)
	if !had && strings.Contains(w.b.String(), w.want) {
		close(w.seen)
	}
	return len(p), nil
}

func (w *watchWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestWarnsOfAKindNoWorkerServes: map and run of a kind no worker of the
// pool serves say so once on stderr, naming the kind and the pool, and keep
// waiting for a worker until stopped.
func TestWarnsOfAKindNoWorkerServes(t *testing.T) {
	url := startBroker(t)
	startWorker(t, url) // serves the built-in kinds of pool default
	if code, _, errOut := run(t, "", "run", "square", "2"); code != ExitOK {
		t.Fatalf("run square 2: exit %d, %s", code, errOut)
	}
	cases := []struct {
		name       string
		cmd        func(*mapFlags, context.Context, []string, IO) int
		args       []string
		kind, pool string
	}{
		{"map", (*mapFlags).runMap, []string{"nosuch", "1"}, "nosuch", "default"},
		{"run", (*mapFlags).runOne, []string{"nosuch", "1"}, "nosuch", "default"},
		{"map in another pool", (*mapFlags).runMap, []string{"square", "1", "--pool", "other"}, "square", "other"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := `submit: no worker online serves kind "` + c.kind + `" in pool "` + c.pool + `"; tasks wait for one` + "\n"
			stderr := newWatchWriter(want)
			var out bytes.Buffer
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			f := mapFlags{noWorkerAfter: 10 * time.Millisecond}
			code := make(chan int, 1)
			go func() { code <- c.cmd(&f, ctx, c.args, IO{In: strings.NewReader(""), Out: &out, Err: stderr}) }()
			select {
			case <-stderr.seen:
			case got := <-code:
				t.Fatalf("returned %d before warning; stderr:\n%s", got, stderr)
			case <-time.After(15 * time.Second):
				t.Fatalf("no warning after 15s; stderr:\n%s", stderr)
			}
			cancel()
			select {
			case <-code:
			case <-time.After(30 * time.Second):
				t.Fatal("command did not end once its context did")
			}
			if n := strings.Count(stderr.String(), "no worker online"); n != 1 || out.Len() != 0 {
				t.Fatalf("%d warnings, stdout %q; stderr:\n%s", n, out.String(), stderr)
			}
		})
	}
}

// TestNoWarningForAServedKind: a kind a worker serves runs without the
// warning, however long its task takes.
func TestNoWarningForAServedKind(t *testing.T) {
	url := startBroker(t)
	startWorker(t, url)
	if code, _, errOut := run(t, "", "run", "square", "2"); code != ExitOK { // the worker is online
		t.Fatalf("run square 2: exit %d, %s", code, errOut)
	}
	f := mapFlags{noWorkerAfter: time.Millisecond}
	var out, errb bytes.Buffer
	// The task outlasts the look for workers (worker.DiscoverWait).
	code := f.runOne(t.Context(), []string{"sleep", "1500"}, IO{In: strings.NewReader(""), Out: &out, Err: &errb})
	if code != ExitOK || strings.Contains(errb.String(), "no worker") {
		t.Fatalf("run sleep 1500: exit %d, stderr:\n%s", code, errb.String())
	}
}

// TestWarnsOfAKindTheEmbeddedPoolLacks: the embedded pool's workers serve
// the built-in kinds only.
func TestWarnsOfAKindTheEmbeddedPoolLacks(t *testing.T) {
	t.Setenv(testMainEnv, "1") // the pool's worker processes are this test binary
	want := `submit: no worker online serves kind "nosuch" in pool "default"; tasks wait for one`
	stderr := newWatchWriter(want)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	f := mapFlags{noWorkerAfter: 10 * time.Millisecond}
	code := make(chan int, 1)
	go func() {
		code <- f.runMap(ctx, []string{"nosuch", "1", "--embedded", "--workers", "1"}, IO{In: strings.NewReader(""), Out: &bytes.Buffer{}, Err: stderr})
	}()
	select {
	case <-stderr.seen:
	case got := <-code:
		t.Fatalf("returned %d before warning; stderr:\n%s", got, stderr)
	case <-time.After(15 * time.Second):
		t.Fatalf("no warning after 15s; stderr:\n%s", stderr)
	}
	cancel()
	select {
	case <-code:
	case <-time.After(30 * time.Second):
		t.Fatal("command did not end once its context did")
	}
}
