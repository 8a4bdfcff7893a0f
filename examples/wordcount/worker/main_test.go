package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/jetpool/jetpool/broker/embedded"
	"github.com/jetpool/jetpool/examples/wordcount/tasks"
	"github.com/jetpool/jetpool/executor"
	"github.com/jetpool/jetpool/task"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const waitFor = 15 * time.Second

// TestServes runs the program in-process, as worker.RunMain lets a test do,
// and submits both kinds to it the way the example's producer does.
func TestServes(t *testing.T) {
	t.Setenv("NATS_URL", "")
	t.Setenv(envStopwords, "the,A")
	srv, err := embedded.Start(embedded.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	var stderr bytes.Buffer
	exit := make(chan int, 1)
	go func() { exit <- run(ctx, []string{"--server", srv.ClientURL(), "--log-level", "warn"}, &stderr) }()

	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	wait, cancel := context.WithTimeout(t.Context(), waitFor)
	defer cancel()
	ex, err := executor.NewNATS(wait, nc, executor.NATSLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Shutdown(context.Background(), true, true)

	texts := []tasks.Text{
		{Name: "a.txt", Body: "The cat sat.\nThe cat ran!\n"},
		{Name: "empty.txt", Body: ""},
		{Name: "b.txt", Body: "a dog, a cat"},
	}
	var got []tasks.Counts
	for c, err := range executor.Map(wait, ex, tasks.WordCount, func(yield func(tasks.Text) bool) {
		for _, tx := range texts {
			if !yield(tx) {
				return
			}
		}
	}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, c)
	}
	want := []tasks.Counts{{Name: "a.txt", Lines: 2, Words: 6, Bytes: 26}, {Name: "empty.txt", Lines: 0, Words: 0, Bytes: 0}, {Name: "b.txt", Lines: 0, Words: 4, Bytes: 12}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("counts %+v, want %+v", got, want)
	}

	f, err := executor.Submit(wait, ex, tasks.TopWords, tasks.TopArgs{Body: texts[0].Body + texts[2].Body, N: 3})
	if err != nil {
		t.Fatal(err)
	}
	top, err := f.Result(wait)
	if want := []tasks.WordFreq{{Word: "cat", Count: 3}, {Word: "dog", Count: 1}, {Word: "ran", Count: 1}}; err != nil || !reflect.DeepEqual(top, want) {
		t.Errorf("top-words = %+v, %v; want %+v", top, err, want)
	}
	f, err = executor.Submit(wait, ex, tasks.TopWords, tasks.TopArgs{Body: "x", N: 0})
	if err != nil {
		t.Fatal(err)
	}
	var te *task.Error
	if _, err := f.Result(wait); !errors.As(err, &te) || te.Type != task.TypeBadInput || te.Message != "top-words: n 0, want 1 or more" {
		t.Errorf("top-words with n 0: %v, want a %s error", err, task.TypeBadInput)
	}

	stop()
	select {
	case code := <-exit:
		if code != 0 {
			t.Errorf("exit code %d, want 0:\n%s", code, stderr.String())
		}
	case <-time.After(waitFor):
		t.Fatal("the worker did not drain")
	}
}

func TestBadStopwords(t *testing.T) {
	t.Setenv(envStopwords, "")
	var stderr bytes.Buffer
	code := run(t.Context(), []string{"--stopwords", "the,a b"}, &stderr)
	if want := "wordcount-worker: --stopwords: \"a b\" is not a word\n"; code != 2 || stderr.String() != want {
		t.Errorf("exit %d with %q, want 2 with %q", code, stderr.String(), want)
	}
}

func TestHelp(t *testing.T) {
	var stderr bytes.Buffer
	if code := run(t.Context(), []string{"-h"}, &stderr); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	for _, want := range []string{"Usage: wordcount-worker [flags]", "-stopwords words", "(env WORDCOUNT_STOPWORDS)", "-metrics"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, stderr.String())
		}
	}
}

func TestTopWordsOrder(t *testing.T) {
	stop := map[string]bool{"and": true}
	got, err := topWords(t.Context(), tasks.TopArgs{Body: "b a c b a -- And AND 42 42 42", N: 10}, stop)
	want := []tasks.WordFreq{{Word: "42", Count: 3}, {Word: "a", Count: 2}, {Word: "b", Count: 2}, {Word: "c", Count: 1}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("topWords = %+v, %v; want %+v", got, err, want)
	}
}
