package broker

import (
	"errors"
	"strings"
	"testing"
)

func TestSubjectNames(t *testing.T) {
	s, err := NewSubjects("jp", "batch-1")
	if err != nil {
		t.Fatal(err)
	}
	for got, want := range map[string]string{
		s.Stream():                "JP_BATCH-1",
		s.AllTasks():              "jp.batch-1.tasks.>",
		s.Tasks("square"):         "jp.batch-1.tasks.square",
		s.Consumer("square"):      "square",
		s.Control("ex1"):          "jp.batch-1.ctl.ex1",
		s.WorkerInbox("w1"):       "jp.batch-1.worker.w1",
		s.Cancel():                "jp.batch-1.cancel",
		s.MaxDeliveriesAdvisory(): "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.JP_BATCH-1.*",
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

func TestInvalidNames(t *testing.T) {
	for _, name := range []string{"", " ", "a b", "a.b", "a*", ">", "a>b", "tab\there", "nul\x00", "é", strings.Repeat("x", 65)} {
		if _, err := NewSubjects(name, "default"); !errors.Is(err, ErrInvalidName) {
			t.Errorf("prefix %q: %v, want ErrInvalidName", name, err)
		}
		if _, err := NewSubjects("jetpool", name); !errors.Is(err, ErrInvalidName) {
			t.Errorf("pool %q: %v, want ErrInvalidName", name, err)
		}
	}
}

func TestCheckServers(t *testing.T) {
	for _, ok := range []string{"", "nats://127.0.0.1:4222", "127.0.0.1:4222", "nats://a:4222, nats://b:4222", "tls://u:p@host:4443", "ws://h:80,wss://h:443"} {
		if err := CheckServers(ok); err != nil {
			t.Errorf("CheckServers(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"http://h:4222", "nats://:4222", "nats://h:0", "nats://h:70000", "nats://h:port", ",", "nats://h:1,ws://h:2", "nats://user:hunter2@h:99999"} {
		err := CheckServers(bad)
		if err == nil {
			t.Errorf("CheckServers(%q) accepted", bad)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("CheckServers(%q) shows the password: %v", bad, err)
		}
	}
}
