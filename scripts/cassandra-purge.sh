#!/bin/sh
# Revoked bytes out of Cassandra's files (docs/distributed.md, "Revocation in the engines").
#
#   scripts/cassandra-purge.sh NAMESPACE [--all]
#
# A revocation rewrites the batch row that holds an entry (log_batches, its packed cell)
# without the entry's body: the new cell shadows the old one in older SSTables until a
# compaction reads both. This flushes the namespace's memtables, then rewrites each SSTable
# of log_batches without the cells a newer cell or a tombstone shadows
# (`nodetool garbagecollect -g CELL`). With --all it also flushes every table of the node,
# so the commit log segments that hold the revoked write can be deleted once they are full.
# Run it from cron (or any scheduler) every PURGE period on every node; the bound stated in
# the docs counts on it. Needs nodetool (NODETOOL=path) or the development engine's
# class path (.services/cassandra/classpath.txt) and JMX on JMX_HOST:JMX_PORT.
set -eu
ns=${1:?usage: cassandra-purge.sh NAMESPACE [--all]}
all=${2:-}
JMX_HOST=${JMX_HOST:-127.0.0.1}
JMX_PORT=${JMX_PORT:-7199}
nodetool() {
    if [ -n "${NODETOOL:-}" ]; then
        "$NODETOOL" -h "$JMX_HOST" -p "$JMX_PORT" "$@"
    else
        cp=${CASSANDRA_CLASSPATH:-$(cat "${SERVICES:-$(dirname "$0")/../.services}/cassandra/classpath.txt")}
        # the module flags Cassandra's own scripts pass (deploy/cassandra/jvm.options)
        opts=$(grep -E '^--add-(exports|opens)' "$(dirname "$0")/../deploy/cassandra/jvm.options" | tr '\n' ' ')
        # shellcheck disable=SC2086
        java -Xmx256m $opts -Duser.home="${TMPDIR:-/tmp}" -cp "$cp" org.apache.cassandra.tools.NodeTool -h "$JMX_HOST" -p "$JMX_PORT" "$@"
    fi
}
nodetool flush "$ns" log_batches revocations logs
nodetool garbagecollect -g CELL "$ns" log_batches
if [ "$all" = "--all" ]; then
    nodetool flush
fi
