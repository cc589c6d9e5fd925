# The CQL client and the Cassandra archive: make fragment, included by the
# top-level Makefile right after deploy/services.mk (before the `test` rules,
# so EXTRA_TESTS is complete when test-extra is read).
#   make test-cql    the suites against a real Cassandra (ctest label `cql`),
#                    starting it first with deploy/services-up.sh when present
#   make test-cql-kill  kill -9 of a Cassandra node the test starts itself (127.0.0.9):
#                    every acknowledged write is there after the restart (label `engine-kill`)
#   make bench-cql   the C client beside the Python cassandra-driver
#   make fuzz-cql    the libFuzzer run of the frame decoder (clang), FUZZ_TIME seconds
FUZZ_TIME ?= 600
BUILD_FUZZ ?= build-fuzz

.PHONY: test-cql test-cql-kill bench-cql fuzz-cql

test-cql: build
	@if [ -x deploy/services-up.sh ]; then deploy/services-up.sh cassandra; \
	 else echo "test-cql: no deploy/services-up.sh; expecting Cassandra on $${ANN_CQL_CONTACT:-127.0.0.1:9042}"; fi
	cd $(BUILD) && ctest --output-on-failure -L cql

test-cql-kill: build
	cd $(BUILD) && ctest --output-on-failure -L engine-kill

bench-cql: build
	@if [ -x deploy/services-up.sh ]; then deploy/services-up.sh cassandra; fi
	bench/cql/run.sh $(BUILD)

fuzz-cql:
	CC=clang cmake -S . -B $(BUILD_FUZZ) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BUILD_FUZZ) --target fuzz_cql_frame
	mkdir -p .cache/fuzz-cql
	$(BUILD_FUZZ)/bin/fuzz_cql_frame -max_total_time=$(FUZZ_TIME) -max_len=4096 -timeout=10 \
	    -print_final_stats=1 -artifact_prefix=.cache/fuzz-cql/ .cache/fuzz-cql fuzz/cql/corpus

EXTRA_TESTS += test-cql test-cql-kill
