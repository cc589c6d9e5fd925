#!/usr/bin/env bash
# Cassandra's cost per entry, before and after a change, interleaved in one window
# (docs/bench.md, "Batch rows"): for each run, a fresh namespace, `annalsd sequence`,
# `project` and `serve` from the run's binaries, `annals-load ingest --wait sequenced` (4
# clients, batches of 1,000, 200-byte text, 100 logs) for DURATION s, then until the read
# model caught up. Prints per run: entries/s, CPU-s per million entries of Cassandra and of
# each role, and Cassandra's per-table writes (partition mutations) and reads per entry
# (`nodetool tablestats`). The engines are shared: Cassandra's CPU is also taken over IDLE s
# (10) before each run with nothing of ours running, and that rate times the run's
# duration is subtracted ("net").
#
#   bench/distributed/rows.sh LABEL=BIN_DIR[:server] ...
#     e.g. rows.sh base=/work/main/build/bin new=build/bin new-srv=build/bin:server
#
# `:server` sends no insert_ids (the API server makes them: annals-load --server-ids 1).
# annals-load and annals-dist come from LOAD_BIN (build/bin). DURATION (15).
set -euo pipefail
cd "$(dirname "$0")/../.."
LOAD_BIN=${LOAD_BIN:-build/bin}
DURATION=${DURATION:-15}
IDLE=${IDLE:-10}
SERVICES=${ANNALS_SERVICES:-}
if [ -z "$SERVICES" ]; then
  SERVICES=.services
  [ -d "$SERVICES" ] || SERVICES="$(cd "$(git rev-parse --git-common-dir)/.." && pwd)/.services"
fi
CPID=$(cat "$SERVICES/cassandra/node1/cassandra.pid")
HZ=$(getconf CLK_TCK)
OUT=$(mktemp -d "${TMPDIR:-/tmp}/annals-rows.XXXXXX")
PIDS=()
NSS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  [ ${#NSS[@]} -gt 0 ] && "$LOAD_BIN/annals-dist" drop --ns "$(IFS=,; echo "${NSS[*]}")" >&2 || true
  echo "output in $OUT" >&2
}
trap cleanup EXIT
ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
nodetool() {
  # shellcheck disable=SC2046
  java $(grep -E '^--add-(exports|opens)' deploy/cassandra/jvm.options) \
    -cp "$(cat "$SERVICES/cassandra/classpath.txt")" org.apache.cassandra.tools.NodeTool \
    -h 127.0.0.1 -p 7199 "$@"
}
start() { # bin, role, ns, instance, [args]: pid in LAST
  for _try in 1 2 3 4 5; do
    "$1/annalsd" "$2" --namespace "$3" --instance "$4" "${@:5}" >"$OUT/$4.log" 2>&1 &
    LAST=$!
    for _ in $(seq 300); do
      if grep -q "(distributed, namespace" "$OUT/$4.log"; then PIDS+=("$LAST"); return 0; fi
      kill -0 "$LAST" 2>/dev/null || break
      sleep 0.1
    done
    wait "$LAST" 2>/dev/null || true
    grep -q "Unknown topic or partition" "$OUT/$4.log" || break
    sleep 1
  done
  cat "$OUT/$4.log" >&2
  exit 1
}
seq_now() { "$LOAD_BIN/annals-dist" watch --ns "$1" --interval 0 | sed -n 's/.*sequenced=\([0-9-]*\).*/\1/p'; }
drain() {
  for _ in $(seq 360); do
    l=$("$LOAD_BIN/annals-dist" watch --ns "$1" --interval 0 | sed -n 's/.*lag=\([0-9-]*\).*/\1/p')
    [ "$l" = 0 ] && return 0
    sleep 0.5
  done
}
printf '| run | load 1 min | entries/s | CPU-s/M Cassandra: all, net of idle | serve / sequence / project | Cassandra writes (mutations) per entry, by table | reads per entry |\n|---|---|---|---|---|---|---|\n'
for spec in "$@"; do
  label=${spec%%=*}; rest=${spec#*=}; bin=${rest%%:*}; mode=""
  [ "$rest" != "$bin" ] && mode=${rest#*:}
  ns=br$(date +%s)_$$_${#NSS[@]}
  NSS+=("$ns")
  key=$("$bin/annalsd" tenant create bench --namespace "$ns" 2>>"$OUT/tenant.log" | tail -n 1)
  port=$(free_port)
  start "$bin" sequence "$ns" "seq-$label"; seqp=$LAST
  start "$bin" project "$ns" "proj-$label"; projp=$LAST
  start "$bin" serve "$ns" "api-$label" --listen "127.0.0.1:$port"; apip=$LAST
  for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  extra=()
  [ "$mode" = server ] && extra=(--server-ids 1)
  la=$(cut -d' ' -f1 /proc/loadavg)
  i0=$(ticks "$CPID"); t0=$(date +%s.%N); sleep "$IDLE"; i1=$(ticks "$CPID"); t1=$(date +%s.%N)
  idle_rate=$(awk -v a="$i0" -v b="$i1" -v s="$t0" -v e="$t1" 'BEGIN { printf "%.3f", (b - a) / (e - s) }')
  q0=$(seq_now "$ns"); c0=$(ticks "$CPID"); r0=$(date +%s.%N); a0=$(ticks "$apip"); s0=$(ticks "$seqp"); p0=$(ticks "$projp")
  ANNALS_TOKEN=$key ANNALS_ADDR=127.0.0.1:$port "$LOAD_BIN/annals-load" ingest --threads 4 \
    --batch 1000 --entry-size 200 --logs 100 --duration "$DURATION" --wait sequenced \
    "${extra[@]}" >"$OUT/$label.txt" 2>"$OUT/$label.err" || echo "$label: failures ($OUT/$label.err)" >&2
  drain "$ns"
  n=$(( $(seq_now "$ns") - q0 ))
  r1=$(date +%s.%N)
  c1=$(ticks "$CPID"); a1=$(ticks "$apip"); s1=$(ticks "$seqp"); p1=$(ticks "$projp")
  eps=$(sed -n 's/^RESULT .*\bentries_per_s=\([^ ]*\).*/\1/p' "$OUT/$label.txt" | head -n 1)
  nodetool flush "$ns" >/dev/null 2>&1 || true
  nodetool tablestats "$ns" >"$OUT/$label.tablestats" 2>&1 || true
  stats=$(awk -v n="$n" '/Table: / {t = $2} /Local read count/ {r[t] = $4} /Local write count/ {w[t] = $4}
    END { for (t in w) if (t ~ /^log_/ && w[t] > 0) printf "%s %.4f; ", t, w[t] / n;
          printf "|"; for (t in r) if (t ~ /^log_/ && r[t] > 0) printf " %s %.4f;", t, r[t] / n }' "$OUT/$label.tablestats")
  awk -v l="$label${mode:+ ($mode ids)}" -v la="$la" -v eps="$eps" -v n="$n" -v hz="$HZ" \
    -v c="$((c1 - c0))" -v a="$((a1 - a0))" -v s="$((s1 - s0))" -v p="$((p1 - p0))" -v st="$stats" \
    -v ir="$idle_rate" -v w="$(awk -v a="$r0" -v b="$r1" 'BEGIN { print b - a }')" \
    'BEGIN { m = n / 1e6; printf "| %s | %s | %s (%d sequenced) | %.1f, %.1f | %.2f / %.2f / %.2f | %s |\n",
             l, la, eps, n, c / hz / m, (c - ir * w) / hz / m, a / hz / m, s / hz / m, p / hz / m, st }'
  kill -TERM "$apip" "$seqp" "$projp" 2>/dev/null || true
  wait "$apip" "$seqp" "$projp" 2>/dev/null || true
done
