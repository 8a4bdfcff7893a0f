package wire_test

import (
	"errors"
	"fmt"

	"github.com/jetpool/jetpool/broker/wire"
)

// A chunk travels as msgpack; Decode refuses anything malformed with an
// error matching ErrMalformed.
func ExampleDecode() {
	data, err := wire.Encode(&wire.Chunk{
		Executor: "EXEC1", ID: 7, Kind: "square", Control: "jetpool.default.ctl.EXEC1",
		Items: []wire.Item{{Seq: 0, Args: []byte{0x05}}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	var c wire.Chunk
	if err := wire.Decode(data, &c); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c.Kind, c.ID, len(c.Items))

	err = wire.Decode(data[:len(data)-1], &c)
	fmt.Println(errors.Is(err, wire.ErrMalformed))
	// Output:
	// square 7 1
	// true
}

// A worker sends the results of several chunks in one message, their
// encodings back to back.
func ExampleDecodeResults() {
	var msg []byte
	for chunk := uint64(1); chunk <= 3; chunk++ {
		data, err := wire.Encode(&wire.Result{Chunk: chunk, Worker: "w1", Final: true,
			Items: []wire.ItemResult{{Seq: 0, Value: []byte{0x01}}}})
		if err != nil {
			fmt.Println(err)
			return
		}
		msg = append(msg, data...)
	}
	rs, err := wire.DecodeResults(msg)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range rs {
		fmt.Println("chunk", r.Chunk, "final", r.Final)
	}

	// A bad result ends the reading; the ones before it are kept.
	rs, err = wire.DecodeResults(append(msg, 0xc1))
	fmt.Println(len(rs), errors.Is(err, wire.ErrMalformed))
	// Output:
	// chunk 1 final true
	// chunk 2 final true
	// chunk 3 final true
	// 3 true
}
