package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/jetpool/jetpool/broker/embedded"
	"github.com/jetpool/jetpool/examples/wordcount/tasks"
	"github.com/jetpool/jetpool/task"
	"github.com/jetpool/jetpool/worker"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// writeFiles writes name=body pairs into a new directory and returns their
// paths in order.
func writeFiles(t *testing.T, files ...string) []string {
	t.Helper()
	dir := t.TempDir()
	var paths []string
	for _, f := range files {
		name, body, _ := strings.Cut(f, "=")
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}

// TestRun runs the producer against a worker with stand-in handlers of the
// two kinds: what they return is printed, in order, as JSON lines.
func TestRun(t *testing.T) {
	t.Setenv("JETPOOL_POOL", "")
	srv, err := embedded.Start(embedded.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	reg := task.NewRegistry()
	task.Handle(reg, tasks.WordCount, func(_ context.Context, tx tasks.Text) (tasks.Counts, error) {
		return tasks.Counts{Name: tx.Name, Bytes: len(tx.Body)}, nil
	})
	asked := make(chan tasks.TopArgs, 1)
	task.Handle(reg, tasks.TopWords, func(_ context.Context, a tasks.TopArgs) ([]tasks.WordFreq, error) {
		select {
		case asked <- a:
		default: // a second run would not block the worker
		}
		return []tasks.WordFreq{{Word: "stand-in", Count: a.N}}, nil
	})
	w, err := worker.New(nc, reg, worker.Config{Pool: "wc", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- w.Run(ctx) }()
	defer func() {
		stop()
		if err := <-served; err != nil {
			t.Errorf("worker: %v", err)
		}
	}()

	paths := writeFiles(t, "one.txt=a b", "two.txt=c\n")
	var stdout, stderr bytes.Buffer
	args := append([]string{"--server", srv.ClientURL(), "--pool", "wc", "--top", "2", "--timeout", "15s"}, paths...)
	if code := run(t.Context(), args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit code %d, want 0:\n%s", code, stderr.String())
	}
	want := `{"name":"one.txt","lines":0,"words":0,"bytes":3}
{"name":"two.txt","lines":0,"words":0,"bytes":2}
{"top":[{"word":"stand-in","count":2}]}
`
	if stdout.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", stdout.String(), want)
	}
	if a := <-asked; a.Body != "a b\nc\n\n" || a.N != 2 {
		t.Errorf("top-words asked for %+v, want the files' bodies, each ended by a newline, and n 2", a)
	}
}

func TestUsage(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.txt")
	tests := []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "Usage: wordcount [flags] FILE..."},
		{[]string{"--top", "0", "a.txt"}, 2, "Usage: wordcount [flags] FILE..."},
		{[]string{"--bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{missing}, 2, "wordcount: open " + missing},
		{[]string{"--help"}, 0, "(env JETPOOL_POOL)"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		code := run(ctx, tt.args, &stdout, &stderr)
		cancel()
		if code != tt.code || !strings.Contains(stderr.String(), tt.want) || stdout.Len() != 0 {
			t.Errorf("%q: exit %d with %q, want %d with %q and no output", tt.args, code, stderr.String(), tt.code, tt.want)
		}
	}
}
