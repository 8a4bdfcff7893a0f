package integration

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/executor"
)

// clusterPool is the pool setting of the container tests: three replicas and
// a short lease so lost workers are noticed quickly.
var clusterPool = broker.PoolConfig{Replicas: 3, AckWait: 4 * time.Second, Grace: 10 * time.Second}

// cluster is a 3-node NATS cluster and worker containers on a private network.
type cluster struct {
	t       *testing.T
	net     *testcontainers.DockerNetwork
	nodes   []testcontainers.Container
	workers []testcontainers.Container
}

var nodeNames = []string{"n1", "n2", "n3"}

// newCluster starts the three NATS nodes and waits until JetStream has a
// leader.
func newCluster(t *testing.T) *cluster {
	t.Helper()
	ctx := context.Background()
	nw, err := network.New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, net: nw}
	t.Cleanup(func() {
		if err := nw.Remove(context.Background()); err != nil {
			t.Errorf("remove network: %v", err)
		}
	})
	for _, name := range nodeNames {
		var routes []string
		for _, other := range nodeNames {
			if other != name {
				routes = append(routes, "nats://"+other+":6222")
			}
		}
		node, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
			ContainerRequest: testcontainers.ContainerRequest{
				Image: natsImage,
				Cmd: []string{"-n", name, "-js", "-sd", "/data", "--cluster_name", "jetpool",
					"--cluster", "nats://0.0.0.0:6222", "--routes", strings.Join(routes, ","), "--no_advertise"},
				ExposedPorts:   []string{"4222/tcp"},
				Networks:       []string{nw.Name},
				NetworkAliases: map[string][]string{nw.Name: {name}},
				WaitingFor:     wait.ForLog("Server is ready").WithStartupTimeout(time.Minute),
			},
			Started: true,
		})
		testcontainers.CleanupContainer(t, node)
		if err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		c.nodes = append(c.nodes, node)
	}
	c.waitJetStream()
	return c
}

// url is every node's address as seen from the test process.
func (c *cluster) url() string {
	var urls []string
	for _, n := range c.nodes {
		urls = append(urls, c.nodeURL(n))
	}
	return strings.Join(urls, ",")
}

func (c *cluster) nodeURL(n testcontainers.Container) string {
	// The engine publishes ports on every host address; loopback is the
	// one the tests may use.
	port, err := n.MappedPort(context.Background(), "4222/tcp")
	if err != nil {
		c.t.Fatal(err)
	}
	return "nats://127.0.0.1:" + port.Port()
}

// waitJetStream waits until the cluster's JetStream answers.
func (c *cluster) waitJetStream() {
	nc := c.connect()
	defer nc.Close()
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := nc.Request("$JS.API.INFO", nil, 2*time.Second)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("JetStream not ready: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (c *cluster) connect() *nats.Conn {
	nc, err := nats.Connect(c.url(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		c.t.Fatalf("connect to %s: %v", c.url(), err)
	}
	return nc
}

// connectVia connects to node first, and to the other nodes only once it
// is gone.
func (c *cluster) connectVia(node testcontainers.Container) *nats.Conn {
	urls := []string{c.nodeURL(node)}
	for _, n := range c.nodes {
		if n != node {
			urls = append(urls, c.nodeURL(n))
		}
	}
	url := strings.Join(urls, ",")
	nc, err := nats.Connect(url, nats.DontRandomize(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		c.t.Fatalf("connect to %s: %v", url, err)
	}
	return nc
}

// addWorker starts one worker container serving the built-in tasks.
func (c *cluster) addWorker(concurrency int) testcontainers.Container {
	c.t.Helper()
	ctx := context.Background()
	id := fmt.Sprintf("w%d", len(c.workers)+1)
	w, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
		ContainerRequest: testcontainers.ContainerRequest{
			Image:    workerImage,
			Networks: []string{c.net.Name},
			Env: map[string]string{
				"NATS_URL":            "nats://n1:4222,nats://n2:4222,nats://n3:4222",
				"JETPOOL_WORKER_ID":   id,
				"JETPOOL_CONCURRENCY": fmt.Sprint(concurrency),
				"JETPOOL_REPLICAS":    "3",
				"JETPOOL_ACK_WAIT":    clusterPool.AckWait.String(),
				"JETPOOL_GRACE":       clusterPool.Grace.String(),
			},
			WaitingFor: wait.ForLog("worker serving").WithStartupTimeout(time.Minute),
		},
		Started: true,
	})
	testcontainers.CleanupContainer(c.t, w)
	if err != nil {
		c.t.Fatalf("start worker %s: %v\n%s", id, err, logs(w))
	}
	c.workers = append(c.workers, w)
	return w
}

// producer returns a NATS executor in the test process.
func (c *cluster) producer() *executor.NATS {
	c.t.Helper()
	return c.producerOn(c.connect())
}

// producerOn returns a NATS executor in the test process on nc, which it
// closes when the test ends.
func (c *cluster) producerOn(nc *nats.Conn) *executor.NATS {
	c.t.Helper()
	c.t.Cleanup(nc.Close)
	// The stream needs the cluster's three peers; retry until they are known.
	var ex *executor.NATS
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var err error
		ex, err = executor.NewNATS(ctx, nc, executor.NATSPoolConfig(clusterPool))
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("producer: %v", err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	c.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := ex.Shutdown(ctx, true, true); err != nil {
			c.t.Errorf("Shutdown: %v", err)
		}
	})
	return ex
}

// docker runs the docker CLI for what testcontainers does not offer: kill
// with a signal, network disconnect.
func docker(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("docker", args...).CombinedOutput(); err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// logs returns a container's output, for failure messages.
func logs(c testcontainers.Container) string {
	if c == nil {
		return ""
	}
	r, err := c.Logs(context.Background())
	if err != nil {
		return err.Error()
	}
	defer r.Close()
	b, _ := io.ReadAll(r)
	return string(b)
}
