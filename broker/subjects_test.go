package broker

import (
	"errors"
	"strings"
	"testing"

	"github.com/jetpool/jetpool/task"
)

func TestSubjectNames(t *testing.T) {
	s, err := NewSubjects("jp", "batch-1")
	if err != nil {
		t.Fatal(err)
	}
	for got, want := range map[string]string{
		s.Stream():                "JP_BATCH-1",
		s.AllTasks():              "jp.batch-1.tasks.*",
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

func TestTaskKind(t *testing.T) {
	s, err := NewSubjects("jp", "batch-1")
	if err != nil {
		t.Fatal(err)
	}
	if kind, ok := s.TaskKind(s.Tasks("square")); !ok || kind != "square" {
		t.Errorf("TaskKind(Tasks(square)) = %q, %v", kind, ok)
	}
	for _, subject := range []string{"jp.batch-1.tasks.", "jp.batch-1.tasks.a.b", "jp.other.tasks.square", "jetpool.batch-1.tasks.square", "jp.batch-1.ctl.ex1", ""} {
		if kind, ok := s.TaskKind(subject); ok {
			t.Errorf("TaskKind(%q) = %q, true; want false", subject, kind)
		}
	}
}

func TestInvalidNames(t *testing.T) {
	for _, name := range []string{"", " ", "a b", "a.b", "a*", ">", "a>b", "tab\there", "nul\x00", "é", strings.Repeat("x", 65)} {
		if _, err := NewSubjects(name, "default"); !errors.Is(err, ErrInvalidName) || !errors.Is(err, task.ErrInvalidName) {
			t.Errorf("prefix %q: %v, want ErrInvalidName and task.ErrInvalidName", name, err)
		}
		if _, err := NewSubjects("jetpool", name); !errors.Is(err, ErrInvalidName) || !errors.Is(err, task.ErrInvalidName) {
			t.Errorf("pool %q: %v, want ErrInvalidName and task.ErrInvalidName", name, err)
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

func TestValidNames(t *testing.T) {
	for _, name := range []string{"a", "Z", "0", "default", "batch-1", "snake_case", "-", "_", strings.Repeat("p", 64)} {
		s, err := NewSubjects(name, name)
		if err != nil {
			t.Errorf("NewSubjects(%q, %q): %v", name, name, err)
			continue
		}
		if s.Prefix() != name || s.Pool() != name {
			t.Errorf("NewSubjects(%q, %q) keeps %q, %q", name, name, s.Prefix(), s.Pool())
		}
	}
}

// TestInvalidNameErrors: every name that is not one subject token of
// letters, digits, '-' and '_' is refused, and the error says which of the
// two names is wrong.
func TestInvalidNameErrors(t *testing.T) {
	cases := []struct{ name, bad string }{
		{"empty", ""},
		{"space", " "},
		{"inner space", "my pool"},
		{"dot", "."},
		{"two tokens", "a.b"},
		{"trailing dot", "pool."},
		{"star", "*"},
		{"star inside", "po*l"},
		{"greater-than", ">"},
		{"greater-than inside", "a>"},
		{"newline", "pool\n"},
		{"carriage return", "\rpool"},
		{"tab", "\t"},
		{"nul", "\x00"},
		{"delete", "pool\x7f"},
		{"escape", "\x1b[31m"},
		{"non-ASCII letter", "pööl"},
		{"invalid UTF-8", "\xff"},
		{"slash", "a/b"},
		{"dollar", "$JS"},
		{"65 characters", strings.Repeat("x", 65)},
		{"very long", strings.Repeat("x", 10_000)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := NewSubjects(c.bad, DefaultPool)
			if !errors.Is(err, ErrInvalidName) || !strings.Contains(err.Error(), "prefix") {
				t.Errorf("prefix %q: %v, want ErrInvalidName naming the prefix", c.bad, err)
			}
			_, err = NewSubjects(DefaultPrefix, c.bad)
			if !errors.Is(err, ErrInvalidName) || !strings.Contains(err.Error(), "pool") {
				t.Errorf("pool %q: %v, want ErrInvalidName naming the pool", c.bad, err)
			}
			if err != nil && len(err.Error()) > 200 {
				t.Errorf("pool %q: an error of %d bytes", c.bad, len(err.Error()))
			}
		})
	}
}

// TestSubjectsOfDistinctPoolsDoNotOverlap: two pools under one prefix never
// share a subject, so neither's workers see the other's chunks.
func TestSubjectsOfDistinctPoolsDoNotOverlap(t *testing.T) {
	a, _ := NewSubjects(DefaultPrefix, "a")
	b, _ := NewSubjects(DefaultPrefix, "b")
	if a.Tasks("k") == b.Tasks("k") || a.Control("e") == b.Control("e") || a.WorkerInbox("w") == b.WorkerInbox("w") ||
		a.Cancel() == b.Cancel() || a.Stream() == b.Stream() {
		t.Fatal("two pools share a name")
	}
	if !strings.HasPrefix(a.Tasks("k"), strings.TrimSuffix(a.AllTasks(), "*")) {
		t.Fatalf("%s is outside the stream's filter %s", a.Tasks("k"), a.AllTasks())
	}
	if got := a.Control("e") + StartSuffix; got != "jetpool.a.ctl.e.start" {
		t.Fatalf("start subject %q", got)
	}
	if a.Control("e")+ResultSuffix == a.Control("e")+LeaseSuffix {
		t.Fatal("results and leases share a subject")
	}
}
