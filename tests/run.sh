#!/usr/bin/env bash
# Runs the suite with the given Python; "no tests collected" (exit 5) is a failure.
set -uo pipefail
python="${1:-python3}"
"$python" -m pytest -q
status=$?
if [ "$status" -eq 5 ]; then
  echo "error: pytest collected no tests" >&2
  exit 1
fi
exit "$status"
