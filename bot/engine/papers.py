"""Keeping the papers of a member's answer (bot/engine/inbox.py).

Every file in ``papers/<group>/<meeting>/`` goes into every member's agenda pack, so an
attachment goes there only when its content is of an allowed type (bot/listen/papers.py)
and the meeting's papers stay within ``max_meeting_papers``; it is saved as
``<organisation>--<name>`` (``<organisation>--<n>--<name>`` when taken), with the extension
of its type. Anything else is *quarantined*: kept for the admin in
``quarantine/<group>/<meeting>/`` as ``<organisation>--<name>.quarantined`` (outside the
papers folder, so no pack can reach it; the added extension keeps a double-click from
running it), and recorded in the store with the reason, which `clerk status` and the admin's
digest show. An attachment that came without its data (larger than ``max_attachment``, past
``max_attachments``) is recorded the same way, with no file. The answer counts whatever
happens to its papers.

A name is cut to the folder's limit in bytes of UTF-8 (``PC_NAME_MAX``, else 255), counting
the prefix and keeping the extension; a name that still cannot be written becomes
``attachment-N.<ext>``, and a paper that cannot be written at all is recorded as not kept:
a file name never loses an answer. Folders are 0700, files 0600 (bot/transports/files.py).
"""

from __future__ import annotations

import errno
import logging
import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from bot.domain.model import Member, Settings
from bot.engine.store import Store
from bot.listen.answers import Answer, Attachment
from bot.listen.papers import fit, paper_name, sniff
from bot.listen.replies import Incoming
from bot.transports.files import private_folder, write_private

log = logging.getLogger("clerk")
QUARANTINED = ".quarantined"


@dataclass
class Filed:
    """What became of an answer's attachments."""

    saved: list[Path] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)  # "name (why)", kept for the admin
    dropped: list[str] = field(default_factory=list)  # "name (why)", not kept at all

    def note(self) -> str:
        """For the inbox log: what was kept back, and why."""
        parts = [f"; {label}: {', '.join(names)}" for label, names in (
            ("quarantined", self.quarantined), ("not kept", self.dropped)) if names]
        return "".join(parts)


@dataclass(frozen=True)
class Sender:
    """Whose answer it is: the member, and the message it came in."""

    member: Member
    incoming: Incoming


class Papers:
    """Files the papers of answers for one install's settings and store."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store

    def file(self, group: str, meeting: str, sender: Sender, answer: Answer,
             now: datetime) -> Filed:
        filed = Filed()
        folder = Path(self.settings.papers) / group / meeting
        total = _size_of(folder)
        for n, a in enumerate(answer.attachments, 1):
            if a.data is None:
                self._keep_back(group, meeting, sender, a, None, a.refused or "not kept", now)
                filed.dropped.append(f"{a.filename} ({a.refused or 'not kept'})")
                continue
            kind = sniff(a.data, a.filename)
            limit = self.settings.max_meeting_papers
            if not kind.allowed:
                why = f"not an allowed type: {kind.what}"
            elif total + len(a.data) > limit:
                why = (f"the papers for {meeting} would come to {total + len(a.data):,} "
                       f"bytes, over max_meeting_papers ({limit:,})")
            else:
                try:
                    filed.saved.append(_write(folder, sender.member.organisation,
                                              paper_name(a.filename, kind), n, kind.ext,
                                              a.data))
                except OSError as exc:  # a full or read-only disk: the answer still counts
                    why = f"could not be saved in {folder}: {exc.strerror or exc}"
                    self._keep_back(group, meeting, sender, a, None, why, now)
                    filed.dropped.append(f"{a.filename} ({why})")
                else:
                    total += len(a.data)
                continue
            self._quarantine(group, meeting, sender, a, n, why, filed, now)
        return filed

    def _quarantine(self, group: str, meeting: str, sender: Sender, a: Attachment, n: int,
                    why: str, filed: Filed, now: datetime) -> None:
        folder = Path(self.settings.quarantine) / group / meeting
        assert a.data is not None
        try:
            path: Path | None = _write(folder, sender.member.organisation, a.filename, n,
                                       "", a.data, QUARANTINED)
        except OSError as exc:
            path, why = None, f"{why}; could not be kept in {folder}: {exc.strerror or exc}"
        self._keep_back(group, meeting, sender, a, path, why, now)
        (filed.quarantined if path else filed.dropped).append(f"{a.filename} ({why})")
        log.warning("papers: %s from %s for %s/%s quarantined: %s", a.filename,
                    sender.incoming.sender, group, meeting, why)

    def _keep_back(self, group: str, meeting: str, sender: Sender, a: Attachment,
                   path: Path | None, why: str, now: datetime) -> None:
        self.store.keep_back({
            "group_id": group, "meeting_id": meeting,
            "organisation": sender.member.organisation, "sender": sender.incoming.sender,
            "message_id": sender.incoming.message_id, "name": a.filename,
            "path": str(path) if path else None, "size": a.size, "reason": why}, now)


def _size_of(folder: Path) -> int:
    """The papers already in ``folder``, in bytes: what each pack carries."""
    try:
        return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    except OSError:
        return 0


def name_max(folder: Path) -> int:
    """The longest file name ``folder``'s filesystem takes, in bytes (255 when it will not
    say, as on most)."""
    try:
        most = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # no pathconf (Windows), or no answer
        return 255
    return most if 0 < most <= 255 else 255


def _write(folder: Path, organisation: str, name: str, n: int, ext: str, data: bytes,
           suffix: str = "") -> Path:
    """``data`` in a new file in ``folder``, named after the organisation and ``name``, cut
    to fit; under ``attachment-N.<ext>`` when that name cannot be written. Never over an
    existing file."""
    private_folder(folder)
    most, slug = name_max(folder), _slug(organisation)
    fallback = f"attachment-{n}.{ext}" if ext else f"attachment-{n}"
    error = OSError(errno.ENAMETOOLONG, f"no name for attachment {n} fits")
    for candidate in dict.fromkeys((name, fallback)):
        for i in range(1, 1000):
            prefix = f"{slug}--" if i == 1 else f"{slug}--{i}--"
            fitted = fit(candidate, most - len(prefix.encode()) - len(suffix.encode()))
            if not fitted:
                break
            path = folder / f"{prefix}{fitted}{suffix}"
            try:
                write_private(path, data, new=True)
                return path
            except FileExistsError:  # never overwrite an earlier paper
                continue
            except OSError as exc:  # a name this filesystem refuses: the plain one next
                log.warning("papers: cannot write %r in %s (%s)", path.name, folder,
                            exc.strerror or exc)
                error = exc
                break
    raise error


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:64].strip("-") or "member"
