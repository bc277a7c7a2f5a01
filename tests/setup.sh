#!/usr/bin/env bash
# Installs what the invite-parser tests (tests/parsers.py) need beyond the venv, on Debian 12
# as root: libical's GObject bindings for Debian's /usr/bin/python3, Node.js and npm if absent,
# and ical.js from tests/js/package-lock.json.  Idempotent; a few hundred milliseconds when
# everything is there (apt-get update runs only when a package is missing).  Quiet unless it
# fails; exits non-zero on failure.  Radicale and vobject come from pyproject's test extra.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
js="$here/js"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

fail() {
  echo "tests/setup.sh: $*" >&2
  if [ -s "$log" ]; then tail -n 40 "$log" >&2; fi
  exit 1
}

# Run a command quietly with a time limit and no stdin, so that nothing can hang CI.
quiet() {
  local limit="$1"
  shift
  timeout --kill-after=10 "$limit" "$@" </dev/null >>"$log" 2>&1
}

# --- Debian packages ---------------------------------------------------------------------
# gir1.2-ical-3.0 (pulls libical3) gives ICalGLib-3.0; python3-gi is Debian's, for
# /usr/bin/python3 only.  Node.js and npm are installed from Debian only when missing: a
# machine may already have them from elsewhere (e.g. NodeSource's nodejs, which bundles npm
# and would conflict with Debian's npm package).
wanted=(python3 python3-gi gir1.2-ical-3.0)
command -v node >/dev/null 2>&1 || wanted+=(nodejs)
command -v npm >/dev/null 2>&1 || wanted+=(npm)

missing=()
for pkg in "${wanted[@]}"; do
  status="$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)"
  [ "$status" = "installed" ] || missing+=("$pkg")
done

if [ "${#missing[@]}" -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || fail "needs root to install: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt_opts=(-q -o Dpkg::Lock::Timeout=120 -o Dpkg::Use-Pty=0)
  quiet 600 apt-get "${apt_opts[@]}" update || fail "apt-get update failed"
  quiet 900 apt-get "${apt_opts[@]}" install -y --no-install-recommends "${missing[@]}" \
    || fail "apt-get install ${missing[*]} failed"
fi

/usr/bin/python3 -c '
import gi
gi.require_version("ICalGLib", "3.0")
from gi.repository import ICalGLib
' >>"$log" 2>&1 || fail "libical's GObject bindings do not load in /usr/bin/python3"

# --- ical.js -----------------------------------------------------------------------------
command -v node >/dev/null 2>&1 || fail "node is still missing"
command -v npm >/dev/null 2>&1 || fail "npm is still missing"
cd "$js"
pinned="$(node -p 'require("./package-lock.json").packages["node_modules/ical.js"].version')"
have="$(node -p 'try { require("./node_modules/ical.js/package.json").version } catch { "" }')"
if [ "$have" != "$pinned" ]; then
  quiet 300 npm ci --no-audit --no-fund --loglevel=error || fail "npm ci in tests/js failed"
  have="$(node -p 'require("./node_modules/ical.js/package.json").version')"
  [ "$have" = "$pinned" ] || fail "ical.js $have installed, package-lock.json pins $pinned"
fi
