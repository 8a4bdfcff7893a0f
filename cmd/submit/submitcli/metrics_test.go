package submitcli

import (
	"bufio"
	"context"
	"io"
	"net/http"
	neturl "net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jetpool/jetpool/broker/embedded"
)

// TestMetricsGathersEveryWorker: 'submit metrics' prints the series of
// every worker online, each labelled with its worker, and --listen serves
// them on one address.
func TestMetricsGathersEveryWorker(t *testing.T) {
	url := startBroker(t)
	if code, _, errOut := run(t, "", "metrics", "--wait", "200ms"); code != ExitNoWorkers {
		t.Fatalf("with no worker: exit %d, want %d; stderr %q", code, ExitNoWorkers, errOut)
	}
	w1, w2 := startWorker(t, url), startWorker(t, url)
	eventually(t, "workers ready", func() bool { return w1.Ready() && w2.Ready() })
	if code, out, errOut := run(t, "", "map", "square", "1", "2", "3"); code != ExitOK {
		t.Fatalf("map: exit %d: %s %s", code, out, errOut)
	}

	code, out, errOut := run(t, "", "metrics", "--wait", "300ms")
	if code != ExitOK {
		t.Fatalf("metrics: exit %d; stderr %q", code, errOut)
	}
	succeeded := regexp.MustCompile(`(?m)^jetpool_worker_tasks_succeeded_total\{kind="square",pool="default",worker="([^"]+)"\} (\d+)$`)
	found := map[string]string{}
	for _, m := range succeeded.FindAllStringSubmatch(out, -1) {
		found[m[1]] = m[2]
	}
	if len(found) != 2 || found[w1.ID()] == "" || found[w2.ID()] == "" {
		t.Fatalf("square's succeeded series by worker %v, want %s and %s, in:\n%s", found, w1.ID(), w2.ID(), out)
	}

	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int, 1)
	go func() {
		done <- runMetrics(ctx, []string{"--listen", "127.0.0.1:0", "--wait", "300ms"}, IO{In: strings.NewReader(""), Out: io.Discard, Err: pw})
		pw.Close()
	}()
	addr := ""
	lines := bufio.NewScanner(pr)
	for addr == "" && lines.Scan() {
		if _, rest, ok := strings.Cut(lines.Text(), "on http://"); ok {
			addr = strings.TrimSuffix(rest, "/metrics")
		}
	}
	go io.Copy(io.Discard, pr)
	if addr == "" {
		t.Fatal("--listen never said where it serves")
	}
	client := http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(succeeded.FindAllString(string(body), -1)) != 2 {
		t.Errorf("GET /metrics: %s, want both workers' series in:\n%s", resp.Status, body)
	}
	resp, err = client.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz: %s", resp.Status)
	}
	cancel()
	select {
	case code := <-done:
		if code != ExitOK {
			t.Errorf("--listen exit %d after its context ended, want 0", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("--listen did not stop")
	}
}

// TestMapSaysWhenItLosesTheBroker: a map whose broker restarts says on
// stderr that it lost the connection and got it back, and finishes.
func TestMapSaysWhenItLosesTheBroker(t *testing.T) {
	dir := t.TempDir()
	srv, err := embedded.Start(embedded.Config{StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	u, err := neturl.Parse(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	t.Setenv("NATS_URL", srv.ClientURL())
	startWorker(t, srv.ClientURL())

	pr, pw := io.Pipe()
	done := make(chan int, 1)
	var out lockedBuilder
	go func() {
		done <- runMap(t.Context(), []string{"sleep", "--chunksize", "1", "--grace", "30s"},
			IO{In: strings.NewReader(strings.Repeat("200\n", 40)), Out: &out, Err: pw})
		pw.Close()
	}()
	lines := make(chan string, 100)
	go func() {
		s := bufio.NewScanner(pr)
		for s.Scan() {
			lines <- s.Text()
		}
		close(lines)
	}()
	eventually(t, "the first results", func() bool { return strings.Count(out.String(), "\n") > 0 })
	srv.Shutdown()
	wait := func(what string) {
		t.Helper()
		timeout := time.After(20 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("stderr ended before %q", what)
				}
				if strings.Contains(l, what) {
					return
				}
			case <-timeout:
				t.Fatalf("stderr never said %q", what)
			}
		}
	}
	wait("submit: broker: disconnected; reconnecting")
	srv, err = embedded.Start(embedded.Config{StoreDir: dir, Port: port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	wait("submit: broker: reconnected")
	select {
	case code := <-done:
		if code != ExitOK {
			t.Fatalf("map exit %d after the broker came back", code)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the map did not finish after the broker came back")
	}
	if n := strings.Count(out.String(), "\n"); n != 40 {
		t.Fatalf("%d results, want 40", n)
	}
}

// lockedBuilder is a strings.Builder that a command writes while the test
// reads it.
type lockedBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuilder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuilder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
