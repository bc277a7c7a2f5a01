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
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from bot.domain import timeutil
from bot.domain.errors import ClerkError, UsageError
from bot.domain.model import Config, Group, Meeting, Person
from bot.engine import action_log, minutes_in, snapshot
from bot.engine.store import Store
from bot.listen import commands, dates, owners, papers
from bot.listen.answers import Attachment
from bot.listen.commands import Command
from bot.listen.replies import Incoming
from bot.plan.minutes import MINUTES
from bot.plan.pack import PACK_PREVIEW, pack_prefixes
from bot.plan.state import Question

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


class Desk:
    def __init__(self, config: Config, store: Store) -> None:
        self.config = config
        self.store = store

    # --- who and what -----------------------------------------------------------------------

    def commander(self, sender: str) -> list[Group]:
        """The groups whose commands ``sender`` may give."""
        return [g for g in self.config.groups if sender.lower() in g.commanders()]

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
        reply.head += _summary(group, meeting, file.filename, done.out, asked,
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

    def _decide(self, c: Command, group: Group, about: str, who: str, via: str,
                now: datetime) -> str:
        """APPROVE or HOLD the minutes or the pack her message is about (or, when it is
        about neither, the one thing waiting for that)."""
        named = "minutes" if c.argument == "minutes" else "pack" if c.argument in (
            "pack", "agenda", "agenda pack") else ""
        # "APPROVE minutes" in answer to a pack's preview means the minutes waiting
        target = about if about and (not named or about.startswith(named)) else \
            self._only_waiting(group, c, now)
        what, _, ref = target.partition(":")
        if what == "minutes":
            return self._decide_minutes(c, group, int(ref), who, via, now)
        if what == "pack":
            return self._decide_pack(c, group, ref, who, via, now)
        raise UsageError("clerk cannot tell what to approve; reply to the summary of the "
                         "minutes or to the preview of the pack")

    def _only_waiting(self, group: Group, c: Command, now: datetime) -> str:
        held = [f"minutes:{m.id}" for m in self._held_minutes(group)]
        packs = [f"pack:{m}" for m in self._previewed_packs(group, now)]
        wanted = held if c.argument == "minutes" else packs if c.argument in (
            "pack", "agenda", "agenda pack") else held + packs
        if len(wanted) == 1:
            return wanted[0]
        if not wanted:
            raise UsageError("nothing is waiting for your approval")
        raise UsageError("several things wait for your approval ("
                         + ", ".join(_said(w, group) for w in wanted)
                         + "); reply to the message about the one you mean")

    def _held_minutes(self, group: Group) -> list[Any]:
        """Her mailed minutes still held: the latest of each meeting, not yet approved."""
        latest: dict[str, Any] = {}
        for m in self.store.mailed_minutes(group.id):
            latest[m.meeting_id] = m
        decided = {(d.meeting_id, d.version) for d in self.store.decisions(group.id)
                   if d.subject == MINUTES and d.decision == "approved"}
        return [m for m in latest.values() if (m.meeting_id, m.digest) not in decided]

    def _previewed_packs(self, group: Group, now: datetime) -> list[str]:
        """The meetings whose pack she was sent a preview of and which have not gone."""
        rows = self.store.rows(group=group.id, states=None)
        previewed = {r.meeting_id for r in rows if r.kind == PACK_PREVIEW and r.state == "sent"}
        gone = {r.meeting_id for r in rows if r.kind == "pack" and r.state in ("sent",
                                                                               "sending")}
        return sorted(previewed - gone)

    def _decide_minutes(self, c: Command, group: Group, minutes_id: int, who: str, via: str,
                        now: datetime) -> str:
        mailed = next((m for m in self.store.mailed_minutes(group.id) if m.id == minutes_id),
                      None)
        if mailed is None:
            raise UsageError("clerk has no such minutes")
        newer = [m for m in self.store.mailed_minutes(group.id)
                 if m.meeting_id == mailed.meeting_id and m.id > mailed.id]
        current = group.folder / "minutes"
        on_file = next((p for p in sorted(current.glob(f"{mailed.meeting_id}.*"))
                        if p.is_file()), None) if current.is_dir() else None
        if newer or on_file is None or _sha256(on_file) != mailed.digest:
            since = f"{newer[-1].name}, sent {_day(newer[-1].at, group)}" if newer else \
                "a file put in the group's minutes folder"
            raise UsageError(f"these minutes ({mailed.name}) were replaced since ({since}); "
                             "answer the summary of the latest")
        prefix = f"{group.id}/{mailed.meeting_id}/{MINUTES}/"
        meeting = _title(group, mailed.meeting_id)
        if c.verb == "APPROVE":
            already = any(d.subject == MINUTES and d.version == mailed.digest
                          and d.decision == "approved" for d in self.store.decisions(group.id))
            self.store.decide(group.id, mailed.meeting_id, MINUTES, "approved", mailed.digest,
                              who, via, now)
            released = self.store.set_state([prefix], ("held",), "planned", now,
                                            f"approved by {who} by {via}")
            if already and not released:
                return f"APPROVE: the minutes of {meeting} were approved already"
            return f"APPROVE: the minutes of {meeting} go to the members now" + (
                f" ({len(released)} messages)" if released else "")
        self.store.decide(group.id, mailed.meeting_id, MINUTES, "held", mailed.digest, who,
                          via, now)  # the planner holds them (bot/plan/minutes.py)
        return f"HOLD: the minutes of {meeting} are held; APPROVE sends them"

    def _decide_pack(self, c: Command, group: Group, meeting_id: str, who: str, via: str,
                     now: datetime) -> str:
        meeting = next((m for m in group.meetings if m.id == meeting_id), None)
        if meeting is None:
            raise UsageError(f"no meeting {meeting_id} in {group.name}")
        prefixes = pack_prefixes(group, meeting)
        rows = [r for r in self.store.rows(group=group.id, states=None)
                if any(r.key.startswith(p) for p in prefixes)]
        if rows and all(r.state in ("sent", "sending") for r in rows):
            raise UsageError(f"the pack of {_title(group, meeting_id)} went already")
        if c.verb == "APPROVE":
            self.store.decide(group.id, meeting_id, "pack", "approved", "", who, via, now)
            released = self.store.set_state(prefixes, ("held",), "planned", now,
                                            f"approved by {who} by {via}")
            return (f"APPROVE: the pack of {_title(group, meeting_id)} goes to the members "
                    "now" + (f" ({len(released)} released)" if released else ""))
        self.store.decide(group.id, meeting_id, "pack", "held", "", who, via, now)
        return f"HOLD: the pack of {_title(group, meeting_id)} is held; APPROVE sends it"

    def _answer(self, c: Command, group: Group, about: str, who: str, via: str,
                now: datetime) -> str:
        """Qn <answer>: who an action's owners are; the action is recorded with them."""
        state = snapshot.state(self.store)
        open_ones = [q for q in state.questions if q.group == group.id]
        if about.startswith("minutes:"):
            chosen = [q for q in open_ones if q.minutes_id == int(about.split(":")[1])]
        else:  # the latest minutes she was asked about
            latest = max((q.minutes_id for q in open_ones if q.answer is None), default=None)
            chosen = [q for q in open_ones if q.minutes_id == latest]
        q = next((q for q in chosen if q.n == c.number), None)
        if q is None:
            raise UsageError(f"there is no question Q{c.number}"
                             + (" about these minutes" if chosen else ""))
        if q.answer is not None:
            return f"Q{q.n} was answered already ({q.answer}); nothing changed"
        emails = _chosen(q, c.argument, group)
        row = next(r for r in self.store.questions(q.minutes_id) if r.id == q.id)
        pending = _pending(row.pending)
        if not emails:  # "0", "none", "skip": left out
            with self.store.atomic() as conn:
                self.store.answer_question(q.id, "left out", who, now, conn)
                self.store.bump_facts(conn)
            return f"Q{q.n}: the action \"{_short(str(pending['text']))}\" is left out"
        owners_now = [e for e in pending.get("owners", []) if e] + emails
        pending["owners"] = (owners.ALL,) if owners.ALL in owners_now else tuple(
            dict.fromkeys(owners_now))
        if pending["source"] not in self.store.sources():  # recorded once, whatever happens
            self.store.import_minutes([pending], [], who, f"{via} (Q{q.n})", now)
        with self.store.atomic() as conn:
            self.store.answer_question(q.id, ", ".join(emails), who, now, conn)
            self.store.bump_facts(conn)
        ref = next((a.ref for a in snapshot.actions(self.store, group.id)
                    if a.text == pending["text"] and a.meeting == pending["meeting_id"]), "")
        names = _names(group, pending["owners"])
        return f"Q{q.n}: {ref} \"{_short(str(pending['text']))}\" is {names}'s".replace(
            "  ", " ")

    def _action(self, c: Command, group: Group, who: str, via: str, now: datetime) -> str:
        assert c.number is not None
        mine = {g.id: g for g in self.commander(who)}
        action = action_log.find(self.store, c.number)
        if action.group not in mine:
            raise UsageError(f"#{c.number} is not an action of a group you look after")
        owner_group = mine[action.group]
        verb = {"DUE": "NEW DATE", "DONE": "DONE", "DROP": "DROP", "OWNER": "OWNER"}[c.verb]
        new_date = _due(c.argument, owner_group, now) if c.verb == "DUE" else None
        given = action_log.owners_of(owner_group, owners.split(c.argument)) \
            if c.verb == "OWNER" else ()
        done = action_log.apply(self.store, owner_group, action, verb, who=who, via=via,
                                now=now, new_date=new_date, owners=given)
        if new_date is not None and "now due" in done:
            done = f"{action.ref} is now due {_words(new_date)}"
        return f"{c.verb} #{c.number}: {done} ({_short(action.text)})"

    def _add(self, c: Command, group: Group, about: str, who: str, now: datetime) -> str:
        meeting = None
        if about.startswith("pack:"):
            meeting = next((m for m in group.meetings if m.id == about[5:]), None)
        if meeting is None:
            meeting = next((m for m in group.meetings if not m.cancelled and m.start > now),
                           None)
        if meeting is None:
            raise UsageError("no meeting is coming up to add it to")
        item = " ".join(c.argument.split())[:300]
        self.store.propose(group.id, meeting.id, who, item, now)
        preview = group.desk.pack_preview is not None and any(
            r.kind == "pack" for r in group.rules)
        return (f"ADD: \"{item}\" is on the agenda of {_title(group, meeting.id)}"
                + ("; a new preview of the pack follows" if preview else ""))

    # --- what is still open -----------------------------------------------------------------

    def _waiting(self, group: Group, about: str, now: datetime, *,
                 summary: bool = False) -> list[str]:
        """What still waits for her (what a summary just said is not said again)."""
        out = []
        for q in self.store.questions(group=group.id, open_only=True):
            if summary and q.minutes_id == int(about.split(":")[1]):
                continue
            if not about.startswith("minutes:") or q.minutes_id == int(about.split(":")[1]):
                out.append(f"Q{q.n}: {q.text} — {_options(snapshot.question(q))}")
        for m in self._held_minutes(group):
            if summary and f"minutes:{m.id}" == about:
                continue
            out.append(f"the minutes of {_title(group, m.meeting_id)} are held: APPROVE "
                       "circulates them")
        for meeting_id in self._previewed_packs(group, now):
            held = any(d.meeting_id == meeting_id and d.subject == "pack"
                       for d in self.store.decisions(group.id))
            if held:
                continue
            out.append(f"the pack of {_title(group, meeting_id)} goes at its time unless you "
                       "HOLD it" if group.desk.pack_approval == "optional" else
                       f"the pack of {_title(group, meeting_id)} waits for your APPROVE")
        return out


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
        asked.append({"n": n, "text": f"{who}? \"{_short(p.item.text)}\" ({place})",
                      "choices": choices, "pending": row})
    return asked


def _chosen(q: Question, argument: str, group: Group) -> list[str]:
    """The emails her answer to ``q`` names: choice numbers ("2", "1,3", "1 and 3"),
    "both"/"all", names or emails on the roster; [] for "0"/"none"/"skip"."""
    text = argument.strip().strip(".").lower()
    if text in ("0", "none", "skip", "nobody", "leave it out", "leave out"):
        return []
    if text in ("both", "all", "all of them", "a") and q.choices:
        return list(q.choices[-1][1]) if len(q.choices) > 1 else list(q.choices[0][1])
    words = re.sub(r"\band\b|&", " ", text)
    lead = re.match(r"\s*(\d{1,2}(?:[\s,;]+\d{1,2})*)(?:\s*[-–:(]|\s+[a-z])", words)
    if lead:  # "2 - Joanna", "1 (Joanne)": the numbers she gave, and a word about them
        words = lead.group(1)
    picks = commands.parse_picks(words, len(q.choices), every=False)
    if picks:
        return list(dict.fromkeys(e for i in picks for e in q.choices[i][1]))
    by_label = [emails for label, emails in q.choices if label.lower() == text]
    if by_label:
        return list(by_label[0])
    found = owners.match(argument, group)
    if found.settled:
        return list(found.emails)
    options = f" ({_options(q)})" if q.choices else ""
    raise UsageError(f"clerk cannot tell who \"{argument}\" is{options}; answer with a "
                     "number, or a name or email on the roster")


def _options(q: Question) -> str:
    if not q.choices:
        return "answer with a name or email on the roster"
    return "  ".join(f"{i} {label}" for i, (label, _) in enumerate(q.choices, 1))


def _pending(text: str) -> dict[str, Any]:
    import json

    row: dict[str, Any] = json.loads(text)
    for key in ("due", "completed"):
        if row.get(key):
            row[key] = date.fromisoformat(str(row[key])[:10])
    return row


def _due(text: str, group: Group, now: datetime) -> date:
    """DUE's date, read as a minutes' Due cell is, counted from today: "31 May" is the next
    31 May; "31/05/2027" is day/month."""
    today = now.astimezone(timeutil.zone(group.zone)).date()
    later = tuple(sorted(m.start.date() for m in group.meetings
                         if not m.cancelled and m.start > now))
    try:
        found = dates.cell(text, dates.Anchor(today, later[0] if later else None, later))
    except dates.DateError as exc:
        raise UsageError(str(exc)) from None
    if found is None:
        raise UsageError(f"{text!r} gives no date")
    return found


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _title(group: Group, meeting_id: str) -> str:
    m = next((m for m in group.meetings if m.id == meeting_id), None)
    if m is None:
        return meeting_id
    return f"{m.title or group.name} on {_words(m.start.astimezone(timeutil.zone(group.zone)))}"


def _said(target: str, group: Group) -> str:
    what, _, ref = target.partition(":")
    return f"the pack of {_title(group, ref)}" if what == "pack" else "minutes"


def _words(day: date | datetime) -> str:
    return f"{day:%a} {day.day} {day:%B %Y}"


def _day(at: datetime, group: Group) -> str:
    return _words(at.astimezone(timeutil.zone(group.zone)))


def _short(text: str, most: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= most else text[:most - 1].rstrip() + "…"


def _names(group: Group, emails: Any) -> str:
    people: dict[str, Person] = {p.email: p for p in owners.people(group)}
    return ", ".join("all members" if e == owners.ALL else people[e].name if e in people else e
                     for e in emails)


def _summary(group: Group, meeting: Meeting, name: str, out: dict[str, Any],
             asked: list[dict[str, Any]], *, circulated: bool) -> list[str]:
    """What an import by mail recorded and left, as the first part of her answer."""
    lines = [f"clerk has read the minutes of {_title(group, meeting.id)} ({name})."]
    if out["imported"]:
        lines += ["", f"Actions recorded ({len(out['imported'])}):"]
        for a in out["imported"]:
            state = {"done": "done", "dropped": "dropped"}.get(a["status"], "open")
            lines.append(f"  #{a['id']}  {', '.join(a['owner_names'])}: {_short(a['text'])}")
            lines.append(f"        due {_words(a['due'])} ({a['due_why']}); {state}")
    if out["already"]:
        lines.append(f"({out['already']} item(s) were imported before, from these minutes.)")
    for n in out["nudge_meetings"]:
        lines.append(f"Nudge: {_short(n['text'])} — {n['said']}")
    for item in out["next_agenda"]:
        lines.append(f"For the next agenda: {item}")
    if asked:
        lines += ["", "Questions — answer in your reply, one a line, like \"Q1 2\":"]
        for q in asked:
            lines.append(f"  Q{q['n']}: {q['text']}")
            lines.append("        " + ("  ".join(f"{i} {label}" for i, (label, _) in
                                                enumerate(q["choices"], 1))
                                       or "answer with a name or email on the roster"))
    for left in out["left_out"]:
        lines.append(f"Not imported (not in the actions table): {left['place']}: "
                     f"{_short(left['text'])}")
    for note in out["notes"]:
        lines.append(f"Note: {note}")
    if circulated:
        lines += ["", f"The minutes are held: they go to the {len(group.attendees)} members "
                      "when you reply APPROVE (newcomers get the joining instructions with "
                      "them)."]
    return lines
