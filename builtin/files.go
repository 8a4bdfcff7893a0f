package builtin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/jetpool/jetpool/task"
)

// DownloadArgs is download's input.
type DownloadArgs struct {
	URL  string `msgpack:"url" json:"url"`
	Dest string `msgpack:"dest" json:"dest"`           // directory
	Name string `msgpack:"name,omitempty" json:"name"` // file name; default the URL path's last element
}

// CopyArgs is copy's input.
type CopyArgs struct {
	Src  string `msgpack:"src" json:"src"`
	Dest string `msgpack:"dest" json:"dest"` // a directory, or the target path
}

// FileResult describes a file written by download or copy.
type FileResult struct {
	Path   string `msgpack:"path" json:"path"`
	Bytes  int64  `msgpack:"bytes" json:"bytes"`
	SHA256 string `msgpack:"sha256" json:"sha256"`
	Ms     int64  `msgpack:"ms" json:"ms"`
}

func download(ctx context.Context, cfg Config, a DownloadArgs) (FileResult, error) {
	start := time.Now()
	u, err := url.Parse(a.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return FileResult{}, kindError{"bad_input", fmt.Sprintf("download: %q is not an http(s) URL", a.URL)}
	}
	name := a.Name
	if name == "" {
		name = path.Base(u.Path)
	}
	if name == "" || name == "." || name == "/" || name == ".." || strings.ContainsAny(name, `/\`) {
		return FileResult{}, kindError{"bad_input", fmt.Sprintf("download: cannot name a file %q", name)}
	}
	dir, err := allowed(cfg, a.Dest)
	if err != nil {
		return FileResult{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.URL, nil)
	if err != nil {
		return FileResult{}, kindError{"bad_input", "download: " + err.Error()}
	}
	resp, err := cfg.HTTPClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return FileResult{}, ctx.Err()
		}
		var ne net.Error
		if errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) {
			return FileResult{}, task.Retryable(kindError{"network", "download: " + err.Error()})
		}
		return FileResult{}, kindError{"network", "download: " + err.Error()}
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		err := kindError{"http_status", fmt.Sprintf("GET %s: %s", a.URL, resp.Status)}
		if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
			return FileResult{}, task.Retryable(err)
		}
		return FileResult{}, err
	}
	if resp.ContentLength > cfg.MaxDownloadBytes {
		return FileResult{}, kindError{"too_large", fmt.Sprintf("download: %s is %d bytes, the limit is %d", a.URL, resp.ContentLength, cfg.MaxDownloadBytes)}
	}
	res, err := writeAtomically(filepath.Join(dir, name), io.LimitReader(resp.Body, cfg.MaxDownloadBytes+1), 0o644, cfg.MaxDownloadBytes)
	if err != nil {
		if ctx.Err() != nil {
			return FileResult{}, ctx.Err()
		}
		return FileResult{}, err
	}
	res.Ms = time.Since(start).Milliseconds()
	return res, nil
}

func copyFile(ctx context.Context, cfg Config, a CopyArgs) (FileResult, error) {
	start := time.Now()
	src, err := allowed(cfg, a.Src)
	if err != nil {
		return FileResult{}, err
	}
	dest, err := allowed(cfg, a.Dest)
	if err != nil {
		return FileResult{}, err
	}
	st, err := os.Stat(src)
	if errors.Is(err, fs.ErrNotExist) {
		return FileResult{}, kindError{"not_found", "copy: " + err.Error()}
	}
	if err != nil {
		return FileResult{}, kindError{"io", "copy: " + err.Error()}
	}
	if !st.Mode().IsRegular() {
		return FileResult{}, kindError{"not_regular", fmt.Sprintf("copy: %s is not a regular file", a.Src)}
	}
	if dst, err := os.Stat(dest); err == nil && dst.IsDir() {
		dest = filepath.Join(dest, filepath.Base(src))
	}
	f, err := os.Open(src)
	if err != nil {
		return FileResult{}, kindError{"io", "copy: " + err.Error()}
	}
	defer f.Close()
	res, err := writeAtomically(dest, ctxReader{ctx, f}, st.Mode().Perm(), -1)
	if err != nil {
		if ctx.Err() != nil {
			return FileResult{}, ctx.Err()
		}
		return FileResult{}, err
	}
	res.Ms = time.Since(start).Milliseconds()
	return res, nil
}

// allowed cleans p and checks it lies inside cfg.AllowedRoot, if set.
func allowed(cfg Config, p string) (string, error) {
	if p == "" {
		return "", kindError{"bad_input", "empty path"}
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", kindError{"bad_input", err.Error()}
	}
	if cfg.AllowedRoot == "" {
		return abs, nil
	}
	root, err := filepath.Abs(cfg.AllowedRoot)
	if err != nil {
		return "", kindError{"forbidden_path", err.Error()}
	}
	// Compared with links resolved, so a link inside the root cannot lead
	// outside it.
	if rel, err := filepath.Rel(resolve(root), resolve(abs)); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", kindError{"forbidden_path", fmt.Sprintf("%s is outside %s", p, cfg.AllowedRoot)}
	}
	return abs, nil
}

// resolve returns the absolute path p with the symlinks of its longest
// existing prefix followed; the rest, which does not exist yet, is kept.
func resolve(p string) string {
	rest := ""
	for {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Join(r, rest)
		}
		parent := filepath.Dir(p)
		if parent == p {
			return filepath.Join(p, rest)
		}
		rest = filepath.Join(filepath.Base(p), rest)
		p = parent
	}
}

// writeAtomically writes r to a temporary file beside dest and renames it
// into place, so a reader never sees a partial file. limit < 0: none.
func writeAtomically(dest string, r io.Reader, mode fs.FileMode, limit int64) (FileResult, error) {
	tmp, err := os.CreateTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".part-*")
	if err != nil {
		return FileResult{}, kindError{"io", err.Error()}
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), r)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return FileResult{}, kindError{"io", err.Error()}
	}
	if limit >= 0 && n > limit {
		return FileResult{}, kindError{"too_large", fmt.Sprintf("more than %d bytes", limit)}
	}
	if err := os.Chmod(tmp.Name(), mode); err != nil {
		return FileResult{}, kindError{"io", err.Error()}
	}
	if err := os.Rename(tmp.Name(), dest); err != nil {
		return FileResult{}, kindError{"io", err.Error()}
	}
	return FileResult{Path: dest, Bytes: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// ctxReader stops a copy when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
