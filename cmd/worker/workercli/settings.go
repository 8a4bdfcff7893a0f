package workercli

import (
	"errors"
	"net"
	"strconv"
)

// checkAddr checks a host:port to listen on; the port may be 0 for any.
func checkAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("want host:port, such as :9090 or 127.0.0.1:9090")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return errors.New("port " + strconv.Quote(port) + " is not a number from 0 to 65535")
	}
	return nil
}
