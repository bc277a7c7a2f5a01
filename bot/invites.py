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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot import timeutil
from bot.model import Group, Meeting, Person, Revision

REQUEST, CANCEL = "REQUEST", "CANCEL"
MATERIAL = ("start", "duration", "location", "link", "title")


@dataclass(frozen=True)
class Held:
    """The last invite message a person was sent for a meeting."""

    sequence: int
    method: str  # REQUEST or CANCEL
    revision: int
    name: str = ""


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


def invite_fields(meeting: Meeting) -> dict[str, str]:
    return {
        "start": meeting.start.astimezone(UTC).isoformat(),
        "duration": timeutil.format_duration(meeting.duration),
        "location": meeting.location,
        "link": meeting.link,
        "title": meeting.title,
        "description": meeting.description,
    }


def invite_digest(fields: Mapping[str, str]) -> str:
    text = "\0".join(f"{k}={fields[k]}" for k in MATERIAL)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def describe_change(old: Mapping[str, str], new: Mapping[str, str]) -> str:
    """Say what changed: "duration 3h → 2h", "start 2027-01-14T14:00 → 2027-01-21T14:00"."""
    def show(key: str, value: str | None) -> str:
        if key == "start" and value:
            return value[:16].replace("+00:00", "") + "Z"
        return value or "-"

    return ", ".join(f"{k} {show(k, old.get(k))} → {show(k, new[k])}" for k in MATERIAL
                     if old.get(k) != new[k])


def current_revision(group: Group, meeting: Meeting,
                     history: Sequence[Revision], created: Mapping[tuple[str, str, int], datetime],
                     delivered: frozenset[tuple[str, str, int]], now: datetime,
                     out: list[NewRevision]) -> tuple[int, datetime, str]:
    """The content revision members should hold now, when it was made, and what changed.

    ``history`` is the meeting's revisions so far, oldest first. A new or edited revision is
    appended to ``out`` for the executor to record.
    """
    fields = invite_fields(meeting)
    digest = invite_digest(fields)
    if not history:
        out.append(NewRevision(group.id, meeting.id, Revision(0, digest, fields), False))
        return 0, now, ""
    current = history[-1]
    made = created.get((group.id, meeting.id, current.rev), now)
    sent = (group.id, meeting.id, current.rev) in delivered
    change = current.fields.get("change", "")
    if current.digest == digest:
        if _content(current.fields) != fields and not sent:  # wording: edit it in place
            out.append(NewRevision(group.id, meeting.id, Revision(
                current.rev, digest, {**fields, "change": change}), True))
        return current.rev, made, change
    if sent:
        rev, base = current.rev + 1, current.fields
    else:  # not sent yet: edit it in place; an update's settle window starts over
        rev, base = current.rev, history[-2].fields if len(history) > 1 else {}
    change = describe_change(base, fields) if rev else ""
    out.append(NewRevision(group.id, meeting.id, Revision(rev, digest, {**fields,
                                                                         "change": change}),
                           replaces=not sent, restart=bool(rev)))
    return rev, now if rev else made, change


def _content(fields: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in fields.items() if k != "change"}


def invitation_specs(group: Group, meeting: Meeting, *, held: Mapping[str, Held], rev: int,
                     rev_made: datetime, change: str, send_at: datetime, settle: timedelta,
                     first_planned: Mapping[tuple[str, str, str, int], datetime],
                     now: datetime) -> list[InviteSpec]:
    """The REQUESTs and CANCELs each person should get for ``meeting`` now.

    ``held`` maps a person's email to the last invite message they were sent for it;
    ``first_planned`` maps (group, meeting, email, sequence) to when a message was first
    planned, so a settle window counts from then.
    """
    specs: list[InviteSpec] = []

    def first(email: str, seq: int) -> datetime:
        return first_planned.get((group.id, meeting.id, email, seq), now)

    if not meeting.cancelled:
        update_at = max(send_at, rev_made + settle) if rev else send_at
        for p in group.members:
            last = held.get(p.email)
            if last is None:
                specs.append(InviteSpec(p, REQUEST, rev, rev, send_at,
                                        f"invitation rev {rev}" if rev else "invitation",
                                        change))
            elif last.method == REQUEST and last.revision == rev:
                specs.append(InviteSpec(p, REQUEST, last.sequence, rev, send_at,
                                        _why(rev, change), change))
            else:
                seq = max(rev, last.sequence + 1)
                again = last.method == CANCEL
                reason = "invited again after a cancellation" if again else _why(rev, change)
                at = max(send_at, first(p.email, seq) + settle) if again \
                    else update_at
                specs.append(InviteSpec(p, REQUEST, seq, rev, at, reason, change))
    members = {p.email for p in group.members}
    for email, last in sorted(held.items()):
        if last.method != REQUEST or (email in members and not meeting.cancelled):
            continue
        seq = last.sequence + 1
        reason = "meeting cancelled" if meeting.cancelled else "no longer on the roster"
        at = first(email, seq) + settle
        specs.append(InviteSpec(Person(name=last.name, email=email), CANCEL, seq, last.revision, at,
                                f"cancellation: {reason}", reason))
    return specs


def _why(rev: int, change: str) -> str:
    if not rev:
        return "invitation"
    return f"update rev {rev}" + (f": {change}" if change else "")
