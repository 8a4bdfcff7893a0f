//go:build race

package executor_test

// raceDetector reports whether the tests run with the race detector, under
// which the tests that move gigabytes take minutes; scripts/test.sh runs
// those without it.
const raceDetector = true
