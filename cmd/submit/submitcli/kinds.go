package submitcli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"sort"
	"text/tabwriter"

	"github.com/jetpool/jetpool/builtin"
	"github.com/jetpool/jetpool/worker"
)

const kindsUsage = `
Usage: submit kinds [flags]

Lists the task kinds that the workers of a pool online serve, found through
NATS service discovery (as 'nats micro ls' finds the workers), with how many
workers serve each and how many tasks they run at once in all: the built-in
kinds and any other kind a worker registers. Built-in kinds say what they
take and give. If no worker answers within --wait, it says so on standard
error and exits with code 6.

Examples:
  submit kinds --server nats://127.0.0.1:4222
  submit kinds --pool batch --json
`

// Kinds is what 'submit kinds' reports, also as its --json document; the
// fields are the table's columns.
type Kinds struct {
	Pool    string       `json:"pool"`
	Workers int          `json:"workers"` // workers online in the pool
	Kinds   []KindServed `json:"kinds"`
}

// KindServed is one kind that workers online serve.
type KindServed struct {
	Kind        string `json:"kind"`
	Workers     int    `json:"workers"`     // workers online that serve it
	Slots       int    `json:"slots"`       // tasks those workers run at once, in all (a worker runs its concurrency of chunks, of any of its kinds)
	Description string `json:"description"` // for a built-in kind, its input and output; "" otherwise
}

func runKinds(ctx context.Context, args []string, io IO) int {
	var asJSON bool
	p, wait, ok, code := parseDiscovery("kinds", kindsUsage, args, io, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print one JSON document")
	})
	if !ok {
		return code
	}
	nc, code := connect(&p, io, "kinds")
	if nc == nil {
		return code
	}
	defer nc.Close()
	workers, err := worker.Discover(ctx, nc, p.pool, wait)
	if err != nil {
		fmt.Fprintln(io.Err, "submit kinds:", err)
		return ExitUnavailable
	}
	k := servedKinds(p.pool, workers)
	if asJSON {
		b, _ := json.MarshalIndent(k, "", "  ")
		fmt.Fprintln(io.Out, string(b))
	} else if len(workers) > 0 {
		tw := tabwriter.NewWriter(io.Out, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "KIND\tWORKERS\tSLOTS\tDESCRIPTION")
		for _, s := range k.Kinds {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", s.Kind, s.Workers, s.Slots, s.Description)
		}
		tw.Flush()
	}
	if len(workers) == 0 {
		fmt.Fprintf(io.Err, "submit kinds: no worker of pool %q answered within %v\n", p.pool, wait)
		return ExitNoWorkers
	}
	return ExitOK
}

// servedKinds counts, per kind, the workers that serve it and their slots.
func servedKinds(pool string, workers []worker.Online) Kinds {
	descriptions := builtin.Kinds()
	byKind := map[string]*KindServed{}
	for _, w := range workers {
		for _, kind := range w.Kinds {
			s := byKind[kind]
			if s == nil {
				s = &KindServed{Kind: kind, Description: descriptions[kind]}
				byKind[kind] = s
			}
			s.Workers++
			s.Slots += w.Concurrency
		}
	}
	k := Kinds{Pool: pool, Workers: len(workers), Kinds: []KindServed{}}
	for _, s := range byKind {
		k.Kinds = append(k.Kinds, *s)
	}
	sort.Slice(k.Kinds, func(i, j int) bool { return k.Kinds[i].Kind < k.Kinds[j].Kind })
	return k
}
