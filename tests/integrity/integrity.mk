# The integrity formats' cross-check: make fragment, included by the top-level Makefile
# (before the `test` rules, so EXTRA_TESTS is complete when test-extra is read).
#   make test-integrity   the C tree and checkpoint code against the independent Python
#                         verifier (tests/integrity/verifier.py, docs/integrity.md)
.PHONY: test-integrity

test-integrity: build pystubs
	ANNALS_BIN=$(abspath $(BUILD))/bin $(PY) -m pytest -q tests/integrity

EXTRA_TESTS += test-integrity
