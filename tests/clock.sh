#!/usr/bin/env bash
# The guard against tests that read the real clock: runs the unit tests (not the slow ones,
# but those marked clock) and the end-to-end tests of the worker and of sending (SQLite
# only) with the wall clock moved, by time-machine, to instants where such a test breaks:
# 06:30 London on 29 February 2028, and 23:30 London five years ahead (two runs, side by
# side, to keep `make test` short). The suite pins its own times (fixtures, `clerk --now`):
# it must pass at any of them. (A subprocess keeps the real clock: a test
# that starts clerk must give it the time with `--now`, or it breaks on the moved dates.)
# Usage: tests/clock.sh PYTHON. Quiet unless a run fails; exits non-zero if any does.
# tests/run.sh runs it after the suite, with its servers (CLERK_TEST_MAIL) still up.
set -uo pipefail
python="${1:-python3}"
mapfile -t clocks < <("$python" - <<'PY'
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

london = ZoneInfo("Europe/London")
today = datetime.now(london).date()
try:
    ahead = today.replace(year=today.year + 5)
except ValueError:  # 29 February
    ahead = date(today.year + 5, 2, 28)
# two runs, each an early or late hour on a date where a test that reads the real date breaks
for day, at in ((date(2028, 2, 29), time(6, 30)), (ahead, time(23, 30))):
    print(datetime.combine(day, at, london).isoformat())
PY
)
[ "${#clocks[@]}" -eq 2 ] || { echo "tests/clock.sh: could not compute the clocks" >&2; exit 1; }

status=0
out="$(mktemp -d)"
# the runs end with this script, however it ends
trap 'kill $(jobs -p) 2>/dev/null; wait; rm -rf "$out"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# side by side: each run is mostly one busy core
for pair in "0 1"; do
  pids=()
  for i in $pair; do
    "$python" -m pytest -q -p no:cacheprovider -k "not postgresql" -m "not slow or clock" \
      --clock "${clocks[$i]}" --basetemp "$out/tmp-$i" \
      tests/unit tests/e2e/test_process.py tests/e2e/test_smtp.py >"$out/$i.log" 2>&1 &
    pids+=("$!")
  done
  for n in "${!pids[@]}"; do
    i="${pair:$((n * 2)):1}"
    wait "${pids[$n]}"
    code=$?
    if [ "$code" -ne 0 ]; then
      echo "tests/clock.sh: the unit tests fail with the clock at ${clocks[$i]} (exit $code):" >&2
      tail -n 40 "$out/$i.log" >&2
      status=1
    else
      echo "clock at ${clocks[$i]}: $(tail -n 1 "$out/$i.log")"
    fi
  done
done
exit "$status"
