# PostgreSQL 15 (Debian's binaries) node N: a private cluster under .services/postgres/nodeN,
# listening on 127.0.0.N:5432 (socket in nodeN/run), with role annals/annals owning database
# annals (sourced by services-up.sh / services-down.sh). As root, the cluster belongs to the
# `postgres` system user and every pg_* command runs as that user.

PG_BIN=${ANN_PG_BIN:-/usr/lib/postgresql/15/bin}
PG_DB=${ANN_PG_DB:-annals}
PG_ROLE=${ANN_PG_USER:-annals}
PG_PASSWORD=${ANN_PG_PASSWORD:-annals}

# Run a command as the cluster's owner.
pg_as_owner() {
  if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

pg_install() {
  [ -x "$PG_BIN/pg_ctl" ] && return 0
  say "postgresql-15 not installed: apt-get install postgresql-15"
  local sudo=; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends postgresql-15 >/dev/null \
    || die "postgres: apt-get install postgresql-15 failed"
  [ -x "$PG_BIN/pg_ctl" ] || die "postgres: $PG_BIN/pg_ctl missing after installing postgresql-15"
}

# pg_login ADDR: true when role annals can log in to database annals over TCP and run a query.
pg_login() {
  PGPASSWORD=$PG_PASSWORD PGCONNECT_TIMEOUT=3 "$PG_BIN/psql" -X -q -At -h "$1" -p 5432 \
      -U "$PG_ROLE" -d "$PG_DB" -c 'select 1' 2>/dev/null | grep -qx 1
}

# pg_node_dir N [create]: node N's directory. Normally .services/postgres/nodeN; when
# running as root in a checkout that the postgres user cannot reach (a parent directory closed to others),
# nodeN is a symbolic link to /var/tmp/annals-services-<hash of the .services path>/... and
# this prints the link's target, the path the server itself uses.
pg_node_dir() {
  local link=$ANN_SERVICES/postgres/node$1
  if [ "${2:-}" = create ] && [ ! -L "$link" ] && [ ! -d "$link" ] && [ "$(id -u)" -eq 0 ]; then
    mkdir -p "$ANN_SERVICES/postgres"
    if ! pg_as_owner test -x "$ANN_SERVICES/postgres"; then
      local real
      real=/var/tmp/annals-services-$(printf '%s' "$ANN_SERVICES" | sha256sum | cut -c1-12)/postgres/node$1
      mkdir -p "$real" && chmod 755 "$(dirname "$(dirname "$real")")" "$(dirname "$real")"
      ln -s "$real" "$link"
      say "postgres: user postgres cannot reach $ANN_SERVICES; node$1 lives in $real (linked)" >&2
    fi
  fi
  if [ -L "$link" ]; then readlink -f "$link"; else printf '%s\n' "$link"; fi
}

# pg_stop_debian_clusters: stop Debian's own clusters (pg_lsclusters) that are online on
# port 5432. Used only under CI=true, where the machine is disposable.
pg_stop_debian_clusters() {
  command -v pg_lsclusters >/dev/null || return 0
  local ver name port status
  while read -r ver name port status _; do
    if [ "$port" = 5432 ] && [ "$status" = online ]; then
      say "CI: stopping Debian's PostgreSQL cluster $ver/$name, which holds port 5432"
      pg_ctlcluster "$ver" "$name" stop || die "postgres: could not stop Debian's cluster $ver/$name"
    fi
  done < <(pg_lsclusters -h)
}

# postgres_up N NODES: start node N (idempotent), create role and database, wait for login.
postgres_up() {
  local n=${1:-1}
  local here=$ANN_DEPLOY/postgres dir addr=127.0.0.$n
  pg_install # first: it brings the postgres user too
  dir=$(pg_node_dir "$n" create)
  local data=$dir/data log=$dir/logs/postgresql.log pidfile=$dir/data/postmaster.pid
  if [ "${CI:-}" = true ] && ! ann_pid_alive "$pidfile" && ann_port_open "$addr" 5432 \
     && ! pg_login "$addr"; then
    pg_stop_debian_clusters # a fresh CI machine whose apt-get install started Debian's cluster
  fi
  if ! ann_pid_alive "$pidfile" && ann_port_open "$addr" 5432; then
    pg_login "$addr" || die "postgres node$n: $addr:5432 is taken by a server that is not ours and refuses $PG_ROLE/$PG_PASSWORD on database $PG_DB (Debian's cluster? pg_lsclusters; pg_ctlcluster 15 main stop)"
    say "postgres node$n: $addr:5432 already served by another server (not under $ANN_SERVICES); using it"
    return
  fi
  mkdir -p "$dir"/{logs,run}
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres:postgres "$dir" "$dir/logs" "$dir/run"
    pg_as_owner test -x "$dir" \
      || die "postgres: user postgres cannot reach $dir (a parent directory is not searchable by others)"
  fi
  if [ ! -f "$data/PG_VERSION" ]; then
    say "initdb postgres node$n ($data)"
    pg_as_owner "$PG_BIN/initdb" -D "$data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
        -E UTF8 --locale=C.UTF-8 >"$dir/logs/initdb.log" 2>&1 \
      || { tail -20 "$dir/logs/initdb.log" >&2; die "postgres node$n: initdb failed (log: $dir/logs/initdb.log)"; }
  fi
  ann_render "$here/postgresql.conf.in" "$dir/annals.conf" NODE="$n" ADDR="$addr" DIR="$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$dir/annals.conf"
  grep -q "^include '$dir/annals.conf'" "$data/postgresql.conf" \
    || pg_as_owner sh -c "echo \"include '$dir/annals.conf'\" >>'$data/postgresql.conf'"
  if pg_as_owner "$PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    say "postgres node$n already running (pid $(head -1 "$pidfile"))"
  else
    say "starting postgres node$n on $addr:5432 (logs: $log)"
    pg_as_owner "$PG_BIN/pg_ctl" -D "$data" -l "$log" -w -t "$ANN_START_TIMEOUT" start >/dev/null \
      || { [ -f "$log" ] && tail -20 "$log" >&2; die "postgres node$n: pg_ctl start failed (log: $log)"; }
  fi
  ann_wait "postgres node$n ($addr:5432 socket)" "$ANN_START_TIMEOUT" "" "$log" \
      "$PG_BIN/pg_isready" -q -h "$dir/run" -p 5432 -U postgres -d postgres
  pg_as_owner "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir/run" -p 5432 -U postgres -d postgres \
      >"$dir/logs/setup.log" 2>&1 <<SQL || { cat "$dir/logs/setup.log" >&2; die "postgres node$n: creating role/database $PG_ROLE failed"; }
SELECT format('CREATE ROLE %I LOGIN', '$PG_ROLE') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$PG_ROLE') \gexec
ALTER ROLE "$PG_ROLE" LOGIN PASSWORD '$PG_PASSWORD';
SELECT format('CREATE DATABASE %I OWNER %I', '$PG_DB', '$PG_ROLE') WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$PG_DB') \gexec
SQL
  ann_wait "postgres node$n ($addr:5432, login $PG_ROLE)" "$ANN_START_TIMEOUT" "" "$log" pg_login "$addr"
}

# postgres_down N: fast shutdown of node N if we started it (data is kept).
postgres_down() {
  local n=${1:-1} data
  data=$(pg_node_dir "$n")/data
  if [ -x "$PG_BIN/pg_ctl" ] && [ -f "$data/PG_VERSION" ] \
     && pg_as_owner "$PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    pg_as_owner "$PG_BIN/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null \
      || die "postgres node$n: pg_ctl stop failed"
    say "postgres node$n stopped"
  else
    say "postgres node$n not running"
  fi
}
