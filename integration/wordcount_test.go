package integration

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"
)

// TestWordcountExample runs the wordcount example as README.md walks
// through it: the image of its worker (built by TestMain from
// examples/wordcount/Dockerfile) serves a NATS container, and the example's
// producer, built here, counts three files on it. The output is exact, the
// worker's own flag (WORDCOUNT_STOPWORDS) is in effect, and SIGTERM drains
// the worker, which then exits 0.
func TestWordcountExample(t *testing.T) {
	ctx := t.Context()
	nw, err := network.New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := nw.Remove(context.Background()); err != nil {
			t.Errorf("remove network: %v", err)
		}
	})
	node, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
		ContainerRequest: testcontainers.ContainerRequest{
			Image:          natsImage,
			Cmd:            []string{"-n", "nats", "-js", "-sd", "/data"},
			ExposedPorts:   []string{"4222/tcp"},
			Networks:       []string{nw.Name},
			NetworkAliases: map[string][]string{nw.Name: {"nats"}},
			WaitingFor:     wait.ForLog("Server is ready").WithStartupTimeout(time.Minute),
		},
		Started: true,
	})
	testcontainers.CleanupContainer(t, node)
	if err != nil {
		t.Fatalf("start nats: %v", err)
	}
	port, err := node.MappedPort(ctx, "4222/tcp")
	if err != nil {
		t.Fatal(err)
	}
	w, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
		ContainerRequest: testcontainers.ContainerRequest{
			Image:    wordcountImage,
			Networks: []string{nw.Name},
			Env: map[string]string{
				"NATS_URL":            "nats://nats:4222",
				"JETPOOL_WORKER_ID":   "wordcount-1",
				"JETPOOL_LOG_FORMAT":  "json",
				"WORDCOUNT_STOPWORDS": "the,a",
			},
			WaitingFor: wait.ForLog("worker serving").WithStartupTimeout(time.Minute),
		},
		Started: true,
	})
	testcontainers.CleanupContainer(t, w)
	if err != nil {
		t.Fatalf("start the wordcount worker: %v\n%s", err, logs(w))
	}

	dir := t.TempDir()
	producer := filepath.Join(dir, "wordcount")
	build := exec.Command("go", "build", "-o", producer, "./examples/wordcount/producer")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the producer: %v\n%s", err, out)
	}
	files := []struct{ name, body string }{
		{"alpha.txt", "The quick brown fox.\nThe lazy dog!\n"},
		{"beta.txt", "a fox, a dog, a fox\n"},
		{"empty.txt", ""},
	}
	args := []string{"--server", "nats://127.0.0.1:" + port.Port(), "--top", "3", "--timeout", "2m"}
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if err := os.WriteFile(p, []byte(f.body), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, p)
	}
	run, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(run, producer, args...)
	cmd.Env = append(os.Environ(), "JETPOOL_POOL=", "NATS_URL=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("the producer: %v\n%s\nworker logs:\n%s", err, stderr.String(), logs(w))
	}
	t.Logf("the producer ran in %v", time.Since(start).Round(time.Millisecond))
	want := `{"name":"alpha.txt","lines":2,"words":7,"bytes":35}
{"name":"beta.txt","lines":1,"words":6,"bytes":20}
{"name":"empty.txt","lines":0,"words":0,"bytes":0}
{"top":[{"word":"fox","count":3},{"word":"dog","count":2},{"word":"brown","count":1}]}
`
	if stdout.String() != want {
		t.Errorf("the producer printed:\n%s\nwant:\n%s", stdout.String(), want)
	}

	timeout := 30 * time.Second
	if err := w.Stop(ctx, &timeout); err != nil {
		t.Fatal(err)
	}
	state, err := w.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := logs(w)
	if state.ExitCode != 0 || !strings.Contains(out, `"msg":"worker drained and stopped","id":"wordcount-1"`) {
		t.Errorf("the worker exited with %d after SIGTERM, want 0 after a drain:\n%s", state.ExitCode, out)
	}
	if !strings.Contains(out, `"msg":"wordcount worker set up","stopwords":2`) {
		t.Errorf("the worker did not log its two stop words:\n%s", out)
	}
}
