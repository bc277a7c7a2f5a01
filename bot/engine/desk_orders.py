"""What the admin's commands by mail do, once bot/engine/desk.py has read them: APPROVE and
HOLD of her minutes and packs, her answers to the questions an import left, DUE, DONE, DROP
and OWNER of actions, ADD to an agenda — and what still waits for her."""

from __future__ import annotations

import hashlib
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

from bot.domain import timeutil
from bot.domain.errors import UsageError
from bot.domain.model import Config, Group
from bot.engine import action_log, snapshot
from bot.engine import desk_words as say
from bot.engine.store import Store
from bot.listen import commands, dates, owners
from bot.listen.commands import Command
from bot.plan.actions import owner_names
from bot.plan.minutes import MINUTES
from bot.plan.pack import PACK_PREVIEW, pack_prefixes
from bot.plan.state import Question


class Orders:
    """The commands' part of the desk (:class:`bot.engine.desk.Desk`)."""

    config: Config
    store: Store

    def commander(self, sender: str) -> list[Group]:
        """The groups whose commands ``sender`` may give."""
        return [g for g in self.config.groups if sender.lower() in g.commanders()]

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
                         + ", ".join(say.said(w, group) for w in wanted)
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
            since = f"{newer[-1].name}, sent {say.day(newer[-1].at, group)}" if newer else \
                "a file put in the group's minutes folder"
            raise UsageError(f"these minutes ({mailed.name}) were replaced since ({since}); "
                             "answer the summary of the latest")
        prefix = f"{group.id}/{mailed.meeting_id}/{MINUTES}/"
        meeting = say.title(group, mailed.meeting_id)
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
            raise UsageError(f"the pack of {say.title(group, meeting_id)} went already")
        if c.verb == "APPROVE":
            self.store.decide(group.id, meeting_id, "pack", "approved", "", who, via, now)
            released = self.store.set_state(prefixes, ("held",), "planned", now,
                                            f"approved by {who} by {via}")
            return (f"APPROVE: the pack of {say.title(group, meeting_id)} goes to the members "
                    "now" + (f" ({len(released)} released)" if released else ""))
        self.store.decide(group.id, meeting_id, "pack", "held", "", who, via, now)
        return f"HOLD: the pack of {say.title(group, meeting_id)} is held; APPROVE sends it"


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
                self.store.bump_facts(conn, group.id)
            return f"Q{q.n}: the action \"{say.short(str(pending['text']))}\" is left out"
        owners_now = [e for e in pending.get("owners", []) if e] + emails
        pending["owners"] = (owners.ALL,) if owners.ALL in owners_now else tuple(
            dict.fromkeys(owners_now))
        if pending["source"] not in self.store.sources():  # recorded once, whatever happens
            self.store.import_minutes([pending], [], who, f"{via} (Q{q.n})", now)
        with self.store.atomic() as conn:
            self.store.answer_question(q.id, ", ".join(emails), who, now, conn)
            self.store.bump_facts(conn, group.id)
        ref = next((a.ref for a in snapshot.actions(self.store, group.id)
                    if a.text == pending["text"] and a.meeting == pending["meeting_id"]), "")
        names = owner_names(group, pending["owners"])
        return f"Q{q.n}: {ref} \"{say.short(str(pending['text']))}\" is {names}'s".replace(
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
            done = f"{action.ref} is now due {timeutil.day_text(new_date)}"
        return f"{c.verb} #{c.number}: {done} ({say.short(action.text)})"


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
        return (f"ADD: \"{item}\" is on the agenda of {say.title(group, meeting.id)}"
                + ("; a new preview of the pack follows" if preview else ""))


    def _waiting(self, group: Group, about: str, now: datetime, *,
                 summary: bool = False) -> list[str]:
        """What still waits for her (what a summary just said is not said again)."""
        out = []
        for q in self.store.questions(group=group.id, open_only=True):
            if summary and q.minutes_id == int(about.split(":")[1]):
                continue
            if not about.startswith("minutes:") or q.minutes_id == int(about.split(":")[1]):
                out.append(f"Q{q.n}: {q.text} — {say.options(snapshot.question(q))}")
        for m in self._held_minutes(group):
            if summary and f"minutes:{m.id}" == about:
                continue
            out.append(f"the minutes of {say.title(group, m.meeting_id)} are held: APPROVE "
                       "circulates them")
        for meeting_id in self._previewed_packs(group, now):
            held = any(d.meeting_id == meeting_id and d.subject == "pack"
                       for d in self.store.decisions(group.id))
            if held:
                continue
            out.append(f"the pack of {say.title(group, meeting_id)} goes at its time unless you "
                       "HOLD it" if group.desk.pack_approval == "optional" else
                       f"the pack of {say.title(group, meeting_id)} waits for your APPROVE")
        return out


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
    options = f" ({say.options(q)})" if q.choices else ""
    raise UsageError(f"clerk cannot tell who \"{argument}\" is{options}; answer with a "
                     "number, or a name or email on the roster")


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

