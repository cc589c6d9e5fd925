#!/usr/bin/env bash
# The investigator benchmarks (issue 7 §6; docs/bench.md, "Investigator queries"), from a
# clean state: builds annals (and VictoriaLogs v1.52.1 with `go install`, once), generates
# realistic CI-log text from a seed, and on temporary data directories
#   1. annalsd --durability fsync: loads the archive (LOGS logs, ENTRIES entries, planted
#      rare tokens), waits for the data directory to settle and measures its size; opens
#      every log once (the store seals only open logs), measures the settled size again, times
#      SearchLogEntries walks; loads one log of DEEP_ENTRIES entries and times
#      ReadLogEntries deep in it; creates MANY_LOGS labelled logs and times ListLogs;
#   2. ingest (annals-load, the shape of issue 2) on a fresh annalsd, with the blocks
#      (compression + index) on and, when annalsd has `--blocks`, off;
#   3. VictoriaLogs: the same lines (same _msg, labels as stream fields, same timestamps),
#      its data directory once settled, the comparable LogsQL queries;
# then prints a Markdown table and the commands, stops everything and removes the
# temporary directories. Figures are reported, never asserted.
#
#   bench/investigator/run.sh               # the full size (10 M entries; ~10 minutes)
#   SCALE=100 bench/investigator/run.sh     # a smoke run with 1/100 of the data (< 1 minute)
#
# Environment (defaults for SCALE=1): ENTRIES (10000000) LOGS (1000) DEEP_ENTRIES (10000000)
# MANY_LOGS (100000) JOBS (100 distinct job labels among them) REPS (50 timed repetitions of
# each search) POINT_REPS (500, ListLogs and ReadLogEntries) QUERY_BUDGET (20 s: a query
# stops repeating after that, with at least 3 timed repetitions; the LogsQL regexp, which
# reads every entry, stops after its first call) INGEST_DURATION (20 s) THREADS (4) SEED (1)
# SEARCH_WINDOW=1 (bound searches by a window holding every entry)
# SETTLE_POLL / SETTLE_STABLE / SETTLE_MIN / SETTLE_MAX (5 / 20 / 15 / 900 s: a data
# directory counts as settled once its size has not changed for SETTLE_STABLE seconds, and
# not before SETTLE_MIN: VictoriaLogs writes its in-memory parts every 5 s) VL=0 (skip VictoriaLogs) VL_BIN VL_MEM (1GiB) GO (/usr/local/go/bin/go)
# NO_BUILD=1 ANNALS_BIN (build/bin) KEEP=1 (keep the temporary directory).
set -euo pipefail
cd "$(dirname "$0")/../.."

SCALE=${SCALE:-1}
scaled() { # full-size value, minimum
    local v=$(($1 / SCALE))
    [ "$v" -ge "$2" ] || v=$2
    echo "$v"
}
ENTRIES=${ENTRIES:-$(scaled 10000000 1000)}
LOGS=${LOGS:-$(scaled 1000 10)}
DEEP_ENTRIES=${DEEP_ENTRIES:-$(scaled 10000000 1000)}
MANY_LOGS=${MANY_LOGS:-$(scaled 100000 1000)}
JOBS=${JOBS:-100}
REPS=${REPS:-50}
POINT_REPS=${POINT_REPS:-500}
QUERY_BUDGET=${QUERY_BUDGET:-$(scaled 20 1)}
INGEST_DURATION=${INGEST_DURATION:-$(scaled 20 2)}
THREADS=${THREADS:-4}
SEED=${SEED:-1}
SETTLE_POLL=${SETTLE_POLL:-$(scaled 5 1)}
SETTLE_STABLE=${SETTLE_STABLE:-$(scaled 20 3)}
SETTLE_MIN=${SETTLE_MIN:-$(scaled 15 5)}
SETTLE_MAX=${SETTLE_MAX:-900}
VL=${VL:-1}
VL_VERSION=v1.52.1
VL_MODULE=github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs
VL_BIN=${VL_BIN:-build/vl/$VL_VERSION/victoria-logs}
VL_MEM=${VL_MEM:-1GiB}
GO=${GO:-/usr/local/go/bin/go}
BIN=${ANNALS_BIN:-build/bin}
RUN_T0=$(date +%s)

log() { printf '== [%s s] %s\n' "$(($(date +%s) - RUN_T0))" "$*" >&2; }

# ---- build --------------------------------------------------------------------------------
if [ "${NO_BUILD:-0}" != 1 ]; then
    log "make build"
    make -s build >&2
fi
for b in annalsd annals-load annals-inv; do
    [ -x "$BIN/$b" ] || { echo "run.sh: $BIN/$b not found (make build)" >&2; exit 2; }
done
if [ "$VL" = 1 ] && [ ! -x "$VL_BIN" ]; then
    log "go install $VL_MODULE@$VL_VERSION (from the Go module proxy, once)"
    mkdir -p "$(dirname "$VL_BIN")"
    GOBIN=$(cd "$(dirname "$VL_BIN")" && pwd) GOFLAGS=-buildvcs=false \
        "$GO" install "$VL_MODULE@$VL_VERSION" >&2
fi
BLOCKS_FLAG=0
SERVE_USAGE=$("$BIN/annalsd" serve --help 2>&1 || true)
if grep -q -- '--blocks' <<<"$SERVE_USAGE"; then BLOCKS_FLAG=1; fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/annals-inv.XXXXXX")
OUT=$TMP/out
mkdir -p "$OUT"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do
        if kill -0 "$p" 2>/dev/null; then
            kill -TERM "$p"
            wait "$p" 2>/dev/null || true
        fi
    done
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() { # port, pid, log file
    for _ in $(seq 300); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        kill -0 "$2" 2>/dev/null || { cat "$3" >&2; exit 1; }
        sleep 0.1
    done
    echo "run.sh: nothing listens on 127.0.0.1:$1" >&2
    exit 1
}
stop() { # pid
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
get() { # file, key: the value of key= on its RESULT line
    sed -n "s/^RESULT .*\b$2=\([^ ]*\).*/\1/p" "$OUT/$1.txt" | head -n 1
}
du_alloc() { du -s -B1 "$1" 2>/dev/null | cut -f1 || echo 0; }
du_apparent() { du -s -b "$1" 2>/dev/null | cut -f1 || echo 0; }
# Waits until the size of a directory stops changing; sets SETTLED_BYTES, SETTLED_APPARENT
# and SETTLE_S (seconds from the call to the last change).
settle() { # dir, name
    local t0 now last=-1 since size
    t0=$(date +%s)
    since=$t0
    while :; do
        size=$(du_alloc "$1")
        now=$(date +%s)
        if [ "$size" != "$last" ]; then
            last=$size
            since=$now
            echo "  $2: $size bytes after $((now - t0)) s" >&2
        fi
        if [ $((now - t0)) -ge "$SETTLE_MIN" ] && [ $((now - since)) -ge "$SETTLE_STABLE" ]; then break; fi
        if [ $((now - t0)) -ge "$SETTLE_MAX" ]; then
            echo "  $2: still changing after $SETTLE_MAX s" >&2
            break
        fi
        sleep "$SETTLE_POLL"
    done
    SETTLED_BYTES=$last
    SETTLED_APPARENT=$(du_apparent "$1")
    SETTLE_S=$((since - t0))
}

# The server's peak resident set so far (VmHWM, MiB), noted after each phase.
HWM_NOTES=()
note_hwm() { # pid, phase
    HWM_NOTES+=("$2 $(awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$1/status" 2>/dev/null || echo n/a)")
}

CMDS=()
inv() { # name, annals-inv arguments... (output in $OUT/name.txt)
    local name=$1
    shift
    CMDS+=("$name: annals-inv $*")
    log "$name: annals-inv $*"
    "$BIN/annals-inv" "$@" | tee "$OUT/$name.txt" >&2 || echo "run.sh: $name failed" >&2
}

# An annalsd on a fresh data directory; sets SPID, ADDR and KEY_<tenant> for each tenant.
start_annalsd() { # name, "tenant ...", serve arguments...
    local name=$1 tenants=$2
    shift 2
    mkdir -p "$TMP/$name"
    for t in $tenants; do
        printf -v "KEY_$t" '%s' "$("$BIN/annalsd" tenant create "$t" --data "$TMP/$name/data" | tail -n 1)"
    done
    local port
    port=$(free_port)
    ADDR=127.0.0.1:$port
    "$BIN/annalsd" serve --data "$TMP/$name/data" --listen "$ADDR" --durability fsync "$@" \
        >"$TMP/$name/annalsd.log" 2>&1 &
    SPID=$!
    PIDS+=("$SPID")
    wait_port "$port" "$SPID" "$TMP/$name/annalsd.log"
    export ANNALS_ADDR=$ADDR
}

BASE=$(($(date +%s) - 40 * 3600))      # the archive: logs start over 36 h from 40 h ago
DEEP_BASE=$(($(date +%s) - 48 * 3600)) # the deep log: ~16 ms a line, ends before now
ARCH=(--seed "$SEED" --base-time "$BASE" --logs "$LOGS" --entries "$ENTRIES")
read -r _ RARE10 _ < <("$BIN/annals-inv" tokens | grep '^rare10 ')
read -r _ RARE1 _ < <("$BIN/annals-inv" tokens | grep '^rare1 ')
read -r _ RARE100 _ < <("$BIN/annals-inv" tokens | grep '^rare100 ')
read -r _ COMMON _ < <("$BIN/annals-inv" tokens | grep '^common ')
RARE10_LC=$(tr '[:upper:]' '[:lower:]' <<<"$RARE10")
QB=(--max-seconds "$QUERY_BUDGET")
# SEARCH_WINDOW=1 bounds every search by a window holding the whole archive (the same
# results; a workaround for servers whose unbounded walks do not progress).
SW=()
[ "${SEARCH_WINDOW:-0}" = 1 ] && SW=(--start-time "$((BASE - 3600))" --end-time "$(($(date +%s) + 3600))")

# ---- 1. annals: the archive, the deep log, many logs ----------------------------------------
inv gen gen "${ARCH[@]}" --format stats
SERVE_ON=()
[ "$BLOCKS_FLAG" = 1 ] && SERVE_ON=(--blocks on)
start_annalsd main "archive deep many" "${SERVE_ON[@]}"
MAIN_PID=$SPID
ANNALS_TOKEN=$KEY_archive inv load load "${ARCH[@]}" --threads "$THREADS" --server-pid "$MAIN_PID"
log "annals: waiting for the data directory to settle"
settle "$TMP/main/data" annals
A0_BYTES=$SETTLED_BYTES A0_SETTLE=$SETTLE_S
note_hwm "$MAIN_PID" load
# The store seals only the logs it holds open (at most 512 by default): open every log
# once, 256 at a time, each batch left to seal, then wait for the size to settle again.
ANNALS_TOKEN=$KEY_archive inv touch touch --data-dir "$TMP/main/data" --batch-logs 256 --stable-s 3
SETTLE_MIN=0 settle "$TMP/main/data" annals
A_BYTES=$SETTLED_BYTES A_APPARENT=$SETTLED_APPARENT
A_SETTLE=$(awk -v t="$(get touch seconds)" -v s="$SETTLE_S" 'BEGIN { printf "%.0f", t + s }')
note_hwm "$MAIN_PID" touch
(cd "$TMP/main/data" && du -s -B1 -- * 2>/dev/null) >"$OUT/annals-du.txt" || true
cat "$OUT/annals-du.txt" >&2
export ANNALS_TOKEN=$KEY_archive
inv a-rare10 search "${SW[@]}" --query "$RARE10" --reps "$REPS" "${QB[@]}" --expect 10
inv a-icase search "${SW[@]}" --query "$RARE10_LC" --ignore-case --reps "$REPS" "${QB[@]}" --expect 10
inv a-common search "${SW[@]}" --query "$COMMON" --first-page --reps "$REPS" "${QB[@]}" --expect 100
inv a-rare1 search "${SW[@]}" --query "$RARE1" --reps "$REPS" "${QB[@]}" --expect 1
inv a-rare100 search "${SW[@]}" --query "$RARE100" --reps "$REPS" "${QB[@]}" --expect 100
note_hwm "$MAIN_PID" searches
export ANNALS_TOKEN=$KEY_deep
inv deep deep --entries "$DEEP_ENTRIES" --seed "$((SEED + 1))" --base-time "$DEEP_BASE" \
    --threads "$THREADS" --server-pid "$MAIN_PID"
DEEP_LOG=$(get deep log)
log "annals: waiting for the deep log to settle (sealing)"
settle "$TMP/main/data" annals
DEEP_SETTLE=$SETTLE_S
note_hwm "$MAIN_PID" deep-load
inv a-read read --log "$DEEP_LOG" --entries "$DEEP_ENTRIES" --reps "$POINT_REPS" "${QB[@]}"
note_hwm "$MAIN_PID" reads
export ANNALS_TOKEN=$KEY_many
inv mklogs mklogs --count "$MANY_LOGS" --jobs "$JOBS" --threads 64
PER_JOB=$((MANY_LOGS / JOBS))
[ "$PER_JOB" -le 100 ] || PER_JOB=100
inv a-listlogs listlogs --jobs "$JOBS" --reps "$POINT_REPS" "${QB[@]}" --expect "$PER_JOB"
note_hwm "$MAIN_PID" logs
MAIN_HWM=$(awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$MAIN_PID/status" 2>/dev/null || echo n/a)
stop "$MAIN_PID"

# ---- 2. ingest, blocks on and off -------------------------------------------------------------
ingest() { # name, serve arguments...
    local name=$1
    shift
    start_annalsd "$name" bench "$@"
    local cmd=(ingest --threads 4 --batch 1000 --entry-size 200 --logs 100 --duration "$INGEST_DURATION")
    CMDS+=("$name: annals-load ${cmd[*]} (annalsd serve --durability fsync $*)")
    log "$name: annals-load ${cmd[*]}"
    ANNALS_TOKEN=$KEY_bench "$BIN/annals-load" "${cmd[@]}" --server-pid "$SPID" |
        tee "$OUT/$name.txt" >&2 || echo "run.sh: $name failed" >&2
    stop "$SPID"
    rm -rf "$TMP/$name"
}
ingest ingest-on "${SERVE_ON[@]}"
if [ "$BLOCKS_FLAG" = 1 ]; then ingest ingest-off --blocks off; fi

# ---- 3. VictoriaLogs ---------------------------------------------------------------------------
if [ "$VL" = 1 ]; then
    mkdir -p "$TMP/vl"
    VPORT=$(free_port)
    VURL=127.0.0.1:$VPORT
    VL_ARGS=(-httpListenAddr="$VURL" -storageDataPath="$TMP/vl/data" -retentionPeriod=30d
        -memory.allowedBytes="$VL_MEM" -search.maxQueryDuration=600s)
    CMDS+=("victoria-logs ${VL_ARGS[*]}")
    log "victoria-logs ${VL_ARGS[*]}"
    "$VL_BIN" "${VL_ARGS[@]}" >"$TMP/vl/vl.log" 2>&1 &
    VPID=$!
    PIDS+=("$VPID")
    wait_port "$VPORT" "$VPID" "$TMP/vl/vl.log"
    inv vl-load vl-load "${ARCH[@]}" --url "$VURL" --threads 2 --server-pid "$VPID"
    log "VictoriaLogs: waiting for the data directory to settle"
    # VictoriaLogs writes its in-memory parts to disk every 5 s or later: never settle before 15 s.
    SETTLE_MIN=$((SETTLE_MIN > 15 ? SETTLE_MIN : 15)) settle "$TMP/vl/data" victoria-logs
    V_BYTES=$SETTLED_BYTES V_APPARENT=$SETTLED_APPARENT V_SETTLE=$SETTLE_S
    inv vl-count vl-count --url "$VURL"
    V=(--url "$VURL" --reps "$REPS" "${QB[@]}" "${SW[@]}")
    inv v-rare10-sub vl-query "${V[@]}" --query "*$RARE10*" --expect 10
    inv v-rare10-phrase vl-query "${V[@]}" --query "\"$RARE10\"" --expect 10
    inv v-icase-re vl-query "${V[@]}" --min-reps 0 --query "~\"(?i)$RARE10_LC\"" --expect 10
    inv v-icase-i vl-query "${V[@]}" --query "i(\"$RARE10_LC\")" --expect 10
    inv v-common-sub vl-query "${V[@]}" --query "*$COMMON*" --limit 100 --expect 100
    inv v-common-word vl-query "${V[@]}" --query "$COMMON" --limit 100 --expect 100
    VL_HWM=$(awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$VPID/status" 2>/dev/null || echo n/a)
    stop "$VPID"
fi
RUN_S=$(($(date +%s) - RUN_T0))

# ---- the table ----------------------------------------------------------------------------
pp() { # file: "p50 / p99" (with n and a mark when the results were not as expected)
    [ -s "$OUT/$1.txt" ] || { echo "not run"; return; }
    local ok n
    ok=$(get "$1" ok)
    n=$(get "$1" reps)
    if [ "$n" = 0 ]; then
        printf 'one call: %s' "$(get "$1" first_ms)"
    else
        printf '%s / %s (n=%s, first %s' "$(get "$1" p50_ms)" "$(get "$1" p99_ms)" "$n" "$(get "$1" first_ms)"
        case "$1" in a-rare* | a-icase) printf ', %s calls' "$(get "$1" calls_per_rep)" ;; esac
        printf ')'
    fi
    [ "$ok" = 1 ] || printf ' WRONG RESULTS'
}
p50() { if [ "$(get "$1" reps)" = 0 ]; then get "$1" first_ms; else get "$1" p50_ms; fi; }
p99() { if [ "$(get "$1" reps)" = 0 ]; then get "$1" first_ms; else get "$1" p99_ms; fi; }
ratio() { # annals file, VictoriaLogs file: annals ÷ VL for p50 and p99
    [ -s "$OUT/$1.txt" ] && [ -s "$OUT/$2.txt" ] || { echo "-"; return; }
    awk -v a="$(p50 "$1")" -v b="$(p50 "$2")" -v c="$(p99 "$1")" -v d="$(p99 "$2")" \
        'BEGIN { if (b > 0 && d > 0) printf "%.3f / %.3f", a / b, c / d; else print "-" }'
}
per_entry() { awk -v b="$1" -v n="$2" 'BEGIN { if (n > 0) printf "%.1f", b / n; else print "-" }'; }
A_E=$(get load entries)
V_E=${ENTRIES}
[ "$VL" = 1 ] && V_E=$(get vl-count entries)
cpu=$(nproc)
model=$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)
{
    printf '\nannals investigator benchmark, %s, %s CPUs (%s), annalsd --durability fsync%s; VictoriaLogs %s\n' \
        "$(date -u +%FT%TZ)" "$cpu" "$model" "$([ "$BLOCKS_FLAG" = 1 ] && echo ' --blocks on' || echo ' (no --blocks option)')" "$VL_VERSION"
    printf 'archive: %s logs, %s entries of CI-log text (mean %s bytes), seed %s; p50 / p99 in ms over n timed repetitions after an untimed first call%s\n\n' \
        "$LOGS" "$ENTRIES" "$(get gen mean_bytes)" "$SEED" \
        "$([ "${SEARCH_WINDOW:-0}" = 1 ] && echo '; every search within a time window holding the whole archive')"
    printf '| figure | annals | VictoriaLogs | annals ÷ VL (p50 / p99) | target |\n|---|---|---|---|---|\n'
    printf '| search walk, rare token (10 hits), all pages | %s | `*%s*`: %s | %s | p99 <= 50 |\n' \
        "$(pp a-rare10)" "$RARE10" "$(pp v-rare10-sub)" "$(ratio a-rare10 v-rare10-sub)"
    printf '| same, VictoriaLogs phrase filter | | `"%s"`: %s | %s | |\n' \
        "$RARE10" "$(pp v-rare10-phrase)" "$(ratio a-rare10 v-rare10-phrase)"
    printf '| search walk, rare token, ignore_case | %s | `~"(?i)%s"`: %s | %s | |\n' \
        "$(pp a-icase)" "$RARE10_LC" "$(pp v-icase-re)" "$(ratio a-icase v-icase-re)"
    printf '| same, VictoriaLogs `i()` phrase filter | | `i("%s")`: %s | %s | |\n' \
        "$RARE10_LC" "$(pp v-icase-i)" "$(ratio a-icase v-icase-i)"
    printf '| search, common word `%s` (%s%% of entries), first page of 100 | %s | `*%s*` limit=100: %s | %s | |\n' \
        "$COMMON" "$(get gen common_pct)" "$(pp a-common)" "$COMMON" "$(pp v-common-sub)" "$(ratio a-common v-common-sub)"
    printf '| same, VictoriaLogs word filter | | `%s` limit=100: %s | %s | |\n' \
        "$COMMON" "$(pp v-common-word)" "$(ratio a-common v-common-word)"
    printf '| search walk, token with 1 hit | %s | | | |\n' "$(pp a-rare1)"
    printf '| search walk, token with 100 hits | %s | | | |\n' "$(pp a-rare100)"
    printf '| ListLogs, label filter job=job-NNN, first page (%s logs, %s job values) | %s | n/a | | p99 <= 5 |\n' \
        "$MANY_LOGS" "$JOBS" "$(pp a-listlogs)"
    printf '| ReadLogEntries, 100 entries from a random id (log of %s; sealing settled %s s after its load) | %s | n/a | | p99 <= 2 |\n' \
        "$DEEP_ENTRIES" "$DEEP_SETTLE" "$(pp a-read)"
    printf '| bytes on disk per entry, sealed: every log opened once, then settled | %s (%s B in all; %s s from the first open to the last change) | %s (%s B; last change %s s after the load) | %s | |\n' \
        "$(per_entry "$A_BYTES" "$A_E")" "$A_BYTES" "$A_SETTLE" \
        "$([ "$VL" = 1 ] && per_entry "$V_BYTES" "$V_E" || echo -)" "${V_BYTES:--}" "${V_SETTLE:--}" \
        "$([ "$VL" = 1 ] && awk -v a="$A_BYTES" -v b="$V_BYTES" 'BEGIN { if (b > 0) printf "%.2f", a / b }' || echo -)"
    printf '| bytes on disk per entry, left alone after the load | %s (%s B; last change %s s after the load) | | %s | |\n' \
        "$(per_entry "$A0_BYTES" "$A_E")" "$A0_BYTES" "$A0_SETTLE" \
        "$([ "$VL" = 1 ] && awk -v a="$A0_BYTES" -v b="$V_BYTES" 'BEGIN { if (b > 0) printf "%.2f", a / b }' || echo -)"
    printf '| ingest entries/s, blocks on (issue 2 shape) | %s (p99 write %s ms, %s CPU-s/M) | | | >= 300,000 |\n' \
        "$(get ingest-on entries_per_s)" "$(get ingest-on p99_ms)" "$(get ingest-on server_cpu_s_per_M)"
    if [ "$BLOCKS_FLAG" = 1 ]; then
        printf '| ingest entries/s, blocks off | %s (p99 write %s ms, %s CPU-s/M) | | | |\n' \
            "$(get ingest-off entries_per_s)" "$(get ingest-off p99_ms)" "$(get ingest-off server_cpu_s_per_M)"
    else
        printf '| ingest entries/s, blocks off | not measured: this annalsd has no --blocks option | | | |\n'
    fi
    printf '| archive load entries/s (CI text, %s writers, whole logs) | %s (%s CPU-s/M) | %s (%s CPU-s/M, no fsync) | | |\n' \
        "$THREADS" "$(get load entries_per_s)" "$(get load server_cpu_s_per_M)" \
        "$(get vl-load entries_per_s)" "$(get vl-load server_cpu_s_per_M)"
    printf '| server peak RSS MiB | %s (whole of step 1) | %s (-memory.allowedBytes=%s) | | |\n' \
        "$MAIN_HWM" "${VL_HWM:--}" "$VL_MEM"
    printf '\nentries counted: annals %s, VictoriaLogs %s; apparent sizes (du -b): annals %s B, VictoriaLogs %s B\n' \
        "$A_E" "$V_E" "$A_APPARENT" "${V_APPARENT:--}"
    printf 'annalsd peak RSS (MiB) after each phase of step 1: %s\n' "${HWM_NOTES[*]}"
    printf 'whole run: %s s\n\ncommands:\n' "$RUN_S"
    printf '  SCALE=%s ENTRIES=%s LOGS=%s DEEP_ENTRIES=%s MANY_LOGS=%s REPS=%s POINT_REPS=%s QUERY_BUDGET=%s INGEST_DURATION=%s SEED=%s bench/investigator/run.sh\n' \
        "$SCALE" "$ENTRIES" "$LOGS" "$DEEP_ENTRIES" "$MANY_LOGS" "$REPS" "$POINT_REPS" "$QUERY_BUDGET" "$INGEST_DURATION" "$SEED"
    for c in "${CMDS[@]}"; do printf '  %s\n' "$c"; done
}
