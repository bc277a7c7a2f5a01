"""The outbox transport: a Maildir any mail client opens (the embedded default).

Each message is written to ``tmp/``, flushed to disk, then renamed into ``new/`` (the Maildir
delivery protocol), so a reader never sees half a message and a crash leaves either nothing or
the whole message. The file name is derived from the Message-ID, so :meth:`lookup` of a
message left in doubt by a crash is one ``stat``. The folders are 0700 and the messages 0600
(bot/transports/files.py): an outbox an older clerk left readable is tightened when used.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from bot.domain.errors import TransportError
from bot.domain.options import Option, _bool, _str
from bot.transports.base import Mail, Transport
from bot.transports.files import private_folder, tighten, write_private

OPTIONS = {
    "path": Option("outbox", _str, "the Maildir folder (relative: under the working folder)"),
    "fsync": Option(True, _bool, "flush each message to disk before it counts as sent"),
}


class OutboxTransport(Transport):
    name = "outbox"

    def __init__(self, options: dict[str, Any]) -> None:
        super().__init__(options)
        self.path = Path(options.get("path", "outbox"))
        self.fsync = bool(options.get("fsync", True))  # off only for scratch runs
        self._checked = False  # whether folders an older clerk made were tightened

    def _folders(self) -> None:
        for folder in (self.path, *(self.path / sub for sub in ("tmp", "new", "cur"))):
            private_folder(folder)
            if not self._checked:
                tighten(folder)
        self._checked = True

    def describe(self) -> str:
        return f"outbox {self.path}"

    def _name(self, message_id: str) -> str:
        return hashlib.sha256(message_id.encode()).hexdigest()[:32] + ".clerk"

    def send(self, message: Mail) -> None:
        name = self._name(message.message_id)
        try:
            self._folders()
            tmp = self.path / "tmp" / name
            write_private(tmp, message.data, fsync=self.fsync)
            os.replace(tmp, self.path / "new" / name)
        except OSError as exc:
            # a full or read-only disk may clear; the ledger retries with back-off
            raise TransportError(f"cannot write to {self.path}: {exc}", retryable=True) from exc

    def doctor(self) -> list[tuple[bool, str, str]]:
        what = f"outbox {self.path}: a folder clerk may write"
        try:
            self._folders()
            probe = self.path / "tmp" / ".clerk-doctor"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            return [(False, what, f"{exc.strerror}: make the folder writable by clerk, or "
                     "set [transport] path")]
        return [(True, what, "")]

    def lookup(self, message_id: str, key: str = "") -> bool | None:
        name = self._name(message_id)
        if (self.path / "new" / name).exists():
            return True
        cur = self.path / "cur"
        return cur.is_dir() and any(p.name.startswith(name) for p in cur.iterdir())
