package broker

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetpool/jetpool/broker/embedded"
)

func newJobStore(t *testing.T) (*JobStore, jetstream.JetStream) {
	t.Helper()
	nc, js, s := newPoolConn(t)
	return NewJobStore(nc, js, s), js
}

// newPoolConn starts a server for the test and returns a connection to it
// and the names of pool "p" under prefix "jp".
func newPoolConn(t *testing.T) (*nats.Conn, jetstream.JetStream, Subjects) {
	t.Helper()
	srv := startServer(t, embedded.Config{})
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSubjects("jp", "p")
	if err != nil {
		t.Fatal(err)
	}
	return nc, js, s
}

func TestJobStoreWritesAndReads(t *testing.T) {
	st, js := newJobStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := st.Create(ctx, "o.j.0.c", []byte("x"), 0); !errors.Is(err, ErrNoJobs) {
		t.Fatalf("a write before the bucket exists: %v, want ErrNoJobs", err)
	}
	if _, err := EnsureJobs(ctx, js, st.Subjects(), PoolConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureJobs(ctx, js, st.Subjects(), PoolConfig{}); err != nil {
		t.Fatalf("EnsureJobs on an existing bucket: %v", err)
	}
	if es, err := st.Read(ctx, "o.j.>", 0); err != nil || len(es) != 0 {
		t.Fatalf("read of nothing: %v, %v", es, err)
	}
	seq, err := st.Create(ctx, "o.j.0.c", []byte("c"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Create(ctx, "o.j.0.c", []byte("again"), 0); !errors.Is(err, ErrConflict) {
		t.Fatalf("second create: %v, want ErrConflict", err)
	}
	if _, err := st.Update(ctx, "o.j.0.c", []byte("stale"), seq-1, 0); !errors.Is(err, ErrConflict) {
		t.Fatalf("update from a stale sequence: %v, want ErrConflict", err)
	}
	seq2, err := st.Update(ctx, "o.j.0.c", []byte("c2"), seq, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Create(ctx, "o.j.0.s.w", []byte("s"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Create(ctx, "o.other.0.c", []byte("other"), 0); err != nil {
		t.Fatal(err)
	}
	recs, err := st.ChunkRecords(ctx, "o.j", 0, seq2)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, r := range recs {
		keys = append(keys, r.Key+"="+string(r.Data))
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"c=c2", "s.w=s"}) {
		t.Fatalf("chunk records %v", keys)
	}
	if _, err := st.Read(ctx, "o.j.>", 1<<40); err == nil {
		t.Fatal("a read that must see a sequence the stream never had succeeded")
	}

	// A purged key leaves a marker, which a create replaces, and which the
	// server removes after a second.
	if _, err := js.PublishMsg(ctx, st.PurgeMsg("o.j.0.c")); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := st.Get(ctx, "o.j.0.c"); err != nil || ok {
		t.Fatalf("a purged key reads as %v, %v", ok, err)
	}
	if _, err := st.Create(ctx, "o.j.0.c", []byte("new"), time.Second); err != nil {
		t.Fatalf("create over a purge marker: %v", err)
	}
	if e, ok, err := st.Get(ctx, "o.j.0.c"); err != nil || !ok || string(e.Data) != "new" {
		t.Fatalf("re-created key: %+v, %v, %v", e, ok, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, ok, err := st.Get(ctx, "o.j.0.c"); err != nil || !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a record written with a TTL of 1s is still there after 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestEnsureResults(t *testing.T) {
	ctx, js := newJetStream(t)
	s, _ := NewSubjects("jp", "p")
	st, err := EnsureResults(ctx, js, s, "alice", PoolConfig{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	if cfg.Name != "JP_P_RESULTS_alice" || !slices.Equal(cfg.Subjects, []string{"jp.p.results.alice.>"}) || cfg.AllowDirect || !cfg.AllowMsgTTL {
		t.Fatalf("results stream %+v", cfg)
	}
	if _, err := js.Publish(ctx, s.Results("alice", "job", 3, "w"), []byte("r")); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, s.Results("bob", "job", 3, "w"), []byte("r")); err == nil {
		t.Fatal("alice's stream took bob's result")
	}
}

func TestJobSubjects(t *testing.T) {
	s, _ := NewSubjects("jp", "p")
	for got, want := range map[string]string{
		s.JobsBucket():               "JP_P_JOBS",
		s.JobsStream():               "KV_JP_P_JOBS",
		s.JobKey("o.j.job"):          "$KV.JP_P_JOBS.o.j.job",
		s.Job("o", "j"):              "o.j",
		s.ResultsStream("o"):         "JP_P_RESULTS_o",
		s.AllResults("o"):            "jp.p.results.o.>",
		s.JobResults("o", "j"):       "jp.p.results.o.j.>",
		s.Results("o", "j", 12, "w"): "jp.p.results.o.j.12.w",
		s.JobSecret("o", "j"):        "jp.p.results.o.j.secret",
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	if ord, author, ok := s.ResultsOf("o", "j", "jp.p.results.o.j.12.w"); !ok || ord != 12 || author != "w" {
		t.Errorf("ResultsOf = %d, %q, %v", ord, author, ok)
	}
	for _, subject := range []string{"jp.p.results.o.j.secret", "jp.p.results.o.j.x.w", "jp.p.results.o.j.1.w.z", "jp.p.results.o.k.1.w"} {
		if _, _, ok := s.ResultsOf("o", "j", subject); ok {
			t.Errorf("ResultsOf(%q) = ok", subject)
		}
	}
	if key, ok := s.JobKeyOf("$KV.JP_P_JOBS.o.j.0.c"); !ok || key != "o.j.0.c" {
		t.Errorf("JobKeyOf = %q, %v", key, ok)
	}
}
