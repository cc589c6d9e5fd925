#!/usr/bin/env bash
# The cost of metrics on ingest (docs/operations.md, "Cost"): issue 2's ingest shape
# (annals-load ingest, 4 threads, batches of 1,000 entries of 200 B, 100 logs,
# --durability fsync) against `annalsd serve` without --http (metrics off) and with --http
# (metrics on, /metrics scraped every second meanwhile: 15x a usual Prometheus interval).
# RUNS runs of each, alternated, each on a fresh data directory; prints the medians, their
# ratio, and the /metrics scrape time after the last run. Figures, never assertions.
#   RUNS=3 DURATION=10 bench/metrics.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/bin}
RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
THREADS=${THREADS:-4}
OUT=$(mktemp -d /tmp/annals-metrics-bench.XXXXXX)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

one() { # mode (off|on), run number -> "entries_per_s cpu_s_per_M"
  local mode=$1 n=$2 data="$OUT/data-$1-$2" addr="127.0.0.1:$(port)" http="127.0.0.1:$(port)"
  local extra=() scraper=
  [ "$mode" = on ] && extra=(--http "$http")
  key=$("$BIN/annalsd" tenant create bench --data "$data" | tail -n 1)
  "$BIN/annalsd" serve --data "$data" --listen "$addr" --durability fsync "${extra[@]}" \
      >"$OUT/annalsd-$mode-$n.log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/${addr%:*}/${addr#*:}") 2>/dev/null && break; sleep 0.1; done
  if [ "$mode" = on ]; then
    (while kill -0 $pid 2>/dev/null; do curl -s -o /dev/null "http://$http/metrics" || true; sleep 1; done) &
    scraper=$!
  fi
  ANNALS_ADDR=$addr ANNALS_TOKEN=$key "$BIN/annals-load" ingest --threads "$THREADS" --batch 1000 \
      --entry-size 200 --logs 100 --duration "$DURATION" --server-pid $pid >"$OUT/load-$mode-$n.txt"
  if [ "$mode" = on ]; then # the scrape time on a store that just took the whole run
    for _ in $(seq 50); do curl -s -o /dev/null -w '%{time_total}\n' "http://$http/metrics"; done \
        | sort -n >"$OUT/scrape-$n.txt"
    curl -s "http://$http/metrics" >"$OUT/metrics-$n.txt"
    kill $scraper 2>/dev/null || true
  fi
  kill -TERM $pid; wait $pid || true
  [ -n "$scraper" ] && { wait $scraper 2>/dev/null || true; }
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
printf '\nmetrics cost, %s runs of %s s each, %s threads, batch 1000, 200 B, 100 logs, fsync\n' \
    "$RUNS" "$DURATION" "$THREADS"
printf '| | metrics off | metrics on | on / off |\n|---|---|---|---|\n'
printf '| ingest entries/s (median) | %s | %s | %s |\n' "$off" "$on" \
    "$(awk -v a="$on" -v b="$off" 'BEGIN {printf "%.3f", a / b}')"
printf '| server CPU-s per M entries (median) | %s | %s | %s |\n' "$coff" "$con" \
    "$(awk -v a="$con" -v b="$coff" 'BEGIN {printf "%.3f", a / b}')"
last=$OUT/scrape-$RUNS.txt
printf '| /metrics scrape, curl time_total p50 / max ms | %s / %s | | %s bytes |\n' \
    "$(awk '{a[NR]=$1} END {printf "%.2f", a[int((NR+1)/2)] * 1000}' "$last")" \
    "$(awk 'END {printf "%.2f", $1 * 1000}' "$last")" "$(wc -c <"$OUT/metrics-$RUNS.txt")"
printf 'raw results: %s\n' "$OUT"
