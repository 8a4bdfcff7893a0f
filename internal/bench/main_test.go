package bench

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// BenchmarkCrossProcessRequest starts this test binary as its requester.
	if url := os.Getenv(envRequesterURL); url != "" {
		os.Exit(runRequester(url, os.Stdout))
	}
	goleak.VerifyTestMain(m)
}
