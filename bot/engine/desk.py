"""The admin's desk by mail: she runs a meeting cycle from her mailbox, no shell.

- **Minutes by mail.** She sends the organiser address the minutes as an attachment (.docx,
  .pdf, .md, .txt — told by content, bot/listen/papers.py); the meeting is the one her subject
  names (its id, title or date), else the latest meeting without minutes. clerk puts the file
  where the group's minutes live, imports its actions, nudges and next-agenda items
  (bot/engine/minutes_in.py) and answers at once with a summary: each action with its owners
  and due date, numbered questions for the owners it could not settle, with candidates, and
  the circulation, held until she answers APPROVE.
- **Commands in her reply**, one a line (bot/listen/commands.py): APPROVE, HOLD, Q1 3,
  DUE #4 31 May, DONE #4, DROP #5, OWNER #5 Jo, ADD <item>, STATUS, HELP. Each reply is
  confirmed by a short answer saying what was done and what is still open. What a command
  is about comes from the message she answers (the summary of some minutes, a pack's
  preview), else from what is waiting for her. Nothing is applied twice (her message is read
  once; a question answered stays answered), and a reply to the summary of minutes since
  replaced is refused with the reason.
- **The pack for approval**: the preview (bot/plan/pack.py) is answered APPROVE (it goes
  now), HOLD (kept back) or ADD <item> (a new preview follows).

Only the group's admin — and its chair where ``[desk] commands_from`` says so — is obeyed, and
only when her mail is authenticated (bot/listen/authn.py): the inbox decides that before a
message reaches the desk. Everything done here is in the inbox log, the decisions, the ledger's
history and the action log, with who asked.

This module reads her mail and answers it; what each command does is bot/engine/desk_orders.py,
and how the answer words things, bot/engine/desk_words.py.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.domain import timeutil
from bot.domain.errors import ClerkError, UsageError
from bot.domain.model import Config, Group, Meeting
from bot.engine import desk_words as say
from bot.engine import minutes_in
from bot.engine.desk_orders import Orders
from bot.engine.store import Store
from bot.listen import commands, papers
from bot.listen.answers import Attachment
from bot.listen.commands import Command
from bot.listen.replies import Incoming
from bot.plan.pack import PACK_PREVIEW

# what the admin is sent (and may answer with commands): everything else she answers goes
# the way a member's answer does (an action chaser, a request, an invitation's apologies)
DESK_KINDS = ("reply", "notice", "minutes_due", "status", "admin_digest", PACK_PREVIEW,
              "action_summary")
MINUTES_EXT = {"docx": ".docx", "pdf": ".pdf", "txt": ".txt"}
_RE = re.compile(r"^(?:\s*(?:re|aw|sv|antw|fw|fwd)\s*:\s*)+", re.IGNORECASE)  # "Re: Re: "


@dataclass(frozen=True)
class Done:
    handled: bool
    detail: str


@dataclass
class _Reply:
    """The answer she gets: what was done, what was not (and why), what is still open."""

    done: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    open: list[str] = field(default_factory=list)
    head: list[str] = field(default_factory=list)  # a summary of minutes, above the rest
    about: str = ""  # what her next answer to it is about
    help: bool = False

    def body(self) -> str:
        parts = ["\n".join(self.head)] if self.head else []
        if self.done:
            parts.append("Done:\n" + "\n".join(f"  - {d}" for d in self.done))
        if self.refused:
            parts.append("Not done:\n" + "\n".join(f"  - {r}" for r in self.refused))
        if self.open:
            parts.append("Still open:\n" + "\n".join(f"  - {o}" for o in self.open))
        if self.help:
            parts.append("What clerk understands, one a line at the top of your reply:\n\n"
                         + commands.HELP)
        return "\n\n".join(parts)


class Desk(Orders):
    """The admin's mail: what she sent is read, done and answered."""

    def __init__(self, config: Config, store: Store) -> None:
        self.config = config
        self.store = store

    # --- who and what -----------------------------------------------------------------------

    def wants(self, incoming: Incoming, row: Any) -> bool:
        """Whether this message is for the desk: from someone who may command a group, and
        not an answer to something that is not hers (then it goes the usual way)."""
        if not self.commander(incoming.sender):
            return False
        return row is None or (row.kind in DESK_KINDS and row.recipient == incoming.sender)

    def apply(self, incoming: Incoming, row: Any, now: datetime) -> Done:
        answer = incoming.answer
        assert answer is not None
        mine = self.commander(incoming.sender)
        group = self._group(incoming, row, mine)
        if group is None:
            names = ", ".join(f"{g.name} ({g.id})" for g in mine)
            self._owe(incoming, mine[0], f"You look after several groups ({names}); clerk "
                      "cannot tell which one this message is about. Write the group's name "
                      "or id in the subject, or reply to a message clerk sent you about it. "
                      "Nothing was done.", now)
            return Done(True, f"from {incoming.sender}: which group? (asked; nothing done)")
        reply = _Reply(about=self._about(row))
        via = f"mail {incoming.message_id or ''}".strip()
        files = [a for a in answer.attachments if a.data is not None]
        found = _minutes_files(files)
        if len(found) > 1:
            reply.refused.append(f"{len(found)} minutes files in one message "
                                 f"({', '.join(a.filename for a, _ in found)}): send one "
                                 "message for each meeting's minutes")
        elif found:
            self._minutes(incoming, group, *found[0], reply, via, now)
        parsed = commands.parse(answer.text)
        for command in parsed.commands:
            self._command(command, incoming, group, reply, via, now)
        for line in parsed.unknown:
            reply.refused.append(f"\"{line}\": clerk does not know this command")
            reply.help = True
        if not parsed.commands and not found and not reply.refused:
            reply.refused.append("clerk found no command in your message")
            reply.help = True
        if any(c.verb == "HELP" for c in parsed.commands):
            reply.help = True
        reply.open += self._waiting(group, reply.about, now, summary=bool(reply.head))
        self._owe(incoming, group, reply.body(), now, reply.about)
        said = [*reply.done, *(f"not done: {r}" for r in reply.refused)]
        return Done(True, f"{group.id}: from {incoming.sender}: " + ("; ".join(said)
                                                                       or "answered"))

    def _group(self, incoming: Incoming, row: Any, mine: list[Group]) -> Group | None:
        if row is not None:
            return next((g for g in mine if g.id == row.group_id), None)
        if len(mine) == 1:
            return mine[0]
        subject = incoming.subject.lower()
        named = [g for g in mine if re.search(rf"\b{re.escape(g.id.lower())}\b", subject)
                 or g.name.lower() in subject]
        return named[0] if len(named) == 1 else None

    def _about(self, row: Any) -> str:
        """What the message she answers was about: her reply's context."""
        if row is None:
            return ""
        if row.kind == PACK_PREVIEW:
            return f"pack:{row.meeting_id}"
        if row.kind == "reply":
            reply_id = row.key.rpartition("/")[2]
            found = next((r for r in self.store.reply_rows() if str(r.id) == reply_id), None)
            return found.about if found is not None else ""
        return ""

    def _owe(self, incoming: Incoming, group: Group, body: str, now: datetime,
             about: str = "") -> None:
        subject = "Re: " + (_RE.sub("", incoming.subject) or group.name)
        self.store.owe_reply(group.id, incoming.sender, incoming.sender_name, subject, body,
                             incoming.message_id, now, about=about)

    # --- minutes by mail --------------------------------------------------------------------

    def _minutes(self, incoming: Incoming, group: Group, file: Attachment, suffix: str,
                 reply: _Reply, via: str, now: datetime) -> None:
        meeting = _meeting_named(group, incoming.subject, now)
        if meeting is None:
            reply.refused.append(f"the minutes {file.filename}: clerk cannot tell which "
                                 "meeting they are of (no meeting of the group has ended "
                                 "without minutes); write the meeting's date in the subject")
            return
        assert file.data is not None
        digest = hashlib.sha256(file.data).hexdigest()
        with tempfile.TemporaryDirectory(prefix="clerk-minutes-") as scratch:
            path = Path(scratch) / f"{Path(file.filename).stem[:80] or 'minutes'}{suffix}"
            path.write_bytes(file.data)
            try:
                done = minutes_in.record(group, self.store, path, meeting.id, now,
                                         who=incoming.sender, via=f"{via} ({file.filename})")
            except ClerkError as exc:
                reply.refused.append(f"the minutes {file.filename}: "
                                     f"{_without(exc_text(exc), scratch)}; nothing was "
                                     "imported and they are not circulated")
                return
            try:
                target = minutes_in.place(group, meeting.id, path)
            except (OSError, UsageError) as exc:
                reply.refused.append(f"the minutes {file.filename} could not be kept for "
                                     f"circulation ({_without(str(exc), scratch)}); their "
                                     "actions were imported")
                target = None
        asked = _questions(group, done.plan)
        minutes_id = self.store.add_mailed_minutes({
            "group_id": group.id, "meeting_id": meeting.id, "path": str(target or ""),
            "name": file.filename, "digest": digest, "sender": incoming.sender,
            "message_id": incoming.message_id, "at": now}, asked)
        reply.about = f"minutes:{minutes_id}"
        reply.head += say.summary(group, meeting, file.filename, done.out, asked,
                               circulated=target is not None)

    # --- commands ---------------------------------------------------------------------------

    def _command(self, c: Command, incoming: Incoming, group: Group, reply: _Reply, via: str,
                 now: datetime) -> None:
        if c.problem:
            reply.refused.append(f"\"{c.line}\": {c.problem}")
            return
        who = incoming.sender
        try:
            if c.verb in ("APPROVE", "HOLD"):
                reply.done.append(self._decide(c, group, reply.about, who, via, now))
            elif c.verb == "ANSWER":
                reply.done.append(self._answer(c, group, reply.about, who, via, now))
            elif c.verb in ("DUE", "DONE", "DROP", "OWNER"):
                reply.done.append(self._action(c, group, who, via, now))
            elif c.verb == "ADD":
                reply.done.append(self._add(c, group, reply.about, who, now))
            elif c.verb == "STATUS":
                self.store.owe_reply(group.id, who, incoming.sender_name,
                                     f"Status of {group.name}", "", incoming.message_id, now,
                                     about="status")
                reply.done.append("STATUS: the status follows in a message of its own")
        except UsageError as exc:
            reply.refused.append(f"\"{c.line}\": {exc.message}")


    # --- what is still open -----------------------------------------------------------------


# --- helpers --------------------------------------------------------------------------------


def exc_text(exc: ClerkError) -> str:
    return getattr(exc, "message", str(exc))


def _without(text: str, scratch: str) -> str:
    """An error about the scratch copy, said of the file she sent."""
    return text.replace(f"{scratch}/", "").replace(scratch, "")


def _minutes_files(files: list[Attachment]) -> list[tuple[Attachment, str]]:
    """The attachments that are minutes (a Word document, a PDF, text), by their content."""
    found = []
    for a in files:
        assert a.data is not None
        kind = papers.sniff(a.data, a.filename)
        suffix = MINUTES_EXT.get(kind.ext)
        if suffix is None:
            continue
        if suffix == ".txt" and a.filename.lower().endswith((".md", ".markdown")):
            suffix = ".md"
        found.append((a, suffix))
    if len(found) > 1:  # "Minutes ... .docx" beside its slides: the one named minutes
        named = [f for f in found if "minute" in f[0].filename.lower()]
        if len(named) == 1:
            return named
    return found


def _meeting_named(group: Group, subject: str, now: datetime) -> Meeting | None:
    """The meeting her subject names (its id, its title, its date), else the latest that has
    ended without minutes."""
    past = [m for m in group.meetings if not m.cancelled and m.start <= now]
    text = subject.lower()
    by_id = [m for m in past if re.search(rf"\b{re.escape(m.id.lower())}\b", text)]
    if len(by_id) == 1:
        return by_id[0]
    zone = timeutil.zone(group.zone)
    for m in reversed(past):
        day = m.start.astimezone(zone).date()
        forms = (f"{day.day} {day:%B}", f"{day.day} {day:%b}", f"{day:%d/%m/%Y}",
                 f"{day.day}/{day.month}/{day.year}", day.isoformat(), f"{day:%B} {day.day}",
                 f"{day.day}th {day:%B}", f"{day.day}st {day:%B}", f"{day.day}nd {day:%B}",
                 f"{day.day}rd {day:%B}")
        if any(re.search(rf"(?<![\d/]){re.escape(f.lower())}(?![\d/])", text) for f in forms):
            return m
    titled = [m for m in past if m.title and m.title.lower() in text]
    if len(titled) == 1:
        return titled[0]
    without = [m for m in past if m.id not in group.minutes]
    return without[-1] if without else None


def _questions(group: Group, plan: Any) -> list[dict[str, Any]]:
    """A question for each action whose owners are not all settled: who they are, with the
    candidates numbered (and "both"/"all of them" when several)."""
    asked = []
    for n, p in enumerate(plan.unresolved, 1):
        unsettled = p.owners.unsettled
        candidates = p.owners.candidates
        choices: list[list[Any]] = [[c.name, [c.email]] for c in candidates]
        if len(candidates) > 1:
            choices.append(["both" if len(candidates) == 2 else "all of them",
                            [c.email for c in candidates]])
        names = " and ".join(f"'{o.name}'" for o in unsettled if o.name)
        who = f"who is {names}" if names else "no owner is named: who is it"
        if p.item.owner_text and len(unsettled) > 1:
            who = f"who are {names} ('{p.item.owner_text}')"
        row = dict(p.row)
        row["owners"] = [e for e in p.owners.emails]
        place = p.item.place.split(" (starting")[0]
        asked.append({"n": n, "text": f"{who}? \"{say.short(p.item.text)}\" ({place})",
                      "choices": choices, "pending": row})
    return asked


