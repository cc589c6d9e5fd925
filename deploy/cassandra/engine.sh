# Cassandra 5.0 node N on 127.0.0.N:9042 (sourced by services-up.sh / services-down.sh).
# Class path from deploy/cassandra/pom.xml (jars cached in ~/.m2); config rendered from
# cassandra.yaml.in; flags from jvm.options. Login: cassandra/cassandra (default superuser).

CASSANDRA_USER=${ANN_CASSANDRA_USER:-cassandra}
CASSANDRA_PASSWORD=${ANN_CASSANDRA_PASSWORD:-cassandra}
CASSANDRA_CLUSTER=${ANN_CASSANDRA_CLUSTER:-annals-dev}
CASSANDRA_SEEDS=${ANN_CASSANDRA_SEEDS:-}   # default: 127.0.0.1, or the node itself when alone

# cassandra_up N NODES: start node N of a NODES-node set (idempotent) and wait for CQL login.
cassandra_up() {
  local n=${1:-1} nodes=${2:-1}
  local here=$ANN_DEPLOY/cassandra dir=$ANN_SERVICES/cassandra/node$n addr=127.0.0.$n
  local pidfile=$dir/cassandra.pid log=$dir/logs/system.log
  local probe=(python3 "$ANN_DEPLOY/probe.py" cql "$addr" 9042 "$CASSANDRA_USER" "$CASSANDRA_PASSWORD")
  if ann_pid_alive "$pidfile"; then
    say "cassandra node$n already running (pid $(cat "$pidfile"))"
    ann_wait "cassandra node$n ($addr:9042)" "$ANN_START_TIMEOUT" "$pidfile" "$log" "${probe[@]}"
    return
  fi
  if ann_port_open "$addr" 9042; then
    "${probe[@]}" || die "cassandra node$n: $addr:9042 is taken by a process that is not ours and refuses login $CASSANDRA_USER (see: ss -ltnp 'sport = 9042')"
    say "cassandra node$n: $addr:9042 already served by another process (not under $ANN_SERVICES); using it"
    return
  fi
  local java cp; java=$(ann_java)
  ann_classpath "$here" "$ANN_SERVICES/cassandra/classpath.txt"
  cp=$(cat "$ANN_SERVICES/cassandra/classpath.txt")
  local jamm; jamm=$(tr ':' '\n' <<<"$cp" | grep '/jamm-[0-9.]*\.jar$' | head -1)
  [ -n "$jamm" ] || die "cassandra: jamm jar not on the class path"
  mkdir -p "$dir"/{conf,data,commitlog,saved_caches,hints,cdc_raw,triggers,logs}
  local token
  token=$(python3 -c "import sys; n,i=int(sys.argv[1]),int(sys.argv[2]); print(-2**63 + ((i-1)%n)*(2**64//n))" "$nodes" "$n")
  local seeds=$CASSANDRA_SEEDS
  [ -n "$seeds" ] || { if ((nodes == 1)); then seeds=$addr; else seeds=127.0.0.1; fi; }
  ann_render "$here/cassandra.yaml.in" "$dir/conf/cassandra.yaml" \
      NODE="$n" NODES="$nodes" TOKEN="$token" ADDR="$addr" DIR="$dir" \
      SEEDS="$seeds" CLUSTER="$CASSANDRA_CLUSTER"
  cp "$here/logback.xml" "$dir/conf/logback.xml"
  local opts; mapfile -t opts < <(sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e '/^$/d' "$here/jvm.options")
  say "starting cassandra node$n on $addr:9042 (logs: $dir/logs)"
  printf "=== %s start\n" "$(date -u +%FT%TZ)" >>"$dir/logs/stdout.log"
  ann_spawn "$pidfile" "$dir/logs/stdout.log" "$java" "${opts[@]}" \
      "-javaagent:$jamm" \
      "-Dcassandra.config=file://$dir/conf/cassandra.yaml" \
      "-Dcassandra.storagedir=$dir" \
      "-Dcassandra.logdir=$dir/logs" \
      "-Dcassandra.triggers_dir=$dir/triggers" \
      "-Dlogback.configurationFile=$dir/conf/logback.xml" \
      "-Dcassandra.jmx.local.port=$((7199 + 10 * (n - 1)))" \
      -Dcassandra-foreground=yes \
      -cp "$dir/conf:$cp" org.apache.cassandra.service.CassandraDaemon
  ann_wait "cassandra node$n ($addr:9042, login $CASSANDRA_USER)" "$ANN_START_TIMEOUT" "$pidfile" "$log" "${probe[@]}"
}

# cassandra_down N: stop node N if we started it (data is kept; `make services-clean` wipes it).
cassandra_down() {
  local n=${1:-1}
  ann_stop_pid "cassandra node$n" "$ANN_SERVICES/cassandra/node$n/cassandra.pid" 90
}
