package broker

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func TestOptionsFromEnv(t *testing.T) {
	env := map[string]string{
		"NATS_URL": "nats://a:1,nats://b:2", "NATS_CREDS": "/c.creds", "NATS_NKEY": "/seed.nk",
		"NATS_USER": "ada", "NATS_PASSWORD": "pw", "NATS_TOKEN": "tok",
		"NATS_CA": "/ca.pem", "NATS_CERT": "/cert.pem", "NATS_KEY": "/key.pem",
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	got := OptionsFromEnv()
	want := ConnectOptions{URL: "nats://a:1,nats://b:2", Creds: "/c.creds", NKey: "/seed.nk", User: "ada",
		Password: "pw", Token: "tok", TLSCA: "/ca.pem", TLSCert: "/cert.pem", TLSKey: "/key.pem"}
	if got != want {
		t.Fatalf("OptionsFromEnv() = %+v, want %+v", got, want)
	}
}

func TestConnectRefusesBadOptions(t *testing.T) {
	dir := t.TempDir()
	creds := filepath.Join(dir, "u.creds")
	if err := os.WriteFile(creds, []byte("not creds"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, o := range map[string]ConnectOptions{
		"bad scheme":          {URL: "http://127.0.0.1:4222"},
		"port out of range":   {URL: "nats://127.0.0.1:65536"},
		"missing creds file":  {URL: "nats://127.0.0.1:1", Creds: filepath.Join(dir, "missing.creds")},
		"creds and nkey":      {URL: "nats://127.0.0.1:1", Creds: creds, NKey: creds},
		"missing CA":          {URL: "nats://127.0.0.1:1", TLSCA: filepath.Join(dir, "ca.pem")},
		"certificate, no key": {URL: "nats://127.0.0.1:1", TLSCert: creds},
		"not an nkey seed":    {URL: "nats://127.0.0.1:1", NKey: creds},
	} {
		if _, err := Connect(o); !errors.Is(err, ErrInvalidConnect) {
			t.Errorf("%s: %v, want ErrInvalidConnect", name, err)
		}
	}
}

// TestConnectWithCredentials: user/password and token authentication work,
// and a refused connection's error does not repeat the secret.
func TestConnectWithCredentials(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "auth.conf")
	if err := os.WriteFile(conf, []byte(`jetstream {}
accounts { A { jetstream: enabled, users = [ {user: ada, password: s3cret-pw} ] } }
`), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := StartEmbedded(EmbeddedConfig{ConfigFile: conf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := Connect(ConnectOptions{URL: srv.ClientURL(), User: "ada", Password: "s3cret-pw", ConnectTimeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("Connect with the right password: %v", err)
	}
	nc.Close()
	_, err = Connect(ConnectOptions{URL: srv.ClientURL(), User: "ada", Password: "wrong-pw-123", ConnectTimeout: 2 * time.Second})
	if err == nil {
		t.Fatal("a wrong password connected")
	}
	if strings.Contains(err.Error(), "wrong-pw-123") {
		t.Fatalf("the error shows the password: %v", err)
	}
	_, err = Connect(ConnectOptions{URL: strings.Replace(srv.ClientURL(), "nats://", "nats://ada:url-pw-456@", 1), ConnectTimeout: 2 * time.Second})
	if err == nil || strings.Contains(err.Error(), "url-pw-456") {
		t.Fatalf("a wrong password in the URL: %v", err)
	}

	tokConf := filepath.Join(t.TempDir(), "token.conf")
	if err := os.WriteFile(tokConf, []byte("authorization { token: t0ken-abc }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tsrv, err := StartEmbedded(EmbeddedConfig{ConfigFile: tokConf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tsrv.Shutdown)
	nc, err = Connect(ConnectOptions{URL: tsrv.ClientURL(), Token: "t0ken-abc", ConnectTimeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("Connect with the token: %v", err)
	}
	nc.Close()
	if _, err := Connect(ConnectOptions{URL: tsrv.ClientURL(), ConnectTimeout: 2 * time.Second}); err == nil {
		t.Fatal("no token connected")
	}
}

// TestProvisioningIsIdempotent: the stream and consumers are created once
// with the pool's settings, and found again after.
func TestProvisioningIsIdempotent(t *testing.T) {
	srv, err := StartEmbedded(EmbeddedConfig{})
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
	s, _ := NewSubjects(DefaultPrefix, "prov")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pc := PoolConfig{AckWait: 5 * time.Second, MaxDeliver: 4, MaxAckPending: 7}
	for range 2 {
		st, err := EnsureStream(ctx, js, s, pc)
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if c := info.Config; c.Retention != jetstream.WorkQueuePolicy || c.Storage != jetstream.FileStorage ||
			c.Replicas != 1 || c.Duplicates != 2*time.Minute || c.Subjects[0] != s.AllTasks() {
			t.Fatalf("stream config %+v", c)
		}
		cons, err := EnsureConsumer(ctx, js, s, "square", pc)
		if err != nil {
			t.Fatal(err)
		}
		ci, err := cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if c := ci.Config; c.Durable != "square" || c.AckWait != 5*time.Second || c.MaxDeliver != 4 ||
			c.MaxAckPending != 7 || c.FilterSubject != s.Tasks("square") || c.AckPolicy != jetstream.AckExplicitPolicy {
			t.Fatalf("consumer config %+v", c)
		}
	}
	names := js.StreamNames(ctx)
	n := 0
	for range names.Name() {
		n++
	}
	if n != 1 {
		t.Fatalf("%d streams, want 1", n)
	}
	for name, bad := range map[string]PoolConfig{
		"replicas 2": {Replicas: 2}, "negative ack wait": {AckWait: -time.Second},
		"max deliver below 1": {MaxDeliver: -1}, "short dedup window": {DuplicateWindow: time.Millisecond},
	} {
		if _, err := EnsureStream(ctx, js, s, bad); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: %v, want ErrInvalidConfig", name, err)
		}
	}
}

func TestEmbeddedShutdownTwice(t *testing.T) {
	srv, err := StartEmbedded(EmbeddedConfig{})
	if err != nil {
		t.Fatal(err)
	}
	srv.Shutdown()
	srv.Shutdown()
}
