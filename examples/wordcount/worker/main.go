// Command wordcount-worker serves the wordcount example's kinds (wordcount,
// top-words) to a jetpool pool. It is worker.Main over a registry of its
// own, with one flag of its own, --stopwords: every flag, variable, HTTP
// endpoint and the drain on SIGTERM of cmd/worker come with worker.Main.
//
//	go build -o bin/wordcount-worker ./examples/wordcount/worker
//	bin/wordcount-worker --server nats://127.0.0.1:4222 --metrics :9090
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"unicode"

	"github.com/jetpool/jetpool/examples/wordcount/tasks"
	"github.com/jetpool/jetpool/task"
	"github.com/jetpool/jetpool/worker"
)

// envStopwords is the variable of --stopwords.
const envStopwords = "WORDCOUNT_STOPWORDS"

const usage = `
Usage: wordcount-worker [flags]

Serves the kinds wordcount and top-words of the wordcount example to a jetpool
pool until SIGTERM or SIGINT, then drains. Every flag has an environment
variable; flags win. --stopwords is this program's; the others are those of
every jetpool worker program (go doc github.com/jetpool/jetpool/worker.Main).

Example:
  WORDCOUNT_STOPWORDS=the,a,of wordcount-worker --server nats://127.0.0.1:4222 --metrics :9090
`

func main() {
	os.Exit(worker.Main(task.NewRegistry(), options()...))
}

// run is main with its inputs given, as the tests run it.
func run(ctx context.Context, args []string, stderr io.Writer) int {
	return worker.RunMain(ctx, args, stderr, task.NewRegistry(), options()...)
}

// options make the program: its name, its help, --stopwords, and the
// handlers, registered once --stopwords is known.
func options() []worker.MainOption {
	var stopwords string
	return []worker.MainOption{
		worker.MainName("wordcount-worker"),
		worker.MainUsage(usage),
		worker.MainFlags(func(fs *flag.FlagSet) {
			fs.StringVar(&stopwords, "stopwords", os.Getenv(envStopwords),
				"comma-separated `words` top-words leaves out, in any case (env "+envStopwords+")")
		}),
		worker.MainSetup(func(reg *task.Registry, log *slog.Logger) error {
			stop, err := parseStopwords(stopwords)
			if err != nil {
				return err
			}
			task.Handle(reg, tasks.WordCount, countWords)
			task.Handle(reg, tasks.TopWords, func(ctx context.Context, a tasks.TopArgs) ([]tasks.WordFreq, error) {
				return topWords(ctx, a, stop)
			})
			log.Info("wordcount worker set up", "stopwords", len(stop))
			return nil
		}),
	}
}

// parseStopwords reads --stopwords: words without spaces or punctuation
// around them.
func parseStopwords(list string) (map[string]bool, error) {
	stop := map[string]bool{}
	for _, w := range strings.Split(list, ",") {
		w = strings.TrimSpace(w)
		if w == "" {
			continue
		}
		if strings.ContainsFunc(w, unicode.IsSpace) || normalize(w) != strings.ToLower(w) {
			return nil, fmt.Errorf("--stopwords: %q is not a word", w)
		}
		stop[strings.ToLower(w)] = true
	}
	return stop, nil
}

// countWords counts as wc does.
func countWords(_ context.Context, t tasks.Text) (tasks.Counts, error) {
	return tasks.Counts{
		Name:  t.Name,
		Lines: strings.Count(t.Body, "\n"),
		Words: len(strings.Fields(t.Body)),
		Bytes: len(t.Body),
	}, nil
}

// badInput is a task error of type task.TypeBadInput.
type badInput string

func (e badInput) Error() string     { return string(e) }
func (e badInput) ErrorType() string { return task.TypeBadInput }

// topWords returns the a.N most frequent words of a.Body that are not in
// stop. It stops early, with the context's error, when its task is
// interrupted or runs out of its deadline.
func topWords(ctx context.Context, a tasks.TopArgs, stop map[string]bool) ([]tasks.WordFreq, error) {
	if a.N < 1 {
		return nil, badInput(fmt.Sprintf("top-words: n %d, want 1 or more", a.N))
	}
	counts := map[string]int{}
	for i, f := range strings.Fields(a.Body) {
		if i%4096 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if w := normalize(f); w != "" && !stop[w] {
			counts[w]++
		}
	}
	freqs := make([]tasks.WordFreq, 0, len(counts))
	for w, n := range counts {
		freqs = append(freqs, tasks.WordFreq{Word: w, Count: n})
	}
	sort.Slice(freqs, func(i, j int) bool {
		if freqs[i].Count != freqs[j].Count {
			return freqs[i].Count > freqs[j].Count
		}
		return freqs[i].Word < freqs[j].Word
	})
	return freqs[:min(a.N, len(freqs))], nil
}

// normalize lower-cases a word and trims the punctuation around it.
func normalize(w string) string {
	return strings.ToLower(strings.TrimFunc(w, func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	}))
}
