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
me=tests/setup.sh
# shellcheck source=tests/lib.sh
. "$here/lib.sh"

# --- Debian packages ---------------------------------------------------------------------
# gir1.2-ical-3.0 (pulls libical3) gives ICalGLib-3.0; python3-gi is Debian's, for
# /usr/bin/python3 only.  Node.js and npm are installed from Debian only when missing: a
# machine may already have them from elsewhere (e.g. NodeSource's nodejs, which bundles npm
# and would conflict with Debian's npm package).
wanted=(python3 python3-gi gir1.2-ical-3.0)
command -v node >/dev/null 2>&1 || wanted+=(nodejs)
command -v npm >/dev/null 2>&1 || wanted+=(npm)

apt_install "${wanted[@]}"

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
