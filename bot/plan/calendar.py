"""Meetings a server owns: the calendar side of the ``exchange`` and ``graph`` transports.

With these transports clerk does not mail an iCalendar file to each member: it keeps the
meeting as an item in the organiser's calendar with the members as attendees, and the server
sends the invitations, updates and cancellations itself. The planner still plans one ledger
row per person (so ``clerk plan``, SEQUENCE and the RSVP state stay the same for every
transport); the executor gathers a tick's due rows of one meeting into one
:class:`MeetingChange`, and :func:`operations` turns it into the few calendar operations that
carry it out.

Who hears about what. Neither Exchange nor Microsoft 365 can add an attendee to a meeting
and mail only that attendee: a saved change re-sends the item to everyone on it (EWS
``SendToChangedAndSaveCopy`` still mails unchanged attendees; exchangelib #746). So:

- the first invitations make one item (part 0) with every member on it — one request;
- members added later get an item of their own for the same meeting (one per tick, holding
  every newcomer of that tick): only they are mailed, nobody else is;
- a change of time, length, place or title updates every item (everyone is mailed the
  update, as they should be);
- a member taken off a newcomers' item that holds only them gets that item cancelled; taken
  off a shared item, the item is saved without them: they get the cancellation, and the
  server mails the others on that item an update too (the only way either server allows);
- a cancelled meeting cancels every item.

Every item carries two extended properties: the meeting's UID and clerk's content revision,
so after a crash the executor finds what the server already holds (:meth:`CalendarTransport.
find`) instead of creating the meeting twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from bot.domain.model import Desired, Group
from bot.transports.calendar import Attendee, Content, MeetingChange, Op, Part

OWNED_BY_SERVER = ("exchange", "graph")  # transports whose server owns meetings


def operations(change: MeetingChange, parts: Sequence[Part]) -> list[Op]:
    """The fewest operations that make the server's items say what ``change`` asks.

    Only the items holding someone whose row is due now are touched: an update waiting for
    its settle window does not go out early because a newcomer's row came first, and a
    cancellation retried row by row takes off just those whose rows are due (the rest stay
    until theirs come, so nobody loses a meeting they should hold). An item that is
    updated anyway also sheds anyone no longer on the roster."""
    live = [p for p in parts if not p.cancelled]
    ops: list[Op] = []
    gone = {a.email for a in change.cancel}
    due = {a.email for a in change.invite}  # their rows ask them to hold it at ``revision``
    holders = {e for p in live for e in p.emails}
    for p in live:
        content = p.revision < change.revision and bool(p.emails & due)
        keep = tuple(a for a in p.attendees if a[1] not in gone and not (
            content and change.members is not None and a[1] not in change.members))
        if not keep:
            ops.append(Op("cancel", p.part, p.attendees))
        elif len(keep) < len(p.attendees) or content:
            ops.append(Op("update", p.part, keep, tuple(sorted(p.emails - {e for _, e in keep})),
                          content=content))
    new = tuple((a.name, a.email) for a in change.invite if a.email not in holders)
    if new:
        number = max((p.part + 1 for p in parts), default=0)
        ops.append(Op("create", number, new))
    return ops


def merge(kept: Sequence[Part], found: Sequence[Part]) -> list[Part]:
    """What clerk knew of a meeting's items, corrected by what the server holds: an item
    found there is taken as found; one not found is gone (cancelled items move to Deleted
    Items; or deleted by hand) and kept as cancelled, so its number is never used again."""
    by_id = {p.item_id: p for p in found}
    out = [by_id.pop(p.item_id) if p.item_id in by_id else replace(p, cancelled=True)
           for p in kept]
    numbers = {p.part for p in out}
    for p in by_id.values():  # on the server but unknown here (a crash before recording)
        out.append(p if p.part not in numbers else replace(
            p, part=max(numbers | {p.part}) + 1))
        numbers.add(out[-1].part)
    return sorted(out, key=lambda p: p.part)


def ends(group: Group, unit: str) -> datetime | None:
    """When meeting or series ``unit`` is over (None: not in the config)."""
    series = next((s for s in group.series if s.id == unit), None)
    if series is not None:
        return max(o.end for o in series.occurrences) if series.occurrences else None
    meeting = next((m for m in group.meetings if m.id == unit), None)
    return meeting.end if meeting is not None else None


def settled(parts: Sequence[Part], email: str, method: str, revision: int) -> bool:
    """Whether the server already holds what a row asked: the person on a live item at the
    revision (REQUEST), or on none (CANCEL)."""
    holding = [p for p in parts if not p.cancelled and email in p.emails]
    if method == "CANCEL":
        return not holding
    return any(p.revision >= revision for p in holding)


def method_of(kind: str) -> str:
    """Whether a row's person should hold the meeting (REQUEST) or not (CANCEL)."""
    return "CANCEL" if kind == "cancellation" else "REQUEST"


def change_for(group: Group, unit: str, desired: Sequence[Desired]) -> MeetingChange:
    """The change the due rows ``desired`` (all of one meeting or series) ask for."""
    from bot.render.email import invite_uid, meeting_events
    from bot.render.templates import render

    series = next((s for s in group.series if s.id == unit), None)
    meeting = series.master if series else next(m for m in group.meetings if m.id == unit)
    cancelled = series.cancelled if series else meeting.cancelled
    # a CANCEL of some meetings of a series leaves the person holding the series
    requests = [d for d in desired if d.kind in ("invitation", "occurrence_cancellation")]
    context = dict((requests or desired)[0].context)
    # the item's text is the same for everyone on it: greet the group, not one person
    context["recipient"] = {"name": f"{group.name} members", "email": "",
                            "organisation": "", "role": "member"}
    html = render(group, "invitation", "html", context) if requests else ""
    revision = max((d.revision or 0) for d in desired)
    return MeetingChange(
        uid=invite_uid(group, unit), group=group.id, unit=unit, revision=revision,
        content=Content(subject=meeting.title, html=html, zone=group.zone,
                        organiser=group.organiser, events=tuple(meeting_events(group, unit))),
        cancelled=cancelled,
        invite=tuple(Attendee(d.key, d.recipient.name, d.recipient.email) for d in requests),
        cancel=tuple(Attendee(d.key, d.recipient.name, d.recipient.email)
                     for d in desired if d not in requests),
        scope=str(context.get("scope") or ""),
        members=frozenset() if cancelled else frozenset(m.email for m in group.attendees),
    )


def gone(kept: Sequence[Part], merged: Sequence[Part]) -> list[Part]:
    """Items clerk held live that the server no longer shows (moved to another calendar
    or deleted by hand): :func:`merge` counts them cancelled; the admin should know."""
    now = {p.item_id: p for p in merged}
    return [p for p in kept if not p.cancelled and now.get(p.item_id, p).cancelled]


