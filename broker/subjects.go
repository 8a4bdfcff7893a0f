package broker

import (
	"fmt"
	"strings"

	"github.com/jetpool/jetpool/task"
)

// DefaultPrefix is the first token of every subject the pool uses.
const DefaultPrefix = "jetpool"

// DefaultPool is the pool name used when none is given.
const DefaultPool = "default"

// Subjects names every subject and JetStream object of one pool. All names
// are derived here and nowhere else. Create it with [NewSubjects].
type Subjects struct {
	prefix, pool string
}

// NewSubjects validates prefix and pool (each a name as task.ValidateName
// has it: letters, digits, '-', '_') and returns the pool's names. An
// invalid name gives an error matching both ErrInvalidName and
// task.ErrInvalidName.
func NewSubjects(prefix, pool string) (Subjects, error) {
	if err := task.ValidateName(prefix); err != nil {
		return Subjects{}, fmt.Errorf("%w: prefix: %w", ErrInvalidName, err)
	}
	if err := task.ValidateName(pool); err != nil {
		return Subjects{}, fmt.Errorf("%w: pool: %w", ErrInvalidName, err)
	}
	return Subjects{prefix: prefix, pool: pool}, nil
}

// Prefix returns the subject prefix.
func (s Subjects) Prefix() string { return s.prefix }

// Pool returns the pool name.
func (s Subjects) Pool() string { return s.pool }

// Stream is the JetStream stream holding the pool's chunks.
func (s Subjects) Stream() string {
	return strings.ToUpper(s.prefix + "_" + s.pool)
}

// AllTasks is the stream's subject filter: every kind's chunks. It takes
// one token after "tasks", a kind, so the stream stores only what some
// kind's consumer can read.
func (s Subjects) AllTasks() string { return s.prefix + "." + s.pool + ".tasks.*" }

// legacyAllTasks is the filter of streams made before AllTasks took one
// token; EnsureStream narrows such a stream to AllTasks.
func (s Subjects) legacyAllTasks() string { return s.prefix + "." + s.pool + ".tasks.>" }

// Tasks is the subject chunks of kind are published to.
func (s Subjects) Tasks(kind string) string { return s.prefix + "." + s.pool + ".tasks." + kind }

// TaskKind returns the kind whose chunks are published to subject, and false
// if subject is not one of the pool's task subjects.
func (s Subjects) TaskKind(subject string) (string, bool) {
	kind, ok := strings.CutPrefix(subject, s.prefix+"."+s.pool+".tasks.")
	if !ok || kind == "" || strings.Contains(kind, ".") {
		return "", false
	}
	return kind, true
}

// Consumer is the durable pull consumer shared by every worker of kind.
func (s Subjects) Consumer(kind string) string { return kind }

// Control is a producer's control subject; workers send Start requests to
// Control+".start", results to Control+".result" and lease renewals to
// Control+".lease".
func (s Subjects) Control(executorID string) string {
	return s.prefix + "." + s.pool + ".ctl." + executorID
}

// WorkerInbox is where a worker takes interrupts for the tasks it runs.
func (s Subjects) WorkerInbox(workerID string) string {
	return s.prefix + "." + s.pool + ".worker." + workerID
}

// Cancel is where operators ask the pool's producers to cancel their pending
// work (a [CancelRequest]); every producer answers with a [CancelReply].
func (s Subjects) Cancel() string { return s.prefix + "." + s.pool + ".cancel" }

// MaxDeliveriesAdvisory is the JetStream advisory subject published when a
// chunk of any kind of the pool reaches MaxDeliver.
func (s Subjects) MaxDeliveriesAdvisory() string {
	return "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + s.Stream() + ".*"
}

// Control subject suffixes.
const (
	StartSuffix  = ".start"
	ResultSuffix = ".result"
	LeaseSuffix  = ".lease"
)
