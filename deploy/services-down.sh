#!/usr/bin/env bash
# Stop the engines started by services-up.sh (only those whose pid files are under .services/).
# Usage: deploy/services-down.sh [cassandra|kafka|postgres ...]   (default: all three)
# Data and logs are kept; `make services-clean` removes them.
# ANN_NODE=N runs a standalone node N on 127.0.0.N under .services/<engine>/nodeN instead
# (e.g. to measure a cold start beside a running node 1).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
engines=("$@"); ((${#engines[@]})) || engines=(kafka postgres cassandra)
for e in "${engines[@]}"; do
  case $e in cassandra|kafka|postgres) ;; *) die "unknown engine '$e' (cassandra, kafka, postgres)";; esac
  . "$ANN_DEPLOY/$e/engine.sh"
  "${e}_down" "${ANN_NODE:-1}"
done
