# The commands people type. The build itself is CMake + ctest (CMakeLists.txt).
BUILD      ?= build
BUILD_ASAN ?= build-asan
PY         := .venv/bin/python
ADDR       ?= 127.0.0.1:50051
DATA       ?= ./annals-data
HTTP       ?= 127.0.0.1:8080

.PHONY: all deps build build-asan run run-distributed test-distributed test-distributed-purge test test-unit test-api test-cli test-crash test-faults test-faults-distributed \
        test-powerloss test-browser \
        test-asan test-extra pystubs clean format bench-investigator bench-distributed

all: build

deps:
	@scripts/install-deps.sh

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD)

$(BUILD_ASAN)/build.ninja:
	cmake -S . -B $(BUILD_ASAN) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DANN_SANITIZE=ON

build-asan: deps $(BUILD_ASAN)/build.ninja
	cmake --build $(BUILD_ASAN)

# Build, make a development tenant if there is none, and serve on the embedded default,
# with the HTTP port (health, metrics: docs/operations.md) on $(HTTP).
run: build
	@scripts/run-dev.sh $(BUILD)/bin "$(DATA)" "$(ADDR)" "$(HTTP)"

# The same on the distributed mode: engines up, a development tenant, all roles in one
# process (docs/distributed.md).
run-distributed: build services-up
	@scripts/run-distributed.sh $(BUILD)/bin "$(ADDR)" "$(HTTP)"

# Python stubs for the behavioural suite, generated from our proto by grpcio-tools.
pystubs: deps
	@mkdir -p $(BUILD)/py
	$(PY) -m grpc_tools.protoc -Iproto --python_out=$(BUILD)/py --grpc_python_out=$(BUILD)/py \
	    proto/annals/v1/annals.proto

# Every test. Extra suites (engines, CQL, ...) add themselves to EXTRA_TESTS.
EXTRA_TESTS :=
-include deploy/services.mk
-include tests/cql/cql.mk
-include tests/integrity/integrity.mk

test: build test-unit test-api test-cli test-crash test-faults test-powerloss test-extra \
      test-browser test-distributed test-faults-distributed test-distributed-purge test-asan
	@echo "make test: all suites passed"

test-unit: build
	cd $(BUILD) && ctest --output-on-failure -L unit

test-api: build pystubs
	ANNALS_BIN=$(abspath $(BUILD))/bin ANNALS_PY=$(abspath $(BUILD))/py \
	    $(PY) -m pytest -q tests/api

# The `annals` command against a real annalsd (docs/cli.md).
test-cli: build pystubs
	ANNALS_BIN=$(abspath $(BUILD))/bin ANNALS_PY=$(abspath $(BUILD))/py \
	    $(PY) -m pytest -q tests/cli

test-crash: build pystubs
	ANNALS_BIN=$(abspath $(BUILD))/bin ANNALS_PY=$(abspath $(BUILD))/py \
	    $(PY) -m pytest -q tests/crash

# The web viewer in headless Chromium (docs/viewer.md); screenshots in build/test-artifacts.
test-browser: build pystubs
	ANNALS_BIN=$(abspath $(BUILD))/bin ANNALS_PY=$(abspath $(BUILD))/py \
	    $(PY) -m pytest -q tests/browser

# kill -9 at each fault point of revocation, deletion and the group commit
# (build/bin/annalsd-faults, docs/testing.md).
test-faults: build pystubs
	ANNALS_BIN=$(abspath $(BUILD))/bin ANNALS_PY=$(abspath $(BUILD))/py \
	    $(PY) -m pytest -q tests/faults/test_fault_points.py

# Power cuts under the LD_PRELOAD shim (tests/faults, docs/testing.md); release build only.
test-powerloss: build pystubs
	ANNALS_BIN=$(abspath $(BUILD))/bin ANNALS_PY=$(abspath $(BUILD))/py \
	    $(PY) -m pytest -q tests/faults/test_powerloss.py

# The distributed mode's faults (tests/faults/test_distributed_faults.py, docs/testing.md):
# kill -9 of each role at its fault points and at random, a zombie sequencer, kill -9 and
# restart of Kafka, Cassandra and PostgreSQL (the SHARED engines of services-up: other runs
# on them see the outages). ~6-8 minutes on 2 cores.
test-faults-distributed: build pystubs services-up
	ANNALS_MODE=distributed ANNALS_BIN=$(abspath $(BUILD))/bin ANNALS_PY=$(abspath $(BUILD))/py \
	    $(PY) -m pytest -q -s tests/faults/test_distributed_faults.py

test-extra: $(EXTRA_TESTS)

# The behavioural suite, unchanged, against the distributed mode on the engines of
# services-up: once with all roles in one process, once with two API servers, two
# sequencers and two projectors (docs/distributed.md, "Tests").
# (The purge test waits out the engines' bounds: it runs once, in test-distributed-purge.)
test-distributed: build pystubs services-up
	ANNALS_MODE=distributed ANNALS_BIN=$(abspath $(BUILD))/bin ANNALS_PY=$(abspath $(BUILD))/py \
	    $(PY) -m pytest -q tests/api --ignore=tests/api/test_distributed_purge.py
	ANNALS_MODE=distributed ANNALS_TOPOLOGY=scaled ANNALS_BIN=$(abspath $(BUILD))/bin \
	    ANNALS_PY=$(abspath $(BUILD))/py $(PY) -m pytest -q tests/api \
	    --ignore=tests/api/test_distributed_purge.py

# Revoked bytes leave the engines' files within the stated bounds; no replay or rebuild
# resurrects them (docs/distributed.md, "Revocation in the engines"). Minutes: it waits out
# the broker's retention check.
test-distributed-purge: build pystubs services-up
	ANNALS_MODE=distributed ANNALS_BIN=$(abspath $(BUILD))/bin ANNALS_PY=$(abspath $(BUILD))/py \
	    $(PY) -m pytest -q -s tests/api/test_distributed_purge.py

# The unit tests and the behavioural suite again, under ASan+UBSan (leaks included).
test-asan: build-asan pystubs
	cd $(BUILD_ASAN) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 ctest --output-on-failure -L unit
	ANNALS_BIN=$(abspath $(BUILD_ASAN))/bin ANNALS_PY=$(abspath $(BUILD))/py ANNALS_SANITIZED=1 \
	    ASAN_OPTIONS=detect_leaks=1 $(PY) -m pytest -q tests/api tests/cli

# The investigator benchmarks (docs/bench.md): ~10 minutes at the full size (10 M entries,
# VictoriaLogs beside annals); `make bench-investigator SCALE=100` is a smoke run (< 1 minute).
bench-investigator: build
	NO_BUILD=1 bench/investigator/run.sh

# The distributed benchmark (docs/bench.md, "Distributed mode"): issue 2's shape on the
# running engines, roles as separate processes in a fresh namespace; ~5 minutes.
bench-distributed: build services-up
	bench/distributed/run.sh

format:
	git ls-files '*.c' '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(BUILD_ASAN)
