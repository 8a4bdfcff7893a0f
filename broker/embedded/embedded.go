// Package embedded runs a NATS server with JetStream inside this process,
// for the process pool, tests and the CLI's --embedded: [Start] it with a
// [Config], connect to [Server.ClientURL] or in process, and [Server.Shutdown].
package embedded

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Config configures [Start]. The zero value starts a server
// on a random loopback port with a temporary store directory.
type Config struct {
	// Host to listen on; default 127.0.0.1.
	Host string
	// Port to listen on; 0 picks a free one.
	Port int
	// StoreDir is the JetStream file store. Empty means a new temporary
	// directory, removed by Shutdown. A server restarted on the same
	// directory finds its streams and messages again.
	StoreDir string
	// MaxPayload caps a message's size in bytes; 0 keeps the server's 1 MiB.
	MaxPayload int32
	// ConfigFile, if set, is a nats-server configuration file (accounts,
	// users, permissions, TLS) loaded first; the fields above override it.
	ConfigFile string
}

// Server is a NATS server with JetStream running inside this process.
type Server struct {
	srv     *server.Server
	tempDir string
}

// Start starts a server and waits until it accepts connections.
func Start(cfg Config) (*Server, error) {
	e := &Server{}
	if cfg.StoreDir == "" {
		dir, err := os.MkdirTemp("", "jetpool-js-*")
		if err != nil {
			return nil, fmt.Errorf("embedded: store: %w", err)
		}
		cfg.StoreDir, e.tempDir = dir, dir
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	port := cfg.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	opts := &server.Options{}
	if cfg.ConfigFile != "" {
		var err error
		if opts, err = server.ProcessConfigFile(cfg.ConfigFile); err != nil {
			e.removeTemp()
			return nil, fmt.Errorf("embedded: server config: %w", err)
		}
	}
	opts.Host, opts.Port, opts.JetStream, opts.StoreDir = cfg.Host, port, true, cfg.StoreDir
	if port > 0 {
		// The server only logs a failed listen; say it here instead of
		// waiting for a server that will never be ready.
		ln, err := net.Listen("tcp", net.JoinHostPort(cfg.Host, strconv.Itoa(port)))
		if err != nil {
			e.removeTemp()
			return nil, fmt.Errorf("embedded: server: %w", err)
		}
		ln.Close()
	}
	opts.NoSigs, opts.NoLog = true, true
	if cfg.MaxPayload != 0 {
		opts.MaxPayload = cfg.MaxPayload
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		e.removeTemp()
		return nil, fmt.Errorf("embedded: server: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		e.removeTemp()
		return nil, fmt.Errorf("embedded: server not ready after 10s")
	}
	e.srv = srv
	return e, nil
}

// ClientURL is the URL clients connect to.
func (e *Server) ClientURL() string { return e.srv.ClientURL() }

// InProcessConn is a connection to the server that bypasses the network:
// passed to nats.InProcessServer, a client in this process talks to the
// server through memory instead of a loopback socket.
func (e *Server) InProcessConn() (net.Conn, error) { return e.srv.InProcessConn() }

// StoreDir is the JetStream store directory in use.
func (e *Server) StoreDir() string { return e.srv.JetStreamConfig().StoreDir }

// Shutdown stops the server and waits for it to exit, then removes a
// temporary store directory. It is safe to call more than once.
func (e *Server) Shutdown() {
	if e.srv == nil {
		return
	}
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
	e.removeTemp()
}

func (e *Server) removeTemp() {
	if e.tempDir != "" {
		os.RemoveAll(e.tempDir)
		e.tempDir = ""
	}
}
