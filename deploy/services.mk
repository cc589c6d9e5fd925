# Real engines on this machine (included by the top-level Makefile).
#   make services-up      start Cassandra, Kafka and PostgreSQL under .services/ (idempotent)
#   make services-down    stop them (data kept)
#   make services-clean   stop them and delete .services/ (data, logs, config copies)
#   make test-engines     services-up, then the C smoke tests labelled `engines`
# One engine: deploy/services-up.sh cassandra   (or kafka, postgres). See docs/engines.md.

.PHONY: services-up services-down services-clean test-engines

services-up:
	@deploy/services-up.sh

services-down:
	@deploy/services-down.sh

services-clean: services-down
	rm -rf .services

test-engines: build services-up
	cd $(BUILD) && ctest --output-on-failure -L engines

EXTRA_TESTS += test-engines
