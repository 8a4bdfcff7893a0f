#!/usr/bin/env bash
# The whole test suite: formatting, vet, staticcheck, every package's tests
# with the race detector (the integration tests build their own images and
# need Docker), and a bounded run of each fuzz target.
#
# It installs one thing: tmux, with apt-get, where tmux is missing and
# apt-get is there (it must run as root then). The progress bar's tests read
# a real terminal through tmux; without it they fail when CI=true and are
# skipped otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v tmux >/dev/null; then
  if command -v apt-get >/dev/null; then
    echo "test.sh: installing tmux with apt-get (apt-get update, apt-get install tmux) for the terminal tests"
    { apt-get update -qq && apt-get install -y -qq tmux; } >/dev/null 2>&1 ||
      echo "test.sh: apt-get could not install tmux; the terminal tests will fail"
  else
    echo "test.sh: tmux is missing and there is no apt-get to install it; the terminal tests will fail with CI=true"
  fi
fi

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi
go vet ./...
# staticcheck, pinned; the Go module proxy serves it.
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
# -count=1: the integration tests build images from the tree, which the
# test cache does not see.
go test -race -count=1 -timeout 60m ./...
# The tests that move gigabytes, which the race detector makes take minutes,
# run without it.
go test -count=1 -timeout 10m -run '^TestMapOfMediumValues$' ./executor

# Every fuzz target in the module runs for a bounded number of inputs on top
# of its committed corpus (testdata/fuzz), which the tests above already
# replay: FUZZTIME each, 20000x by default (a few seconds per target). A count
# rather than a duration: Go 1.26's fuzz coordinator can report a spurious
# "context deadline exceeded" when a -fuzztime duration runs out while a
# worker is mid-input (golang/go#75804); a count never sets that deadline.
fuzztime=${FUZZTIME:-20000x}
for dir in $(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do
  for target in $(grep -h '^func Fuzz' "$dir"/*_test.go | sed 's/^func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$dir"
  done
done
