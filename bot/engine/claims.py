"""Who claimed a row (or took a lock), and whether it may still be at work.

A claim names its process by an id that survives PID reuse: the host's name, the boot's id,
the PID namespace, the PID and the process's start time (Linux: ``/proc``), and a random part
of its own. Another process on the same host, boot and PID namespace can tell for certain
that the claimant is gone — no process with that PID, or one started at another time (the PID
reused). Anywhere else (another host, a reboot that may be a twin host of the same name, a
system without ``/proc``) nothing is certain, and the claim's lease decides: it is taken for
the claimant's lease only, ``lease_until``, by the wall clock (keep the hosts' clocks in time:
``clerk doctor`` compares each with the database's). Rows only: part of the store.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass, replace
from datetime import datetime


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return ""


def _stat(pid: int) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the process's name (none when unknown): its
    state first (field 3 of proc(5))."""
    return _read(f"/proc/{pid}/stat").rpartition(")")[2].split()  # the name may hold blanks


def started(pid: int) -> str:
    """When process ``pid`` started, in clock ticks since boot ("" when unknown: it does not
    run, or there is no ``/proc``)."""
    fields = _stat(pid)
    return fields[19] if len(fields) > 19 else ""  # field 22 of proc(5)


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid").strip("pid:[]")
    except OSError:
        return ""


@dataclass(frozen=True)
class Claimant:
    host: str
    boot: str  # "" where unknown
    namespace: str  # the PID namespace, "" where unknown
    pid: int
    started: str  # "" where unknown
    nonce: str  # random, this process's own ("" for a claim of clerk before 0014)

    def __str__(self) -> str:
        return ":".join((self.host, self.boot, self.namespace, str(self.pid), self.started,
                         self.nonce))

    @classmethod
    def parse(cls, text: str) -> Claimant | None:
        """A claimant as written in the ledger (None when it is not one). Also the
        ``host:pid`` of clerk before migration 0014."""
        parts = text.rsplit(":", 5)
        if len(parts) == 6 and parts[3].isdigit():
            host, boot, namespace, pid, start, nonce = parts
            return cls(host, boot, namespace, int(pid), start, nonce)
        host, _, pid = text.rpartition(":")
        return cls(host, "", "", int(pid), "", "") if host and pid.isdigit() else None

    @classmethod
    def of(cls, pid: int) -> Claimant:
        """The claimant process ``pid`` of this host would be (its random part aside)."""
        return cls(socket.gethostname()[:64], _read("/proc/sys/kernel/random/boot_id"),
                   _pid_namespace(), pid, started(pid), "")

    def gone(self, mine: str) -> bool | None:
        """Whether this claimant's process has ended, as this host can tell: True or False
        on the same host, boot and PID namespace; None anywhere else (the lease decides).
        A claim of the caller's own (``mine``) is never in flight between two ticks: gone."""
        here = me()
        if str(self) == mine:
            return True
        if self.host != here.host:
            return None
        if not self.boot:  # clerk before 0014: host:pid alone
            return not _runs(self.pid)
        if (self.boot, self.namespace) != (here.boot, here.namespace) or not here.boot:
            return None  # rebooted, or a twin host of the same name: cannot tell
        return not _runs(self.pid) or (bool(self.started) and started(self.pid) != self.started)


def _runs(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's: it is there
        pass
    # a process killed and not yet reaped by its parent (a zombie) is there, doing nothing
    state = _stat(pid)
    return not state or state[0] not in ("Z", "X")


_me: Claimant | None = None


def me() -> Claimant:
    """This process (made again in a forked child: its PID differs)."""
    global _me
    if _me is None or _me.pid != os.getpid():
        _me = replace(Claimant.of(os.getpid()), nonce=secrets.token_hex(4))
    return _me


def at_work(claimant: str | None, lease_until: datetime | None, now: datetime,
            mine: str) -> bool:
    """Whether the process that claimed a row (or holds a lock) may still be at it: alive,
    as far as this host can tell, else within its lease (``now``: the wall clock).
    ``mine``: the caller's own claimant."""
    who = Claimant.parse(claimant) if claimant else None
    if who is None:
        return False
    gone = who.gone(mine)
    if gone is not None:
        return not gone
    return lease_until is not None and now < lease_until
