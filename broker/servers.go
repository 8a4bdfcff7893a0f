package broker

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
)

// CheckServers checks a comma-separated list of NATS server URLs the way the
// client will read it, so that a typo is a usage error and not a failure to
// connect. Its errors never repeat a URL's user information.
func CheckServers(list string) error {
	if strings.TrimSpace(list) == "" {
		return nil // the client's default URL
	}
	websocket := -1
	n := 0
	for _, raw := range strings.Split(list, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		n++
		s := raw
		if !strings.Contains(s, "://") {
			s = "nats://" + s
		}
		u, err := url.Parse(s)
		if err != nil {
			return errors.New(redactUser(raw) + ": not a URL")
		}
		// A lone user name is a token to the client: hide it as well.
		shown := *u
		if shown.User != nil {
			shown.User = url.User("xxxxx")
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return errors.New(shown.String() + ": scheme " + strconv.Quote(u.Scheme) + ", want nats, tls, ws or wss")
		}
		if u.Hostname() == "" {
			return errors.New(shown.String() + ": no host")
		}
		if p := u.Port(); p != "" {
			if port, err := strconv.Atoi(p); err != nil || port < 1 || port > 65535 {
				return errors.New(shown.String() + ": port " + strconv.Quote(p) + " out of range 1-65535")
			}
		}
		ws := 0
		if u.Scheme == "ws" || u.Scheme == "wss" {
			ws = 1
		}
		if websocket >= 0 && ws != websocket {
			return errors.New("websocket and non-websocket URLs mixed")
		}
		websocket = ws
	}
	if n == 0 {
		return errors.New("no server URL in " + strconv.Quote(list))
	}
	return nil
}

// redactUser hides the user information of something that did not parse as
// a URL: everything between the scheme and the last '@'.
func redactUser(s string) string {
	at := strings.LastIndex(s, "@")
	if at < 0 {
		return s
	}
	start := 0
	if i := strings.Index(s, "://"); i >= 0 && i < at {
		start = i + 3
	}
	return s[:start] + "xxxxx" + s[at:]
}
