#!/usr/bin/env bash
# Installs (if missing) and starts PostgreSQL on loopback for the store tests, and creates the
# role and database they use. Idempotent; prints the SQLAlchemy URL on stdout.
# Debian 12 as root, no systemd: pg_ctlcluster --skip-systemctl-redirect starts the cluster.
set -euo pipefail
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
me=tests/postgres.sh
# shellcheck source=tests/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

apt_install postgresql
version="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
if ! pg_lsclusters -h 2>/dev/null | awk '{print $1" "$2}' | grep -qx "$version main"; then
  pg_createcluster "$version" main </dev/null >>"$log" 2>&1 || fail "pg_createcluster failed"
fi
if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {print $4}' | grep -qx online; then
  pg_ctlcluster --skip-systemctl-redirect "$version" main start </dev/null >>"$log" 2>&1 \
    || fail "starting the cluster failed"
fi
port="$(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {print $3}')"
psql_() { runuser -u postgres -- psql -p "$port" -qtAX "$@" </dev/null 2>>"$log"; }
for _ in $(seq 50); do psql_ -c "select 1" >/dev/null && break; sleep 0.2; done
psql_ -c "select 1" >/dev/null || fail "the server does not answer"
[ "$(psql_ -c "select 1 from pg_roles where rolname = 'clerk_test'")" = 1 ] \
  || psql_ -c "create role clerk_test login password 'clerk_test'" || fail "create role failed"
[ "$(psql_ -c "select 1 from pg_database where datname = 'clerk_test'")" = 1 ] \
  || psql_ -c "create database clerk_test owner clerk_test" || fail "create database failed"
echo "postgresql+psycopg://clerk_test:clerk_test@127.0.0.1:$port/clerk_test"
