"""The maildir mailbox: replies read from a local Maildir folder, for an install without an IMAP
server — mail delivered there by fetchmail or getmail, or replies the admin saved from Outlook
on the web as .eml files into its ``new/`` folder.

Each message in ``new/`` and ``cur/`` is read, oldest first, and then moved (never deleted)
into the Maildir++ subfolder ``.clerk.processed`` or ``.clerk.unprocessed`` of the same
Maildir, as the imap mailbox moves it to ``clerk/processed`` or ``clerk/unprocessed``. A
file's name stays as it was, with Maildir's ``:2,`` info added when missing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bot.domain.errors import TransportError
from bot.domain.options import REQUIRED, Option, _int, _str
from bot.transports.base import HEAD, Oversized

log = logging.getLogger("clerk")

OPTIONS = {
    "path": Option(REQUIRED, _str, "the Maildir folder (holding new/, cur/ and tmp/)"),
    "processed": Option(".clerk.processed", _str, "subfolder for handled messages"),
    "unprocessed": Option(".clerk.unprocessed", _str,
                          "subfolder for messages clerk cannot use"),
    "batch": Option(200, _int, "at most this many messages read per tick"),
}


class MaildirMailbox:
    """A Maildir folder on this machine, read by clerk."""

    name = "maildir"

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        self.path = Path(str(options.get("path") or "inbox"))
        self.max_message: int | None = None  # larger files are not read whole

    def __repr__(self) -> str:
        return f"<MaildirMailbox {self.path}>"

    def messages(self) -> Iterator[tuple[str, bytes | Oversized]]:
        """(file name, raw message) for what is in new/ and cur/, oldest first; a file over
        ``max_message`` as :class:`Oversized`, its first bytes only read."""
        try:
            found = [p for sub in ("new", "cur") if (self.path / sub).is_dir()
                     for p in (self.path / sub).iterdir() if p.is_file()
                     and not p.name.startswith(".")]
            found.sort(key=lambda p: (p.stat().st_mtime_ns, p.name))
        except OSError as exc:
            raise TransportError(f"cannot read the Maildir {self.path}: {exc}",
                                 retryable=True) from exc
        for p in found[: int(self.options.get("batch", 200))]:
            try:
                size = p.stat().st_size
                if self.max_message and size > self.max_message:
                    with p.open("rb") as f:
                        yield f"{p.parent.name}/{p.name}", Oversized(size, f.read(HEAD))
                    continue
                raw = p.read_bytes()
            except OSError as exc:  # gone meanwhile (another reader), or unreadable
                log.warning("maildir: cannot read %s: %s", p, exc)
                continue
            yield f"{p.parent.name}/{p.name}", raw

    def file(self, uid: str, handled: bool) -> None:
        """Move a message into the processed or the unprocessed subfolder."""
        sub, _, name = uid.partition("/")
        folder = self.path / str(self.options.get("processed" if handled else "unprocessed")
                                 or (".clerk.processed" if handled else ".clerk.unprocessed"))
        try:
            for part in ("cur", "new", "tmp"):
                (folder / part).mkdir(parents=True, exist_ok=True, mode=0o700)
            target = name if ":2," in name else f"{name}:2,"
            os.replace(self.path / sub / name, folder / "cur" / target)
        except OSError as exc:
            raise TransportError(f"cannot file {uid} in {folder}: {exc}",
                                 retryable=True) from exc

    def keep_sent(self, raw: bytes) -> None:
        """A Maildir keeps no Sent copy."""

    def find_sent(self, message_id: str) -> bool | None:
        return None  # no Sent folder here

    def doctor(self) -> list[tuple[bool, str, str]]:
        what = f"maildir {self.path}: new/ and cur/ readable, subfolders writable"
        missing = [s for s in ("new", "cur", "tmp") if not (self.path / s).is_dir()]
        if missing:
            return [(False, what, f"create {', '.join(str(self.path / s) for s in missing)} "
                                  "(mkdir -p), or point [mailbox] path at the Maildir")]
        if not os.access(self.path, os.W_OK):
            return [(False, what, f"let the user clerk runs as write to {self.path}")]
        return [(True, what, "")]

    def close(self) -> None:
        """Nothing is held open."""
