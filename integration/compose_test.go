package integration

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/builtin"
	"github.com/jetpool/jetpool/executor"
	"github.com/jetpool/jetpool/worker"
)

// composeAckWait is the lease of the compose workers: the default, which
// the producer sets too, whichever of them creates the consumer.
const composeAckWait = 30 * time.Second

// composeRun is the project's docker-compose.yml brought up as users run it,
// under a project name and on host ports of its own.
type composeRun struct {
	t       *testing.T
	project string
	env     []string
	ports   map[string]int // node name -> host client port; also "monitor" and "metrics"
}

// upCompose starts docker-compose.yml with the run's images and the given
// number of workers, and takes it down with its volumes when the test ends.
func upCompose(t *testing.T, workers int) *composeRun {
	t.Helper()
	if _, err := exec.LookPath("docker-compose"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("docker-compose is required when CI=true:", err)
		}
		t.Skip("no docker-compose on this machine")
	}
	// docker-compose checks that every service's build context exists even
	// when its image is there and nothing is built; on a fresh clone
	// scripts/images.sh has not made bin/ yet.
	if err := os.MkdirAll("../bin", 0o755); err != nil {
		t.Fatal(err)
	}
	c := &composeRun{t: t, project: "jetpool-it-" + runID}
	t.Cleanup(func() { c.run("down", "-v", "--remove-orphans") })
	// A free port can be taken between its pick and "up": pick again then.
	for try := 1; ; try++ {
		c.env = append(os.Environ(), "JETPOOL_NATS_IMAGE="+natsImage, "JETPOOL_WORKER_IMAGE="+workerImage, "JETPOOL_SUBMIT_IMAGE="+submitImage)
		c.ports = map[string]int{}
		for name, env := range map[string]string{"n1": "JETPOOL_N1_PORT", "n2": "JETPOOL_N2_PORT", "n3": "JETPOOL_N3_PORT",
			"monitor": "JETPOOL_MONITOR_PORT", "metrics": "JETPOOL_METRICS_PORT"} {
			port := freePort(t)
			c.env = append(c.env, env+"="+strconv.Itoa(port))
			c.ports[name] = port
		}
		out, err := c.compose("up", "-d", "--scale", "worker="+strconv.Itoa(workers))
		if err == nil {
			break
		}
		if try == 3 || !strings.Contains(out, "port is already allocated") {
			t.Fatalf("docker-compose up: %v\n%s", err, out)
		}
		c.run("down", "-v", "--remove-orphans")
	}
	return c
}

// run runs docker-compose on the project's file and fails the test if it
// fails.
func (c *composeRun) run(args ...string) {
	c.t.Helper()
	if out, err := c.compose(args...); err != nil {
		c.t.Errorf("docker-compose %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// compose runs docker-compose on the project's file.
func (c *composeRun) compose(args ...string) (string, error) {
	file, err := filepath.Abs("../docker-compose.yml")
	if err != nil {
		return "", err
	}
	cmd := exec.Command("docker-compose", append([]string{"-f", file, "-p", c.project}, args...)...)
	cmd.Env = c.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// url lists every node's published client port, as the README tells a
// producer on the host to.
func (c *composeRun) url() string {
	var urls []string
	for _, name := range nodeNames {
		urls = append(urls, "nats://127.0.0.1:"+strconv.Itoa(c.ports[name]))
	}
	return strings.Join(urls, ",")
}

// nodeOf names the node whose published port url is.
func (c *composeRun) nodeOf(url string) string {
	for _, name := range nodeNames {
		if strings.HasSuffix(url, ":"+strconv.Itoa(c.ports[name])) {
			return name
		}
	}
	c.t.Fatalf("%s is no node of the compose cluster", url)
	return ""
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestComposeProducerOnHostSurvivesNodeStop runs docker-compose.yml as the
// README does, with a producer on the host given the three published client
// ports, and stops the producer's node in the middle of its tasks: the
// producer goes on through another and every task resolves once with its
// result.
func TestComposeProducerOnHostSurvivesNodeStop(t *testing.T) {
	c := upCompose(t, 2)
	nc, err := broker.Connect(broker.ConnectOptions{URL: c.url(), Name: "compose-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	// The stream needs the cluster's three peers, and the workers must be
	// up; both take a few seconds after "up".
	var ex *executor.NATS
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(250 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		ex, err = executor.NewNATS(ctx, nc, executor.NATSPoolConfig(broker.PoolConfig{Replicas: 3, AckWait: composeAckWait}))
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("producer: %v", err)
		}
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := ex.Shutdown(ctx, true, true); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(250 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		served, err := worker.ServedKinds(ctx, nc, "")
		cancel()
		if err == nil && served[builtin.Sleep.Kind()] == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the 2 compose workers do not serve %s: %v %v", builtin.Sleep.Kind(), served, err)
		}
	}

	var tl tally
	const n = 1000
	fs := submitNaps(t, ex, n, 20, &tl)
	waitDone(t, fs, n/5)
	// The node the producer is connected to is the case that stalled.
	victim := c.nodeOf(nc.ConnectedUrl())
	stoppedAt := time.Now()
	c.run("stop", victim)
	t.Logf("%s, the producer's node, stopped", victim)
	checkNaps(t, fs, 20)
	tl.check(t, n)
	if nc.Status() != nats.CONNECTED || c.nodeOf(nc.ConnectedUrl()) == victim {
		t.Fatalf("producer %v on %s after %s stopped", nc.Status(), nc.ConnectedUrl(), victim)
	}
	// The tasks take about 3s on the 8 slots. A result the node's loss cut
	// off is found by the producer's probes within seconds; a chunk that
	// was on its way to a worker through the node is redelivered once the
	// lease lapses (in about one run of ten here): nothing waits longer.
	took := time.Since(stoppedAt)
	t.Logf("the tasks finished %v after %s stopped, through %s", took.Round(time.Millisecond), victim, c.nodeOf(nc.ConnectedUrl()))
	if bound := composeAckWait + 10*time.Second; took >= bound {
		t.Errorf("the tasks took %v after the node stopped, beyond the lease (%v) and the 3s they need", took, composeAckWait)
	}
}

// TestComposeMetricsOfManyWorkers: the compose file runs more than 16
// worker replicas, and its metrics service serves the series of every one
// of them on one published port.
func TestComposeMetricsOfManyWorkers(t *testing.T) {
	const replicas = 18
	c := upCompose(t, replicas)
	url := "http://127.0.0.1:" + strconv.Itoa(c.ports["metrics"]) + "/metrics"
	series := regexp.MustCompile(`(?m)^jetpool_worker_chunks_in_flight\{kind="square",pool="default",worker="([^"]+)"\} 0$`)
	var workers map[string]bool
	var body []byte
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(time.Second) {
		workers = map[string]bool{}
		if resp, err := http.Get(url); err == nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, m := range series.FindAllSubmatch(body, -1) {
				workers[string(m[1])] = true
			}
		}
		if len(workers) == replicas {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the metrics service shows %d of %d workers:\n%s", len(workers), replicas, body)
		}
	}
	t.Logf("%d workers' series on %s", len(workers), url)
}
