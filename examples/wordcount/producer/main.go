// Command wordcount counts the words of files on the wordcount example's
// workers (examples/wordcount/worker): one task of kind wordcount per file,
// through executor.Map, and one top-words task over all of them, through
// executor.Submit, with the task definitions the workers use.
//
//	go build -o bin/wordcount ./examples/wordcount/producer
//	bin/wordcount --server nats://127.0.0.1:4222 --top 5 README.md BENCHMARKS.md
//
// It prints one JSON line per file, in order, {"name", "lines", "words",
// "bytes"}, then {"top": [{"word", "count"}, ...]}. It takes the connection
// flags and NATS_* variables of the jetpool commands. Exit codes: 0
// success, 1 a task or the broker failed, 2 usage.
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/examples/wordcount/tasks"
	"github.com/jetpool/jetpool/executor"
)

const usage = `Usage: wordcount [flags] FILE...

Counts the lines, words and bytes of each FILE on the pool's wordcount
workers and prints them as JSON lines, in order, then the --top most
frequent words of all the files.

Flags:`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("wordcount", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, usage)
		fs.PrintDefaults()
	}
	conn := broker.ConnectOptions{Name: "wordcount"}
	conn.RegisterFlags(fs)
	pool := fs.String("pool", cmp.Or(os.Getenv("JETPOOL_POOL"), broker.DefaultPool), "pool `name` (env JETPOOL_POOL)")
	top := fs.Int("top", 10, "how many of the most frequent words to print")
	timeout := fs.Duration("timeout", time.Minute, "give up after this long")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() == 0 || *top < 1 {
		fs.Usage()
		return 2
	}
	texts := make([]tasks.Text, fs.NArg())
	var all strings.Builder
	for i, path := range fs.Args() {
		b, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintln(stderr, "wordcount:", err)
			return 2
		}
		texts[i] = tasks.Text{Name: filepath.Base(path), Body: string(b)}
		all.Write(b)
		all.WriteByte('\n')
	}

	nc, err := broker.Connect(conn)
	if err != nil {
		fmt.Fprintln(stderr, "wordcount:", err)
		return 1
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ex, err := executor.NewNATS(ctx, nc, executor.NATSPool(*pool), executor.NATSLogger(quiet))
	if err != nil {
		fmt.Fprintln(stderr, "wordcount:", err)
		return 1
	}
	defer ex.Shutdown(context.Background(), false, true)

	out := json.NewEncoder(stdout)
	for counts, err := range executor.Map(ctx, ex, tasks.WordCount, slices.Values(texts)) {
		if err != nil {
			fmt.Fprintln(stderr, "wordcount:", err)
			return 1
		}
		out.Encode(counts)
	}
	f, err := executor.Submit(ctx, ex, tasks.TopWords, tasks.TopArgs{Body: all.String(), N: *top})
	if err != nil {
		fmt.Fprintln(stderr, "wordcount:", err)
		return 1
	}
	words, err := f.Result(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "wordcount:", err)
		return 1
	}
	out.Encode(struct {
		Top []tasks.WordFreq `json:"top"`
	}{words})
	return 0
}
