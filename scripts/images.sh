#!/usr/bin/env bash
# Builds the static binaries (CGO_ENABLED=0) of the worker and of nats-server
# (from the nats-server module this project depends on) into bin/, and the
# FROM scratch images jetpool/worker:dev and jetpool/nats:dev from them. No
# registry is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin
export CGO_ENABLED=0
go build -trimpath -ldflags '-s -w' -o bin/worker ./cmd/worker
go build -trimpath -ldflags '-s -w' -o bin/nats-server github.com/nats-io/nats-server/v2
go build -trimpath -ldflags '-s -w' -o bin/submit ./cmd/submit
docker build -q -f docker/worker.Dockerfile -t jetpool/worker:dev bin >/dev/null
docker build -q -f docker/nats.Dockerfile -t jetpool/nats:dev bin >/dev/null
echo "built jetpool/worker:dev and jetpool/nats:dev"
