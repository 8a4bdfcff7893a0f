// Package integration runs jetpool across real containers: a 3-node NATS
// JetStream cluster and worker containers on a private Docker network, built
// here from static binaries into FROM scratch images, driven by
// testcontainers-go. Every container, network and image a test makes is
// removed by the tests.
package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Image names of this run; unique so parallel runs never share images.
var (
	runID          = strconv.FormatInt(time.Now().UnixNano(), 36)
	workerImage    = "jetpool-it/worker:" + runID
	natsImage      = "jetpool-it/nats:" + runID
	wordcountImage = "jetpool-it/wordcount-worker:" + runID
	submitImage    = "jetpool-it/submit:" + runID
)

func TestMain(m *testing.M) {
	os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	if err := exec.Command("docker", "info").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			fmt.Fprintln(os.Stderr, "integration: Docker is required when CI=true and is not available:", err)
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "integration: no Docker engine; skipping the container tests")
		os.Exit(0)
	}
	if err := buildImages(); err != nil {
		fmt.Fprintln(os.Stderr, "integration: build images:", err)
		removeImages()
		os.Exit(1)
	}
	code := m.Run()
	removeImages()
	if code == 0 {
		// The Docker client keeps idle HTTP connections to the engine;
		// anything else still running is a leak.
		if err := goleak.Find(goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
			goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop")); err != nil {
			fmt.Fprintln(os.Stderr, "integration: leaked goroutines:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// buildImages compiles the worker, submit, the wordcount example's worker
// and nats-server statically and wraps each in a FROM scratch image, with the
// Dockerfiles the project ships.
func buildImages() error {
	dir, err := os.MkdirTemp("", "jetpool-it-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	root, err := filepath.Abs("..")
	if err != nil {
		return err
	}
	steps := [][]string{
		{"go", "build", "-trimpath", "-o", filepath.Join(dir, "worker"), "./cmd/worker"},
		{"go", "build", "-trimpath", "-o", filepath.Join(dir, "wordcount-worker"), "./examples/wordcount/worker"},
		{"go", "build", "-trimpath", "-o", filepath.Join(dir, "nats-server"), "github.com/nats-io/nats-server/v2"},
		{"go", "build", "-trimpath", "-o", filepath.Join(dir, "submit"), "./cmd/submit"},
		{"docker", "build", "-q", "-f", filepath.Join(root, "docker/worker.Dockerfile"), "-t", workerImage, dir},
		{"docker", "build", "-q", "-f", filepath.Join(root, "docker/nats.Dockerfile"), "-t", natsImage, dir},
		{"docker", "build", "-q", "-f", filepath.Join(root, "docker/submit.Dockerfile"), "-t", submitImage, dir},
		{"docker", "build", "-q", "-f", filepath.Join(root, "examples/wordcount/Dockerfile"), "-t", wordcountImage, dir},
	}
	for _, s := range steps {
		cmd := exec.Command(s[0], s[1:]...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v\n%s", strings.Join(s, " "), err, out)
		}
	}
	return nil
}

func removeImages() {
	exec.Command("docker", "rmi", "-f", workerImage, natsImage, submitImage, wordcountImage).Run()
}
