package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/jetpool/jetpool/worker"
)

// readmeSection returns the README's section under the heading "## name",
// up to the next heading of that level.
func readmeSection(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "\n## "+name+"\n")
	if !ok {
		t.Fatalf("README has no section %q", name)
	}
	if i := strings.Index(rest, "\n## "); i >= 0 {
		rest = rest[:i]
	}
	return rest
}

// tableColumn returns the cells of the named column of the first Markdown
// table in text whose header has it.
func tableColumn(t *testing.T, text, column string) []string {
	t.Helper()
	col := -1
	var cells []string
	for _, l := range strings.Split(text, "\n") {
		if !strings.HasPrefix(l, "|") {
			if col >= 0 {
				return cells
			}
			continue
		}
		row := strings.Split(strings.Trim(l, "|"), "|")
		for i := range row {
			row[i] = strings.TrimSpace(row[i])
		}
		switch {
		case col < 0:
			col = slices.Index(row, column)
		case strings.HasPrefix(row[0], "---"):
		case col < len(row):
			cells = append(cells, row[col])
		}
	}
	if col < 0 {
		t.Fatalf("no table with a column %q", column)
	}
	return cells
}

// helpSettings returns the flags a --help lists and the environment
// variables it names.
func helpSettings(help string) (flags, envs []string) {
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z-]+)`).FindAllStringSubmatch(help, -1) {
		if len(m[1]) == 1 {
			flags = append(flags, "-"+m[1]) // -s
		} else {
			flags = append(flags, "--"+m[1])
		}
	}
	for _, m := range regexp.MustCompile(`\(env ([A-Z_]+)`).FindAllStringSubmatch(help, -1) {
		envs = append(envs, m[1])
	}
	return flags, envs
}

// buildWorker builds cmd/worker into a temporary directory.
func buildWorker(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("no go tool to build cmd/worker: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "worker")
	if out, err := exec.Command(goTool, "build", "-o", bin, "github.com/jetpool/jetpool/cmd/worker").CombinedOutput(); err != nil {
		t.Fatalf("go build cmd/worker: %v\n%s", err, out)
	}
	return bin
}

// TestReadmeListsEverySetting: the README's settings table lists every
// setting flag and environment variable of both binaries, as their --help
// lists them and as worker.ConfigFromEnv reads them. The flags of one
// command alone (--chunksize, --to, ...) are in its --help instead.
func TestReadmeListsEverySetting(t *testing.T) {
	conf := readmeSection(t, "Configuration")
	inTable := map[string]bool{}
	for _, col := range []string{"flag", "environment"} {
		for _, cell := range tableColumn(t, conf, col) {
			for _, m := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(cell, -1) {
				inTable[m[1]] = true
			}
		}
	}

	var flags, envs []string
	// A command's own flags, not settings.
	own := map[string]bool{"--chunksize": true, "--buffersize": true, "--timeout": true, "--quiet": true,
		"--to": true, "--json": true, "--wait": true, "--kind": true, "--producer": true, "--purge": true,
		"--job": true, "--retention": true, "--watch": true}
	for _, cmd := range []string{"map", "run", "download", "copy", "status", "cancel", "kinds", "jobs", "job", "results", "delete"} {
		r := submit(t, "", nil, cmd, "--help")
		if r.code != 0 {
			t.Fatalf("submit %s --help: exit %d", cmd, r.code)
		}
		f, e := helpSettings(r.stderr)
		for _, name := range f {
			if !own[name] {
				flags = append(flags, name)
			}
		}
		envs = append(envs, e...)
	}
	out, err := exec.Command(buildWorker(t), "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("worker --help: %v\n%s", err, out)
	}
	f, e := helpSettings(string(out))
	if len(f) < 10 || len(e) < 10 {
		t.Fatalf("worker --help lists %d flags and %d variables; the parse is wrong:\n%s", len(f), len(e), out)
	}
	flags = append(flags, f...)
	envs = append(envs, e...)
	envs = append(envs, worker.EnvID, worker.EnvPool, worker.EnvPrefix, worker.EnvConcurrency, worker.EnvKinds,
		worker.EnvAckWait, worker.EnvGrace, worker.EnvReplicas, worker.EnvRetryAttempts, worker.EnvRetryBackoff, worker.EnvRetryMaxBackoff)

	var missing []string
	for _, name := range append(flags, envs...) {
		if !inTable[name] && !slices.Contains(missing, name) {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("the README's settings table lacks %v", missing)
	}
}

// TestReadmeListsEveryExitCode: the README's exit code table and
// 'submit --help' list the same codes.
func TestReadmeListsEveryExitCode(t *testing.T) {
	readme := tableColumn(t, readmeSection(t, "The CLI"), "code")
	r := submit(t, "", nil, "--help")
	_, codes, _ := strings.Cut(r.stderr, "\nExit codes:\n")
	var help []string
	for _, m := range regexp.MustCompile(`(?m)^  (\d+) `).FindAllStringSubmatch(codes, -1) {
		help = append(help, m[1])
	}
	if r.code != 0 || len(help) < 8 || !slices.Equal(readme, help) {
		t.Errorf("the README lists exit codes %v, submit --help %v", readme, help)
	}
}
