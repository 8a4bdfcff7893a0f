package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// ErrInvalidConnect is matched by errors for connection options that cannot
// work together or point at missing files.
var ErrInvalidConnect = errors.New("broker: invalid connect options")

// ConnectOptions says how to reach the broker, with the NATS ecosystem's
// conventions. The zero value connects to nats.DefaultURL without auth.
//
// InboxPrefix names where the connection's replies, pulled chunks and
// interrupts arrive: with "_INBOX.<user>" for each user, a server can let
// every user subscribe only to inboxes of its own, so that no other party
// reads them (docs/security.conf).
type ConnectOptions struct {
	URL            string // comma-separated server URLs (NATS_URL)
	Name           string // connection name shown by the server
	Creds          string // user credentials file (NATS_CREDS)
	NKey           string // nkey seed file (NATS_NKEY)
	User           string // (NATS_USER)
	Password       string // (NATS_PASSWORD)
	Token          string // (NATS_TOKEN)
	TLSCA          string // CA to verify the server (NATS_CA)
	TLSCert        string // client certificate (NATS_CERT)
	TLSKey         string // client key (NATS_KEY)
	InboxPrefix    string // the connection's inboxes' first tokens instead of _INBOX (NATS_INBOX_PREFIX)
	ConnectTimeout time.Duration
	Logger         *slog.Logger // connection events; secrets are never logged
}

// OptionsFromEnv reads the NATS_* environment variables the nats CLI uses,
// as the jetpool commands do; an unset variable leaves its field empty. A
// producer without flags connects where a worker program would with
// broker.Connect(broker.OptionsFromEnv()); one with flags uses
// [ConnectOptions.RegisterFlags], which reads the same variables.
func OptionsFromEnv() ConnectOptions {
	return ConnectOptions{
		URL:         os.Getenv("NATS_URL"),
		Creds:       os.Getenv("NATS_CREDS"),
		NKey:        os.Getenv("NATS_NKEY"),
		User:        os.Getenv("NATS_USER"),
		Password:    os.Getenv("NATS_PASSWORD"),
		Token:       os.Getenv("NATS_TOKEN"),
		TLSCA:       os.Getenv("NATS_CA"),
		TLSCert:     os.Getenv("NATS_CERT"),
		TLSKey:      os.Getenv("NATS_KEY"),
		InboxPrefix: os.Getenv("NATS_INBOX_PREFIX"),
	}
}

// Connect validates o and connects, reconnecting forever after a loss.
func Connect(o ConnectOptions) (*nats.Conn, error) {
	url := o.URL
	if url == "" {
		url = nats.DefaultURL
	}
	if err := CheckServers(o.URL); err != nil {
		return nil, fmt.Errorf("%w: server: %w", ErrInvalidConnect, err)
	}
	opts := []nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond)}
	if o.Name != "" {
		opts = append(opts, nats.Name(o.Name))
	}
	if o.ConnectTimeout > 0 {
		opts = append(opts, nats.Timeout(o.ConnectTimeout))
	}
	if o.InboxPrefix != "" {
		opt := nats.CustomInboxPrefix(o.InboxPrefix)
		if err := opt(&nats.Options{}); err != nil {
			return nil, fmt.Errorf("%w: inbox prefix %q: a subject without wildcards that does not end with '.'", ErrInvalidConnect, o.InboxPrefix)
		}
		opts = append(opts, opt)
	}
	if o.Creds != "" && o.NKey != "" {
		return nil, fmt.Errorf("%w: a creds file and an nkey together", ErrInvalidConnect)
	}
	for _, f := range []struct{ name, path string }{{"creds", o.Creds}, {"nkey", o.NKey}, {"tlsca", o.TLSCA}, {"tlscert", o.TLSCert}, {"tlskey", o.TLSKey}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return nil, fmt.Errorf("%w: %s file: %w", ErrInvalidConnect, f.name, err)
		}
	}
	if o.Creds != "" {
		opts = append(opts, nats.UserCredentials(o.Creds))
	}
	if o.NKey != "" {
		opt, err := nats.NkeyOptionFromSeed(o.NKey)
		if err != nil {
			return nil, fmt.Errorf("%w: nkey: %w", ErrInvalidConnect, err)
		}
		opts = append(opts, opt)
	}
	if o.User != "" {
		opts = append(opts, nats.UserInfo(o.User, o.Password))
	}
	if o.Token != "" {
		opts = append(opts, nats.Token(o.Token))
	}
	if o.TLSCA != "" {
		opts = append(opts, nats.RootCAs(o.TLSCA))
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return nil, fmt.Errorf("%w: a client certificate needs its key and the key its certificate", ErrInvalidConnect)
	}
	if o.TLSCert != "" {
		opts = append(opts, nats.ClientCert(o.TLSCert, o.TLSKey))
	}
	if l := o.Logger; l != nil {
		opts = append(opts,
			nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
				// A nil error is the program's own Close: nothing to warn of.
				if err != nil {
					l.Warn("broker: disconnected; reconnecting", "err", err)
				}
			}),
			nats.ClosedHandler(func(*nats.Conn) { l.Debug("broker: connection closed") }),
			nats.ReconnectHandler(func(nc *nats.Conn) { l.Info("broker: reconnected", "server", redactURL(nc.ConnectedUrl())) }),
		)
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("broker: connect to %s: %w", redactURL(url), err)
	}
	return nc, nil
}

// redactURL hides the user information of every URL in a comma-separated
// list: passwords, and tokens, which the client reads from a URL's lone user
// name.
func redactURL(list string) string {
	urls := strings.Split(list, ",")
	for i, u := range urls {
		urls[i] = redactUser(u)
	}
	return strings.Join(urls, ",")
}
