#!/usr/bin/env bash
# Builds the static binaries (CGO_ENABLED=0) of the worker, submit and
# nats-server (from the nats-server module this project depends on) into
# bin/, and the FROM scratch images jetpool/worker:dev, jetpool/submit:dev
# (for the compose file's metrics service) and jetpool/nats:dev from them; and
# the wordcount example's worker and producer (bin/wordcount-worker,
# bin/wordcount) and its image jetpool/wordcount-worker:dev. No registry is
# needed.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin
export CGO_ENABLED=0
go build -trimpath -ldflags '-s -w' -o bin/worker ./cmd/worker
go build -trimpath -ldflags '-s -w' -o bin/nats-server github.com/nats-io/nats-server/v2
go build -trimpath -ldflags '-s -w' -o bin/submit ./cmd/submit
go build -trimpath -ldflags '-s -w' -o bin/wordcount-worker ./examples/wordcount/worker
go build -trimpath -ldflags '-s -w' -o bin/wordcount ./examples/wordcount/producer
docker build -q -f docker/worker.Dockerfile -t jetpool/worker:dev bin >/dev/null
docker build -q -f docker/nats.Dockerfile -t jetpool/nats:dev bin >/dev/null
docker build -q -f docker/submit.Dockerfile -t jetpool/submit:dev bin >/dev/null
docker build -q -f examples/wordcount/Dockerfile -t jetpool/wordcount-worker:dev bin >/dev/null
echo "built jetpool/worker:dev, jetpool/nats:dev, jetpool/submit:dev and jetpool/wordcount-worker:dev"
