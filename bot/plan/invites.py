"""Invitations as iTIP (RFC 5546): revisions, per-person SEQUENCE numbers and cancellations.

Pure functions over the planner's state. The rules, from DESIGN.md ("Invites"):

- A meeting's *content revision* changes when something material changes (start, length,
  place, link, title: RFC 5546 3.2.2 requires a SEQUENCE bump for these). A change made before
  any member received the current revision edits that revision in place; after, it becomes
  revision R+1, an update to every current member. Wording (the description) is not material.
- Each person's copy has its own SEQUENCE, always higher than the last one they received for
  that UID: normally equal to R, higher after they were sent a CANCEL (a member removed and
  added back). Numbers are never reused for a person, so their calendar never ignores an update.
- A member removed gets a CANCEL naming them alone; a cancelled meeting, a CANCEL to each
  member holding it. Nobody else hears about it: every tool studied re-mails everyone when one
  attendee changes, and users hate it.
- Updates and cancellations wait for the group's settle window (default 10 minutes) after the
  last edit, so several edits in a row become one message.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from bot.domain import timeutil
from bot.domain.model import Group, Meeting, Person, Revision, Series

REQUEST, CANCEL = "REQUEST", "CANCEL"
MATERIAL = ("start", "duration", "location", "link", "title")


@dataclass(frozen=True)
class Held:
    """The last invite message a person was sent for a meeting."""

    sequence: int
    method: str  # REQUEST (they hold the meeting) or CANCEL (they were taken off it)
    revision: int
    name: str = ""
    partial: bool = False  # the last message cancelled some meetings of a series


@dataclass(frozen=True)
class NewRevision:
    group: str
    meeting: str
    revision: Revision
    replaces: bool  # True: the same rev number, never sent, gets new content
    restart: bool = False  # True: its settle window starts again now


@dataclass(frozen=True)
class InviteSpec:
    """One invitation or cancellation the planner should turn into a message."""

    recipient: Person
    method: str
    sequence: int
    revision: int
    send_at: datetime
    reason: str
    change: str
    scope: str = ""  # series: "" the whole series, "overrides", "occurrences" (cancelled)
    rids: tuple[str, ...] = ()  # series: the original starts (UTC ISO) the scope names
    first: bool = False  # their first invitation (or the first since a cancellation)


def invite_fields(meeting: Meeting) -> dict[str, str]:
    return {
        "start": meeting.start.astimezone(UTC).isoformat(),
        "duration": timeutil.format_duration(meeting.duration),
        "location": meeting.location,
        "link": meeting.link,
        "title": meeting.title,
        "description": meeting.description,
    }


def series_fields(series: Series) -> dict[str, str]:
    """A series' invite content: the master's fields, its rule, and its exceptions (by
    original start in UTC: "cancelled", or the moved meeting's start|duration|place|link)."""
    master = series.master
    exceptions: dict[str, str] = {}
    for o in series.occurrences:
        assert o.recurrence_id is not None
        rid = _utc(o.recurrence_id)
        if o.cancelled and not series.cancelled:
            exceptions[rid] = CANCELLED
        elif (o.start, o.duration, o.location, o.link) != (
                o.recurrence_id, master.duration, master.location, master.link):
            exceptions[rid] = "|".join((_utc(o.start), timeutil.format_duration(o.duration),
                                        o.location, o.link))
    return {**invite_fields(master), "repeat": series.repeat,
            "exceptions": json.dumps(exceptions, sort_keys=True)}


CANCELLED = "cancelled"
WORDING = ("description", "change")  # not material: no SEQUENCE bump, no update


def _utc(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def invite_digest(fields: Mapping[str, str], wording: bool = False) -> str:
    """What decides a new revision: the material fields, and the wording when the group
    asks for updates on wording changes too."""
    ignored = ("change",) if wording else WORDING
    text = "\0".join(f"{k}={v}" for k, v in sorted(fields.items()) if k not in ignored)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def describe_change(old: Mapping[str, str], new: Mapping[str, str], zone: str = "UTC") -> str:
    """Say what changed, in the group's local time: "duration 3h → 2h", "start Thu 14 Jan
    2027 14:00 GMT → 15:00 GMT", "Thu 15 Apr 2027 14:00 BST moved to Thu 22 Apr 2027 14:00
    BST", "Thu 15 Jul 2027 14:00 BST cancelled"."""
    tz = timeutil.zone(zone)

    def show(key: str, value: str | None, before: str | None = None) -> str:
        if key == "start" and value:
            return _local(value, tz, before)
        return value or "-"

    keys = [k for k in (*MATERIAL, "repeat") if k in new]
    changes = [f"{k} {show(k, old.get(k))} → {show(k, new[k], old.get(k))}" for k in keys
               if old.get(k) != new[k]]
    if old.get("description") != new.get("description") and not changes:
        changes.append("description reworded")
    before, after = _exceptions(old), _exceptions(new)
    for rid in sorted(set(before) | set(after)):
        if before.get(rid) == after.get(rid):
            continue
        if rid not in after:
            changes.append(f"{_local(rid, tz)} restored")
        elif after[rid] == CANCELLED:
            changes.append(f"{_local(rid, tz)} cancelled")
        else:
            changes.append(f"{_local(rid, tz)} moved to "
                           f"{_local(after[rid].split('|')[0], tz, rid)}")
    return ", ".join(changes)


def _local(iso: str, tz: ZoneInfo, same_day_as: str | None = None) -> str:
    """A UTC instant as people read it: "Thu 14 Jan 2027 14:00 GMT" (the time alone when it
    is on the same day as ``same_day_as``)."""
    at = datetime.fromisoformat(iso).astimezone(tz)
    if same_day_as and datetime.fromisoformat(same_day_as).astimezone(tz).date() == at.date():
        return f"{at:%H:%M %Z}"
    return f"{at:%a} {at.day} {at:%b %Y %H:%M %Z}"


def _exceptions(fields: Mapping[str, str]) -> dict[str, str]:
    found: dict[str, str] = json.loads(fields.get("exceptions") or "{}")
    return found


def series_scope(old: Mapping[str, str], new: Mapping[str, str]) -> tuple[str, tuple[str, ...]]:
    """What a person holding the previous revision needs: the whole series again (""), the
    moved meetings alone ("overrides") or a CANCEL of some meetings ("occurrences")."""
    if any(old.get(k) != new.get(k) for k in (*MATERIAL, "repeat")):
        return "", ()
    before, after = _exceptions(old), _exceptions(new)
    changed = {rid for rid in set(before) | set(after) if before.get(rid) != after.get(rid)}
    restored = {rid for rid in changed if rid not in after or before.get(rid) == CANCELLED}
    cancelled = {rid for rid in changed if after.get(rid) == CANCELLED}
    moved = changed - cancelled - restored
    if restored or (cancelled and moved) or not changed:
        return "", ()
    return ("occurrences", tuple(sorted(cancelled))) if cancelled else \
        ("overrides", tuple(sorted(moved)))


@dataclass(frozen=True)
class Current:
    """The content revision members should hold now."""

    rev: int
    made: datetime  # when it was made (an update's settle window counts from here)
    change: str  # what changed since the previous revision
    scope: tuple[str, tuple[str, ...]] | None = None  # series: what holders of rev-1 need


def current_revision(group: Group, unit: str, fields: dict[str, str],
                     history: Sequence[Revision], created: Mapping[tuple[str, str, int], datetime],
                     delivered: frozenset[tuple[str, str, int]], now: datetime,
                     out: list[NewRevision]) -> Current:
    """The content revision of a meeting or series (``unit``) with content ``fields``.

    ``history`` is its revisions so far, oldest first. A new or edited revision is appended
    to ``out`` for the executor to record.
    """
    current = _current(group, unit, fields, history, created, delivered, now, out,
                       group.wording_updates)
    previous = next((h.fields for h in history if h.rev == current.rev - 1), None)
    if "repeat" in fields and previous is not None:
        return replace(current, scope=series_scope(previous, fields))
    return current


def _current(group: Group, unit: str, fields: dict[str, str], history: Sequence[Revision],
             created: Mapping[tuple[str, str, int], datetime],
             delivered: frozenset[tuple[str, str, int]], now: datetime,
             out: list[NewRevision], wording: bool) -> Current:
    digest = invite_digest(fields, wording)
    if not history:
        out.append(NewRevision(group.id, unit, Revision(0, digest, fields), False))
        return Current(0, now, "")
    current = history[-1]
    made = created.get((group.id, unit, current.rev), now)
    sent = (group.id, unit, current.rev) in delivered
    change = current.fields.get("change", "")
    if current.digest == digest:
        if _content(current.fields) != fields and not sent:  # wording: edit it in place
            out.append(NewRevision(group.id, unit, Revision(
                current.rev, digest, {**fields, "change": change}), True))
        return Current(current.rev, made, change)
    if sent:
        rev, base = current.rev + 1, current.fields
    else:  # not sent yet: edit it in place; an update's settle window starts over
        rev, base = current.rev, history[-2].fields if len(history) > 1 else {}
    change = describe_change(base, fields, group.zone) if rev else ""
    out.append(NewRevision(group.id, unit, Revision(rev, digest, {**fields,
                                                                         "change": change}),
                           replaces=not sent, restart=bool(rev)))
    return Current(rev, now if rev else made, change)


def _content(fields: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in fields.items() if k != "change"}


def invitation_specs(group: Group, meeting: Meeting, *, held: Mapping[str, Held],
                     current: Current, send_at: datetime, settle: timedelta,
                     first_planned: Mapping[tuple[str, str, str, int], datetime],
                     now: datetime,
                     roster_changed: Mapping[tuple[str, str], datetime] | None = None,
                     suffix: str = "") -> list[InviteSpec]:
    """The REQUESTs and CANCELs each person should get for ``meeting`` now.

    ``held`` maps a person's email to the last invite message they were sent for it;
    ``first_planned`` maps (group, meeting, email, sequence) to when a message was first
    planned, so a settle window counts from then; ``roster_changed`` maps (group, email) to
    when that roster row last appeared, changed or went: a newcomer added once the others
    were invited (a new member, or a changed address) and a removal wait for the settle
    window from their own last edit, so a typo fixed within it costs no mail. Each
    REQUEST's reason ends with ``suffix`` (the rule that sends it, say).
    """
    specs: list[InviteSpec] = []
    rev, rev_made, change = current.rev, current.made, current.change
    edited = roster_changed or {}

    def first(email: str, seq: int) -> datetime:
        return first_planned.get((group.id, meeting.id, email, seq), now)

    def settled(email: str, since: datetime) -> datetime:
        return max(since, edited.get((group.id, email), now)) + settle

    # when the others were first invited: someone whose row changed since is a newcomer
    invited = min((first(e, h.sequence) for e, h in held.items() if h.method == REQUEST),
                  default=None)
    if not meeting.cancelled:
        update_at = max(send_at, rev_made + settle) if rev else send_at
        for p in group.attendees:
            last = held.get(p.email)
            if last is None:
                joined = edited.get((group.id, p.email), now)
                at = max(send_at, joined + settle) if invited is not None and \
                    joined > invited else send_at
                specs.append(InviteSpec(p, REQUEST, rev, rev, at, (
                    f"invitation rev {rev}" if rev else "invitation") + suffix, "", first=True))
            elif last.method == REQUEST and last.revision == rev:  # as it was sent
                scope, rids = ("occurrences", current.scope[1]) if last.partial and \
                    current.scope else ("", ())
                specs.append(InviteSpec(p, CANCEL if scope else REQUEST, last.sequence, rev,
                                        update_at, _why(rev, change) + ("" if scope else suffix),
                                        change, scope, rids))
            else:
                seq = max(rev, last.sequence + 1)
                again = last.method == CANCEL
                reason = "invited again after a cancellation" if again else _why(rev, change)
                at = max(send_at, settled(p.email, first(p.email, seq))) if again \
                    else update_at
                scope, rids = current.scope if current.scope and not again \
                    and last.revision == rev - 1 else ("", ())
                method = CANCEL if scope == "occurrences" else REQUEST
                specs.append(InviteSpec(p, method, seq, rev, at,
                                        reason + (suffix if method == REQUEST else ""),
                                        "" if again else change, scope, rids, first=again))
    members = {p.email for p in group.attendees}
    for email, last in sorted(held.items()):
        if last.method != REQUEST or (email in members and not meeting.cancelled):
            continue
        seq = last.sequence + 1
        reason = "meeting cancelled" if meeting.cancelled else "no longer on the roster"
        at = first(email, seq) + settle if meeting.cancelled else \
            settled(email, first(email, seq))
        specs.append(InviteSpec(Person(name=last.name, email=email), CANCEL, seq,
                                last.revision, at, f"cancellation: {reason}", reason))
    return specs


def _why(rev: int, change: str) -> str:
    if not rev:
        return "invitation"
    return f"update rev {rev}" + (f": {change}" if change else "")
