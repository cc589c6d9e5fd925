#!/usr/bin/env bash
# Measures one engine's start-up time and memory, as docs/engines.md reports them.
# Usage: deploy/measure.sh ENGINE MODE     ENGINE: cassandra|kafka|postgres
#   MODE restart : stop the node, start it again on its existing data
#        cold    : stop it, delete its directory, start it (jars from the Maven cache)
#        download: as cold, with an empty Maven repository (every jar downloaded)
# Works on node ${ANN_NODE:-1}; ANN_NODE=2 measures a standalone node on 127.0.0.2 and
# leaves node 1 alone. Prints: engine mode seconds-to-healthy RSS-MiB PSS-MiB load-average.
# RSS/PSS are taken 10 s after the engine is healthy, summed over the server's processes.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
engine=${1:?engine}; mode=${2:?mode}
node=${ANN_NODE:-1}
dir=$ANN_SERVICES/$engine/node$node
"$ANN_DEPLOY/services-down.sh" "$engine" >/dev/null
case $mode in
  restart) ;;
  cold) rm -rf "$dir" ;;
  download)
    rm -rf "$dir"
    repo=$(mktemp -d /tmp/annals-m2.XXXXXX)
    export MAVEN_OPTS="${MAVEN_OPTS:-} -Dmaven.repo.local=$repo" ;;
  *) die "mode: restart, cold or download" ;;
esac
t0=$(date +%s.%N)
"$ANN_DEPLOY/services-up.sh" "$engine" >"$ANN_SERVICES/measure-$engine.log" 2>&1 \
  || { cat "$ANN_SERVICES/measure-$engine.log" >&2; die "$engine did not start"; }
t1=$(date +%s.%N)
sleep 10
case $engine in
  cassandra) pids=$(cat "$dir/cassandra.pid") ;;
  kafka) pids=$(cat "$dir/kafka.pid") ;;
  postgres) p=$(head -1 "$dir/data/postmaster.pid"); pids="$p $(pgrep -P "$p" | tr '\n' ' ')" ;;
esac
rss=0 pss=0
for p in $pids; do
  r=$(awk '/^Rss:/ {print $2}' "/proc/$p/smaps_rollup"); s=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup")
  rss=$((rss + r)); pss=$((pss + s))
done
printf '%s %s %ss RSS=%dMiB PSS=%dMiB load=%s\n' "$engine" "$mode" \
  "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')" \
  $((rss / 1024)) $((pss / 1024)) "$(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$mode" = download ]; then # back onto the ordinary cache: the test repository goes
  unset MAVEN_OPTS
  "$ANN_DEPLOY/services-down.sh" "$engine" >/dev/null
  rm -rf "$repo" "$ANN_SERVICES/$engine/classpath.txt"
  "$ANN_DEPLOY/services-up.sh" "$engine" >/dev/null
fi
