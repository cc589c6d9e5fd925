#!/usr/bin/env bash
# Start the engines annals' distributed mode talks to, each under .services/<engine>/node1:
#   Cassandra 5.0 on 127.0.0.1:9042, Kafka 4 (KRaft) on 127.0.0.1:9092,
#   PostgreSQL 15 on 127.0.0.1:5432.
# Usage: deploy/services-up.sh [cassandra|kafka|postgres ...]   (default: all three)
# Idempotent: a running engine is only health-checked. Exits non-zero, saying which engine
# failed and why, when one does not become healthy within ANN_START_TIMEOUT seconds.
# ANN_NODE=N runs a standalone node N on 127.0.0.N under .services/<engine>/nodeN instead
# (e.g. to measure a cold start beside a running node 1).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
engines=("$@"); ((${#engines[@]})) || engines=(cassandra kafka postgres)
for e in "${engines[@]}"; do
  case $e in cassandra|kafka|postgres) ;; *) die "unknown engine '$e' (cassandra, kafka, postgres)";; esac
  . "$ANN_DEPLOY/$e/engine.sh"
  "${e}_up" "${ANN_NODE:-1}" 1
done
