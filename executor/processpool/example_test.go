package processpool_test

import (
	"context"
	"fmt"
	"slices"

	"github.com/jetpool/jetpool/executor"
	"github.com/jetpool/jetpool/executor/processpool"
)

// Worker processes on this host over an embedded broker. The pool runs this
// program again as its workers, so main calls worker.ServeIfChild(reg) first
// thing (this test binary does in TestMain, with SlowSquare in reg).
func ExampleNew() {
	ctx := context.Background()
	p, err := processpool.New(ctx, 2, processpool.Concurrency(4))
	if err != nil {
		panic(err)
	}
	defer p.Shutdown(ctx, true, false)

	var squares []int
	for v, err := range executor.Map(ctx, p, SlowSquare, slices.Values([]int{1, 2, 3, 4, 5}), executor.MapChunksize(2)) {
		if err != nil {
			panic(err)
		}
		squares = append(squares, v)
	}
	fmt.Println(squares)
	// Output: [1 4 9 16 25]
}
