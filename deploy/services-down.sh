#!/usr/bin/env bash
# Stop the engines started by services-up.sh (only those whose pid files are under .services/).
# Usage: deploy/services-down.sh [cassandra|kafka|postgres ...]   (default: all three)
# Data and logs are kept; `make services-clean` removes them.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
engines=("$@"); ((${#engines[@]})) || engines=(kafka postgres cassandra)
for e in "${engines[@]}"; do
  case $e in cassandra|kafka|postgres) ;; *) die "unknown engine '$e' (cassandra, kafka, postgres)";; esac
  . "$ANN_DEPLOY/$e/engine.sh"
  "${e}_down" 1
done
