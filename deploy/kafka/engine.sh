# Kafka 4 node N (KRaft, broker+controller) on 127.0.0.N:9092, controller on :9093
# (sourced by services-up.sh / services-down.sh). Class path from deploy/kafka/pom.xml (jars
# cached in ~/.m2); config rendered from server.properties.in; flags from jvm.options.
# The storage is formatted on first start with kafka.tools.StorageTool (one cluster id per set).

# kafka_up N NODES: start node N of a NODES-node set (idempotent) and wait for Metadata.
kafka_up() {
  local n=${1:-1} nodes=${2:-1}
  local here=$ANN_DEPLOY/kafka dir=$ANN_SERVICES/kafka/node$n addr=127.0.0.$n
  local pidfile=$dir/kafka.pid log=$dir/logs/server.log
  local probe=(python3 "$ANN_DEPLOY/probe.py" kafka "$addr" 9092)
  if ann_pid_alive "$pidfile"; then
    say "kafka node$n already running (pid $(cat "$pidfile"))"
    ann_wait "kafka node$n ($addr:9092)" "$ANN_START_TIMEOUT" "$pidfile" "$log" "${probe[@]}"
    return
  fi
  if ann_port_open "$addr" 9092; then
    "${probe[@]}" || die "kafka node$n: $addr:9092 is taken by a process that is not ours and does not answer Metadata (see: ss -ltnp 'sport = 9092')"
    say "kafka node$n: $addr:9092 already served by another process (not under $ANN_SERVICES); using it"
    return
  fi
  local java cp; java=$(ann_java)
  ann_classpath "$here" "$ANN_SERVICES/kafka/classpath.txt"
  cp=$(cat "$ANN_SERVICES/kafka/classpath.txt")
  mkdir -p "$dir"/{conf,data,logs}
  local i voters="" rf=1 minisr=1
  for ((i = 1; i <= nodes; i++)); do voters+="${voters:+,}$i@127.0.0.$i:9093"; done
  ((nodes > 1)) || voters="$n@$addr:9093" # a single node is its own quorum
  if ((nodes >= 3)); then rf=3; minisr=2; fi
  ann_render "$here/server.properties.in" "$dir/conf/server.properties" \
      NODE="$n" NODES="$nodes" ADDR="$addr" DIR="$dir" VOTERS="$voters" RF="$rf" MINISR="$minisr"
  cp "$here/log4j2.xml" "$dir/conf/log4j2.xml"
  local opts; mapfile -t opts < <(sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e '/^$/d' "$here/jvm.options")
  opts+=("-Dkafka.logs.dir=$dir/logs" "-Dlog4j2.configurationFile=$dir/conf/log4j2.xml")
  if [ ! -f "$dir/data/meta.properties" ]; then
    local idfile=$ANN_SERVICES/kafka/cluster.id
    [ -s "$idfile" ] || python3 -c 'import base64,uuid; print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))' >"$idfile"
    say "formatting kafka node$n storage (cluster id $(cat "$idfile"))"
    "$java" "${opts[@]}" -cp "$cp" kafka.tools.StorageTool format --ignore-formatted \
        -t "$(cat "$idfile")" -c "$dir/conf/server.properties" >"$dir/logs/format.log" 2>&1 \
      || { tail -20 "$dir/logs/format.log" >&2; die "kafka node$n: storage format failed (log: $dir/logs/format.log)"; }
  fi
  say "starting kafka node$n on $addr:9092 (logs: $dir/logs)"
  printf '=== %s start\n' "$(date -u +%FT%TZ)" >>"$dir/logs/stdout.log"
  ann_spawn "$pidfile" "$dir/logs/stdout.log" "$java" "${opts[@]}" -cp "$cp" \
      kafka.Kafka "$dir/conf/server.properties"
  ann_wait "kafka node$n ($addr:9092)" "$ANN_START_TIMEOUT" "$pidfile" "$log" "${probe[@]}"
}

# kafka_down N: stop node N if we started it (data is kept).
kafka_down() {
  local n=${1:-1}
  ann_stop_pid "kafka node$n" "$ANN_SERVICES/kafka/node$n/kafka.pid" 60
}
