#!/usr/bin/env bash
# What the Merkle tree costs on ingest (issue 10, section 6): issue 2's ingest shape
# (annals-load ingest, 4 threads, batches of 1,000 entries of 200 B, 100 logs) against
# `annalsd serve --durability fsync` of this build (tree on) and of BASE, the same sources
# built with -DANN_BENCH_NO_TREE=ON (tree off: no salts drawn or stored, no leaves hashed, no
# checkpointer; built into build-notree/ when BASE is not given), RUNS runs of each,
# alternated, each on a fresh data directory; prints the medians and their ratio. Figures,
# never assertions. BASE may also be an older build's bin directory (d10b2aa: before the tree).
#   RUNS=5 DURATION=10 bench/integrity/ingest.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-build/bin}
if [ -z "${BASE:-}" ]; then
  cmake -S . -B build-notree -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DANN_BENCH_NO_TREE=ON \
      >/dev/null
  cmake --build build-notree --target annalsd >/dev/null
  BASE=build-notree/bin
fi
RUNS=${RUNS:-5}
DURATION=${DURATION:-10}
THREADS=${THREADS:-4}
OUT=$(mktemp -d /tmp/annals-integrity-ingest.XXXXXX)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

one() { # mode (off|on), run number -> "entries_per_s cpu_s_per_M"
  local mode=$1 n=$2 data="$OUT/data-$1-$2" addr="127.0.0.1:$(port)" bin=$BIN
  [ "$mode" = off ] && bin=$BASE
  key=$("$bin/annalsd" tenant create bench --data "$data" | tail -n 1)
  "$bin/annalsd" serve --data "$data" --listen "$addr" --durability fsync \
      >"$OUT/annalsd-$mode-$n.log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/${addr%:*}/${addr#*:}") 2>/dev/null && break; sleep 0.1; done
  ANNALS_ADDR=$addr ANNALS_TOKEN=$key "$BIN/annals-load" ingest --threads "$THREADS" --batch 1000 \
      --entry-size 200 --logs 100 --duration "$DURATION" --server-pid $pid >"$OUT/load-$mode-$n.txt"
  kill -TERM $pid; wait $pid || true
  du -sk "$data" | awk '{print $1}' >"$OUT/disk-$mode-$n.txt"
  rm -rf "$data"
  sed -n 's/^RESULT .*\bentries_per_s=\([^ ]*\).*\bserver_cpu_s_per_M=\([^ ]*\).*/\1 \2/p' \
      "$OUT/load-$mode-$n.txt"
}

for n in $(seq "$RUNS"); do
  for mode in off on; do
    r=$(one $mode "$n")
    echo "$mode $r" | tee -a "$OUT/results.txt" >&2
  done
done
med() { awk -v m="$1" -v c="$2" '$1 == m {print $c}' "$OUT/results.txt" | sort -g \
        | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
off=$(med off 2) on=$(med on 2) coff=$(med off 3) con=$(med on 3)
printf '\ntree cost, %s runs of %s s each, %s threads, batch 1000, 200 B, 100 logs, fsync\n' \
    "$RUNS" "$DURATION" "$THREADS"
printf '| | tree off (BASE) | tree on | on / off |\n|---|---|---|---|\n'
printf '| ingest entries/s (median) | %s | %s | %s |\n' "$off" "$on" \
    "$(awk -v a="$on" -v b="$off" 'BEGIN {printf "%.3f", a / b}')"
printf '| server CPU-s per M entries (median) | %s | %s | %s |\n' "$coff" "$con" \
    "$(awk -v a="$con" -v b="$coff" 'BEGIN {printf "%.3f", a / b}')"
printf 'raw results: %s\n' "$OUT"
