package broker

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestEmbeddedZeroConfig: the zero config listens on a free loopback port
// with a temporary store that Shutdown removes.
func TestEmbeddedZeroConfig(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	srv, err := StartEmbedded(EmbeddedConfig{})
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
	a := startServer(t, EmbeddedConfig{Port: -1})
	b := startServer(t, EmbeddedConfig{Port: -1})
	if a.ClientURL() == b.ClientURL() {
		t.Fatalf("both servers at %s", a.ClientURL())
	}
}

// TestEmbeddedStoreDirSurvivesRestart: a store directory given by the caller
// is kept by Shutdown, and a server restarted on it finds its stream and
// messages again.
func TestEmbeddedStoreDirSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, _ := NewSubjects(DefaultPrefix, "restart")

	srv, err := StartEmbedded(EmbeddedConfig{Host: "127.0.0.1", Port: -1, StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		srv.Shutdown()
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	if _, err := EnsureStream(ctx, js, s, PoolConfig{}); err != nil {
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

	srv = startServer(t, EmbeddedConfig{StoreDir: dir})
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
	srv := startServer(t, EmbeddedConfig{MaxPayload: 8 << 20})
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
		"not parse": writeFile(t, "bad.conf", "authorization { token: \n"),
	} {
		srv, err := StartEmbedded(EmbeddedConfig{ConfigFile: path})
		if err == nil {
			srv.Shutdown()
			t.Errorf("%s: started", name)
			continue
		}
		if !strings.Contains(err.Error(), "broker: embedded server config") {
			t.Errorf("%s: %v", name, err)
		}
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Fatalf("%d temporary stores left behind", len(entries))
	}
}

func TestEmbeddedShutdownTwice(t *testing.T) {
	srv, err := StartEmbedded(EmbeddedConfig{Host: "127.0.0.1", Port: -1, StoreDir: t.TempDir()})
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
