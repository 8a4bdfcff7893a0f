package broker_test

import (
	"errors"
	"flag"
	"fmt"

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

// A chunk travels as msgpack; Decode refuses anything malformed with an
// error matching ErrMalformed.
func ExampleDecode() {
	data, err := broker.Encode(&broker.Chunk{
		Executor: "EXEC1", ID: 7, Kind: "square", Control: "jetpool.default.ctl.EXEC1",
		Items: []broker.Item{{Seq: 0, Args: []byte{0x05}}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	var c broker.Chunk
	if err := broker.Decode(data, &c); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c.Kind, c.ID, len(c.Items))

	err = broker.Decode(data[:len(data)-1], &c)
	fmt.Println(errors.Is(err, broker.ErrMalformed))
	// Output:
	// square 7 1
	// true
}

// A worker sends the results of several chunks in one message, their
// encodings back to back.
func ExampleDecodeResults() {
	var msg []byte
	for chunk := uint64(1); chunk <= 3; chunk++ {
		data, err := broker.Encode(&broker.Result{Chunk: chunk, Worker: "w1", Final: true,
			Items: []broker.ItemResult{{Seq: 0, Value: []byte{0x01}}}})
		if err != nil {
			fmt.Println(err)
			return
		}
		msg = append(msg, data...)
	}
	rs, err := broker.DecodeResults(msg)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range rs {
		fmt.Println("chunk", r.Chunk, "final", r.Final)
	}

	// A bad result ends the reading; the ones before it are kept.
	rs, err = broker.DecodeResults(append(msg, 0xc1))
	fmt.Println(len(rs), errors.Is(err, broker.ErrMalformed))
	// Output:
	// chunk 1 final true
	// chunk 2 final true
	// chunk 3 final true
	// 3 true
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
