package main

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// envRunMain makes the test binary run main instead of the tests.
const envRunMain = "JETPOOL_TEST_RUN_WORKER_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(envRunMain) == "1" {
		main()
		return
	}
	goleak.VerifyTestMain(m)
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--help"}, 0, "Usage: worker"},
		{[]string{"--log-format", "xml"}, 2, `--log-format "xml": want text or json`},
		{[]string{"--concurrency", "x"}, 2, `flag -concurrency: want a non-negative integer`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			cmd := exec.Command(os.Args[0], tt.args...)
			cmd.Env = append(os.Environ(), envRunMain+"=1", "JETPOOL_LOG_FORMAT=", "JETPOOL_CONCURRENCY=")
			out, err := cmd.CombinedOutput()
			code := 0
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				code = exit.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.code || !strings.Contains(string(out), tt.want) {
				t.Errorf("exit %d with %q, want %d with %q", code, out, tt.code, tt.want)
			}
		})
	}
}
