#!/usr/bin/env bash
# The distributed benchmark (docs/bench.md, "Distributed mode"): issue 2's shape (4 clients,
# batches of 1,000, 200-byte text, 100 logs) on the running single-node engines
# (make services-up), with annalsd's roles as separate processes in a fresh namespace:
#
#   raw        annals-dist raw: a librdkafka producer, the same records into a twin topic
#   durable    annals-load --wait durable (own namespace; its sequencer and projector are
#              SIGSTOPped for the timed phase, then killed: the backlog is never sequenced)
#   sequenced  annals-load --wait sequenced for DURATION s, then until the read model caught up
#   queryable  annals-load --wait queryable for DURATION s
#   half       annals-load --wait queryable at half the queryable rate, 10 tail followers
#   sizes      Cassandra keyspace on disk after nodetool flush; PostgreSQL schema sizes
#
# Environment: ANNALS_BIN (build/bin), DURATION (60), SHORT (20: raw and durable), HALF (30),
# THREADS (4), SERVER_IDS=1 (no insert_ids: the API server makes them; no tail followers
# then, as they follow requests by their insert_ids), ANNALS_SERVICES (the engines' state: ./.services, else the main checkout's),
# KEEP=1 keeps the namespaces (topics, keyspace, schema). About 5 minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."

BIN=${ANNALS_BIN:-build/bin}
DURATION=${DURATION:-60}
SHORT=${SHORT:-20}
HALF=${HALF:-30}
THREADS=${THREADS:-4}
SHAPE=(--threads "$THREADS" --batch 1000 --entry-size 200 --logs 100)
TAILS=(--tails 10)
if [ "${SERVER_IDS:-0}" = 1 ]; then SHAPE+=(--server-ids 1); TAILS=(); fi
for b in annalsd annals-load annals-dist; do
  [ -x "$BIN/$b" ] || { echo "bench/distributed/run.sh: $BIN/$b not found (make build)" >&2; exit 2; }
done
SERVICES=${ANNALS_SERVICES:-}
if [ -z "$SERVICES" ]; then
  SERVICES=.services
  [ -d "$SERVICES" ] || SERVICES="$(cd "$(git rev-parse --git-common-dir)/.." && pwd)/.services"
fi
KPID=$(cat "$SERVICES/kafka/node1/kafka.pid")
CPID=$(cat "$SERVICES/cassandra/node1/cassandra.pid")
PGPID=$(head -n 1 "$SERVICES/postgres/node1/data/postmaster.pid")
HZ=$(getconf CLK_TCK)

NS=bd$(date +%s)_$$
NSD=${NS}_d
NSR=${NS}_raw
OUT=$(mktemp -d "${TMPDIR:-/tmp}/annals-dbench.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do
    kill -CONT "$p" 2>/dev/null || true
    kill -TERM "$p" 2>/dev/null || true
  done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "${KEEP:-0}" = 1 ]; then
    echo "kept: namespaces $NS $NSD $NSR, output $OUT" >&2
  else
    "$BIN/annals-dist" drop --ns "$NS,$NSD,$NSR" >&2 || true
    echo "output in $OUT" >&2
  fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start() { # role, namespace, instance, [serve args]: starts a role; its pid in LAST
  # One at a time, and again when the topics just created are not yet in the broker's
  # metadata (ann_kafka_ensure_topics checks their partitions at once: "Unknown topic or
  # partition" on a fresh namespace).
  for _try in 1 2 3 4 5; do
    "$BIN/annalsd" "$1" --namespace "$2" --instance "$3" "${@:4}" >"$OUT/$3.log" 2>&1 &
    LAST=$!
    for _ in $(seq 300); do
      if grep -q "(distributed, namespace" "$OUT/$3.log"; then PIDS+=("$LAST"); return 0; fi
      kill -0 "$LAST" 2>/dev/null || break
      sleep 0.1
    done
    wait "$LAST" 2>/dev/null || true
    grep -q "Unknown topic or partition" "$OUT/$3.log" || break
    echo "annalsd $1 $2: topics not in the metadata yet; again" >&2
    sleep 1
  done
  cat "$OUT/$3.log" >&2
  exit 1
}
wait_port() {
  for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "annalsd did not listen on $1" >&2; exit 1
}

# CPU ticks of a process; PostgreSQL: the postmaster, its children, and the reaped ones.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
pg_ticks() {
  local t
  t=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$PGPID/stat")
  for c in $(pgrep -P "$PGPID"); do t=$((t + $(ticks "$c"))); done
  echo "$t"
}
snap() { echo "$(ticks "$1") $(ticks "$2") $(ticks "$3") $(ticks "$KPID") $(ticks "$CPID") $(pg_ticks)"; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
# cpu_per_m BEFORE AFTER ENTRIES: CPU-s per million entries of serve seq proj kafka cassandra pg
cpu_per_m() {
  awk -v a="$1" -v b="$2" -v n="$3" -v hz="$HZ" 'BEGIN {
    split(a, x, " "); split(b, y, " ");
    for (i = 1; i <= 6; i++) printf "%s%.2f", (i > 1 ? " " : ""), (y[i] - x[i]) / hz / (n / 1e6);
    print "" }'
}
get() { sed -n "s/^RESULT .*\b$2=\([^ ]*\).*/\1/p" "$OUT/$1.txt" | head -n 1; }
seq_now() { "$BIN/annals-dist" watch --ns "$1" --interval 0 | sed -n 's/.*sequenced=\([0-9-]*\).*/\1/p'; }
# drain NS: waits (up to 180 s) until visible == sequenced; prints the seconds it took
drain() {
  local t0 l
  t0=$(date +%s.%N)
  for _ in $(seq 360); do
    l=$("$BIN/annals-dist" watch --ns "$1" --interval 0 | sed -n 's/.*lag=\([0-9-]*\).*/\1/p')
    [ "$l" = 0 ] && break
    sleep 0.5
  done
  awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'
}
CMDS=()
run_load() { # name, annals-load arguments
  local name=$1; shift
  CMDS+=("$name: annals-load $*")
  echo "== $name: annals-load $* (load $(load))" >&2
  "$BIN/annals-load" "$@" > "$OUT/$name.txt" 2> "$OUT/$name.err" || echo "$name: failures (see $OUT/$name.err)" >&2
  cat "$OUT/$name.txt" >&2
}

# ---- the deployment: one namespace for the sustained shapes, one for DURABLE
PORT=$(free_port); PORTD=$(free_port)
KEY=$("$BIN/annalsd" tenant create bench --namespace "$NS" 2>>"$OUT/tenant.log" | tail -n 1)
KEYD=$("$BIN/annalsd" tenant create bench --namespace "$NSD" 2>>"$OUT/tenant.log" | tail -n 1)
start sequence "$NS" seq1; SEQ=$LAST
start project "$NS" proj1; PROJ=$LAST
start serve "$NS" api1 --listen "127.0.0.1:$PORT"; API=$LAST
start sequence "$NSD" seqd; SEQD=$LAST
start project "$NSD" projd; PROJD=$LAST
start serve "$NSD" apid --listen "127.0.0.1:$PORTD"; APID=$LAST
wait_port "$PORT"; wait_port "$PORTD"
echo "namespaces $NS (sustained) $NSD (durable) $NSR (raw twin); output in $OUT" >&2
export ANNALS_TOKEN=$KEY ANNALS_ADDR=127.0.0.1:$PORT

# ---- raw producer, then DURABLE, same shape and duration
L_RAW=$(load); k0=$(ticks "$KPID")
CMDS+=("raw: annals-dist raw --ns $NSR --threads $THREADS --batch 1000 --entry-size 200 --logs 100 --duration $SHORT")
"$BIN/annals-dist" raw --ns "$NSR" --threads "$THREADS" --duration "$SHORT" > "$OUT/raw.txt"
K_RAW=$(awk -v a="$k0" -v b="$(ticks "$KPID")" -v hz="$HZ" -v n="$(get raw entries)" 'BEGIN { printf "%.2f", (b - a) / hz / (n / 1e6) }')
cat "$OUT/raw.txt" >&2

L_DUR=$(load); s0=$(snap "$APID" "$SEQD" "$PROJD")
ANNALS_ADDR=127.0.0.1:$PORTD ANNALS_TOKEN=$KEYD \
  run_load durable ingest "${SHAPE[@]}" --duration "$SHORT" --wait durable --server-pid "$APID" \
  --stop-pids "$SEQD,$PROJD"
C_DUR=$(cpu_per_m "$s0" "$(snap "$APID" "$SEQD" "$PROJD")" "$(get durable entries)")
kill -KILL "$SEQD" "$PROJD" 2>/dev/null || true
kill -TERM "$APID" 2>/dev/null || true

# ---- sustained: SEQUENCED (then the read model catches up), QUERYABLE
"$BIN/annals-dist" watch --ns "$NS" --interval 1 > "$OUT/watch.txt" 2>&1 &
WATCH=$!; PIDS+=("$WATCH")
phase() { # name, wait: a sustained shape; the window for CPU includes the read model's drain
  local s0 q0 t0 t1
  L_PHASE[$1]=$(load); s0=$(snap "$API" "$SEQ" "$PROJ"); q0=$(seq_now "$NS")
  t0=$(date +%s.%N)
  run_load "$1" ingest "${SHAPE[@]}" --duration "$DURATION" --wait "$2" --server-pid "$API"
  t1=$(date +%s.%N)
  DRAIN[$1]=$(drain "$NS")
  CPU[$1]=$(cpu_per_m "$s0" "$(snap "$API" "$SEQ" "$PROJ")" "$(( $(seq_now "$NS") - q0 ))")
  # the read model's lag during the timed phase: max and last sample, in entries
  LAG[$1]=$(awk -v a="$t0" -v b="$t1" '{ split($2, t, "="); split($5, l, "=");
      if (t[2] >= a && t[2] <= b) { if (l[2] > m) m = l[2]; last = l[2] } }
      END { printf "%d %d", m, last }' "$OUT/watch.txt")
}
declare -A L_PHASE DRAIN CPU LAG
phase sequenced sequenced
phase queryable queryable

# ---- latency at half the QUERYABLE rate, with tail followers
RATE=$(awk -v r="$(get queryable entries_per_s)" 'BEGIN { printf "%d", r / 2 }')
L_HALF=$(load)
run_load half ingest "${SHAPE[@]}" --duration "$HALF" --wait queryable --entry-rate "$RATE" \
  "${TAILS[@]}" --server-pid "$API"
kill -TERM "$WATCH" 2>/dev/null || true

# ---- bytes per entry
nodetool() { # the JPMS options Cassandra's own scripts give (deploy/cassandra/jvm.options)
  # shellcheck disable=SC2046
  java $(grep -E '^--add-(exports|opens)' deploy/cassandra/jvm.options) \
    -cp "$(cat "$SERVICES/cassandra/classpath.txt")" org.apache.cassandra.tools.NodeTool \
    -h 127.0.0.1 -p 7199 "$@"
}
nodetool flush "$NS" >"$OUT/flush.log" 2>&1 || echo "nodetool flush failed ($OUT/flush.log)" >&2
# reads and writes per table (the sequencer's insert_id lookups are the reads)
nodetool tablestats "$NS" >"$OUT/tablestats.txt" 2>&1 || true
CSTATS=$(awk '/Table: / {t = $2} /Local read count/ {r[t] = $4} /Local write count/ {w[t] = $4}
  END { for (t in r) if (r[t] + w[t] > 1000) printf "%s %s reads %s writes; ", t, r[t], w[t] }' "$OUT/tablestats.txt")
CBYTES=$(du -sb "$SERVICES/cassandra/node1/data/$NS" | cut -f1)
CENT=$(du -scb "$SERVICES"/cassandra/node1/data/"$NS"/log_*-* | tail -n 1 | cut -f1)
"$BIN/annals-dist" sizes --ns "$NS" > "$OUT/sizes.txt"
N=$(get sizes sequenced)

cpu=$(nproc); model=$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)
per() { awk -v b="$1" -v n="$2" 'BEGIN { printf "%.0f", b / n }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
printf '\nannals distributed benchmark, %s, %s CPUs (%s), namespace %s, engines single-node\n' \
  "$(date -u +%FT%TZ)" "$cpu" "$model" "$NS"
printf 'CPU-s per M entries are: serve / sequence / project | kafka / cassandra / postgres\n\n'
printf '| figure | measured | target | wait, load avg (1/5/15 min at start) |\n|---|---|---|---|\n'
printf '| raw librdkafka producer entries/s | %s | | %s threads x 1 record in flight, %s s; %s |\n' "$(get raw entries_per_s)" "$THREADS" "$SHORT" "$L_RAW"
printf '| ingest entries/s at DURABLE | %s (%s of raw) | >= 0.5 of raw | durable, %s s; %s |\n' "$(get durable entries_per_s)" "$(ratio "$(get durable entries_per_s)" "$(get raw entries_per_s)")" "$SHORT" "$L_DUR"
printf '| write latency p50 / p99 ms: raw, DURABLE | %s / %s, %s / %s | | |\n' "$(get raw p50_ms)" "$(get raw p99_ms)" "$(get durable p50_ms)" "$(get durable p99_ms)"
printf '| ingest entries/s at SEQUENCED | %s | | sequenced, %s s; %s |\n' "$(get sequenced entries_per_s)" "$DURATION" "${L_PHASE[sequenced]}"
printf '| read model lag max / at end (entries), drain s | %s / %s, %s | bounded | same |\n' ${LAG[sequenced]} "${DRAIN[sequenced]}"
printf '| ingest entries/s at QUERYABLE | %s | >= 50,000 | queryable, %s s; %s |\n' "$(get queryable entries_per_s)" "$DURATION" "${L_PHASE[queryable]}"
printf '| read model lag max / at end (entries) | %s / %s | bounded | same |\n' ${LAG[queryable]}
printf '| write latency p50 / p99 ms: SEQUENCED, QUERYABLE | %s / %s, %s / %s | | |\n' "$(get sequenced p50_ms)" "$(get sequenced p99_ms)" "$(get queryable p50_ms)" "$(get queryable p99_ms)"
printf '| CPU-s per M entries, DURABLE | %s | <= 1 per role | serve only (the others stopped) |\n' "$C_DUR"
printf '| kafka CPU-s per M entries, raw | %s | | |\n' "$K_RAW"
printf '| CPU-s per M entries, SEQUENCED (+drain) | %s | <= 1 per role | |\n' "${CPU[sequenced]}"
printf '| CPU-s per M entries, QUERYABLE | %s | <= 1 per role | |\n' "${CPU[queryable]}"
printf '| write-to-queryable p50 / p99 ms | %s / %s | p99 <= 1000 | queryable at %s entries/s (%s achieved); %s |\n' "$(get half p50_ms)" "$(get half p99_ms)" "$RATE" "$(get half entries_per_s)" "$L_HALF"
printf '| write-to-tail p50 / p99 ms | %s / %s | p99 <= 1000 | same, 10 followers: %s of %s requests seen whole |\n' "$(get half tail_p50_ms)" "$(get half tail_p99_ms)" "$(get half tailed)" "$(get half tail_want)"
printf '| Cassandra bytes per entry | %s (log_* tables: %s) | | keyspace after nodetool flush, %s entries |\n' "$(per "$CBYTES" "$N")" "$(per "$CENT" "$N")" "$N"
printf '| PostgreSQL bytes per entry | %s (entries partitions with rows: %s) | | pg_total_relation_size, %s entries |\n' "$(per "$(get sizes pg_bytes)" "$N")" "$(per "$(get sizes pg_entries_bytes)" "$N")" "$N"
printf '\nCassandra table operations (nodetool tablestats): %s\n' "$CSTATS"
printf '\ncommands (a fresh namespace; ANNALS_ADDR/ANNALS_TOKEN of `annalsd tenant create bench --namespace NS`):\n'
printf '  DURATION=%s SHORT=%s HALF=%s THREADS=%s bench/distributed/run.sh\n' "$DURATION" "$SHORT" "$HALF" "$THREADS"
printf '  annalsd sequence|project|serve --namespace NS --instance NAME [--listen ADDR]\n'
for c in "${CMDS[@]}"; do printf '  %s\n' "$c"; done
