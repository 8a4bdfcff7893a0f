# The routine tasks, each a documented command of its own.
.PHONY: run test lint fuzz bench bench-go images

# The main job on this machine: an embedded broker and four worker processes.
run:
	seq 1 10000 | go run ./cmd/submit map square --chunksize 100 --embedded --workers 4

# The whole suite, as CI runs it (needs Docker for integration/).
test:
	./scripts/test.sh

# Formatting, vet and staticcheck alone.
lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	go vet ./...
	go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

# Every fuzz target for FUZZTIME inputs each (default 20000x).
fuzz:
	@for dir in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
	  for target in $$(grep -h '^func Fuzz' $$dir/*_test.go | sed 's/^func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do \
	    go test -run '^$$' -fuzz "^$$target\$$" -fuzztime "$${FUZZTIME:-20000x}" $$dir || exit 1; \
	  done; \
	done

# The figures of BENCHMARKS.md: this host against the raw JetStream ceiling
# and Python's ProcessPoolExecutor.
bench:
	go run ./cmd/submit bench --python bench/processpool.py --scaling

# The same figures as Go benchmarks.
bench-go:
	go test -run '^$$' -bench 'BenchmarkNATS(SubmitResult|MapChunk1000|Latency)$$|BenchmarkRaw(Batch)?Ceiling' -benchtime 20000x ./executor

# bin/worker, bin/nats-server, bin/submit and the two FROM scratch images.
images:
	./scripts/images.sh
