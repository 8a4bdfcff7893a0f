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
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/jetpool/jetpool/task"
)

// DownloadArgs is download's input.
type DownloadArgs struct {
	URL  string `msgpack:"url" json:"url"`
	Dest string `msgpack:"dest" json:"dest"`           // a directory, created if missing
	Name string `msgpack:"name,omitempty" json:"name"` // file name; default the URL path's last element
}

// FileName returns the name of the file the download writes in Dest: Name,
// or else the last element of the URL's path; an error if that is no
// file name.
func (a DownloadArgs) FileName() (string, error) {
	name := a.Name
	if name == "" {
		u, err := url.Parse(a.URL)
		if err != nil {
			return "", kindError{task.TypeBadInput, fmt.Sprintf("download: %q is not a URL", a.URL)}
		}
		name = path.Base(u.Path)
	}
	if name == "" || name == "." || name == "/" || name == ".." || strings.ContainsAny(name, `/\`) {
		return "", kindError{task.TypeBadInput, fmt.Sprintf("download: cannot name a file %q", name)}
	}
	return name, nil
}

// CopyArgs is copy's input.
type CopyArgs struct {
	Src  string `msgpack:"src" json:"src"`
	Dest string `msgpack:"dest" json:"dest"` // a directory, created if missing
}

// FileName returns the name of the file the copy writes in Dest: the last
// element of Src; an error if Src names no file.
func (a CopyArgs) FileName() (string, error) {
	name := filepath.Base(filepath.Clean(a.Src))
	if a.Src == "" || name == "." || name == ".." || name == string(filepath.Separator) {
		return "", kindError{task.TypeBadInput, fmt.Sprintf("copy: %q names no file", a.Src)}
	}
	return name, nil
}

// FileResult describes a file written by download or copy.
type FileResult struct {
	Path   string `msgpack:"path" json:"path"`
	Bytes  int64  `msgpack:"bytes" json:"bytes"`
	SHA256 string `msgpack:"sha256" json:"sha256"`
	Ms     int64  `msgpack:"ms" json:"ms"`
}

// download fetches a.URL into the directory a.Dest as writeNew writes: the
// directory is created if missing, a file already there is never replaced.
// Nothing is created when the request fails.
func download(ctx context.Context, cfg Config, a DownloadArgs) (FileResult, error) {
	start := time.Now()
	u, err := url.Parse(a.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return FileResult{}, kindError{task.TypeBadInput, fmt.Sprintf("download: %q is not an http(s) URL", a.URL)}
	}
	name, err := a.FileName()
	if err != nil {
		return FileResult{}, err
	}
	dir, err := destDir(cfg, "download", a.Dest)
	if err != nil {
		return FileResult{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.URL, nil)
	if err != nil {
		return FileResult{}, kindError{task.TypeBadInput, "download: " + err.Error()}
	}
	resp, err := cfg.HTTPClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return FileResult{}, ctx.Err()
		}
		var ne net.Error
		if errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) {
			return FileResult{}, task.Retryable(kindError{TypeNetwork, "download: " + err.Error()})
		}
		return FileResult{}, kindError{TypeNetwork, "download: " + err.Error()}
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		err := kindError{TypeHTTPStatus, fmt.Sprintf("GET %s: %s", a.URL, resp.Status)}
		if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
			return FileResult{}, task.Retryable(err)
		}
		return FileResult{}, err
	}
	if resp.ContentLength > cfg.MaxDownloadBytes {
		return FileResult{}, kindError{TypeTooLarge, fmt.Sprintf("download: %s is %d bytes, the limit is %d", a.URL, resp.ContentLength, cfg.MaxDownloadBytes)}
	}
	res, err := writeNew("download", dir, name, io.LimitReader(resp.Body, cfg.MaxDownloadBytes+1), 0o644, cfg.MaxDownloadBytes)
	if err != nil {
		if ctx.Err() != nil {
			return FileResult{}, ctx.Err()
		}
		return FileResult{}, err
	}
	res.Ms = time.Since(start).Milliseconds()
	return res, nil
}

// copyFile copies the regular file a.Src into the directory a.Dest, under
// its own name and with its permissions, as writeNew writes: the directory
// is created if missing, a file already there is never replaced. Nothing is
// created when the source is missing or not a regular file.
func copyFile(ctx context.Context, cfg Config, a CopyArgs) (FileResult, error) {
	start := time.Now()
	src, err := allowed(cfg, a.Src)
	if err != nil {
		return FileResult{}, err
	}
	dir, err := destDir(cfg, "copy", a.Dest)
	if err != nil {
		return FileResult{}, err
	}
	st, err := os.Stat(src)
	if errors.Is(err, fs.ErrNotExist) {
		return FileResult{}, kindError{TypeNotFound, fmt.Sprintf("copy: %s does not exist", a.Src)}
	}
	if err != nil {
		return FileResult{}, kindError{TypeIO, "copy: " + err.Error()}
	}
	if st.IsDir() {
		return FileResult{}, kindError{TypeNotRegular, fmt.Sprintf("copy: %s is a directory; copy copies files", a.Src)}
	}
	if !st.Mode().IsRegular() {
		return FileResult{}, kindError{TypeNotRegular, fmt.Sprintf("copy: %s is not a regular file", a.Src)}
	}
	name, err := CopyArgs{Src: src}.FileName()
	if err != nil {
		return FileResult{}, err
	}
	f, err := os.Open(src)
	if err != nil {
		return FileResult{}, kindError{TypeIO, "copy: " + err.Error()}
	}
	defer f.Close()
	res, err := writeNew("copy", dir, name, ctxReader{ctx, f}, st.Mode().Perm(), -1)
	if err != nil {
		if ctx.Err() != nil {
			return FileResult{}, ctx.Err()
		}
		return FileResult{}, err
	}
	res.Ms = time.Since(start).Milliseconds()
	return res, nil
}

// destDir checks that dest lies inside cfg.AllowedRoot and is a directory
// or nothing yet, and returns it absolute. It creates nothing.
func destDir(cfg Config, op, dest string) (string, error) {
	dir, err := allowed(cfg, dest)
	if err != nil {
		return "", err
	}
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return dir, nil
	case errors.Is(err, syscall.ENOTDIR) || err == nil && !st.IsDir():
		return "", kindError{TypeNotDirectory, fmt.Sprintf("%s: destination %s is not a directory", op, dest)}
	case err != nil:
		return "", kindError{TypeIO, op + ": " + err.Error()}
	}
	return dir, nil
}

// allowed cleans p and checks it lies inside cfg.AllowedRoot, if set.
func allowed(cfg Config, p string) (string, error) {
	if p == "" {
		return "", kindError{task.TypeBadInput, "empty path"}
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", kindError{task.TypeBadInput, err.Error()}
	}
	if cfg.AllowedRoot == "" {
		return abs, nil
	}
	root, err := filepath.Abs(cfg.AllowedRoot)
	if err != nil {
		return "", kindError{TypeForbiddenPath, err.Error()}
	}
	// Compared with links resolved, so a link inside the root cannot lead
	// outside it.
	if rel, err := filepath.Rel(resolve(root), resolve(abs)); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", kindError{TypeForbiddenPath, fmt.Sprintf("%s is outside %s", p, cfg.AllowedRoot)}
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

// writeNew writes r to the file name in dir, creating dir and its parents
// if missing, and never replaces a file that is there. The bytes go to a
// temporary file in dir, whose SHA-256 is computed as they are written;
// it is synced, then linked to name, which fails if name exists whatever
// else writes to dir at the same time. A file found under name counts as
// this one if it holds the same bytes (a re-run, or a task delivered
// again, succeeds; finding out costs a read of that file), and is an error
// of type exists otherwise, both files as they were. The result is returned
// only once the file and dir are synced, so the file it reports is on disk
// with the reported digest. limit < 0: none.
func writeNew(op, dir, name string, r io.Reader, mode fs.FileMode, limit int64) (FileResult, error) {
	if err := makeDir(dir); err != nil {
		if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, fs.ErrExist) {
			return FileResult{}, kindError{TypeNotDirectory, fmt.Sprintf("%s: destination %s is not a directory", op, dir)}
		}
		return FileResult{}, kindError{TypeIO, op + ": " + err.Error()}
	}
	tmp, err := os.CreateTemp(dir, "."+name+".part-*")
	if err != nil {
		return FileResult{}, kindError{TypeIO, op + ": " + err.Error()}
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), r)
	if err == nil {
		err = tmp.Chmod(mode)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return FileResult{}, kindError{TypeIO, op + ": " + err.Error()}
	}
	if limit >= 0 && n > limit {
		return FileResult{}, kindError{TypeTooLarge, fmt.Sprintf("%s: more than %d bytes", op, limit)}
	}
	res := FileResult{Path: filepath.Join(dir, name), Bytes: n, SHA256: hex.EncodeToString(h.Sum(nil))}
	if err := os.Link(tmp.Name(), res.Path); errors.Is(err, fs.ErrExist) {
		same, err := holds(res.Path, res.Bytes, res.SHA256)
		if err != nil {
			return FileResult{}, kindError{TypeIO, op + ": " + err.Error()}
		}
		if !same {
			return FileResult{}, kindError{TypeExists, fmt.Sprintf("%s: %s exists with other contents; it is not replaced", op, res.Path)}
		}
	} else if err != nil {
		return FileResult{}, kindError{TypeIO, op + ": " + err.Error()}
	}
	if err := syncDir(dir); err != nil {
		return FileResult{}, kindError{TypeIO, op + ": " + err.Error()}
	}
	return res, nil
}

// holds reports whether p is a regular file of size bytes with the SHA-256
// sum, syncing it if so.
func holds(p string, size int64, sum string) (bool, error) {
	st, err := os.Lstat(p)
	if err != nil || !st.Mode().IsRegular() || st.Size() != size {
		return false, err
	}
	f, err := os.Open(p)
	if err != nil {
		return false, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return false, err
	}
	if hex.EncodeToString(h.Sum(nil)) != sum {
		return false, nil
	}
	return true, f.Sync()
}

// makeDir creates dir and its missing parents, and syncs the parent of each
// directory it created, so the directories last as long as the file.
func makeDir(dir string) error {
	var missing []string
	for p := dir; ; p = filepath.Dir(p) {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			break
		}
		missing = append(missing, p)
		if filepath.Dir(p) == p {
			break
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, p := range missing {
		if err := syncDir(filepath.Dir(p)); err != nil {
			return err
		}
	}
	return nil
}

// syncDir makes dir's entries durable.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil // a directory cannot be opened for syncing there
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
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
