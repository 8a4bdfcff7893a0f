package embedded_test

import (
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/jetpool/jetpool/broker/embedded"
)

// A NATS server with JetStream inside this process, on a free loopback port
// and a temporary store that Shutdown removes.
func ExampleStart() {
	srv, err := embedded.Start(embedded.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Shutdown()

	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()
	fmt.Println("connected:", nc.IsConnected())

	// A client in the same process can skip the socket.
	inproc, err := nats.Connect("", nats.InProcessServer(srv))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer inproc.Close()
	fmt.Println("in process:", inproc.IsConnected())
	// Output:
	// connected: true
	// in process: true
}
