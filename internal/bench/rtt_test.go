package bench

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetpool/jetpool/broker/embedded"
)

const (
	envRequesterURL = "JETPOOL_BENCH_REQUESTER_URL"
	envRequests     = "JETPOOL_BENCH_REQUESTS"
)

// BenchmarkCrossProcessRequest measures the transport under every start
// round trip of a process pool, bare: a core-NATS request and its reply
// between a child process and this one, which runs the embedded server and
// the responder. The child makes b.N requests one at a time, 5 ms apart, as
// an idle pool's worker would:
//
//	go test -run '^$' -bench CrossProcessRequest -benchtime 500x ./internal/bench
func BenchmarkCrossProcessRequest(b *testing.B) {
	srv, err := embedded.Start(embedded.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Subscribe("bench.rtt", func(m *nats.Msg) { m.Respond(m.Data) }); err != nil {
		b.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), envRequesterURL+"="+srv.ClientURL(), envRequests+"="+strconv.Itoa(b.N))
	cmd.Stderr = os.Stderr
	b.ResetTimer()
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("requester: %v", err)
	}
	var p50, p99 float64
	if _, err := fmt.Sscanf(strings.TrimSpace(string(out)), "%g %g", &p50, &p99); err != nil {
		b.Fatalf("requester printed %q", out)
	}
	b.ReportMetric(p50, "p50-µs")
	b.ReportMetric(p99, "p99-µs")
}

// runRequester is the child of BenchmarkCrossProcessRequest: it prints the
// p50 and p99 of its requests in microseconds.
func runRequester(url string, out io.Writer) int {
	n, err := strconv.Atoi(os.Getenv(envRequests))
	if err != nil || n < 1 {
		n = 1
	}
	nc, err := nats.Connect(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer nc.Close()
	lat := make([]time.Duration, n)
	for i := range lat {
		start := time.Now()
		if _, err := nc.Request("bench.rtt", []byte("x"), 5*time.Second); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		lat[i] = time.Since(start)
		time.Sleep(5 * time.Millisecond)
	}
	figs := percentiles("", lat)
	fmt.Fprintf(out, "%g %g\n", figs[0].Value, figs[1].Value)
	return 0
}
