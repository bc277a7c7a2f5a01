#!/usr/bin/env bash
# A private PostgreSQL server on loopback for one run of the store tests, on Debian 12 as root
# (no systemd needed).  Any number of runs can share a host: each has its own data, socket
# folder, log and free port in its own folder.
#
#   bash tests/postgres.sh start DIR   installs the `postgresql` package if missing, runs initdb
#                                      in DIR (a new or empty folder that the postgres user can
#                                      reach), starts the server on 127.0.0.1 and a free port,
#                                      creates the role and database the tests use and prints
#                                      their SQLAlchemy URL on stdout
#   bash tests/postgres.sh stop DIR    stops that server; idempotent
#
# tests/run.sh (`make test`) does both, in a temp folder it removes at the end.  The server logs
# to DIR/postgres.log; it is a throwaway, so fsync is off.  Quiet unless it fails; exits non-zero
# on failure (a server it started is then left for `stop`).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
me=tests/postgres.sh
log=/dev/null                               # becomes DIR/setup.log once DIR exists
# shellcheck source=tests/lib.sh
. "$here/lib.sh"

usage() { fail "usage: bash $me start|stop DIR"; }
[ "$#" -eq 2 ] || usage
action="$1"
case "$2" in
  /*) dir="$2" ;;
  *) dir="$PWD/$2" ;;
esac
[ "$(id -u)" -eq 0 ] || fail "must run as root (it installs PostgreSQL and runs it as postgres)"
cd /

data="$dir/data"
as_postgres=(runuser -u postgres --)

# The newest installed version's program $1
bin() {
  local path
  path="$(printf '%s\n' /usr/lib/postgresql/*/bin/"$1" | sort -V | tail -n 1)"
  [ -x "$path" ] || fail "/usr/lib/postgresql/*/bin/$1 is missing"
  echo "$path"
}

# --- stop ----------------------------------------------------------------------------------
if [ "$action" = stop ]; then
  [ -f "$data/postmaster.pid" ] || exit 0
  log="$dir/stop.log"
  pg_ctl="$(bin pg_ctl)"
  quiet 60 "${as_postgres[@]}" "$pg_ctl" -D "$data" -m fast -w -t 30 stop && exit 0
  pid="$(head -n 1 "$data/postmaster.pid" 2>/dev/null)" || exit 0
  alive "$pid" || exit 0
  quiet 60 "${as_postgres[@]}" "$pg_ctl" -D "$data" -m immediate -w -t 20 stop && exit 0
  kill -KILL "$pid" 2>/dev/null || true
  echo "$me: PostgreSQL (pid $pid) did not stop: killed" >&2
  exit 1
fi
[ "$action" = start ] || usage

# --- start ---------------------------------------------------------------------------------
install -d -m 0755 "$dir"
[ -z "$(ls -A "$dir")" ] || fail "$dir is not empty"
chown postgres:postgres "$dir"
log="$dir/setup.log"
: >"$log"

apt_install postgresql
initdb="$(bin initdb)"
pg_ctl="$(bin pg_ctl)"

quiet 120 "${as_postgres[@]}" "$initdb" -D "$data" -U postgres -E UTF8 --locale=C.UTF-8 --no-sync \
  --auth-local=trust --auth-host=scram-sha-256 || fail "initdb failed"
cat >>"$data/postgresql.conf" <<EOF

# tests/postgres.sh: a throwaway server for one test run
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
fsync = off
synchronous_commit = off
full_page_writes = off
EOF

# The port is free when picked, but another process may take it first: then pick again.
port=
for _ in 1 2 3 4 5; do
  candidate="$(free_port)" || fail "cannot pick a free port"
  if quiet 90 "${as_postgres[@]}" "$pg_ctl" -D "$data" -l "$dir/postgres.log" -o "-p $candidate" \
    -w -t 60 start; then
    port="$candidate"
    break
  fi
  grep -q "could not bind" "$dir/postgres.log" 2>/dev/null || taken "$candidate" \
    || fail "pg_ctl start failed (see $dir/postgres.log)"
done
[ -n "$port" ] || fail "PostgreSQL found no free port"

psql="$(bin psql)"
psql_() { quiet 30 "${as_postgres[@]}" "$psql" -h "$dir" -p "$port" -U postgres -qtAX -c "$1"; }
psql_ "create role clerk_test login password 'clerk_test'" || fail "create role failed"
psql_ "create database clerk_test owner clerk_test" || fail "create database failed"
echo "postgresql+psycopg://clerk_test:clerk_test@127.0.0.1:$port/clerk_test"
