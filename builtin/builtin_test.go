package builtin_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/jetpool/jetpool/builtin"
	"github.com/jetpool/jetpool/task"
)

// call runs kind's handler in reg with in.
func call(t *testing.T, reg *task.Registry, kind string, in any) (any, error) {
	t.Helper()
	h, ok := reg.Lookup(kind)
	if !ok {
		t.Fatalf("%s not registered", kind)
	}
	return h.Call(task.WithWorker(context.Background(), "w-test"), in)
}

func registry(cfg builtin.Config) *task.Registry {
	reg := task.NewRegistry()
	builtin.Register(reg, cfg)
	return reg
}

func errType(err error) string {
	var te *task.Error
	if errors.As(err, &te) {
		return te.Type
	}
	return ""
}

func TestKindsAreRegistered(t *testing.T) {
	reg := registry(builtin.Config{})
	for kind := range builtin.Kinds() {
		if _, ok := reg.Lookup(kind); !ok {
			t.Errorf("%s listed but not registered", kind)
		}
	}
	if len(reg.Kinds()) != len(builtin.Kinds()) {
		t.Errorf("registered %v, listed %v", reg.Kinds(), builtin.Kinds())
	}
}

func TestSquareSayHiSleep(t *testing.T) {
	reg := registry(builtin.Config{})
	if v, err := call(t, reg, "square", 12); err != nil || v != 144 {
		t.Fatalf("square(12) = %v, %v", v, err)
	}
	v, err := call(t, reg, "say-hi", "ada")
	g, ok := v.(builtin.Greeting)
	if err != nil || !ok || g.Text != "hi ada" || g.PID != os.Getpid() || g.Worker != "w-test" || g.Host == "" {
		t.Fatalf("say-hi = %+v, %v", v, err)
	}
	start := time.Now()
	if v, err := call(t, reg, "sleep", 30); err != nil || v != 30 || time.Since(start) < 30*time.Millisecond {
		t.Fatalf("sleep(30) = %v, %v after %v", v, err, time.Since(start))
	}
	if _, err := call(t, reg, "sleep", -1); errType(err) != "bad_input" {
		t.Fatalf("sleep(-1): %v", err)
	}
	h, _ := reg.Lookup("sleep")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	start = time.Now()
	if _, err := h.Call(ctx, 60_000); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Fatalf("sleep past its deadline: %v after %v", err, time.Since(start))
	}
}

func TestDownload(t *testing.T) {
	body := bytes.Repeat([]byte("jetpool "), 4096)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/data.bin":
			w.Write(body)
		default:
			http.NotFound(w, r)
		}
	}))
	defer web.Close()
	dir := t.TempDir()
	reg := registry(builtin.Config{MaxDownloadBytes: 1 << 20})

	v, err := call(t, reg, "download", builtin.DownloadArgs{URL: web.URL + "/data.bin", Dest: dir})
	res, ok := v.(builtin.FileResult)
	sum := sha256.Sum256(body)
	if err != nil || !ok || res.Bytes != int64(len(body)) || res.SHA256 != hex.EncodeToString(sum[:]) || res.Path != filepath.Join(dir, "data.bin") {
		t.Fatalf("download = %+v, %v", v, err)
	}
	if got, err := os.ReadFile(res.Path); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("downloaded file: %d bytes, %v", len(got), err)
	}
	if v, err := call(t, reg, "download", builtin.DownloadArgs{URL: web.URL + "/data.bin", Dest: dir, Name: "renamed"}); err != nil || v.(builtin.FileResult).Path != filepath.Join(dir, "renamed") {
		t.Fatalf("download with a name: %+v, %v", v, err)
	}

	for name, c := range map[string]struct {
		args builtin.DownloadArgs
		typ  string
	}{
		"404":                {builtin.DownloadArgs{URL: web.URL + "/missing", Dest: dir}, "http_status"},
		"not http":           {builtin.DownloadArgs{URL: "file:///etc/passwd", Dest: dir}, "bad_input"},
		"name with a slash":  {builtin.DownloadArgs{URL: web.URL + "/data.bin", Dest: dir, Name: "../x"}, "bad_input"},
		"empty destination":  {builtin.DownloadArgs{URL: web.URL + "/data.bin"}, "bad_input"},
		"connection refused": {builtin.DownloadArgs{URL: "http://127.0.0.1:1/x", Dest: dir}, "network"},
	} {
		if _, err := call(t, reg, "download", c.args); errType(err) != c.typ {
			t.Errorf("%s: %v, want type %s", name, err, c.typ)
		}
	}
	small := registry(builtin.Config{MaxDownloadBytes: 1000})
	if _, err := call(t, small, "download", builtin.DownloadArgs{URL: web.URL + "/data.bin", Dest: t.TempDir()}); errType(err) != "too_large" {
		t.Fatalf("over the size limit: %v", err)
	}
}

func TestCopy(t *testing.T) {
	root := t.TempDir()
	src := filepath.Join(root, "in", "a.txt")
	os.MkdirAll(filepath.Dir(src), 0o755)
	if err := os.WriteFile(src, []byte("copy me"), 0o640); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(root, "out")
	os.MkdirAll(out, 0o755)
	reg := registry(builtin.Config{AllowedRoot: root})

	v, err := call(t, reg, "copy", builtin.CopyArgs{Src: src, Dest: out})
	res, ok := v.(builtin.FileResult)
	if err != nil || !ok || res.Bytes != 7 || res.Path != filepath.Join(out, "a.txt") {
		t.Fatalf("copy = %+v, %v", v, err)
	}
	if got, _ := os.ReadFile(res.Path); string(got) != "copy me" {
		t.Fatalf("copied %q", got)
	}
	if _, err := call(t, reg, "copy", builtin.CopyArgs{Src: filepath.Join(root, "in", "nope"), Dest: out}); errType(err) != "not_found" {
		t.Fatalf("missing source: %v", err)
	}
	if _, err := call(t, reg, "copy", builtin.CopyArgs{Src: filepath.Join(root, "in"), Dest: out}); errType(err) != "not_regular" {
		t.Fatalf("a directory as source: %v", err)
	}
	outside := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(outside, []byte("x"), 0o600)
	for name, args := range map[string]builtin.CopyArgs{
		"source outside the root":      {Src: outside, Dest: out},
		"destination outside the root": {Src: src, Dest: filepath.Dir(outside)},
		"escape with ..":               {Src: filepath.Join(root, "in", "..", "..", filepath.Base(filepath.Dir(outside)), "secret"), Dest: out},
	} {
		if _, err := call(t, reg, "copy", args); errType(err) != "forbidden_path" {
			t.Errorf("%s: %v, want forbidden_path", name, err)
		}
	}
	if strings.Contains(outside, root) {
		t.Fatal("test setup: outside is inside the root")
	}
}

// wait returns what done delivers, failing the test if nothing comes within
// a few seconds.
func wait[T any](t *testing.T, done <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-done:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: nothing after 5s", what)
		panic("unreachable")
	}
}

// TestSleepEndsWhenCancelled: cancelling the context ends a long sleep at
// once, as an interruption that still matches context.Canceled.
func TestSleepEndsWhenCancelled(t *testing.T) {
	h, _ := registry(builtin.Config{}).Lookup("sleep")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := h.Call(ctx, 60_000)
		done <- err
	}()
	cancel()
	err := wait(t, done, "sleep(60s) after its context was cancelled")
	if !errors.Is(err, context.Canceled) || errType(err) != task.TypeInterrupted {
		t.Fatalf("sleep cancelled: %v (type %q), want %s matching context.Canceled", err, errType(err), task.TypeInterrupted)
	}
}

// TestCallRaw: the untyped path the CLI and the worker use, msgpack in and
// out.
func TestCallRaw(t *testing.T) {
	reg := registry(builtin.Config{})
	raw := func(v any) []byte {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := []struct {
		kind string
		in   []byte
		want any // decoded output; nil: want bad_input
	}{
		{"square", raw(9), int64(81)},
		{"square", raw(-3), int64(9)},
		{"sleep", raw(0), int64(0)},
		{"say-hi", raw("bob"), "hi bob"},
		{"square", raw("nine"), nil},
		{"square", raw(map[string]int{"n": 1}), nil},
		{"sleep", raw(-5), nil},
		{"say-hi", raw(42), nil},
		{"copy", raw([]int{1, 2}), nil},
		{"square", []byte{0xc1}, nil},
		{"square", []byte{0xdd, 0xff, 0xff, 0xff, 0xff}, nil},
		{"square", nil, nil},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s % x", c.kind, c.in), func(t *testing.T) {
			h, _ := reg.Lookup(c.kind)
			out, err := h.CallRaw(task.WithWorker(t.Context(), "w-raw"), c.in)
			if c.want == nil {
				if errType(err) != task.TypeBadInput {
					t.Fatalf("CallRaw: %x, %v, want %s", out, err, task.TypeBadInput)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got any
			if err := msgpack.Unmarshal(out, &got); err != nil {
				t.Fatal(err)
			}
			if m, ok := got.(map[string]any); ok {
				if m["worker"] != "w-raw" {
					t.Errorf("say-hi names worker %v", m["worker"])
				}
				got = m["text"]
			}
			if n, ok := got.(int8); ok {
				got = int64(n)
			}
			if got != c.want {
				t.Fatalf("CallRaw = %#v, want %#v", got, c.want)
			}
		})
	}
}

// TestDownloadRaw: a download asked for as the CLI asks, a msgpack map, and
// its result read back the same way.
func TestDownloadRaw(t *testing.T) {
	body := []byte("hello from the loopback server\n")
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	defer web.Close()
	dir := t.TempDir()
	h, _ := registry(builtin.Config{AllowedRoot: dir}).Lookup("download")
	in, err := msgpack.Marshal(map[string]string{"url": web.URL + "/files/hello.txt", "dest": dir})
	if err != nil {
		t.Fatal(err)
	}
	out, err := h.CallRaw(t.Context(), in)
	if err != nil {
		t.Fatal(err)
	}
	var res builtin.FileResult
	if err := msgpack.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	if res.Path != filepath.Join(dir, "hello.txt") || res.Bytes != int64(len(body)) {
		t.Fatalf("download = %+v", res)
	}
	if got, err := os.ReadFile(res.Path); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("downloaded %q, %v", got, err)
	}
}

// TestDownloadStatusErrors: a status other than 2xx fails with an error that
// gives the URL and the status; server trouble is worth retrying, a missing
// file is not. Nothing is left in the destination.
func TestDownloadStatusErrors(t *testing.T) {
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/"))
		http.Error(w, "no", code)
	}))
	defer web.Close()
	reg := registry(builtin.Config{})
	cases := []struct {
		code      int
		retryable bool
	}{
		{http.StatusNotFound, false},
		{http.StatusForbidden, false},
		{http.StatusGone, false},
		{http.StatusTooManyRequests, true},
		{http.StatusInternalServerError, true},
		{http.StatusServiceUnavailable, true},
	}
	for _, c := range cases {
		t.Run(strconv.Itoa(c.code), func(t *testing.T) {
			dir := t.TempDir()
			url := fmt.Sprintf("%s/%d", web.URL, c.code)
			_, err := call(t, reg, "download", builtin.DownloadArgs{URL: url, Dest: dir, Name: "f"})
			if errType(err) != "http_status" || task.IsRetryable(err) != c.retryable {
				t.Fatalf("download: %v (type %q, retryable %v)", err, errType(err), task.IsRetryable(err))
			}
			if msg := err.Error(); !strings.Contains(msg, url) || !strings.Contains(msg, strconv.Itoa(c.code)) {
				t.Fatalf("error %q does not give the URL and the status", msg)
			}
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Fatalf("left %d files in the destination", len(left))
			}
		})
	}
}

// TestDownloadLimit: MaxDownloadBytes holds whether or not the server
// declares a length, and a refused download leaves no file behind.
func TestDownloadLimit(t *testing.T) {
	const limit = 1000
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		if r.URL.Query().Get("stream") == "" {
			w.Header().Set("Content-Length", strconv.Itoa(n))
		}
		for range n / 100 {
			w.Write(bytes.Repeat([]byte{'x'}, 100))
			w.(http.Flusher).Flush() // a chunked body, its length unknown up front
		}
	}))
	defer web.Close()
	reg := registry(builtin.Config{MaxDownloadBytes: limit})
	cases := []struct {
		name string
		n    int
		ok   bool
	}{
		{"declared, at the limit", limit, true},
		{"declared, over the limit", limit + 100, false},
		{"streamed, at the limit", limit, true},
		{"streamed, over the limit", limit + 100, false},
		{"streamed, far over the limit", 100 * limit, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			url := fmt.Sprintf("%s/f?n=%d", web.URL, c.n)
			if strings.HasPrefix(c.name, "streamed") {
				url += "&stream=1"
			}
			v, err := call(t, reg, "download", builtin.DownloadArgs{URL: url, Dest: dir})
			left, _ := os.ReadDir(dir)
			if c.ok {
				if err != nil || v.(builtin.FileResult).Bytes != int64(c.n) || len(left) != 1 {
					t.Fatalf("download of %d bytes: %+v, %v, %d files", c.n, v, err, len(left))
				}
				return
			}
			if errType(err) != "too_large" || !strings.Contains(err.Error(), strconv.Itoa(limit)) {
				t.Fatalf("download of %d bytes: %v, want too_large naming the limit", c.n, err)
			}
			if len(left) != 0 {
				t.Fatalf("a refused download left %v", left[0].Name())
			}
		})
	}
}

// TestCopyKeepsPermissions: the copy has the source's permissions, and a
// missing or absent source is an error that names it.
func TestCopyKeepsPermissions(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.txt")
	if err := os.WriteFile(src, []byte("payload"), 0o600); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(dir, "out")
	v, err := call(t, registry(builtin.Config{}), "copy", builtin.CopyArgs{Src: src, Dest: dest})
	if res, ok := v.(builtin.FileResult); err != nil || !ok || res.Path != filepath.Join(dest, "src.txt") {
		t.Fatalf("copy = %+v, %v", v, err)
	}
	onDisk(t, v)
	st, err := os.Stat(filepath.Join(dest, "src.txt"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("copied file: %v, %v", st, err)
	}
	never := filepath.Join(dir, "never")
	if _, err := call(t, registry(builtin.Config{}), "copy", builtin.CopyArgs{Src: filepath.Join(dir, "nope.txt"), Dest: never}); errType(err) != "not_found" || !strings.Contains(err.Error(), "nope.txt") {
		t.Fatalf("missing source: %v, want not_found naming the file", err)
	}
	if _, err := call(t, registry(builtin.Config{}), "copy", builtin.CopyArgs{Src: dir, Dest: never}); errType(err) != "not_regular" || !strings.Contains(err.Error(), dir) {
		t.Fatalf("a directory as source: %v, want not_regular naming it", err)
	}
	if _, err := os.Stat(never); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a failed copy created its destination: %v", err)
	}
	if _, err := call(t, registry(builtin.Config{}), "copy", builtin.CopyArgs{Dest: dest}); errType(err) != task.TypeBadInput {
		t.Fatalf("no source: %v, want %s", err, task.TypeBadInput)
	}
}

// onDisk fails the test unless v is a FileResult whose file holds exactly
// the reported number of bytes with the reported digest, and returns them.
func onDisk(t *testing.T, v any) []byte {
	t.Helper()
	res, ok := v.(builtin.FileResult)
	if !ok {
		t.Fatalf("result %#v is not a FileResult", v)
	}
	b, err := os.ReadFile(res.Path)
	if err != nil {
		t.Fatalf("reported %s: %v", res.Path, err)
	}
	sum := sha256.Sum256(b)
	if int64(len(b)) != res.Bytes || hex.EncodeToString(sum[:]) != res.SHA256 {
		t.Fatalf("%s holds %d bytes with digest %x, reported %d bytes with %s", res.Path, len(b), sum, res.Bytes, res.SHA256)
	}
	return b
}

// entries lists the names in dir, temporary files included.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

// TestDestinationIsADirectory: for both download and copy, Dest is a
// directory, created with its parents when missing (inside AllowedRoot
// only), and an error when something else is there.
func TestDestinationIsADirectory(t *testing.T) {
	root := t.TempDir()
	src := filepath.Join(root, "in", "a.txt")
	if err := os.MkdirAll(filepath.Dir(src), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src, []byte("copy me"), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(root, "file")
	if err := os.WriteFile(file, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("fetched")) }))
	defer web.Close()
	outside := filepath.Join(t.TempDir(), "new")
	reg := registry(builtin.Config{AllowedRoot: root})
	cases := []struct {
		name string
		kind string
		args any
		path string // the file written; "": want an error of type typ
		typ  string
	}{
		{"copy into a missing directory", "copy", builtin.CopyArgs{Src: src, Dest: filepath.Join(root, "c", "d")}, filepath.Join(root, "c", "d", "a.txt"), ""},
		{"download into a missing directory", "download", builtin.DownloadArgs{URL: web.URL + "/b.txt", Dest: filepath.Join(root, "e", "f")}, filepath.Join(root, "e", "f", "b.txt"), ""},
		{"copy into an existing directory", "copy", builtin.CopyArgs{Src: src, Dest: filepath.Join(root, "c")}, filepath.Join(root, "c", "a.txt"), ""},
		{"copy into a file", "copy", builtin.CopyArgs{Src: src, Dest: file}, "", "not_directory"},
		{"download into a file", "download", builtin.DownloadArgs{URL: web.URL + "/b.txt", Dest: file}, "", "not_directory"},
		{"copy under a file", "copy", builtin.CopyArgs{Src: src, Dest: filepath.Join(file, "sub")}, "", "not_directory"},
		{"download under a file", "download", builtin.DownloadArgs{URL: web.URL + "/b.txt", Dest: filepath.Join(file, "sub")}, "", "not_directory"},
		{"copy into a missing directory outside the root", "copy", builtin.CopyArgs{Src: src, Dest: outside}, "", "forbidden_path"},
		{"download into a missing directory outside the root", "download", builtin.DownloadArgs{URL: web.URL + "/b.txt", Dest: outside}, "", "forbidden_path"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, err := call(t, reg, c.kind, c.args)
			if c.path == "" {
				if errType(err) != c.typ {
					t.Fatalf("%s = %+v, %v, want type %s", c.kind, v, err, c.typ)
				}
				return
			}
			if err != nil || v.(builtin.FileResult).Path != c.path {
				t.Fatalf("%s = %+v, %v, want %s", c.kind, v, err, c.path)
			}
			onDisk(t, v)
		})
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep" {
		t.Fatalf("the file given as a destination now holds %q, %v", b, err)
	}
	if _, err := os.Stat(outside); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a destination outside the root was created: %v", err)
	}
}

// TestNoFileIsReplaced: a file already in Dest is never replaced by other
// bytes, and writing the same bytes again (a re-run, a redelivered task,
// a file copied onto itself) succeeds. Nothing temporary is left behind.
func TestNoFileIsReplaced(t *testing.T) {
	root := t.TempDir()
	out := filepath.Join(root, "out")
	for dir, body := range map[string]string{"x1": "first", "x2": "second"} {
		if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, dir, "f"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(r.URL.Query().Get("body"))) }))
	defer web.Close()
	reg := registry(builtin.Config{AllowedRoot: root})
	cases := []struct {
		name string
		kind string
		args any
		ok   bool // else want type exists
	}{
		{"the first copy", "copy", builtin.CopyArgs{Src: filepath.Join(root, "x1", "f"), Dest: out}, true},
		{"another file of that name", "copy", builtin.CopyArgs{Src: filepath.Join(root, "x2", "f"), Dest: out}, false},
		{"the same file again", "copy", builtin.CopyArgs{Src: filepath.Join(root, "x1", "f"), Dest: out}, true},
		{"the file onto itself", "copy", builtin.CopyArgs{Src: filepath.Join(out, "f"), Dest: out}, true},
		{"a download of other bytes", "download", builtin.DownloadArgs{URL: web.URL + "/f?body=third", Dest: out}, false},
		{"a download of the same bytes", "download", builtin.DownloadArgs{URL: web.URL + "/f?body=first", Dest: out}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, err := call(t, reg, c.kind, c.args)
			if !c.ok {
				if errType(err) != "exists" || !strings.Contains(err.Error(), filepath.Join(out, "f")) {
					t.Fatalf("%s = %+v, %v, want type exists naming the file", c.kind, v, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("%s: %v", c.kind, err)
			}
			if b := onDisk(t, v); string(b) != "first" {
				t.Fatalf("reported %q", b)
			}
		})
	}
	if b, _ := os.ReadFile(filepath.Join(out, "f")); string(b) != "first" {
		t.Fatalf("out/f = %q, want the first copy's", b)
	}
	if names := entries(t, out); len(names) != 1 {
		t.Fatalf("out holds %v, want only f", names)
	}
}

// TestConcurrentCopiesOfOneName: copies of different files with one name
// into one directory, all at once: exactly one is reported, it is the one
// on disk, and every other fails with type exists.
func TestConcurrentCopiesOfOneName(t *testing.T) {
	const n = 8
	root := t.TempDir()
	out := filepath.Join(root, "out")
	h, _ := registry(builtin.Config{AllowedRoot: root}).Lookup("copy")
	type outcome struct {
		v   any
		err error
	}
	start, results := make(chan struct{}), make(chan outcome, n)
	for i := range n {
		src := filepath.Join(root, strconv.Itoa(i), "same.txt")
		if err := os.MkdirAll(filepath.Dir(src), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(src, bytes.Repeat([]byte{byte('a' + i)}, 64<<10), 0o644); err != nil {
			t.Fatal(err)
		}
		go func() {
			<-start
			v, err := h.Call(t.Context(), builtin.CopyArgs{Src: src, Dest: out})
			results <- outcome{v, err}
		}()
	}
	close(start)
	var won []any
	for range n {
		r := wait(t, results, "a concurrent copy")
		switch {
		case r.err == nil:
			won = append(won, r.v)
		case errType(r.err) != "exists":
			t.Errorf("copy: %v, want success or type exists", r.err)
		}
	}
	if len(won) != 1 {
		t.Fatalf("%d copies reported, want exactly 1: %+v", len(won), won)
	}
	onDisk(t, won[0])
	if names := entries(t, out); len(names) != 1 {
		t.Fatalf("out holds %v, want only same.txt", names)
	}
}

// TestConfinementFollowsSymlinks: a link inside AllowedRoot that points
// outside it does not let copy or download read or write outside.
func TestConfinementFollowsSymlinks(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{"file-link": secret, "dir-link": outside} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	inside := filepath.Join(root, "inside.txt")
	if err := os.WriteFile(inside, []byte("fine"), 0o600); err != nil {
		t.Fatal(err)
	}
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("x")) }))
	defer web.Close()
	reg := registry(builtin.Config{AllowedRoot: root})
	cases := []struct {
		name string
		kind string
		args any
	}{
		{"copy from a link to an outside file", "copy", builtin.CopyArgs{Src: filepath.Join(root, "file-link"), Dest: filepath.Join(root, "stolen")}},
		{"copy from under a link to an outside directory", "copy", builtin.CopyArgs{Src: filepath.Join(root, "dir-link", "secret"), Dest: filepath.Join(root, "stolen")}},
		{"copy into a link to an outside directory", "copy", builtin.CopyArgs{Src: inside, Dest: filepath.Join(root, "dir-link")}},
		{"copy into a new directory under a link", "copy", builtin.CopyArgs{Src: inside, Dest: filepath.Join(root, "dir-link", "planted")}},
		{"download into a new directory under a link", "download", builtin.DownloadArgs{URL: web.URL + "/planted", Dest: filepath.Join(root, "dir-link", "new")}},
		{"download into a link to an outside directory", "download", builtin.DownloadArgs{URL: web.URL + "/planted", Dest: filepath.Join(root, "dir-link")}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if v, err := call(t, reg, c.kind, c.args); errType(err) != "forbidden_path" {
				t.Fatalf("%s: %+v, %v, want forbidden_path", c.kind, v, err)
			}
		})
	}
	if names, _ := os.ReadDir(outside); len(names) != 1 {
		t.Fatalf("%d files outside the root, want only the secret", len(names))
	}
	if _, err := os.Stat(filepath.Join(root, "stolen")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the secret was copied in: %v", err)
	}
	// A link that stays inside the root is followed.
	if err := os.Symlink(inside, filepath.Join(root, "inner-link")); err != nil {
		t.Fatal(err)
	}
	if v, err := call(t, reg, "copy", builtin.CopyArgs{Src: filepath.Join(root, "inner-link"), Dest: filepath.Join(root, "copied")}); err != nil || v.(builtin.FileResult).Bytes != 4 {
		t.Fatalf("copy through a link inside the root: %+v, %v", v, err)
	}
}
