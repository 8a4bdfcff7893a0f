package builtin_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
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
