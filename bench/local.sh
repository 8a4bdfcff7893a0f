#!/usr/bin/env bash
# Runs the local pool's benchmarks and Python's ThreadPoolExecutor on the same
# workload, one after the other, and prints both.
set -euo pipefail
cd "$(dirname "$0")/.."
go test -run '^$' -bench 'BenchmarkLocal' -benchtime 200000x -count 3 ./executor | grep -E '^Benchmark'
python3 bench/threadpool.py 200000
