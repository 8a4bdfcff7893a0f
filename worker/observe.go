package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/jetpool/jetpool/internal/version"
)

// observability is the HTTP server of a worker program's --metrics.
type observability struct {
	srv  *http.Server
	done chan struct{}
	log  *slog.Logger
}

// serveObservability serves w's metrics, the Go runtime's and the process's
// from a registry of their own, and the health endpoints, on ln until
// shutdown.
func serveObservability(ln net.Listener, w *Worker, log *slog.Logger) (*observability, error) {
	reg := prometheus.NewRegistry()
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "jetpool_build_info", Help: "Always 1; its version label is the jetpool release.",
		ConstLabels: prometheus.Labels{"version": version.Version},
	})
	build.Set(1)
	for _, c := range []prometheus.Collector{
		w.Collector(), build,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	o := &observability{
		srv: &http.Server{
			Handler:           observeHandler(reg, w.Ready),
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
		done: make(chan struct{}),
		log:  log,
	}
	go func() {
		defer close(o.done)
		if err := o.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	log.Info("metrics server listening", "addr", ln.Addr().String(), "paths", []string{"/metrics", "/healthz", "/readyz"})
	return o, nil
}

// observeHandler routes /metrics to g, /healthz to a constant 200 and /readyz to
// 200 or 503 as ready says.
func observeHandler(g prometheus.Gatherer, ready func() bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	return mux
}

// shutdown stops the server, letting requests under way finish for up to
// five seconds, and waits for its goroutine. It is safe to call twice.
func (o *observability) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := o.srv.Shutdown(ctx); err != nil {
		o.log.Warn("metrics server shutdown", "err", err)
	}
	<-o.done
}
