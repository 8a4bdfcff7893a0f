package broker

import (
	"fmt"
	"strconv"
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

// Named jobs keep their state in two places (see broker/wire's job flow):
// the pool's jobs bucket, a JetStream key-value bucket every party of the
// pool reads and each party writes only its own keys of, and each owner's
// results stream, which only that owner reads. An owner is the name a
// producer runs under (executor.NATSName, by default DefaultOwner); an
// author is the name a worker writes under (worker.Config.User). Keys and
// subjects put the writer's name in a token of its own, so that a server
// can let each user write only its own (docs/security.conf).

// DefaultOwner owns the jobs of producers that run under no name of their
// own.
const DefaultOwner = "anon"

// JobsBucket is the pool's key-value bucket of job state.
func (s Subjects) JobsBucket() string { return s.Stream() + "_JOBS" }

// ValuesBucket is the name of the pool's object store of values too large
// for a message (see Values); its stream is "OBJ_" and that name.
func (s Subjects) ValuesBucket() string { return s.Stream() + "_VALUES" }

// JobsStream is the stream that holds JobsBucket.
func (s Subjects) JobsStream() string { return "KV_" + s.JobsBucket() }

// JobKey is the subject of key in JobsBucket.
func (s Subjects) JobKey(key string) string { return "$KV." + s.JobsBucket() + "." + key }

// JobKeyOf returns the key that subject, one of JobsBucket's, names, and
// false for any other subject.
func (s Subjects) JobKeyOf(subject string) (string, bool) {
	key, ok := strings.CutPrefix(subject, "$KV."+s.JobsBucket()+".")
	return key, ok && key != ""
}

// Job is the first two tokens of every key of the job name of owner:
// "<owner>.<name>".
func (s Subjects) Job(owner, name string) string { return owner + "." + name }

// ResultsStream is owner's stream of its jobs' results.
func (s Subjects) ResultsStream(owner string) string { return s.Stream() + "_RESULTS_" + owner }

// AllResults is the subject filter of ResultsStream(owner).
func (s Subjects) AllResults(owner string) string {
	return s.prefix + "." + s.pool + ".results." + owner + ".>"
}

// JobResults is the subject filter of one job's records in its owner's
// results stream.
func (s Subjects) JobResults(owner, name string) string {
	return s.prefix + "." + s.pool + ".results." + owner + "." + name + ".>"
}

// Results is where workers of author store the results of chunk ord of the
// job name of owner.
func (s Subjects) Results(owner, name string, ord uint64, author string) string {
	return s.prefix + "." + s.pool + ".results." + owner + "." + name + "." + strconv.FormatUint(ord, 10) + "." + author
}

// ResultsOf parses a subject of Results, returning its chunk and author;
// ok is false for any other subject of the job.
func (s Subjects) ResultsOf(owner, name, subject string) (ord uint64, author string, ok bool) {
	rest, ok := strings.CutPrefix(subject, s.prefix+"."+s.pool+".results."+owner+"."+name+".")
	if !ok {
		return 0, "", false
	}
	o, author, ok := strings.Cut(rest, ".")
	if !ok || author == "" || strings.Contains(author, ".") {
		return 0, "", false
	}
	ord, err := strconv.ParseUint(o, 10, 64)
	return ord, author, err == nil
}

// JobSecret is where the owner keeps the job's secret, in its results
// stream, which no worker may read and no worker may write: a subject one
// token shorter than any of Results.
func (s Subjects) JobSecret(owner, name string) string {
	return s.prefix + "." + s.pool + ".results." + owner + "." + name + ".secret"
}
