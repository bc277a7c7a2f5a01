#!/usr/bin/env bash
# A private Postfix and Dovecot on loopback for one run of the mail tests (tests/mail.py), on
# Debian 12 as root without systemd.  Any number of runs can share a host: each has its own
# config, queue, mailboxes, logs and free ports in its own folder.
#
#   bash tests/mailservers.sh start DIR   installs the packages if missing, starts both servers
#                                         with everything under DIR (a new or empty folder that
#                                         every user can traverse) and prints one line of JSON
#   bash tests/mailservers.sh stop DIR    stops what `start DIR` started; idempotent
#
# tests/run.sh (`make test`) does both, in a temp folder it removes at the end.  The JSON, which
# the tests read from CLERK_TEST_MAIL (the JSON itself, or the path of a file holding it):
#   {"host": "127.0.0.1", "smtp_port": ..., "imap_port": ...,
#    "users": {"clerk": "clerk-test", "members": "members-test"}, "maildirs": {...},
#    "organisers": [...], "logs": {"postfix": ..., "dovecot": ...},
#    "postfix_config": "DIR/postfix/config"}       (for `postqueue -c`: this instance's queue)
#
# What mail does here (nothing ever leaves the machine):
#   * Postfix (`postfix -c DIR/postfix/config`) listens on 127.0.0.1:<smtp_port> only.  Every
#     recipient outside @localhost is rewritten by virtual_alias_maps to one of two mailboxes, and
#     the virtual(8) delivery agent adds "X-Original-To: <the address it was sent to>":
#       - the organiser mailbox -> clerk: any local part starting "qa-leads" (the example group's
#         qa-leads@network.example, qa-leads+rsvp@...), and every address listed in
#         $CLERK_MAIL_ORGANISERS (space-separated);
#       - every other address   -> members,
#     except an address in an .invalid domain (RFC 2606), which Postfix accepts and then bounces
#     to the sender (so to clerk when the organiser sent it).  @localhost holds only the
#     mailboxes clerk, members and postmaster: any other @localhost user is refused at RCPT (550).
#     The mailboxes are Maildirs DIR/mailboxes/<name>/Maildir owned by the system user
#     clerk-test (created once, reused by every run).  Postfix logs to DIR/postfix.log.
#   * Dovecot (`dovecot -c DIR/dovecot/dovecot.conf`) serves the clerk and members Maildirs over
#     IMAP on 127.0.0.1:<imap_port> with plaintext LOGIN (passwords in the JSON).  It logs to
#     DIR/dovecot.log.
# Every command runs with a time limit and no stdin, and no server inherits this script's stdout
# or stderr (Dovecot's master keeps its caller's stderr open forever, which hangs `| tail` in CI).
# Quiet unless it fails; exits non-zero on failure (what it started is then left for `stop`).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
me=tests/mailservers.sh
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
[ "$(id -u)" -eq 0 ] || fail "must run as root (it installs and starts Postfix and Dovecot)"
cd /

pf="$dir/postfix/config"                    # Postfix's config_directory
queue="$dir/postfix/queue"
dc="$dir/dovecot"                           # Dovecot's config, users, base_dir and state_dir
boxes="$dir/mailboxes"
postfix_log="$dir/postfix.log"
dovecot_log="$dir/dovecot.log"
mailbox_user=clerk-test
declare -A passwords=([clerk]=clerk-test [members]=members-test)

# --- stop ----------------------------------------------------------------------------------

dovecot_pid() {
  local pid
  pid="$(cat "$dc/run/master.pid" 2>/dev/null)" || return 1
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dovecot ] && echo "$pid"
}

stop() {
  local pid problems=0
  [ -d "$dir" ] || return 0
  log="$dir/stop.log"
  if pid="$(dovecot_pid)"; then
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_gone "$pid" 10; then
      kill -KILL "$pid" 2>/dev/null || true
      echo "$me: Dovecot (pid $pid) did not stop in 10 s: killed" >&2
      problems=1
    fi
  fi
  if [ -f "$pf/main.cf" ] && [ -d "$queue" ] && quiet 30 postfix -c "$pf" status; then
    if ! quiet 30 postfix -c "$pf" stop; then
      quiet 30 postfix -c "$pf" abort || true
      echo "$me: Postfix ($pf) did not stop: aborted" >&2
      problems=1
    fi
  fi
  return "$problems"
}

if [ "$action" = stop ]; then
  stop
  exit
fi
[ "$action" = start ] || usage

# --- start ---------------------------------------------------------------------------------

read -r -a organisers <<<"${CLERK_MAIL_ORGANISERS:-qa-leads@network.example}"
install -d -m 0755 "$dir"
[ -z "$(ls -A "$dir")" ] || fail "$dir is not empty"
log="$dir/setup.log"
: >"$log"

# Does 127.0.0.1:$1 greet with a first line starting "$2"?
greets() {
  # shellcheck disable=SC2016  # $1 and $2 are the inner bash's arguments
  timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && IFS= read -r -t 2 line <&3 &&
    [[ "$line" == "$2"* ]]' _ "$1" "$2" </dev/null >/dev/null 2>&1
}

wait_greeting() { # port prefix what
  for _ in $(seq 100); do
    greets "$1" "$2" && return 0
    sleep 0.05
  done
  fail "$3 does not greet with \"$2\" on 127.0.0.1:$1"
}

# Write file $1 (mode $2, owner $3) from stdin.
put() {
  cat >"$1"
  chmod "$2" "$1"
  chown "$3" "$1"
}

# --- Debian packages -----------------------------------------------------------------------
if ! command -v postfix >/dev/null; then
  # Postfix asks questions when it is installed: answer them first
  printf '%s\n' 'postfix postfix/main_mailer_type select Local only' \
    'postfix postfix/mailname string localhost' \
    | timeout 60 debconf-set-selections >>"$log" 2>&1 || fail "debconf-set-selections failed"
fi
apt_install postfix dovecot-imapd
command -v postfix >/dev/null || fail "postfix is still missing"
command -v dovecot >/dev/null || fail "dovecot is still missing"
[ -f /usr/share/postfix/master.cf.dist ] || fail "/usr/share/postfix/master.cf.dist is missing"
getent group dovecot >/dev/null || fail "the dovecot group is missing (dovecot-core installs it)"

# --- the owner of the mailboxes ------------------------------------------------------------
# One system user for every run (a user is not a process: nothing to stop).  Two runs may try
# to create it at once: useradd then fails for one of them, which finds the user on retry.
for _ in 1 2 3 4 5; do
  id -u "$mailbox_user" >/dev/null 2>&1 && break
  quiet 60 useradd --system --user-group --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin --comment "clerk mail tests, owner of the test Maildirs" \
    "$mailbox_user" || sleep 0.5
done
IFS=: read -r _ _ uid gid _ < <(getent passwd "$mailbox_user") \
  || fail "cannot create the user $mailbox_user"
[ "$uid" -ne 0 ] || fail "user $mailbox_user has uid 0"

install -d -m 0755 "$boxes"
for box in clerk members postmaster; do
  for sub in "" /Maildir /Maildir/cur /Maildir/new /Maildir/tmp; do
    install -d -m 0700 -o "$uid" -g "$gid" "$boxes/$box$sub"
  done
done

# --- Postfix -------------------------------------------------------------------------------
install -d -m 0755 "$dir/postfix" "$pf" "$queue"

put "$pf/virtual.regexp" 0644 root:root <<'EOF'
# Written by tests/mailservers.sh (clerk's mail tests).  Every recipient outside @localhost goes
# to a test mailbox; virtual(8) keeps the address it was sent to in X-Original-To.  Addresses in
# .invalid domains (RFC 2606) go to an @localhost mailbox that does not exist: Postfix accepts
# them, then bounces them.
if !/@localhost$/
/\.invalid$/	no-such-mailbox-for-invalid-domains@localhost
/^qa-leads[^@]*@/	clerk@localhost
/^/	members@localhost
endif
EOF
{
  echo "# Written by tests/mailservers.sh: organiser addresses (CLERK_MAIL_ORGANISERS) -> clerk."
  for address in "${organisers[@]}"; do printf '%s\tclerk@localhost\n' "${address,,}"; done
} | put "$pf/organisers" 0644 root:root
put "$pf/mailboxes" 0644 root:root <<'EOF'
# Written by tests/mailservers.sh: the only @localhost users (others are refused at RCPT).
clerk@localhost	clerk/Maildir/
members@localhost	members/Maildir/
postmaster@localhost	postmaster/Maildir/
EOF

nowhere="error:5.7.1 clerk mail tests deliver nothing off this machine"
put "$pf/main.cf" 0644 root:root <<EOF
# Written by tests/mailservers.sh for one run of clerk's mail tests: \`postfix -c $pf\`.
compatibility_level = 3.6
queue_directory = $queue
data_directory = $dir/postfix/data
syslog_name = postfix-clerk-test
maillog_file = $postfix_log
maillog_file_prefixes = $dir
myhostname = localhost
mydomain = localdomain
myorigin = localhost
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost =
alias_maps =
alias_database =
local_recipient_maps =
virtual_alias_maps = texthash:$pf/organisers, regexp:$pf/virtual.regexp
# the maps rewrite recipients only; localhost is the one (virtual mailbox) domain
virtual_alias_domains =
virtual_mailbox_domains = localhost
virtual_mailbox_maps = texthash:$pf/mailboxes
virtual_mailbox_base = $boxes
virtual_uid_maps = static:$uid
virtual_gid_maps = static:$gid
virtual_minimum_uid = $uid
# nothing leaves the machine, whatever a test sends
default_transport = $nowhere
relay_transport = $nowhere
biff = no
append_dot_mydomain = no
smtputf8_enable = no
EOF
cp /usr/share/postfix/master.cf.dist "$pf/master.cf"
chmod 0644 "$pf/master.cf"
quiet 30 postconf -c "$pf" -MX smtp/inet || fail "postconf -MX smtp/inet failed"
quiet 30 postconf -c "$pf" -F '*/*/chroot = n' || fail "postconf -F chroot failed"
if [ -z "$(postconf -c "$pf" -M postlog/unix-dgram 2>>"$log")" ]; then
  quiet 30 postconf -c "$pf" -M "postlog/unix-dgram=postlog unix-dgram n - n - 1 postlogd" \
    || fail "postconf -M postlog failed"
fi

# The port is free when picked, but another process may take it first: then pick again.
smtp_port=
listener=
for _ in 1 2 3 4 5; do
  port="$(free_port)" || fail "cannot pick a free port"
  [ -z "$listener" ] || quiet 30 postconf -c "$pf" -MX "$listener" || fail "postconf -MX failed"
  listener="127.0.0.1:$port/inet"
  quiet 30 postconf -c "$pf" -M "$listener=127.0.0.1:$port inet n - n - - smtpd" \
    || fail "postconf -M $listener failed"
  if quiet 60 postfix -c "$pf" start; then
    smtp_port="$port"
    wait_greeting "$smtp_port" "220 " "Postfix"
    break
  fi
  # (the master's own complaint is lost: it dies before its log service is up)
  taken "$port" || fail "postfix -c $pf start failed (see $postfix_log)"
done
[ -n "$smtp_port" ] || fail "Postfix found no free port"

# --- Dovecot -------------------------------------------------------------------------------
conf="$dc/dovecot.conf"
users="$dc/users"
install -d -m 0755 "$dc" "$dc/run" "$dc/lib"
for user in clerk members; do
  printf '%s:{PLAIN}%s:%s:%s::%s::\n' "$user" "${passwords[$user]}" "$uid" "$gid" "$boxes/$user"
done | put "$users" 0640 root:dovecot

imap_port=
for _ in 1 2 3 4 5; do
  port="$(free_port)" || fail "cannot pick a free port"
  put "$conf" 0644 root:root <<EOF
# Written by tests/mailservers.sh for one run of clerk's mail tests: loopback only, plaintext
# LOGIN with known passwords, the Maildirs Postfix delivers to.  Not /etc/dovecot's config.
instance_name = clerk-test-imap-$port
base_dir = $dc/run
state_dir = $dc/lib
log_path = $dovecot_log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = $uid
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
    port = $port
  }
  inet_listener imaps {
    port = 0
  }
}
EOF
  # Dovecot's master keeps its caller's stderr open for ever: give it none of ours.
  if timeout 30 dovecot -c "$conf" </dev/null >/dev/null 2>>"$dc/start.log"; then
    imap_port="$port"
    wait_greeting "$imap_port" "* OK" "Dovecot"
    break
  fi
  cat "$dc/start.log" >>"$log"
  grep -q "Address already in use" "$dc/start.log" || taken "$port" \
    || fail "dovecot -c $conf failed"
  : >"$dc/start.log"
done
[ -n "$imap_port" ] || fail "Dovecot found no free port"

# --- what the tests need to know -----------------------------------------------------------
printf '{"host": "127.0.0.1", "smtp_port": %s, "imap_port": %s, ' "$smtp_port" "$imap_port"
printf '"users": {"clerk": "%s", "members": "%s"}, ' "${passwords[clerk]}" "${passwords[members]}"
printf '"maildirs": {"clerk": "%s/clerk/Maildir", "members": "%s/members/Maildir"}, ' \
  "$boxes" "$boxes"
printf '"organisers": [%s], ' "$(printf '"%s", ' "${organisers[@]}" | sed 's/, $//')"
printf '"logs": {"postfix": "%s", "dovecot": "%s"}, ' "$postfix_log" "$dovecot_log"
printf '"postfix_config": "%s"}\n' "$pf"
