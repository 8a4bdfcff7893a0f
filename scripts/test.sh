#!/usr/bin/env bash
# The whole test suite: formatting, vet, every package's tests with the race
# detector (the integration tests build their own images and need Docker),
# and a bounded run of each fuzz target.
set -euo pipefail
cd "$(dirname "$0")/.."

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi
go vet ./...
go test -race -timeout 60m ./...

fuzztime=${FUZZTIME:-10s}
for target in $(go test -list '^Fuzz' ./broker | grep '^Fuzz' || true); do
  go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" ./broker
done
