#!/usr/bin/env bash
# Start a throw-away PostgreSQL server on 127.0.0.1 for the test suite and print its URL.
#
#   export CRATEDIG_TEST_PG_URL="$(bash .ci/postgres.sh)"
#
# Installs Debian's `postgresql` when it is missing, then runs its own cluster (initdb into
# $CRATEDIG_PG_DIR, default /var/tmp/cratedig-pg) as the `postgres` user on port
# $CRATEDIG_PG_PORT (default 54329), so it neither needs nor disturbs the distribution's `main`
# cluster. Safe to run as root and to run again: an already running server is reused. Only the
# URL goes to stdout; everything else goes to stderr. Tuned for tests (fsync off): never put
# data you care about in it.
set -euo pipefail

PGDIR="${CRATEDIG_PG_DIR:-/var/tmp/cratedig-pg}"
PORT="${CRATEDIG_PG_PORT:-54329}"
ROLE=cratedig
DB=cratedig

log() { echo "postgres.sh: $*" >&2; }

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  log "installing postgresql (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
fi
BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"

# initdb and postgres refuse to run as root: run them as `postgres` (created by the package).
as_pg() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDIR"
  chown postgres:postgres "$PGDIR"
  chmod 700 "$PGDIR"
else
  mkdir -p "$PGDIR"
fi

if [ ! -s "$PGDIR/PG_VERSION" ]; then
  log "initdb $PGDIR"
  as_pg "$BIN/initdb" -D "$PGDIR" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >&2
fi

if as_pg "$BIN/pg_ctl" -D "$PGDIR" status >/dev/null 2>&1; then
  log "server already running in $PGDIR"
else
  log "starting server on 127.0.0.1:$PORT"
  as_pg "$BIN/pg_ctl" -D "$PGDIR" -l "$PGDIR/server.log" -w -t 60 start \
    -o "-c listen_addresses=127.0.0.1 -p $PORT -k $PGDIR -c fsync=off \
        -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" >&2
fi

psql_pg() { as_pg "$BIN/psql" -X -q -h 127.0.0.1 -p "$PORT" -U postgres -v ON_ERROR_STOP=1 "$@"; }
if [ -z "$(psql_pg -d postgres -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'")" ]; then
  # CREATEDB: the tests give each test case a database of its own.
  psql_pg -d postgres -c "CREATE ROLE $ROLE LOGIN CREATEDB PASSWORD '$ROLE'" >&2
fi
# pg_signal_backend: each test drops its database WITH (FORCE), which must end every session
# in it, an autovacuum worker's too (it runs as no role, so only this membership allows it;
# without it, a worker that happens to be there fails the drop). Idempotent.
psql_pg -d postgres -c "GRANT pg_signal_backend TO $ROLE" >&2
if [ -z "$(psql_pg -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'")" ]; then
  psql_pg -d postgres -c "CREATE DATABASE $DB OWNER $ROLE" >&2
fi

echo "postgresql://$ROLE:$ROLE@127.0.0.1:$PORT/$DB"
