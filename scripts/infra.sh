#!/usr/bin/env bash
# Starts and stops HealthCode's local infrastructure: a throw-away PostgreSQL cluster and the
# Tansu Kafka-protocol broker, both on loopback, both under .local/ (git-ignored).
#   scripts/infra.sh start | stop | status | reset | restart-pg | stop-pg | restart-kafka | freeze-kafka | thaw-kafka
# Idempotent: start leaves running servers alone, stop ignores stopped ones.
# Ports: HC_PG_PORT (default 54329), HC_KAFKA_PORT (default 19092).
# HC_INFRA_DIR (default .local) holds the servers' data: tests that restart a server use a private one.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
local_dir="$root/.local"
pg_port="${HC_PG_PORT:-54329}"
kafka_port="${HC_KAFKA_PORT:-19092}"
infra_dir="${HC_INFRA_DIR:-$local_dir}"
pg_dir="$infra_dir/pg"
pg_data="$pg_dir/data"
kafka_dir="$infra_dir/kafka"
pg_user_os="${HC_PG_OS_USER:-postgres}"

log() { printf 'infra: %s\n' "$*"; }
die() { printf 'infra: error: %s\n' "$*" >&2; exit 1; }

pg_bin() {
    local d
    for d in /usr/lib/postgresql/*/bin; do
        [ -x "$d/initdb" ] && { echo "$d"; return; }
    done
    die "PostgreSQL server binaries not found; run scripts/bootstrap.sh"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

as_pg_user() {
    if [ "$(id -u)" -eq 0 ]; then
        id "$pg_user_os" >/dev/null 2>&1 || die "OS user '$pg_user_os' is missing (set HC_PG_OS_USER)"
        runuser -u "$pg_user_os" -- "$@"
    else
        "$@"
    fi
}

pg_running() { [ -f "$pg_data/postmaster.pid" ] && as_pg_user "$(pg_bin)/pg_ctl" -D "$pg_data" status >/dev/null 2>&1; }

# The project's role and database (idempotent: also run on a cluster that is already up).
ensure_pg_roles() {
    as_pg_user psql -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -qAt -v ON_ERROR_STOP=1 <<'SQL' >/dev/null
SET client_min_messages = warning;
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'healthcode') THEN
    CREATE ROLE healthcode LOGIN CREATEDB CREATEROLE PASSWORD 'healthcode';
  END IF;
END $$;
-- The migrations create the services' own roles (0013); clusters made before that need the right.
ALTER ROLE healthcode CREATEROLE;
-- The administering role may watch and end the services' sessions (they log in as roles of their own).
GRANT pg_signal_backend, pg_read_all_stats TO healthcode;
SELECT 'CREATE DATABASE healthcode OWNER healthcode'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'healthcode') \gexec
SQL
}

start_pg() {
    local bin; bin="$(pg_bin)"
    if pg_running; then
        log "PostgreSQL already running on 127.0.0.1:$pg_port"
        ensure_pg_roles
        return
    fi
    port_open "$pg_port" && die "port $pg_port is taken by another process; set HC_PG_PORT to a free port"
    mkdir -p "$pg_dir/run"
    if [ "$(id -u)" -eq 0 ]; then
        # The server runs as $pg_user_os: it must be able to reach its data directory.
        chmod a+x "$infra_dir"
        chown -R "$pg_user_os" "$pg_dir"
        local reach="" part parts
        IFS=/ read -ra parts <<<"$pg_dir"
        for part in "${parts[@]}"; do
            [ -n "$part" ] || continue
            reach="$reach/$part"
            runuser -u "$pg_user_os" -- test -x "$reach" \
                || die "PostgreSQL runs as OS user '$pg_user_os', which cannot enter $reach; run 'chmod o+x $reach' or set HC_INFRA_DIR to a directory it can reach"
        done
    fi
    if [ ! -f "$pg_data/PG_VERSION" ]; then
        log "initialising PostgreSQL cluster in $pg_data"
        as_pg_user "$bin/initdb" -D "$pg_data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$pg_dir/initdb.log" 2>&1 \
            || { cat "$pg_dir/initdb.log" >&2; die "initdb failed"; }
        cat >>"$pg_data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$pg_dir/run'
max_connections = 300
shared_buffers = 512MB
wal_buffers = 16MB
max_wal_size = 4GB
checkpoint_timeout = 15min
fsync = on
synchronous_commit = on
log_min_messages = warning
CONF
    fi
    log "starting PostgreSQL on 127.0.0.1:$pg_port"
    as_pg_user "$bin/pg_ctl" -D "$pg_data" -o "-p $pg_port" -l "$pg_dir/server.log" -w -t 60 start >/dev/null \
        || { tail -20 "$pg_dir/server.log" >&2; die "PostgreSQL did not start"; }
    ensure_pg_roles
}

stop_pg() {
    if pg_running; then
        log "stopping PostgreSQL"
        as_pg_user "$(pg_bin)/pg_ctl" -D "$pg_data" -m fast -w stop >/dev/null
    fi
}

# Drops the databases that test runs create (one per test harness, hc_test_*) and nobody is connected
# to: the test command starts from none, so that a developer's cluster does not collect them run after run.
drop_test_databases() {
    pg_running || die "PostgreSQL is not running"
    as_pg_user psql -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -qAt -v ON_ERROR_STOP=1 <<'SQL' >/dev/null
SELECT format('DROP DATABASE %I', d.datname) FROM pg_database d
WHERE d.datname LIKE 'hc\_test\_%' AND NOT EXISTS (SELECT FROM pg_stat_activity a WHERE a.datname = d.datname) \gexec
SQL
}

kafka_pid() { [ -f "$kafka_dir/tansu.pid" ] && cat "$kafka_dir/tansu.pid"; }
kafka_running() { local p; p="$(kafka_pid 2>/dev/null)" && [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }

start_kafka() {
    local tansu="$local_dir/bin/tansu"
    [ -x "$tansu" ] || die "Tansu broker not found at .local/bin/tansu; run scripts/bootstrap.sh"
    if kafka_running; then log "Kafka broker (Tansu) already running on 127.0.0.1:$kafka_port"; return; fi
    port_open "$kafka_port" && die "port $kafka_port is taken by another process; set HC_KAFKA_PORT to a free port"
    mkdir -p "$kafka_dir"
    log "starting Kafka broker (Tansu, memory storage) on 127.0.0.1:$kafka_port"
    # A session of its own, as pg_ctl gives PostgreSQL: Ctrl-C on `scripts/up` (SIGINT to the terminal's
    # foreground process group) stops healthcode, not the broker and the events it holds in memory.
    # setsid execs in place here (a background job is no group leader), so $! stays the broker's pid.
    setsid nohup "$tansu" broker --listener-url "tcp://127.0.0.1:$kafka_port" \
        --advertised-listener-url "tcp://127.0.0.1:$kafka_port" --storage-engine memory://tansu/ \
        >"$kafka_dir/tansu.log" 2>&1 </dev/null &
    echo $! >"$kafka_dir/tansu.pid"
    for _ in $(seq 1 100); do
        port_open "$kafka_port" && return
        kafka_running || { tail -20 "$kafka_dir/tansu.log" >&2; die "Tansu exited at start"; }
        sleep 0.1
    done
    die "Tansu did not listen on $kafka_port within 10 s"
}

stop_kafka() {
    if kafka_running; then
        log "stopping Kafka broker"
        local p; p="$(kafka_pid)"
        kill "$p" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
    fi
    rm -f "$kafka_dir/tansu.pid"
}

case "${1:-}" in
    start) start_pg; start_kafka
        log "ready: postgres://healthcode@127.0.0.1:$pg_port/healthcode  kafka 127.0.0.1:$kafka_port" ;;
    stop) stop_kafka; stop_pg ;;
    status)
        pg_running && log "PostgreSQL: running on $pg_port" || log "PostgreSQL: stopped"
        kafka_running && log "Kafka: running on $kafka_port" || log "Kafka: stopped" ;;
    reset) stop_kafka; stop_pg; rm -rf "$pg_dir" "$kafka_dir"; log "removed $pg_dir and $kafka_dir" ;;
    restart-kafka) stop_kafka; start_kafka ;;
    # Make the broker unreachable without losing its (memory-only) data, and back: for fault tests.
    freeze-kafka) kafka_running && kill -STOP "$(kafka_pid)" && log "Kafka broker frozen" ;;
    thaw-kafka) kafka_running && kill -CONT "$(kafka_pid)" && log "Kafka broker thawed" ;;
    restart-pg) stop_pg; start_pg ;;
    stop-pg) stop_pg ;;
    drop-test-databases) drop_test_databases ;;
    *) echo "usage: scripts/infra.sh start|stop|status|reset|restart-kafka|restart-pg|stop-pg|freeze-kafka|thaw-kafka|drop-test-databases" >&2
        exit 2 ;;
esac
