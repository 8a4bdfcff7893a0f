package embedded

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jetpool/jetpool/broker"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestEmbeddedZeroConfig: the zero config listens on a free loopback port
// with a temporary store that Shutdown removes.
func TestEmbeddedZeroConfig(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	srv, err := Start(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(srv.ClientURL(), "nats://127.0.0.1:") || strings.HasSuffix(srv.ClientURL(), ":4222") {
		t.Errorf("ClientURL %q, want a random loopback port", srv.ClientURL())
	}
	store := srv.StoreDir()
	if !strings.HasPrefix(store, os.TempDir()) {
		t.Errorf("store %q outside the temporary directory %q", store, os.TempDir())
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	srv.Shutdown()
	if _, err := os.Stat(store); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the temporary store %s is still there after Shutdown: %v", store, err)
	}
	srv.Shutdown()
}

// TestEmbeddedRandomPorts: two servers started with Port -1 listen on
// different ports.
func TestEmbeddedRandomPorts(t *testing.T) {
	a := startServer(t, Config{Port: -1})
	b := startServer(t, Config{Port: -1})
	if a.ClientURL() == b.ClientURL() {
		t.Fatalf("both servers at %s", a.ClientURL())
	}
}

// TestEmbeddedStoreDirSurvivesRestart: a store directory given by the caller
// is kept by Shutdown, and a server restarted on it finds its stream and
// messages again.
func TestEmbeddedStoreDirSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	s, _ := broker.NewSubjects(broker.DefaultPrefix, "restart")

	srv, err := Start(Config{Host: "127.0.0.1", Port: -1, StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		srv.Shutdown()
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	if _, err := broker.EnsureStream(ctx, js, s, broker.PoolConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, s.Tasks("square"), []byte("chunk")); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	srv.Shutdown()
	srv.Shutdown()
	if entries, err := os.ReadDir(dir); err != nil || len(entries) == 0 {
		t.Fatalf("the store %s after Shutdown: %d entries, %v", dir, len(entries), err)
	}

	srv = startServer(t, Config{StoreDir: dir})
	if got := srv.StoreDir(); !strings.HasPrefix(got, dir) {
		t.Errorf("StoreDir() = %q, want %q", got, dir)
	}
	nc, err = nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ = jetstream.New(nc)
	st, err := js.Stream(ctx, s.Stream())
	if err != nil {
		t.Fatalf("the stream after a restart: %v", err)
	}
	msg, err := st.GetLastMsgForSubject(ctx, s.Tasks("square"))
	if err != nil || string(msg.Data) != "chunk" {
		t.Fatalf("the message after a restart: %v", err)
	}
}

func TestEmbeddedMaxPayload(t *testing.T) {
	srv := startServer(t, Config{MaxPayload: 8 << 20})
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if got := nc.MaxPayload(); got != 8<<20 {
		t.Fatalf("MaxPayload() = %d, want %d", got, 8<<20)
	}
}

// TestEmbeddedBadConfigFile: a config file that is missing or does not parse
// is an error, and the temporary store made for the server is removed.
func TestEmbeddedBadConfigFile(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	for name, path := range map[string]string{
		"missing":   filepath.Join(t.TempDir(), "missing.conf"),
		"not parse": badConfig(t),
	} {
		srv, err := Start(Config{ConfigFile: path})
		if err == nil {
			srv.Shutdown()
			t.Errorf("%s: started", name)
			continue
		}
		if !strings.Contains(err.Error(), "embedded: server config") {
			t.Errorf("%s: %v", name, err)
		}
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Fatalf("%d temporary stores left behind", len(entries))
	}
}

func TestEmbeddedShutdownTwice(t *testing.T) {
	srv, err := Start(Config{Host: "127.0.0.1", Port: -1, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	url := srv.ClientURL()
	srv.Shutdown()
	srv.Shutdown()
	if nc, err := nats.Connect(url, nats.Timeout(time.Second)); err == nil {
		nc.Close()
		t.Fatal("the server still takes connections after Shutdown")
	}
}

// startServer starts an embedded server on a random loopback port and shuts
// it down when the test ends.
func startServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	if cfg.Port == 0 {
		cfg.Port = -1
	}
	cfg.Host = "127.0.0.1"
	srv, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

func TestEmbeddedPortInUse(t *testing.T) {
	srv, err := Start(Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	port := srv.srv.Addr().(*net.TCPAddr).Port
	start := time.Now()
	_, err = Start(Config{Port: port})
	if err == nil || !strings.Contains(err.Error(), "address already in use") || time.Since(start) > 2*time.Second {
		t.Fatalf("second server on port %d: %v after %v", port, err, time.Since(start))
	}
}

// badConfig writes a configuration file that does not parse.
func badConfig(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bad.conf")
	if err := os.WriteFile(path, []byte("authorization { token: \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
