package broker

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jetpool/jetpool/broker/embedded"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
)

// startServer starts an embedded server on a random loopback port and shuts
// it down when the test ends.
func startServer(t *testing.T, cfg embedded.Config) *embedded.Server {
	t.Helper()
	if cfg.Port == 0 {
		cfg.Port = -1
	}
	cfg.Host = "127.0.0.1"
	srv, err := embedded.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

// writeFile writes content to a new file in the test's directory.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

var natsEnv = []string{"NATS_URL", "NATS_CREDS", "NATS_NKEY", "NATS_USER", "NATS_PASSWORD", "NATS_TOKEN", "NATS_CA", "NATS_CERT", "NATS_KEY", "NATS_INBOX_PREFIX"}

func TestOptionsFromEnv(t *testing.T) {
	env := map[string]string{
		"NATS_URL": "nats://a:1,nats://b:2", "NATS_CREDS": "/c.creds", "NATS_NKEY": "/seed.nk",
		"NATS_USER": "ada", "NATS_PASSWORD": "pw", "NATS_TOKEN": "tok",
		"NATS_CA": "/ca.pem", "NATS_CERT": "/cert.pem", "NATS_KEY": "/key.pem", "NATS_INBOX_PREFIX": "_INBOX.ada",
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	got := OptionsFromEnv()
	want := ConnectOptions{URL: "nats://a:1,nats://b:2", Creds: "/c.creds", NKey: "/seed.nk", User: "ada",
		Password: "pw", Token: "tok", TLSCA: "/ca.pem", TLSCert: "/cert.pem", TLSKey: "/key.pem", InboxPrefix: "_INBOX.ada"}
	if got != want {
		t.Fatalf("OptionsFromEnv() = %+v, want %+v", got, want)
	}
}

// TestOptionsFromEnvEachVariable: each variable sets its own field and no
// other.
func TestOptionsFromEnvEachVariable(t *testing.T) {
	cases := []struct {
		env  string
		want ConnectOptions
	}{
		{"NATS_URL", ConnectOptions{URL: "v"}},
		{"NATS_CREDS", ConnectOptions{Creds: "v"}},
		{"NATS_NKEY", ConnectOptions{NKey: "v"}},
		{"NATS_USER", ConnectOptions{User: "v"}},
		{"NATS_PASSWORD", ConnectOptions{Password: "v"}},
		{"NATS_TOKEN", ConnectOptions{Token: "v"}},
		{"NATS_CA", ConnectOptions{TLSCA: "v"}},
		{"NATS_CERT", ConnectOptions{TLSCert: "v"}},
		{"NATS_KEY", ConnectOptions{TLSKey: "v"}},
		{"NATS_INBOX_PREFIX", ConnectOptions{InboxPrefix: "v"}},
	}
	if len(cases) != len(natsEnv) {
		t.Fatalf("%d cases for %d variables", len(cases), len(natsEnv))
	}
	for _, c := range cases {
		t.Run(c.env, func(t *testing.T) {
			for _, k := range natsEnv {
				t.Setenv(k, "")
			}
			t.Setenv(c.env, "v")
			if got := OptionsFromEnv(); got != c.want {
				t.Fatalf("OptionsFromEnv() = %+v, want %+v", got, c.want)
			}
		})
	}
	for _, k := range natsEnv {
		t.Setenv(k, "")
	}
	if got := OptionsFromEnv(); got != (ConnectOptions{}) {
		t.Fatalf("OptionsFromEnv() with no variables = %+v, want the zero value", got)
	}
}

// TestConnectRefusesBadOptions: options that cannot work are refused before
// any dial, with an error matching ErrInvalidConnect that repeats no secret.
func TestConnectRefusesBadOptions(t *testing.T) {
	dir := t.TempDir()
	notCreds := writeFile(t, "u.creds", "not creds")
	missing := func(name string) string { return filepath.Join(dir, name) }
	cases := []struct {
		name string
		o    ConnectOptions
	}{
		{"bad scheme", ConnectOptions{URL: "http://127.0.0.1:4222"}},
		{"bad scheme with a password", ConnectOptions{URL: "http://ada:hunter2@127.0.0.1:4222"}},
		{"port out of range", ConnectOptions{URL: "nats://127.0.0.1:65536"}},
		{"port out of range with a token", ConnectOptions{URL: "nats://hunter2@127.0.0.1:65536"}},
		{"port zero", ConnectOptions{URL: "nats://127.0.0.1:0"}},
		{"no host", ConnectOptions{URL: "nats://:4222"}},
		{"only commas", ConnectOptions{URL: ",,"}},
		{"websocket mixed with nats", ConnectOptions{URL: "nats://h:1,ws://h:2"}},
		{"not a URL", ConnectOptions{URL: "nats://ada:hunter2@[::1"}},
		{"missing creds file", ConnectOptions{URL: "nats://127.0.0.1:1", Creds: missing("missing.creds")}},
		{"missing nkey file", ConnectOptions{URL: "nats://127.0.0.1:1", NKey: missing("missing.nk")}},
		{"creds and nkey", ConnectOptions{URL: "nats://127.0.0.1:1", Creds: notCreds, NKey: notCreds}},
		{"missing CA", ConnectOptions{URL: "nats://127.0.0.1:1", TLSCA: missing("ca.pem")}},
		{"missing certificate", ConnectOptions{URL: "nats://127.0.0.1:1", TLSCert: missing("cert.pem"), TLSKey: notCreds}},
		{"missing key", ConnectOptions{URL: "nats://127.0.0.1:1", TLSCert: notCreds, TLSKey: missing("key.pem")}},
		{"certificate, no key", ConnectOptions{URL: "nats://127.0.0.1:1", TLSCert: notCreds}},
		{"key, no certificate", ConnectOptions{URL: "nats://127.0.0.1:1", TLSKey: notCreds}},
		{"not an nkey seed", ConnectOptions{URL: "nats://127.0.0.1:1", NKey: notCreds}},
		{"inbox prefix with a wildcard", ConnectOptions{URL: "nats://127.0.0.1:1", InboxPrefix: "_INBOX.*"}},
		{"inbox prefix with a full wildcard", ConnectOptions{URL: "nats://127.0.0.1:1", InboxPrefix: "_INBOX.>"}},
		{"inbox prefix ending in a dot", ConnectOptions{URL: "nats://127.0.0.1:1", InboxPrefix: "_INBOX.ada."}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			nc, err := Connect(c.o)
			if err == nil {
				nc.Close()
			}
			if !errors.Is(err, ErrInvalidConnect) {
				t.Fatalf("Connect: %v, want ErrInvalidConnect", err)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("the error shows the secret: %v", err)
			}
		})
	}
}

func TestRedactURL(t *testing.T) {
	cases := []struct {
		in, want string
		secrets  []string
	}{
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222", nil},
		{"", "", nil},
		{"nats://ada:s3cret@h:4222", "nats://xxxxx@h:4222", []string{"s3cret"}},
		{"nats://t0ken@h:4222", "nats://xxxxx@h:4222", []string{"t0ken"}},
		{"nats://ada:pa:ss@h:4222", "nats://xxxxx@h:4222", []string{"pa", "ss"}},
		{"nats://ada:p@ss@h:4222", "nats://xxxxx@h:4222", []string{"p@ss", "ss@h:4222@"}},
		{"tls://ada:s3cret@h:1, nats://t0ken@h:2,nats://h:3", "tls://xxxxx@h:1, nats://xxxxx@h:2,nats://h:3", []string{"s3cret", "t0ken"}},
		{"ada:s3cret@h:4222", "xxxxx@h:4222", []string{"s3cret"}},
		{"wss://ada:s%40cret@h:443/path", "wss://xxxxx@h:443/path", []string{"s%40cret"}},
	}
	for _, c := range cases {
		got := redactURL(c.in)
		if got != c.want {
			t.Errorf("redactURL(%q) = %q, want %q", c.in, got, c.want)
		}
		for _, s := range c.secrets {
			if strings.Contains(got, s) {
				t.Errorf("redactURL(%q) = %q shows %q", c.in, got, s)
			}
		}
	}
}

// TestConnectWithInboxPrefix: a connection with an inbox prefix takes its
// replies on inboxes under it, the only ones a server may let its user read.
func TestConnectWithInboxPrefix(t *testing.T) {
	conf := writeFile(t, "inbox.conf", `jetstream {}
accounts { A { users = [
  {user: ada, password: ada-pw, permissions: {publish: ["svc"], subscribe: ["_INBOX.ada.>"]}}
  {user: bob, password: bob-pw, permissions: {subscribe: ["svc"], allow_responses: true}}
] } }
`)
	srv := startServer(t, embedded.Config{ConfigFile: conf})
	bob, err := Connect(ConnectOptions{URL: srv.ClientURL(), User: "bob", Password: "bob-pw"})
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	if _, err := bob.Subscribe("svc", func(m *nats.Msg) { m.Respond([]byte("pong")) }); err != nil {
		t.Fatal(err)
	}
	if err := bob.Flush(); err != nil {
		t.Fatal(err)
	}
	ada, err := Connect(ConnectOptions{URL: srv.ClientURL(), User: "ada", Password: "ada-pw", InboxPrefix: "_INBOX.ada"})
	if err != nil {
		t.Fatal(err)
	}
	defer ada.Close()
	if inbox := ada.NewInbox(); !strings.HasPrefix(inbox, "_INBOX.ada.") {
		t.Errorf("NewInbox() = %q, want it under _INBOX.ada", inbox)
	}
	if m, err := ada.Request("svc", nil, 5*time.Second); err != nil || string(m.Data) != "pong" {
		t.Fatalf("request through the prefixed inbox: %v, %v", m, err)
	}
}

// TestConnectWithPassword: user/password authentication works, and a refused
// connection's error does not repeat the secret, whether it was given as an
// option or written into the URL.
func TestConnectWithPassword(t *testing.T) {
	conf := writeFile(t, "auth.conf", `jetstream {}
accounts { A { jetstream: enabled, users = [ {user: ada, password: s3cret-pw} ] } }
`)
	srv := startServer(t, embedded.Config{ConfigFile: conf})
	nc, err := Connect(ConnectOptions{URL: srv.ClientURL(), User: "ada", Password: "s3cret-pw", Name: "tests", ConnectTimeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("Connect with the right password: %v", err)
	}
	if nc.Opts.Name != "tests" {
		t.Errorf("connection name %q", nc.Opts.Name)
	}
	nc.Close()
	withURL := func(userinfo string) string {
		return strings.Replace(srv.ClientURL(), "nats://", "nats://"+userinfo+"@", 1)
	}
	if nc, err := Connect(ConnectOptions{URL: withURL("ada:s3cret-pw"), ConnectTimeout: 2 * time.Second}); err != nil {
		t.Errorf("Connect with the password in the URL: %v", err)
	} else {
		nc.Close()
	}
	for name, c := range map[string]struct {
		o      ConnectOptions
		secret string
	}{
		"wrong password":        {ConnectOptions{URL: srv.ClientURL(), User: "ada", Password: "wrong-pw-123"}, "wrong-pw-123"},
		"no password":           {ConnectOptions{URL: srv.ClientURL(), User: "ada"}, "s3cret-pw"},
		"wrong password in URL": {ConnectOptions{URL: withURL("ada:url-pw-456")}, "url-pw-456"},
		"token for a password":  {ConnectOptions{URL: srv.ClientURL(), Token: "tok-789"}, "tok-789"},
	} {
		t.Run(name, func(t *testing.T) {
			c.o.ConnectTimeout = 2 * time.Second
			nc, err := Connect(c.o)
			if err == nil {
				nc.Close()
				t.Fatal("connected")
			}
			if strings.Contains(err.Error(), c.secret) {
				t.Fatalf("the error shows the secret: %v", err)
			}
			if !strings.Contains(err.Error(), "broker: connect to") || !strings.Contains(strings.ToLower(err.Error()), "authorization") {
				t.Fatalf("error %q does not say it is an authorization failure", err)
			}
		})
	}
}

func TestConnectWithToken(t *testing.T) {
	srv := startServer(t, embedded.Config{ConfigFile: writeFile(t, "token.conf", "authorization { token: t0ken-abc }\n")})
	withURL := func(token string) string { return strings.Replace(srv.ClientURL(), "nats://", "nats://"+token+"@", 1) }
	for name, o := range map[string]ConnectOptions{
		"option": {URL: srv.ClientURL(), Token: "t0ken-abc"},
		"in URL": {URL: withURL("t0ken-abc")},
	} {
		nc, err := Connect(o)
		if err != nil {
			t.Errorf("Connect with the token as %s: %v", name, err)
			continue
		}
		nc.Close()
	}
	for name, c := range map[string]struct {
		o      ConnectOptions
		secret string
	}{
		"no token":           {ConnectOptions{URL: srv.ClientURL()}, "t0ken-abc"},
		"wrong token":        {ConnectOptions{URL: srv.ClientURL(), Token: "bad-t0ken-1"}, "bad-t0ken-1"},
		"wrong token in URL": {ConnectOptions{URL: withURL("bad-t0ken-2")}, "bad-t0ken-2"},
	} {
		t.Run(name, func(t *testing.T) {
			c.o.ConnectTimeout = 2 * time.Second
			nc, err := Connect(c.o)
			if err == nil {
				nc.Close()
				t.Fatal("connected")
			}
			if strings.Contains(err.Error(), c.secret) {
				t.Fatalf("the error shows the token: %v", err)
			}
		})
	}
}

func TestConnectWithNKey(t *testing.T) {
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := user.Seed()
	pub, _ := user.PublicKey()
	srv := startServer(t, embedded.Config{ConfigFile: writeFile(t, "nkey.conf", fmt.Sprintf("authorization { users = [ {nkey: %s} ] }\n", pub))})
	nc, err := Connect(ConnectOptions{URL: srv.ClientURL(), NKey: writeFile(t, "user.nk", string(seed)), ConnectTimeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("Connect with the nkey: %v", err)
	}
	nc.Close()
	other, _ := nkeys.CreateUser()
	otherSeed, _ := other.Seed()
	nc, err = Connect(ConnectOptions{URL: srv.ClientURL(), NKey: writeFile(t, "other.nk", string(otherSeed)), ConnectTimeout: 2 * time.Second})
	if err == nil {
		nc.Close()
		t.Fatal("an unknown nkey connected")
	}
	if strings.Contains(err.Error(), string(otherSeed)) {
		t.Fatalf("the error shows the seed: %v", err)
	}
}

// tlsFiles writes a CA and a server and a client certificate signed by it,
// each with its key, as PEM files.
type tlsFiles struct{ ca, serverCert, serverKey, clientCert, clientKey string }

func newTLSFiles(t *testing.T) tlsFiles {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	keyDER := func(k *ecdsa.PrivateKey) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	now := time.Now()
	caKey := newKey()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "jetpool test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(serial int64, usage x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey) {
		k := newKey()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "127.0.0.1"},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, k
	}
	serverDER, serverKey := leaf(2, x509.ExtKeyUsageServerAuth)
	clientDER, clientKey := leaf(3, x509.ExtKeyUsageClientAuth)
	return tlsFiles{
		ca:         write("ca.pem", "CERTIFICATE", caDER),
		serverCert: write("server.pem", "CERTIFICATE", serverDER),
		serverKey:  write("server-key.pem", "PRIVATE KEY", keyDER(serverKey)),
		clientCert: write("client.pem", "CERTIFICATE", clientDER),
		clientKey:  write("client-key.pem", "PRIVATE KEY", keyDER(clientKey)),
	}
}

// TestConnectWithTLS: a server that verifies client certificates takes a
// client with the CA, its certificate and key, and refuses one without.
func TestConnectWithTLS(t *testing.T) {
	f := newTLSFiles(t)
	conf := fmt.Sprintf("tls { cert_file: %q, key_file: %q, ca_file: %q, verify: true }\n", f.serverCert, f.serverKey, f.ca)
	srv := startServer(t, embedded.Config{ConfigFile: writeFile(t, "tls.conf", conf)})
	url := strings.Replace(srv.ClientURL(), "nats://", "tls://", 1)
	nc, err := Connect(ConnectOptions{URL: url, TLSCA: f.ca, TLSCert: f.clientCert, TLSKey: f.clientKey, ConnectTimeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("Connect with a client certificate: %v", err)
	}
	if !nc.TLSRequired() {
		t.Error("the connection does not use TLS")
	}
	nc.Close()
	for name, o := range map[string]ConnectOptions{
		"no client certificate": {URL: url, TLSCA: f.ca},
		"server not trusted":    {URL: url, TLSCert: f.clientCert, TLSKey: f.clientKey},
	} {
		o.ConnectTimeout = 2 * time.Second
		if nc, err := Connect(o); err == nil {
			nc.Close()
			t.Errorf("%s: connected", name)
		}
	}
}

// recordHandler sends the text of every log record it handles to a channel.
type recordHandler struct{ records chan<- string }

func (h recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h recordHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h recordHandler) WithGroup(string) slog.Handler            { return h }
func (h recordHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		return true
	})
	h.records <- b.String()
	return nil
}

// waitRecord returns the first record that starts with prefix.
func waitRecord(t *testing.T, records <-chan string, prefix string) string {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case r := <-records:
			if strings.HasPrefix(r, prefix) {
				return r
			}
		case <-timeout:
			t.Fatalf("no %q logged in 10s", prefix)
		}
	}
}

// TestConnectLogsNoSecrets: the connection's disconnect and reconnect events
// are logged, and the server URL in them hides a token written into it.
func TestConnectLogsNoSecrets(t *testing.T) {
	conf := writeFile(t, "token.conf", "authorization { token: t0ken-in-url }\n")
	srv := startServer(t, embedded.Config{ConfigFile: conf})
	u, err := url.Parse(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	records := make(chan string, 100)
	nc, err := Connect(ConnectOptions{URL: "nats://t0ken-in-url@" + u.Host, Logger: slog.New(recordHandler{records}), ConnectTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)

	srv.Shutdown()
	if r := waitRecord(t, records, "broker: disconnected"); strings.Contains(r, "t0ken-in-url") {
		t.Fatalf("logged %q", r)
	}
	startServer(t, embedded.Config{ConfigFile: conf, Port: port})
	r := waitRecord(t, records, "broker: reconnected")
	if strings.Contains(r, "t0ken-in-url") || !strings.Contains(r, u.Host) {
		t.Fatalf("logged %q, want the server %s without its token", r, u.Host)
	}

	// The program's own Close is no disconnection to warn of.
	nc.Close()
	timeout := time.After(10 * time.Second)
	for closed := false; !closed; {
		select {
		case r := <-records:
			if strings.HasPrefix(r, "broker: disconnected") {
				t.Fatalf("Close logged %q", r)
			}
			closed = strings.HasPrefix(r, "broker: connection closed")
		case <-timeout:
			t.Fatal("no \"broker: connection closed\" logged in 10s")
		}
	}
}

// TestPoolsWhoseStreamNamesCollide: a second pool whose stream name folds
// onto an existing pool's is refused with a clear error.
func TestPoolsWhoseStreamNamesCollide(t *testing.T) {
	srv, err := embedded.Start(embedded.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := Connect(ConnectOptions{URL: srv.ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	first, _ := NewSubjects("a_b", "c")
	if _, err := EnsureStream(ctx, js, first, PoolConfig{}); err != nil {
		t.Fatal(err)
	}
	for _, names := range [][2]string{{"a", "b_c"}, {"A_b", "C"}} {
		other, _ := NewSubjects(names[0], names[1])
		if _, err := EnsureStream(ctx, js, other, PoolConfig{}); !errors.Is(err, ErrInvalidName) || !strings.Contains(err.Error(), "belongs to another pool") {
			t.Errorf("prefix %q pool %q: %v, want a refusal", names[0], names[1], err)
		}
	}
	if _, err := EnsureStream(ctx, js, first, PoolConfig{}); err != nil {
		t.Fatalf("the first pool again: %v", err)
	}
}
