#!/usr/bin/env bash
# The C CQL client beside the Python cassandra-driver, same statements, same run.
# Usage: bench/cql/run.sh [BUILD_DIR] [ROUNDS]
#   env: ANN_CQL_CONTACT (127.0.0.1:9042), ANN_CQL_USER/PASSWORD (cassandra),
#        N_INSERT (20000) N_BATCH (20000 rows) N_LWT (2000) W (64) WB (16) WL (16) B (50)
# Rounds alternate C and Python; the table shows each side's median ops/s.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build} rounds=${2:-5}
py=.venv/bin/python
[ -x "$py" ] || { echo "bench: no .venv (make deps)"; exit 1; }
"$py" -c "import cassandra" 2>/dev/null || { echo "bench: cassandra-driver missing (make deps)"; exit 1; }
N_INSERT=${N_INSERT:-20000} N_BATCH=${N_BATCH:-20000} N_LWT=${N_LWT:-2000}
W=${W:-64} WB=${WB:-16} WL=${WL:-16} B=${B:-50}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
stamp=$(date +%s)
for ((r = 1; r <= rounds; r++)); do
  seed=$((stamp % 100000 * 10 + r))
  for wl in insert batch lwt; do
    case $wl in insert) n=$N_INSERT w=$W;; batch) n=$N_BATCH w=$WB;; lwt) n=$N_LWT w=$WL;; esac
    "$build/bin/bench_cql" "$wl" "$n" "$w" "$B" "$seed" >>"$out"
    "$py" -W ignore bench/cql/bench_cql.py "$wl" "$n" "$w" "$B" "$seed" >>"$out"
  done
done
"$py" - "$out" "$rounds" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
print(f"CQL client throughput, median of {sys.argv[2]} rounds (ops/s; batch = rows/s)")
print(f"{'workload':10} {'C ann_cql':>12} {'py driver':>12} {'C/py':>6}")
for wl in ("insert", "batch", "lwt"):
    c = [float(r[4]) for r in rows if r[0] == "c" and r[1] == wl]
    p = [float(r[4]) for r in rows if r[0] == "py" and r[1] == wl]
    mc, mp = statistics.median(c), statistics.median(p)
    print(f"{wl:10} {mc:12.0f} {mp:12.0f} {mc / mp:6.2f}")
PY
