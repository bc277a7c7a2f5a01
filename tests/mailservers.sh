#!/usr/bin/env bash
# Installs (if missing), configures and starts a real Postfix and Dovecot on loopback for the mail
# tests (tests/mail.py), on Debian 12 as root without systemd.  Idempotent: a second run leaves
# running servers running (and reloads one whose configuration it had to change).  Quiet unless it
# fails; exits non-zero on failure.  On success it prints one line of JSON on stdout, e.g.
#   {"host": "127.0.0.1", "smtp_port": 10025, "imap_port": 10143,
#    "users": {"clerk": "clerk-test", "members": "members-test"}, ...}
# which the tests read from CLERK_TEST_MAIL (the JSON itself, or the path of a file holding it).
#
# What mail does here (nothing ever leaves the machine):
#   * Postfix listens on 127.0.0.1 only: port 25 and an extra smtpd on $CLERK_MAIL_SMTP_PORT
#     (10025).  Every recipient outside @localhost is rewritten by virtual_alias_maps to one of
#     two local Unix users, and local(8) adds "X-Original-To: <the address it was sent to>":
#       - the organiser mailbox -> clerk: any local part starting "qa-leads" (the example group's
#         qa-leads@network.example, qa-leads+rsvp@...), and every address listed in
#         $CLERK_MAIL_ORGANISERS (space-separated);
#       - every other address   -> members,
#     except an address in an .invalid domain (RFC 2606), which Postfix accepts and then bounces
#     to the sender (so to clerk when the organiser sent it).
#     Mail is delivered to ~/Maildir/.  Postfix logs to /var/log/postfix.log (there is no syslog).
#   * Dovecot (its own config file, not /etc/dovecot) serves those Maildirs over IMAP on
#     127.0.0.1:$CLERK_MAIL_IMAP_PORT (10143) with plaintext LOGIN for the users clerk and members
#     (passwords below).  Its files and log are in /var/lib/clerk-test-mail.
# Every command runs with a time limit and no stdin, and no server inherits this script's stdout
# or stderr (Dovecot's master keeps its caller's stderr open forever, which hangs `| tail` in CI).
set -euo pipefail

smtp_port="${CLERK_MAIL_SMTP_PORT:-10025}"
imap_port="${CLERK_MAIL_IMAP_PORT:-10143}"
read -r -a organisers <<<"${CLERK_MAIL_ORGANISERS:-qa-leads@network.example}"
declare -A passwords=([clerk]=clerk-test [members]=members-test)

state=/var/lib/clerk-test-mail              # Dovecot's config, users, base_dir, state_dir, log
postfix_log=/var/log/postfix.log
virtual_regexp=/etc/postfix/clerk-test-virtual.regexp
organiser_map=/etc/postfix/clerk-test-organisers

log=/dev/null                               # becomes $state/setup.log once $state exists
me=tests/mailservers.sh
# shellcheck source=tests/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Does 127.0.0.1:$1 greet with a first line starting "$2"?
greets() {
  # shellcheck disable=SC2016  # $1 and $2 are the inner bash's arguments
  timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && IFS= read -r -t 2 line <&3 &&
    [[ "$line" == "$2"* ]]' _ "$1" "$2" </dev/null >/dev/null 2>&1
}

listening() {
  # shellcheck disable=SC2016
  timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" </dev/null >/dev/null 2>&1
}

wait_greeting() { # port prefix what
  for _ in $(seq 100); do
    greets "$1" "$2" && return 0
    sleep 0.05
  done
  fail "$3 does not greet with \"$2\" on 127.0.0.1:$1"
}

# Write file $1 (mode $2, owner $3) from stdin; return 0 if its content changed.
put() {
  local tmp
  tmp="$(mktemp "$1.XXXXXX")"
  cat >"$tmp"
  chmod "$2" "$tmp"
  chown "$3" "$tmp"
  if [ -f "$1" ] && cmp -s "$tmp" "$1"; then
    rm -f "$tmp"
    return 1
  fi
  mv -f "$tmp" "$1"
}

[ "$(id -u)" -eq 0 ] || fail "must run as root (it installs and starts Postfix and Dovecot)"
install -d -m 0755 "$state"
log="$state/setup.log"
: >"$log"

# --- Debian packages -----------------------------------------------------------------------
# Postfix asks questions when it is installed: answer them first
printf '%s\n' 'postfix postfix/main_mailer_type select Local only' \
  'postfix postfix/mailname string localhost' \
  | timeout 60 debconf-set-selections >>"$log" 2>&1 || fail "debconf-set-selections failed"
apt_install postfix dovecot-imapd
command -v postfix >/dev/null || fail "postfix is still missing"
command -v dovecot >/dev/null || fail "dovecot is still missing"

# --- the two mailbox users -----------------------------------------------------------------
declare -A uid gid home
for user in clerk members; do
  if ! id -u "$user" >/dev/null 2>&1; then
    quiet 60 useradd --create-home --shell /usr/sbin/nologin --comment "clerk mail tests" "$user" \
      || fail "useradd $user failed"
  fi
  IFS=: read -r _ _ uid[$user] gid[$user] _ home[$user] _ < <(getent passwd "$user")
  [ "${uid[$user]}" -ne 0 ] || fail "user $user has uid 0"
  for dir in "${home[$user]}" "${home[$user]}/Maildir" "${home[$user]}/Maildir/"{cur,new,tmp}; do
    [ -d "$dir" ] || install -d -m 0700 -o "${uid[$user]}" -g "${gid[$user]}" "$dir"
  done
done

# --- Postfix -------------------------------------------------------------------------------
postfix_changed=
[ -f /etc/postfix/main.cf ] || cp /usr/share/postfix/main.cf.debian /etc/postfix/main.cf

put "$virtual_regexp" 0644 root:root <<'EOF' && postfix_changed=1
# Written by tests/mailservers.sh (clerk's mail tests).  Every recipient outside @localhost goes
# to a local test user; local(8) keeps the address it was sent to in X-Original-To.  Addresses
# in .invalid domains (RFC 2606) go to a local user that does not exist: Postfix accepts them,
# then bounces them.
if !/@localhost$/
/\.invalid$/	no-such-user-for-invalid-domains@localhost
/^qa-leads[^@]*@/	clerk@localhost
/^/	members@localhost
endif
EOF
{
  echo "# Written by tests/mailservers.sh: organiser addresses (CLERK_MAIL_ORGANISERS) -> clerk."
  for address in "${organisers[@]}"; do printf '%s\tclerk@localhost\n' "$address"; done
} | put "$organiser_map" 0644 root:root && postfix_changed=1

settings=(
  "myhostname=localhost"
  "mydomain=localdomain"
  "myorigin=localhost"
  "mydestination=localhost, localhost.localdomain"
  "inet_interfaces=loopback-only"
  "inet_protocols=ipv4"
  "mynetworks=127.0.0.0/8"
  "relayhost="
  "home_mailbox=Maildir/"
  "mailbox_command="
  "maillog_file=$postfix_log"
  "virtual_alias_maps=texthash:$organiser_map, regexp:$virtual_regexp"
  # the maps rewrite recipients only; no domain is a virtual alias domain (localhost is local)
  "virtual_alias_domains="
  # nothing leaves the machine, whatever a test sends
  "default_transport=error:clerk mail tests deliver nothing off this machine"
  "relay_transport=error:clerk mail tests deliver nothing off this machine"
  "biff=no"
  "append_dot_mydomain=no"
  "compatibility_level=3.6"
)
edits=()
for setting in "${settings[@]}"; do
  name="${setting%%=*}"
  [ "$(postconf -h "$name" 2>>"$log")" = "${setting#*=}" ] || edits+=("$name = ${setting#*=}")
done
if [ "${#edits[@]}" -gt 0 ]; then
  quiet 30 postconf -e "${edits[@]}" || fail "postconf -e failed"
  postfix_changed=1
fi

# master.cf: postlog (logging without syslog), no chroot, an smtpd on the high port.
normal() { tr -s ' \t' '  '; }
if [ -z "$(postconf -M postlog/unix-dgram 2>>"$log")" ]; then
  quiet 30 postconf -M "postlog/unix-dgram=postlog unix-dgram n - n - 1 postlogd" \
    || fail "postconf -M postlog failed"
  postfix_changed=1
fi
old_port="$(cat "$state/smtp-port" 2>/dev/null || true)"
if [ -n "$old_port" ] && [ "$old_port" != "$smtp_port" ] \
  && [ -n "$(postconf -M "$old_port/inet" 2>>"$log")" ]; then
  # the listener an earlier run added on another port
  quiet 30 postconf -MX "$old_port/inet" || fail "postconf -MX $old_port/inet failed"
  postfix_changed=1
fi
echo "$smtp_port" >"$state/smtp-port"
want="$smtp_port inet n - n - - smtpd"
if [ "$(postconf -M "$smtp_port/inet" 2>>"$log" | normal)" != "$want" ]; then
  quiet 30 postconf -M "$smtp_port/inet=$want" || fail "postconf -M $smtp_port/inet failed"
  postfix_changed=1
fi
chroots="$(postconf -F '*/*/chroot' 2>>"$log")" || fail "postconf -F failed"
if grep -qv '= n$' <<<"$chroots"; then
  quiet 30 postconf -F '*/*/chroot = n' || fail "postconf -F chroot failed"
  postfix_changed=1
fi
if [ ! -f /etc/aliases.db ] || [ /etc/aliases -nt /etc/aliases.db ]; then
  quiet 60 newaliases || fail "newaliases failed"
fi

if quiet 30 postfix status; then
  if [ -n "$postfix_changed" ]; then
    quiet 60 postfix reload || fail "postfix reload failed (see $postfix_log)"
    sleep 0.2  # the master re-opens its listeners
  fi
else
  for port in 25 "$smtp_port"; do
    ! listening "$port" || fail "127.0.0.1:$port is taken by something other than Postfix"
  done
  quiet 60 postfix check || fail "postfix check failed"
  quiet 60 postfix start || fail "postfix start failed (see $postfix_log)"
fi
wait_greeting "$smtp_port" "220 " "Postfix"
wait_greeting 25 "220 " "Postfix"

# --- Dovecot -------------------------------------------------------------------------------
conf="$state/dovecot.conf"
users="$state/dovecot.users"
getent group dovecot >/dev/null || fail "the dovecot group is missing (dovecot-core installs it)"
install -d -m 0755 "$state/run" "$state/lib"

for user in clerk members; do
  printf '%s:{PLAIN}%s:%s:%s::%s::\n' \
    "$user" "${passwords[$user]}" "${uid[$user]}" "${gid[$user]}" "${home[$user]}"
done | put "$users" 0640 root:dovecot || true  # passwd-file re-reads a changed file by itself

first_uid="$(( uid[clerk] < uid[members] ? uid[clerk] : uid[members] ))"
dovecot_changed=
put "$conf" 0644 root:root <<EOF && dovecot_changed=1
# Written by tests/mailservers.sh for clerk's mail tests: loopback only, plaintext LOGIN with
# known passwords, the users' ~/Maildir as Postfix delivers it.  Not /etc/dovecot's config.
instance_name = clerk-test-dovecot
base_dir = $state/run
state_dir = $state/lib
log_path = $state/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = $first_uid
mail_location = maildir:~/Maildir
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%n $users
}
userdb {
  driver = passwd-file
  args = username_format=%n $users
}
namespace inbox {
  inbox = yes
  separator = /
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $imap_port
  }
  inet_listener imaps {
    port = 0
  }
}
EOF

pidfile="$state/run/master.pid"
running_pid() {
  local pid
  pid="$(cat "$pidfile" 2>/dev/null)" || return 1
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dovecot ] && echo "$pid"
}
if pid="$(running_pid)" && [ -n "$dovecot_changed" ]; then
  # a changed config may move the listener: restart rather than reload
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do running_pid >/dev/null || break; sleep 0.05; done
  ! running_pid >/dev/null || fail "Dovecot (pid $pid) did not stop"
fi
if ! running_pid >/dev/null; then
  ! listening "$imap_port" || fail "127.0.0.1:$imap_port is taken by something other than Dovecot"
  # Dovecot's master keeps its caller's stderr open for ever: give it none of ours.
  timeout 30 dovecot -c "$conf" </dev/null >/dev/null 2>>"$state/dovecot-start.log" \
    || { cat "$state/dovecot-start.log" >>"$log"; fail "dovecot -c $conf failed"; }
fi
wait_greeting "$imap_port" "* OK" "Dovecot"

# --- what the tests need to know -----------------------------------------------------------
printf '{"host": "127.0.0.1", "smtp_port": %s, "imap_port": %s, ' "$smtp_port" "$imap_port"
printf '"users": {"clerk": "%s", "members": "%s"}, ' "${passwords[clerk]}" "${passwords[members]}"
printf '"maildirs": {"clerk": "%s/Maildir", "members": "%s/Maildir"}, ' \
  "${home[clerk]}" "${home[members]}"
printf '"organisers": [%s], ' "$(printf '"%s", ' "${organisers[@]}" | sed 's/, $//')"
printf '"logs": {"postfix": "%s", "dovecot": "%s"}}\n' "$postfix_log" "$state/dovecot.log"
