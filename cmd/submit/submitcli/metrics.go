package submitcli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/common/expfmt"

	"github.com/jetpool/jetpool/worker"
)

const metricsUsage = `
Usage: submit metrics [flags]

Gathers the Prometheus metrics of every worker of a pool online, over NATS:
each worker's service answers on <prefix>.<pool>.worker.<id>.metrics, and
every series gets the label worker="<id>". Without --listen it prints them
once, in Prometheus' text format, and exits with code 6 if no worker
answered. With --listen ADDR it serves them at http://ADDR/metrics until
SIGTERM or SIGINT, gathered afresh for each scrape, so that one scrape target
covers a whole pool however many workers it has and wherever they run;
/healthz answers 200 while connected to the broker. A worker that does not
answer within --wait is left out and named on standard error.

Examples:
  submit metrics --server nats://127.0.0.1:4222 | grep tasks_succeeded
  submit metrics --listen :9100 --pool batch
`

func runMetrics(ctx context.Context, args []string, io IO) int {
	var listen string
	p, wait, ok, code := parseDiscovery("metrics", metricsUsage, args, io, func(fs *flag.FlagSet) {
		fs.StringVar(&listen, "listen", "", "serve /metrics and /healthz over HTTP on this host:port instead of printing once")
	})
	if !ok {
		return code
	}
	var ln net.Listener
	if listen != "" {
		// Listening before connecting makes a taken port fail at once.
		var err error
		if ln, err = net.Listen("tcp", listen); err != nil {
			fmt.Fprintf(io.Err, "submit metrics: --listen %q: %v\n", listen, err)
			return ExitUsage
		}
		defer ln.Close()
	}
	nc, code := connect(&p, io, "metrics")
	if nc == nil {
		return code
	}
	defer nc.Close()
	if ln == nil {
		var b bytes.Buffer
		n, err := gatherMetrics(ctx, nc, p.pool, wait, &b)
		if n == 0 && err == nil {
			fmt.Fprintf(io.Err, "submit metrics: no worker of pool %q answered within %v\n", p.pool, wait)
			return ExitNoWorkers
		}
		if err != nil {
			fmt.Fprintln(io.Err, "submit metrics:", err)
			switch {
			case ctx.Err() != nil:
				return ExitInterrupted
			case n == 0:
				// Workers answered discovery, but none its metrics request.
				return ExitNoWorkers
			}
		}
		io.Out.Write(b.Bytes())
		return ExitOK
	}
	return serveMetrics(ctx, ln, nc, p.pool, wait, io.Err)
}

// gatherMetrics writes the pool's metrics to w in Prometheus' text format
// and returns how many families it wrote; the error names the workers left
// out.
func gatherMetrics(ctx context.Context, nc *nats.Conn, pool string, wait time.Duration, w io.Writer) (int, error) {
	families, err := worker.PoolMetrics(ctx, nc, pool, wait)
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range families {
		if encErr := enc.Encode(mf); encErr != nil {
			return 0, encErr
		}
	}
	return len(families), err
}

// serveMetrics serves the pool's metrics on ln until ctx ends.
func serveMetrics(ctx context.Context, ln net.Listener, nc *nats.Conn, pool string, wait time.Duration, stderr io.Writer) int {
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(rw http.ResponseWriter, r *http.Request) {
		var b bytes.Buffer
		if _, err := gatherMetrics(r.Context(), nc, pool, wait, &b); err != nil {
			fmt.Fprintln(stderr, "submit metrics:", err)
		}
		rw.Header().Set("Content-Type", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
		rw.Write(b.Bytes())
	})
	mux.HandleFunc("/healthz", func(rw http.ResponseWriter, r *http.Request) {
		if nc.Status() != nats.CONNECTED {
			http.Error(rw, "not connected to the broker", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(rw, "ok")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(stderr, "submit metrics: serving pool %q on http://%s/metrics\n", pool, ln.Addr())
	select {
	case err := <-served:
		fmt.Fprintln(stderr, "submit metrics:", err)
		return ExitUnavailable
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(shutdown)
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(stderr, "submit metrics:", err)
		return ExitUnavailable
	}
	return ExitOK
}
