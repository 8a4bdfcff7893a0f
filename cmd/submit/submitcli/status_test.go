package submitcli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetpool/jetpool/executor"
	"github.com/jetpool/jetpool/task"
)

// TestStatusListsUnservedKinds: a kind with queued chunks and no consumer
// (no worker ever served it) is listed with its chunks and marked as served
// by no worker; a served kind shows its workers.
func TestStatusListsUnservedKinds(t *testing.T) {
	url := startBroker(t)
	startWorker(t, url)
	if code, _, errOut := run(t, "", "run", "square", "2"); code != ExitOK {
		t.Fatalf("run square 2: exit %d, %s", code, errOut)
	}
	ex, err := executor.NewNATS(t.Context(), conn(t, url), executor.NATSPoolConfig(testPool))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ex.Shutdown(context.Background(), false, true) })
	for i := range 2 {
		if _, err := executor.Submit(t.Context(), ex, task.New[int, int]("nosuch"), i); err != nil {
			t.Fatal(err)
		}
	}
	// Submit returns before the stream confirms the chunk.
	js, err := jetstream.New(conn(t, url))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "both nosuch chunks in the stream", func() bool {
		st, err := js.Stream(t.Context(), "JETPOOL_DEFAULT")
		if err != nil {
			return false
		}
		info, err := st.Info(t.Context(), jetstream.WithSubjectFilter("jetpool.default.tasks.nosuch"))
		return err == nil && info.State.Subjects["jetpool.default.tasks.nosuch"] == 2
	})

	code, out, errOut := run(t, "", "status", "--json")
	if code != ExitOK {
		t.Fatalf("status --json: exit %d, %s", code, errOut)
	}
	var st Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	kinds := map[string]KindStatus{}
	for _, k := range st.Kinds {
		kinds[k.Kind] = k
	}
	if k, ok := kinds["nosuch"]; !ok || k.Queued != 2 || k.Workers != 0 {
		t.Errorf("kind nosuch: %+v (listed %v), want 2 pending and no workers", k, ok)
	}
	if k := kinds["square"]; k.Workers != 1 {
		t.Errorf("kind square: %+v, want 1 worker", k)
	}

	code, out, _ = run(t, "", "status")
	var row string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "nosuch ") {
			row = l
		}
	}
	if code != ExitOK || !strings.Contains(row, "no worker online serves it") || strings.Fields(row)[1] != "2" {
		t.Fatalf("status: no row for nosuch with 2 queued and the marker:\n%s", out)
	}
}
