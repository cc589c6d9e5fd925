# Shared helpers for deploy/services-up.sh and deploy/services-down.sh (sourced, not run).
# Layout: every engine keeps its configuration, data, logs and pid file under
#   $ANN_SERVICES/<engine>/node<N>/   (N = node index, 1 for the single-node development set)
# and node N listens on 127.0.0.N, so a three-node set on 127.0.0.1-3 can follow.

ANN_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ANN_DEPLOY=$ANN_ROOT/deploy
ANN_SERVICES=${ANN_SERVICES:-$ANN_ROOT/.services}
ANN_START_TIMEOUT=${ANN_START_TIMEOUT:-180}   # seconds an engine may take to become healthy

say() { printf 'services: %s\n' "$*"; }
die() { printf 'services: FAILED: %s\n' "$*" >&2; exit 1; }

# The Java 17 (or newer) runtime: $JAVA_HOME if set, else Debian's JDK 17, else java on PATH.
ann_java() {
  local j
  if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then j=$JAVA_HOME/bin/java
  elif [ -x /usr/lib/jvm/java-17-openjdk-amd64/bin/java ]; then j=/usr/lib/jvm/java-17-openjdk-amd64/bin/java
  else j=$(command -v java) || die "no java found: install openjdk-17-jre-headless or set JAVA_HOME"
  fi
  local v
  v=$("$j" -XX:+IgnoreUnrecognizedVMOptions -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
  [ "${v:-0}" -ge 17 ] || die "$j is Java ${v:-?}; the engines need Java 17 or newer"
  printf '%s\n' "$j"
}

# ann_classpath POMDIR OUT: resolve POMDIR/pom.xml's dependencies with mvn (downloads are
# cached in Maven's local repository, ~/.m2 unless MAVEN_OPTS=-Dmaven.repo.local=DIR) and
# write the class path to OUT. Skipped when OUT is newer than the pom and every jar is there.
ann_classpath() {
  local pomdir=$1 out=$2
  if [ -s "$out" ] && [ "$out" -nt "$pomdir/pom.xml" ] && ann_jars_present "$out"; then return 0; fi
  command -v mvn >/dev/null || die "mvn not found (apt-get install maven)"
  mkdir -p "$(dirname "$out")"
  say "resolving $(basename "$pomdir") jars with mvn (cached in ~/.m2)"
  mvn -q -B -f "$pomdir/pom.xml" dependency:build-classpath -Dmdep.outputFile="$out.tmp" \
      >"$out.mvn.log" 2>&1 || { tail -30 "$out.mvn.log" >&2; die "mvn could not resolve $pomdir/pom.xml (log: $out.mvn.log)"; }
  mv "$out.tmp" "$out"
}

ann_jars_present() {
  local jar
  while IFS= read -r jar; do [ -f "$jar" ] || return 1; done < <(tr ':' '\n' <"$1")
}

# ann_render TEMPLATE OUT KEY=VALUE...: copy TEMPLATE to OUT replacing each @KEY@ by VALUE.
ann_render() {
  local in=$1 out=$2; shift 2
  local args=() kv
  for kv in "$@"; do args+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
  sed "${args[@]}" "$in" >"$out.tmp"
  if grep -q '@[A-Z_]*@' "$out.tmp"; then die "unfilled placeholder in $out: $(grep -o '@[A-Z_]*@' "$out.tmp" | head -1)"; fi
  mv "$out.tmp" "$out"
}

# ann_port_open HOST PORT: true when something accepts TCP connections there.
ann_port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# ann_pid_alive PIDFILE: true when the pid file names a live process whose command line
# mentions the pid file's directory (so a stale pid reused by another process is not ours).
ann_pid_alive() {
  [ -s "$1" ] || return 1
  local pid; pid=$(head -1 "$1")
  kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$(dirname "$1")"
}

# ann_wait WHAT TIMEOUT PIDFILE LOG CMD...: poll CMD once a second until it succeeds.
# Fails (with the log's tail) when the process in PIDFILE dies or TIMEOUT seconds pass.
ann_wait() {
  local what=$1 timeout=$2 pidfile=$3 log=$4; shift 4
  local start=$SECONDS said
  until said=$("$@" 2>&1); do
    if [ -n "$pidfile" ] && ! ann_pid_alive "$pidfile"; then
      [ -f "$log" ] && { echo "--- last lines of $log:" >&2; tail -25 "$log" >&2; }
      die "$what: the process exited before it became healthy (log: $log)"
    fi
    if ((SECONDS - start >= timeout)); then
      [ -f "$log" ] && { echo "--- last lines of $log:" >&2; tail -25 "$log" >&2; }
      die "$what: not healthy after ${timeout}s; health check '$*' said: ${said:-nothing} (log: $log; still running, deploy/services-down.sh stops it)"
    fi
    sleep 1
  done
  say "$what healthy after $((SECONDS - start))s"
}

# ann_stop_pid WHAT PIDFILE GRACE: SIGTERM, wait up to GRACE seconds, then SIGKILL.
ann_stop_pid() {
  local what=$1 pidfile=$2 grace=${3:-60}
  if ! ann_pid_alive "$pidfile"; then rm -f "$pidfile"; say "$what not running"; return 0; fi
  local pid; pid=$(cat "$pidfile")
  kill -TERM "$pid" 2>/dev/null || true
  local i
  for ((i = 0; i < grace * 5; i++)); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; say "$what stopped"; return 0; }
    sleep 0.2
  done
  say "$what did not stop in ${grace}s: SIGKILL $pid"
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

# ann_spawn PIDFILE LOG CMD...: start CMD detached (own session), output to LOG.
ann_spawn() {
  local pidfile=$1 log=$2; shift 2
  setsid "$@" </dev/null >>"$log" 2>&1 &
  echo $! >"$pidfile"
}
