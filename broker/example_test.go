package broker_test

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/jetpool/jetpool/broker"
	"github.com/jetpool/jetpool/broker/embedded"
)

// A producer program takes the connection flags and NATS_* variables of the
// jetpool commands next to flags of its own; broker.Connect(o) then connects
// with what the command line and the environment said.
func ExampleConnectOptions_RegisterFlags() {
	fs := flag.NewFlagSet("producer", flag.ContinueOnError)
	o := broker.ConnectOptions{Name: "producer"}
	o.RegisterFlags(fs)
	pool := fs.String("pool", broker.DefaultPool, "pool name")
	args := []string{"-s", "nats://n1:4222,nats://n2:4222", "--user", "ada", "--password", "s3cret", "--pool", "batch"}
	if err := fs.Parse(args); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("servers:", o.URL)
	fmt.Println("user:", o.User)
	fmt.Println("pool:", *pool)
	// Output:
	// servers: nats://n1:4222,nats://n2:4222
	// user: ada
	// pool: batch
}

// A producer without flags of its own connects where the jetpool commands
// would, in one line: OptionsFromEnv reads NATS_URL, NATS_CREDS and the
// other NATS_* variables.
func ExampleOptionsFromEnv() {
	srv, err := embedded.Start(embedded.Config{})
	if err != nil {
		panic(err)
	}
	defer srv.Shutdown()
	// As a deployment would set it.
	defer os.Setenv("NATS_URL", os.Getenv("NATS_URL"))
	os.Setenv("NATS_URL", srv.ClientURL())

	o := broker.OptionsFromEnv()
	o.Name = "producer"
	nc, err := broker.Connect(o)
	if err != nil {
		panic(err)
	}
	defer nc.Close()
	fmt.Println("connected to the server of NATS_URL:", nc.ConnectedUrl() == srv.ClientURL())
	// Output: connected to the server of NATS_URL: true
}

// The subjects of a pool, all under one prefix.
func ExampleNewSubjects() {
	s, err := broker.NewSubjects(broker.DefaultPrefix, "batch")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(s.Stream())
	fmt.Println(s.Tasks("square"))
	fmt.Println(s.Control("EXEC1") + broker.ResultSuffix)

	_, err = broker.NewSubjects("jetpool", "a.b")
	fmt.Println(errors.Is(err, broker.ErrInvalidName))
	// Output:
	// JETPOOL_BATCH
	// jetpool.batch.tasks.square
	// jetpool.batch.ctl.EXEC1.result
	// true
}

// Connect validates its options and connects, reconnecting forever after a
// loss; a server URL's credentials never reach a log or an error.
func ExampleConnect() {
	srv, err := embedded.Start(embedded.Config{})
	if err != nil {
		panic(err)
	}
	defer srv.Shutdown()
	nc, err := broker.Connect(broker.ConnectOptions{URL: srv.ClientURL(), Name: "example"})
	if err != nil {
		panic(err)
	}
	defer nc.Close()
	fmt.Println("connected:", nc.IsConnected())

	_, err = broker.Connect(broker.ConnectOptions{URL: srv.ClientURL(), TLSCert: "client.pem"})
	fmt.Println(errors.Is(err, broker.ErrInvalidConnect))
	// Output:
	// connected: true
	// true
}
