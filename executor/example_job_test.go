package executor_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"

	"github.com/nats-io/nats.go"

	"github.com/jetpool/jetpool/broker/embedded"
	"github.com/jetpool/jetpool/executor"
)

// A named job's tasks and results live in JetStream: a second producer,
// here once the first one is gone, attaches to the job by its name, and
// the same Map yields the results already stored without running those
// tasks again. The lifecycle calls need no Job.
func ExampleNATS_Job() {
	srv, err := embedded.Start(embedded.Config{})
	if err != nil {
		panic(err)
	}
	defer srv.Shutdown()
	defer serveSquares(srv)() // a worker, as in the example of NewNATS
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	inputs := slices.Values([]int{1, 2, 3, 4})

	for run := range 2 {
		nc, err := nats.Connect(srv.ClientURL())
		if err != nil {
			panic(err)
		}
		ex, err := executor.NewNATS(ctx, nc, executor.NATSLogger(quiet))
		if err != nil {
			panic(err)
		}
		job, err := ex.Job(ctx, "nightly")
		if err != nil {
			panic(err)
		}
		fmt.Print("run ", run, ":")
		for v, err := range executor.Map(ctx, job, Square, inputs, executor.MapChunksize(2)) {
			if err != nil {
				panic(err)
			}
			fmt.Print(" ", v)
		}
		fmt.Println()
		if run == 1 {
			job.Shutdown(ctx, true, false)
			st, _ := ex.JobStatus(ctx, "nightly")
			fmt.Println("tasks:", st.Tasks, "done:", st.Done, "chunks:", st.Chunks)
			fmt.Println("delete:", ex.DeleteJob(ctx, "nightly"))
			jobs, _ := ex.Jobs(ctx)
			fmt.Println("jobs left:", len(jobs))
		}
		ex.Shutdown(ctx, true, false)
		nc.Close()
	}
	// Output:
	// run 0: 1 4 9 16
	// run 1: 1 4 9 16
	// tasks: 4 done: 4 chunks: 2
	// delete: <nil>
	// jobs left: 0
}
