// Package builtin declares the tasks that ship with cmd/worker and that
// cmd/submit submits by kind: square, say-hi, sleep, download and copy.
package builtin

import (
	"context"
	"net/http"
	"os"
	"time"

	"github.com/jetpool/jetpool/task"
)

// The built-in tasks. Their kinds are stable; inputs and outputs are plain
// msgpack/JSON values so the untyped CLI path can use them.
var (
	// Square returns n*n.
	Square = task.New[int, int]("square")
	// SayHi greets a name and says which host, process and worker did it.
	SayHi = task.New[string, Greeting]("say-hi")
	// Sleep sleeps ms milliseconds, or until its context ends, and returns ms.
	Sleep = task.New[int, int]("sleep")
	// Download fetches a URL into a directory. The directory, Dest, is
	// created with its parents if missing (an error of type not_directory
	// if something else is there); the file is never put in place over
	// another: one of that name with the same bytes counts as the download
	// done, one with other bytes is an error of type exists. The result
	// comes once the file is synced to disk with the reported SHA-256.
	Download = task.New[DownloadArgs, FileResult]("download")
	// Copy copies a regular file into a directory under the file's name,
	// as Download writes: Dest is created if missing, and no other file is
	// replaced.
	Copy = task.New[CopyArgs, FileResult]("copy")
)

// Config configures the built-in handlers. The zero value works.
type Config struct {
	// AllowedRoot, if set, confines download destinations and copy sources
	// and destinations to this directory tree.
	AllowedRoot string
	// MaxDownloadBytes caps a download; default 1 GiB.
	MaxDownloadBytes int64
	// HTTPClient fetches downloads; default a client with a 10-minute timeout.
	HTTPClient *http.Client
}

// Kinds maps each built-in kind to a one-line description, for help texts.
func Kinds() map[string]string {
	return map[string]string{
		Square.Kind():   "N -> N*N",
		SayHi.Kind():    `"name" -> {"text", "host", "pid", "worker"}`,
		Sleep.Kind():    "MS -> MS after sleeping MS milliseconds",
		Download.Kind(): `{"url", "dest", "name"?} -> {"path", "bytes", "sha256", "ms"}`,
		Copy.Kind():     `{"src", "dest"} -> {"path", "bytes", "sha256", "ms"}`,
	}
}

// Register adds every built-in handler to reg.
func Register(reg *task.Registry, cfg Config) {
	if cfg.MaxDownloadBytes <= 0 {
		cfg.MaxDownloadBytes = 1 << 30
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Minute}
	}
	task.Handle(reg, Square, func(ctx context.Context, n int) (int, error) { return n * n, nil })
	task.Handle(reg, SayHi, sayHi)
	task.Handle(reg, Sleep, sleep)
	task.Handle(reg, Download, func(ctx context.Context, a DownloadArgs) (FileResult, error) { return download(ctx, cfg, a) })
	task.Handle(reg, Copy, func(ctx context.Context, a CopyArgs) (FileResult, error) { return copyFile(ctx, cfg, a) })
}

// Greeting is say-hi's result.
type Greeting struct {
	Text   string `msgpack:"text" json:"text"`
	Host   string `msgpack:"host" json:"host"`
	PID    int    `msgpack:"pid" json:"pid"`
	Worker string `msgpack:"worker" json:"worker"`
}

func sayHi(ctx context.Context, name string) (Greeting, error) {
	host, _ := os.Hostname()
	return Greeting{Text: "hi " + name, Host: host, PID: os.Getpid(), Worker: task.WorkerID(ctx)}, nil
}

func sleep(ctx context.Context, ms int) (int, error) {
	if ms < 0 {
		return 0, kindError{task.TypeBadInput, "sleep: negative duration"}
	}
	t := time.NewTimer(time.Duration(ms) * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		return ms, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// Error types of the built-in tasks' failures, the Type of the task.Error a
// producer gets. Arguments a task refuses (a negative sleep, a URL that is
// not http(s), a path that names no file) fail with task.TypeBadInput.
const (
	// TypeNetwork marks a download whose server could not be reached or
	// broke off; retryable when the network failed.
	TypeNetwork = "network"
	// TypeHTTPStatus marks a download answered with a status other than
	// 2xx; retryable for 5xx and 429.
	TypeHTTPStatus = "http_status"
	// TypeTooLarge marks a download above Config.MaxDownloadBytes.
	TypeTooLarge = "too_large"
	// TypeNotFound marks a copy whose source does not exist.
	TypeNotFound = "not_found"
	// TypeNotRegular marks a copy whose source is a directory or another
	// file that is not a regular one.
	TypeNotRegular = "not_regular"
	// TypeNotDirectory marks a destination that exists and is no directory.
	TypeNotDirectory = "not_directory"
	// TypeExists marks a destination file of the same name with other
	// contents, which is never replaced.
	TypeExists = "exists"
	// TypeForbiddenPath marks a path outside Config.AllowedRoot.
	TypeForbiddenPath = "forbidden_path"
	// TypeIO marks a file system failure.
	TypeIO = "io"
)

// kindError is an error that names its type for task.Error.
type kindError struct{ typ, msg string }

func (e kindError) Error() string     { return e.msg }
func (e kindError) ErrorType() string { return e.typ }
