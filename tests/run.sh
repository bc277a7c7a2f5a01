#!/usr/bin/env bash
# Runs the suite with the given Python against servers of its own:
#
#   bash tests/run.sh PYTHON [PYTEST ARGUMENTS...]      (`make test` runs it with .venv's Python)
#
# It makes a fresh temp folder, starts a private PostgreSQL (tests/postgres.sh) and a private
# Postfix and Dovecot (tests/mailservers.sh) in it on free loopback ports, exports
# CLERK_TEST_PG_URL and CLERK_TEST_MAIL, runs `pytest -q` (its temp folders and TMPDIR are in
# there too) — and when the whole suite passed, tests/clock.sh: the suite again with the clock
# moved — and then, whatever happened (pass, failure, Ctrl-C, SIGTERM or SIGHUP), stops the
# three servers and removes the folder.  So two runs, from two clones, can share a host, and
# nothing of a run is left running.  "No tests collected" (pytest's exit 5) is a failure.  As
# root (it installs packages and starts the servers).  CLERK_TEST_KEEP=1 keeps the folder, with
# the servers' logs, once they are stopped.
# shellcheck disable=SC2317  # finish and interrupted run from traps
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
me=tests/run.sh
python="${1:-python3}"
[ "$#" -eq 0 ] || shift
run="$(mktemp -d /tmp/clerk-test.XXXXXXXX)" || { echo "$me: mktemp failed" >&2; exit 1; }
chmod 0755 "$run"  # the servers' users (postgres, postfix, dovecot, ...) work in there
log="$run/run.log"
# shellcheck source=tests/lib.sh
. "$here/lib.sh"

tests_pid=

# Processes still working in the run's folder (cwd or command line): none once all is stopped.
leftovers() {
  local pid
  { grep -lsF "$run/" /proc/[0-9]*/cmdline
    find /proc/[0-9]*/cwd -maxdepth 0 \( -lname "$run" -o -lname "$run/*" \) 2>/dev/null
  } | cut -d/ -f3 | sort -u | while read -r pid; do
    if [ "$pid" != "$$" ] && alive "$pid"; then echo "$pid"; fi
  done
}

finish() {
  local status=$? pid pids=()
  # a second Ctrl-C must not cut the clean-up short, nor a reader of our stderr that went away
  trap '' INT TERM HUP PIPE
  if [ -n "$tests_pid" ] && alive "$tests_pid"; then
    kill -TERM "$tests_pid" 2>/dev/null
    wait_gone "$tests_pid" 10 || kill -KILL "$tests_pid" 2>/dev/null
  fi
  bash "$here/mailservers.sh" stop "$run/mail" || status=1
  bash "$here/postgres.sh" stop "$run/pg" || status=1
  # a safety net: wait a little for the servers' last processes, then end what is still there
  for _ in $(seq 100); do
    mapfile -t pids < <(leftovers)
    [ "${#pids[@]}" -gt 0 ] || break
    sleep 0.05
  done
  for pid in "${pids[@]}"; do
    echo "$me: still running after the servers were stopped, killed:" \
      "$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline")" >&2
    kill -KILL "$pid" 2>/dev/null
    status=1
  done
  if [ "${CLERK_TEST_KEEP:-}" = 1 ]; then
    echo "$me: kept $run" >&2
  else
    rm -rf "$run" 2>/dev/null || { sleep 1; rm -rf "$run"; } || status=1
  fi
  exit "$status"
}
trap finish EXIT

# On a signal, stop pytest first.  Ctrl-C reaches pytest too (one process group): give it a
# moment to end by itself; a signal sent to this script alone is passed on as SIGINT, so that
# pytest still runs its teardown; then SIGTERM if it does not end.
interrupted() { # signal exit-status
  if [ -n "$tests_pid" ]; then
    if [ "$1" != INT ] || ! wait_gone "$tests_pid" 5; then
      kill -INT "$tests_pid" 2>/dev/null
      wait_gone "$tests_pid" 30 || kill -TERM "$tests_pid" 2>/dev/null
    fi
  fi
  exit "$2"
}
trap 'interrupted INT 130' INT
trap 'interrupted TERM 143' TERM
trap 'interrupted HUP 129' HUP

[ "$(id -u)" -eq 0 ] || fail "must run as root (it installs and starts the servers)"
# In a session of their own, so that a Ctrl-C does not cut a start-up short (leaving a server
# starting just as it is being stopped): the traps above run once it is over.
setsid -w bash "$here/postgres.sh" start "$run/pg" >"$run/pg-url" || exit 1
setsid -w bash "$here/mailservers.sh" start "$run/mail" >"$run/mail.json" || exit 1

# In the background, so that this script hears a signal at once (`wait` returns); with SIGINT
# back to its default (a background job starts with SIGINT ignored), so that Ctrl-C reaches it.
# TMPDIR in the run's folder too, so that what tests leave in temp folders goes with it.
install -d -m 0700 "$run/tmp"
(
  trap - INT QUIT
  CLERK_TEST_PG_URL="$(cat "$run/pg-url")" CLERK_TEST_MAIL="$run/mail.json" TMPDIR="$run/tmp" \
    exec "$python" -m pytest -q --basetemp="$run/pytest" "$@"
) &
tests_pid=$!
wait "$tests_pid"
status=$?
tests_pid=
if [ "$status" -eq 5 ]; then
  echo "error: pytest collected no tests" >&2
  exit 1
fi
# The whole suite passed: run it again with the clock moved (tests/clock.sh), the guard that
# no test depends on the real date or hour.  Not for a part of the suite (pytest arguments).
if [ "$status" -eq 0 ] && [ "$#" -eq 0 ]; then
  (
    trap - INT QUIT
    CLERK_TEST_MAIL="$run/mail.json" TMPDIR="$run/tmp" exec bash "$here/clock.sh" "$python"
  ) &
  tests_pid=$!
  wait "$tests_pid"
  status=$?
  tests_pid=
fi
exit "$status"
