package broker

import (
	"cmp"
	"flag"
	"os"

	"github.com/nats-io/nats.go"
)

// RegisterFlags defines on fs the connection flags of the nats CLI, each
// bound to a field of o and backed by its environment variable:
//
//	--server, -s    URL         NATS_URL
//	--creds         Creds       NATS_CREDS
//	--nkey          NKey        NATS_NKEY
//	--user          User        NATS_USER
//	--password      Password    NATS_PASSWORD
//	--token         Token       NATS_TOKEN
//	--tlsca         TLSCA       NATS_CA
//	--tlscert       TLSCert     NATS_CERT
//	--tlskey        TLSKey      NATS_KEY
//	--inbox-prefix  InboxPrefix NATS_INBOX_PREFIX
//
// A flag given on the command line wins over its variable, and a variable
// that is set and not empty wins over what o held before the call, so a
// program sets its own defaults in o first. RegisterFlags reads the
// environment once, during the call, and stores the variables' values in o;
// fs.Parse then overwrites the fields of the flags it meets.
//
// The help of each flag names its variable and says whether a value is in
// effect ("set"), never which: the only value it shows is the server URLs',
// with their user information (user, password or token) replaced by xxxxx.
// Like any flag definition, RegisterFlags panics if fs already defines one of
// these names.
func (o *ConnectOptions) RegisterFlags(fs *flag.FlagSet) {
	for _, f := range []struct {
		name, env string
		usage     string // the placeholder in back quotes, as flag.PrintDefaults reads it
		p         *string
	}{
		{"server", "NATS_URL", "NATS server `URLs`, comma separated", &o.URL},
		{"creds", "NATS_CREDS", "user credentials `file`", &o.Creds},
		{"nkey", "NATS_NKEY", "nkey seed `file`", &o.NKey},
		{"user", "NATS_USER", "user `name`", &o.User},
		{"password", "NATS_PASSWORD", "`password`", &o.Password},
		{"token", "NATS_TOKEN", "authentication `token`", &o.Token},
		{"tlsca", "NATS_CA", "CA `file` to verify the server", &o.TLSCA},
		{"tlscert", "NATS_CERT", "client certificate `file`", &o.TLSCert},
		{"tlskey", "NATS_KEY", "client private key `file`", &o.TLSKey},
		{"inbox-prefix", "NATS_INBOX_PREFIX", "`subject` prefix of the connection's inboxes, instead of _INBOX", &o.InboxPrefix},
	} {
		if v := os.Getenv(f.env); v != "" {
			*f.p = v
		}
		state := ""
		if *f.p != "" {
			state = "; set"
		}
		if f.name == "server" {
			state = "; default " + redactURL(cmp.Or(o.URL, nats.DefaultURL))
		}
		// A Func flag shows no default: flag.PrintDefaults would print
		// the value itself.
		fs.Func(f.name, f.usage+" (env "+f.env+state+")", setString(f.p))
	}
	fs.Func("s", "shorthand for --server `URLs`", setString(&o.URL))
}

func setString(p *string) func(string) error {
	return func(s string) error {
		*p = s
		return nil
	}
}
