# shellcheck shell=bash disable=SC2154  # $me and $log are set by the sourcing script
# Shared by the scripts that install, start and stop what the tests need (setup.sh, run.sh,
# postgres.sh, mailservers.sh). Source it after setting $me (the script's name) and $log (a file
# for the output of every command: nothing goes to the caller's stdout or stderr, so no daemon
# can hold CI's pipe open).

fail() {
  echo "$me: $*" >&2
  if [ -s "$log" ]; then tail -n 40 "$log" >&2; fi
  exit 1
}

# Run a command quietly with a time limit and no stdin, so that nothing can hang CI.
quiet() {
  local limit="$1"
  shift
  timeout --kill-after=10 "$limit" "$@" </dev/null >>"$log" 2>&1
}

# Install the Debian packages among "$@" that are missing (apt-get update only then).
apt_install() {
  local missing=() pkg status
  for pkg in "$@"; do
    status="$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)"
    [ "$status" = "installed" ] || missing+=("$pkg")
  done
  [ "${#missing[@]}" -gt 0 ] || return 0
  [ "$(id -u)" -eq 0 ] || fail "needs root to install: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  local opts=(-q -o Dpkg::Lock::Timeout=120 -o Dpkg::Use-Pty=0)
  quiet 600 apt-get "${opts[@]}" update || fail "apt-get update failed"
  quiet 900 apt-get "${opts[@]}" install -y --no-install-recommends "${missing[@]}" \
    || fail "apt-get install ${missing[*]} failed"
}

# A TCP port on 127.0.0.1 that is free now: the kernel's pick for port 0.  Another process may
# take it before the server that is given it binds it, so callers retry with a new one.
free_port() {
  timeout 10 python3 -c 'import socket
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])' </dev/null 2>>"$log"
}

# Is process $1 alive (and not a zombie)?
alive() {
  local state
  state="$(awk '/^State:/ {print $2}' "/proc/$1/status" 2>/dev/null)" || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

# Wait up to $2 seconds for process $1 to end; return 1 if it is still there.
wait_gone() {
  local i
  for ((i = 0; i < $2 * 20; i++)); do
    alive "$1" || return 0
    sleep 0.05
  done
  ! alive "$1"
}

# Does something listen on 127.0.0.1:$1?
taken() {
  # shellcheck disable=SC2016  # $1 is the inner bash's argument
  timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" </dev/null >/dev/null 2>&1
}
