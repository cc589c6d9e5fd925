#!/usr/bin/env bash
# The standard benchmark of annals (docs/bench.md): starts a fresh annalsd on a
# temporary data directory (fsync durability), creates a tenant, runs the standard
# shapes with annals-load, and prints a table of figures against the targets,
# with the commands that made them.
#
#   bench/run.sh                      # everything (about 3 minutes, ~3 GB of disk)
#   DURATION=10 QUERY_ENTRIES=1000000 bench/run.sh     # a quicker pass
#
# Environment: ANNALS_BIN (default build/bin), DURATION (seconds per timed shape, 20),
# THREADS (client threads for the main ingest shape, 4), QUERY_ENTRIES (entries in the
# query log, 10000000), KEEP=1 keeps the data directory.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${ANNALS_BIN:-build/bin}
DURATION=${DURATION:-20}
THREADS=${THREADS:-4}
QUERY_ENTRIES=${QUERY_ENTRIES:-10000000}
for b in annalsd annals-load; do
  [ -x "$BIN/$b" ] || { echo "bench/run.sh: $BIN/$b not found (build first: make build)" >&2; exit 2; }
done

DATA=$(mktemp -d "${TMPDIR:-/tmp}/annals-bench.XXXXXX")
OUT="$DATA/out"
mkdir -p "$OUT"
SPID=
cleanup() {
  if [ -n "$SPID" ] && kill -0 "$SPID" 2>/dev/null; then
    kill -TERM "$SPID"; wait "$SPID" 2>/dev/null || true
  fi
  if [ "${KEEP:-0}" = 1 ]; then echo "data kept in $DATA" >&2; else rm -rf "$DATA"; fi
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ADDR=127.0.0.1:$PORT
KEY=$("$BIN/annalsd" tenant create bench --data "$DATA/srv" | tail -n 1)
"$BIN/annalsd" serve --data "$DATA/srv" --listen "$ADDR" --durability fsync >"$OUT/annalsd.log" 2>&1 &
SPID=$!
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  kill -0 "$SPID" 2>/dev/null || { cat "$OUT/annalsd.log" >&2; exit 1; }
  sleep 0.1
done
export ANNALS_ADDR=$ADDR ANNALS_TOKEN=$KEY

CMDS=()
run() { # name, annals-load arguments...
  local name=$1; shift
  local cmd="annals-load $* --server-pid \$ANNALSD_PID"
  CMDS+=("$name: $cmd")
  echo "== $name: $cmd" >&2
  "$BIN/annals-load" "$@" --server-pid "$SPID" | tee "$OUT/$name.txt" >&2 || true
}
get() { # name, key: the value of key= on the RESULT line
  sed -n "s/^RESULT .*\b$2=\([^ ]*\).*/\1/p" "$OUT/$1.txt" | head -n 1
}

run ingest    ingest --threads "$THREADS" --batch 1000 --entry-size 200 --logs 100 --duration "$DURATION"
run ingest-1  ingest --threads 1 --batch 1000 --entry-size 200 --logs 100 --duration "$DURATION"
run tail      tail --rate 200 --duration "$DURATION" --entry-size 200
run query     query --log-entries "$QUERY_ENTRIES" --queries 1000 --page-size 100 --threads "$THREADS"

HWM=$(awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$SPID/status" 2>/dev/null || echo n/a)
cpu=$(nproc); model=$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)
printf '\nannals benchmark, %s, %s CPUs (%s), annalsd --durability fsync\n' "$(date -u +%FT%TZ)" "$cpu" "$model"
printf '| figure | measured | target | shape |\n|---|---|---|---|\n'
printf '| ingest entries/s | %s | >= 300,000 | %s threads, batch 1000, 200 B text, 100 logs |\n' "$(get ingest entries_per_s)" "$THREADS"
printf '| ingest payload MB/s | %s | | same |\n' "$(get ingest payload_mb_per_s)"
printf '| write latency p50 / p99 ms | %s / %s | | same |\n' "$(get ingest p50_ms)" "$(get ingest p99_ms)"
printf '| server CPU-s per M entries | %s | | same |\n' "$(get ingest server_cpu_s_per_M)"
printf '| ingest entries/s, 1 client | %s | | 1 thread, batch 1000, 200 B, 100 logs |\n' "$(get ingest-1 entries_per_s)"
printf '| write latency p50 / p99 ms, 1 client | %s / %s | | same |\n' "$(get ingest-1 p50_ms)" "$(get ingest-1 p99_ms)"
printf '| write-to-tail p50 / p99 ms | %s / %s | p99 <= 50 | 200 single-entry writes/s, one tail |\n' "$(get tail p50_ms)" "$(get tail p99_ms)"
printf '| query: first page of a 1 h window, p50 / p99 ms | %s / %s | p99 <= 5 | log of %s entries, page 100 |\n' "$(get query window_p50_ms)" "$(get query window_p99_ms)" "$QUERY_ENTRIES"
printf '| query: page deep in the log, p50 / p99 ms | %s / %s | p99 <= 5 | same log, token page past the middle |\n' "$(get query deep_p50_ms)" "$(get query deep_p99_ms)"
printf '| query log setup entries/s | %s | | %s threads into one log |\n' "$(get query setup_entries_per_s)" "$THREADS"
printf '| server peak RSS MiB (whole run) | %s | < 512 | VmHWM of annalsd |\n' "$HWM"
printf '\ncommands (ANNALS_ADDR/ANNALS_TOKEN from a fresh `annalsd tenant create`):\n'
printf '  DURATION=%s THREADS=%s QUERY_ENTRIES=%s bench/run.sh\n' "$DURATION" "$THREADS" "$QUERY_ENTRIES"
for c in "${CMDS[@]}"; do printf '  %s\n' "$c"; done
