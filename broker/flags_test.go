package broker

import (
	"bytes"
	"flag"
	"io"
	"strings"
	"testing"
)

// registered returns a flag set with o's connection flags on it.
func registered(o *ConnectOptions, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(out)
	o.RegisterFlags(fs)
	return fs
}

// TestRegisterFlagsPrecedence: for every field, a flag wins over its
// variable, and a variable over the value the program put in the options.
func TestRegisterFlagsPrecedence(t *testing.T) {
	fields := []struct {
		flag, env string
		field     func(*ConnectOptions) *string
	}{
		{"server", "NATS_URL", func(o *ConnectOptions) *string { return &o.URL }},
		{"s", "NATS_URL", func(o *ConnectOptions) *string { return &o.URL }},
		{"creds", "NATS_CREDS", func(o *ConnectOptions) *string { return &o.Creds }},
		{"nkey", "NATS_NKEY", func(o *ConnectOptions) *string { return &o.NKey }},
		{"user", "NATS_USER", func(o *ConnectOptions) *string { return &o.User }},
		{"password", "NATS_PASSWORD", func(o *ConnectOptions) *string { return &o.Password }},
		{"token", "NATS_TOKEN", func(o *ConnectOptions) *string { return &o.Token }},
		{"tlsca", "NATS_CA", func(o *ConnectOptions) *string { return &o.TLSCA }},
		{"tlscert", "NATS_CERT", func(o *ConnectOptions) *string { return &o.TLSCert }},
		{"tlskey", "NATS_KEY", func(o *ConnectOptions) *string { return &o.TLSKey }},
		{"inbox-prefix", "NATS_INBOX_PREFIX", func(o *ConnectOptions) *string { return &o.InboxPrefix }},
	}
	layers := []struct {
		name        string
		preset, env string
		args        func(flag string) []string
		want        string
	}{
		{"nothing", "", "", nil, ""},
		{"preset", "from-program", "", nil, "from-program"},
		{"env over preset", "from-program", "from-env", nil, "from-env"},
		{"flag over env", "from-program", "from-env", func(f string) []string { return []string{"--" + f, "from-flag"} }, "from-flag"},
		{"flag with one dash", "", "from-env", func(f string) []string { return []string{"-" + f + "=from-flag"} }, "from-flag"},
		{"empty flag over env", "", "from-env", func(f string) []string { return []string{"--" + f, ""} }, ""},
	}
	for _, f := range fields {
		for _, l := range layers {
			t.Run(f.flag+"/"+l.name, func(t *testing.T) {
				for _, k := range natsEnv {
					t.Setenv(k, "")
				}
				t.Setenv(f.env, l.env)
				var o ConnectOptions
				*f.field(&o) = l.preset
				fs := registered(&o, io.Discard)
				var args []string
				if l.args != nil {
					args = l.args(f.flag)
				}
				if err := fs.Parse(args); err != nil {
					t.Fatal(err)
				}
				var want ConnectOptions
				*f.field(&want) = l.want
				if o != want {
					t.Fatalf("options %+v, want %+v", o, want)
				}
			})
		}
	}
}

// TestRegisterFlagsHelpShowsNoSecret: the help names every variable and
// says which are set, shows the server URLs without their user information,
// and no value that came from the environment or the program.
func TestRegisterFlagsHelpShowsNoSecret(t *testing.T) {
	env := map[string]string{
		"NATS_URL": "nats://alice:s3cret-url@127.0.0.1:4222,nats://t0ken-url@127.0.0.2:4222", "NATS_CREDS": "/etc/creds-path.creds",
		"NATS_NKEY": "/etc/seed-path.nk", "NATS_USER": "user-name", "NATS_PASSWORD": "s3cret-password",
		"NATS_TOKEN": "s3cret-token", "NATS_CA": "/etc/ca-path.pem", "NATS_CERT": "/etc/cert-path.pem", "NATS_KEY": "/etc/key-path.pem",
		"NATS_INBOX_PREFIX": "_INBOX.inbox-path",
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	var out bytes.Buffer
	fs := registered(&ConnectOptions{}, &out)
	fs.PrintDefaults()
	help := out.String()
	for k, v := range env {
		if !strings.Contains(help, "(env "+k+";") {
			t.Errorf("the help does not name %s:\n%s", k, help)
		}
		for _, part := range []string{v, "s3cret", "t0ken", "-path"} {
			if strings.Contains(help, part) {
				t.Errorf("the help shows %q of %s:\n%s", part, k, help)
			}
		}
	}
	if want := "(env NATS_URL; default nats://xxxxx@127.0.0.1:4222,nats://xxxxx@127.0.0.2:4222)"; !strings.Contains(help, want) {
		t.Errorf("the help does not say %s:\n%s", want, help)
	}
	if n := strings.Count(help, "; set)"); n != len(env)-1 {
		t.Errorf("%d flags said to be set, want %d:\n%s", n, len(env)-1, help)
	}

	// Values the program puts in the options are hidden the same way.
	for k := range env {
		t.Setenv(k, "")
	}
	out.Reset()
	fs = registered(&ConnectOptions{URL: "nats://s3cret@h:4222", Password: "s3cret", Token: "s3cret"}, &out)
	fs.PrintDefaults()
	help = out.String()
	if strings.Contains(help, "s3cret") || !strings.Contains(help, "nats://xxxxx@h:4222") || strings.Count(help, "; set)") != 2 {
		t.Errorf("help of preset options:\n%s", help)
	}
}

// TestRegisterFlagsHelpUnset: with nothing set the help shows the client's
// default server and calls nothing set.
func TestRegisterFlagsHelpUnset(t *testing.T) {
	for _, k := range natsEnv {
		t.Setenv(k, "")
	}
	var out bytes.Buffer
	fs := registered(&ConnectOptions{}, &out)
	fs.PrintDefaults()
	help := out.String()
	if !strings.Contains(help, "(env NATS_URL; default nats://127.0.0.1:4222)") || strings.Contains(help, "set)") {
		t.Errorf("help with nothing set:\n%s", help)
	}
	for _, name := range []string{"-server URLs", "-s URLs", "-creds file", "-password password", "(env NATS_PASSWORD)"} {
		if !strings.Contains(help, name) {
			t.Errorf("the help lacks %q:\n%s", name, help)
		}
	}
}
