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

# A PostgreSQL node that had to live outside the checkout (see deploy/postgres/engine.sh)
# is a symbolic link: its target goes too.
services-clean: services-down
	@for l in .services/postgres/node*; do \
	    if [ -L "$$l" ]; then d=$$(readlink -f "$$l"); rm -rf "$${d%/postgres/*}"; fi; done
	rm -rf .services

test-engines: build services-up
	cd $(BUILD) && ctest --output-on-failure -L engines

EXTRA_TESTS += test-engines
