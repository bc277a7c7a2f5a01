"""What a message's templates see: the group, the meeting (with its RSVPs, action tracker,
nudges, proposals and returns), the rule, the people. Pure: built from config and state."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from bot.domain import timeutil, windows
from bot.domain.model import (
    Group,
    Meeting,
    Member,
    Nudge,
    Person,
    Rule,
    Series,
)
from bot.plan.state import State


def person(p: Person) -> dict[str, str]:
    return {"name": p.name, "email": p.email}

def member(m: Member) -> dict[str, str]:
    return {"name": m.name, "email": m.email, "organisation": m.organisation, "role": m.role}


def recipient(group: Group, p: Person, state: State) -> dict[str, str]:
    """Who a rule's message goes to, as its templates see them: one dict per person,
    shared by all their messages of the snapshot — found by the person's identity (the
    group's people live as long as it; each is kept with its dict, so an id is not
    reused meanwhile), not by hashing every field of them for each message."""
    people: dict[int, tuple[Person, dict[str, str]]] = state.shared(group, "recipients", dict)
    found = people.get(id(p))
    if found is None or found[0] is not p:
        found = people[id(p)] = (p, member(p) if isinstance(p, Member) else dict(
            person(p), organisation="", role=""))
    return found[1]

BUCKETS = {"ACCEPTED": "accepted", "TENTATIVE": "tentative", "DECLINED": "declined"}

def rsvp_summary(group: Group, meeting: Meeting, state: State) -> dict[str, list[dict[str, str]]]:
    """Who has accepted, is tentative, sent apologies (with their reason), or not answered —
    from the members' iMIP replies. A reply to one meeting of a series overrides one to the
    whole series. An answer given for another start than the meeting's now (it moved, and
    the update asked everyone to answer again) is ``stale``: shown, not counted."""
    unit = meeting.series or meeting.id
    series_start = next((s.master.start for s in group.series if s.id == meeting.series),
                        None)
    moved = meeting.recurrence_id is not None and meeting.recurrence_id != meeting.start
    answers = {email: (*a, _utc(series_start) if series_start and not moved else "-")
               for email, a in state.rsvps.get((group.id, unit, ""), {}).items()}
    if meeting.recurrence_id is not None:
        rid = meeting.recurrence_id.astimezone(UTC).isoformat()
        answers.update({email: (*a, _utc(meeting.start))
                        for email, a in state.rsvps.get((group.id, unit, rid), {}).items()})
    if meeting.series is None:
        answers = {email: (*a[:3], _utc(meeting.start)) for email, a in answers.items()}
    out: dict[str, list[dict[str, str]]] = {
        "accepted": [], "tentative": [], "declined": [], "no_answer": [], "stale": []}
    for m in group.attendees:
        partstat, comment, given_for, now_at = answers.get(m.email, ("NEEDS-ACTION", "", "", ""))
        entry = {"name": m.name, "email": m.email, "organisation": m.organisation,
                 "comment": comment}
        if partstat in BUCKETS and given_for and given_for != now_at:
            out["stale"].append({**entry, "answer": partstat.lower(), "for": given_for})
            continue
        out[BUCKETS.get(partstat, "no_answer")].append(entry)
    return out


def _utc(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


def nudge_meeting(group: Group, nudge: Nudge) -> Meeting | None:
    """The meeting a nudge goes on the agenda of: the first whose date falls inside its
    window; when none does, the nearest before or after the window (on a tie, the later) — so
    "remind the group in 6–9 months" from 15 June 2023 lands on 14 December 2023 rather than
    nowhere. Never on the meeting that asked for it or one before it; a nudge added by hand,
    with no such meeting, looks only from its window's start on (an earlier meeting may be
    before it was asked for). Planning (the agenda, the chair's note) and `clerk minutes
    import` both ask here, so they agree."""
    held = sorted((m for m in group.meetings if not m.cancelled), key=lambda m: m.start)
    inside = next((m for m in held if in_window(nudge, m)), None)
    if inside is not None:
        return inside
    asked = next((m for m in group.meetings if m.id == nudge.meeting), None)
    after = asked.start.date() if asked is not None else nudge.start - timedelta(days=1)
    candidates = [m for m in held if m.start.date() > after]

    def distance(m: Meeting) -> tuple[int, int]:
        day = m.start.date()
        gap = (nudge.start - day).days if day < nudge.start else (day - nudge.end).days
        return gap, -day.toordinal()  # nearest first; on a tie, the later

    return min(candidates, key=distance, default=None)


def in_window(nudge: Nudge, meeting: Meeting) -> bool:
    """Whether ``meeting``'s date falls inside the nudge's window."""
    return nudge.start <= meeting.start.date() <= nudge.end

def run_up(group: Group, meeting: Meeting, state: State) -> dict[str, Any]:
    """What the agenda pack carries: the action tracker (matters arising), the nudges that
    fall due, the items members proposed, and the returns register."""
    before = [m for m in group.meetings if m.start < meeting.start and not m.cancelled]
    since = before[-1].start.date() if before else None
    names = {m.email: m for m in group.members}
    tracker = [a for a in state.group_actions(group.id) if (
        a.status == "open" or (since is not None and a.completed is not None
                               and a.completed >= since))]
    tracker.sort(key=lambda a: (a.status != "open", a.due, a.id))
    asked = [r.id for r in group.rules if r.kind == "request"]
    return {
        "actions": [{"ref": a.ref, "topic": a.topic, "text": a.text, "status": a.status,
                     "owner": "all members" if "*" in a.owners else ", ".join(
                         names[o].name if o in names else o for o in a.owners),
                     "due": a.due, "completed": a.completed} for a in tracker],
        "nudges": [{"text": n.text, "from": _agreed_at(group, n.meeting)}
                   for n in state.group_nudges(group.id)
                   if (found := nudge_meeting(group, n)) is not None
                   and found.id == meeting.id],
        "proposals": [{"item": item, "by": names[email].name if email in names else
                       f"the minutes of {email.split(':', 1)[1]}"
                       if email.startswith("minutes:") else email}
                      for (_, m, email, item) in state.group_proposals(group.id)
                      if m == meeting.id],
        "returns": [{"organisation": org, "status": _return_status(state, group, meeting, org,
                                                                   asked)}
                    for org in sorted({m.organisation for m in group.leads()})] if asked
        else [],
    }

def _agreed_at(group: Group, meeting_id: str) -> str:
    """The meeting a nudge was agreed at, as people say it: "the meeting of 15 April 2027"."""
    found = next((m for m in group.meetings if m.id == meeting_id), None)
    if found is None:
        return meeting_id
    day = found.start.astimezone(timeutil.zone(group.zone))
    return f"the meeting of {day.day} {day:%B %Y}"


def _return_status(state: State, group: Group, meeting: Meeting, org: str,
                   asked: list[str]) -> str:
    found = {status for key, status in state.group_submitted(group.id)
             if key[1] == meeting.id and key[3] == org and key[2] in asked}
    if "submitted" in found:
        return "submitted"
    return "nil return" if found else "outstanding"

def meeting_context(group: Group, meeting: Meeting,
                    state: State | None = None) -> dict[str, Any]:
    """What templates know of a meeting: made once per snapshot and shared by all the
    meeting's messages."""
    if state is None:
        return _meeting_context(group, meeting, State())
    return state.shared(group, ("meeting", meeting), lambda: _meeting_context(
        group, meeting, state))


def _meeting_context(group: Group, meeting: Meeting, state: State) -> dict[str, Any]:
    tz = timeutil.zone(group.zone)
    series = _series_of(group, meeting)
    return {
        "id": meeting.id, "title": meeting.title, "start": meeting.start.astimezone(tz),
        "end": meeting.end.astimezone(tz),
        "duration": timeutil.format_duration(meeting.duration),
        "location": meeting.location, "link": meeting.link,
        "description": meeting.description, "agenda": list(meeting.items),
        "rsvp": rsvp_summary(group, meeting, state),
        **run_up(group, meeting, state),
        # a series: each of its meetings as it is now (moved, cancelled)
        "occurrences": [{"start": o.start.astimezone(tz), "end": o.end.astimezone(tz),
                         "cancelled": o.cancelled, "moved": o.start != o.recurrence_id,
                         "rid": o.recurrence_id.astimezone(UTC).isoformat()
                         if o.recurrence_id else ""}
                        for o in series.occurrences] if series else [],
    }

def rule_context(group: Group, meeting: Meeting, rule: Rule) -> dict[str, Any]:
    tz = timeutil.zone(group.zone)
    request = _chased(group, rule) or rule
    deadline = _deadline(group, meeting, request)
    return {
        "id": rule.id, "kind": rule.kind, "questions": list(request.questions),
        "deadline": deadline.astimezone(tz) if deadline else None,
    }

def shared_context_group(group: Group) -> dict[str, Any]:
    return {"id": group.id, "name": group.name, "website": group.website,
            "joining_instructions": group.joining_instructions, "zone": group.zone,
            "members": len(group.attendees),
            "organisations": len({m.organisation for m in group.leads()})}

def shared_context(group: Group, meeting: Meeting, rule: Rule,
                   state: State | None = None) -> dict[str, Any]:
    chair = group.chair
    return {
        "group": shared_context_group(group),
        "meeting": meeting_context(group, meeting, state),
        "rule": rule_context(group, meeting, rule),
        "organiser": person(group.organiser),
        "admin": person(group.admin),
        "chair": member(chair) if chair else None,
        "revision": None,
        "change": "",
        "scope": "",  # a series message: "", "overrides" or "occurrences"
        "rids": [],  # ... and the original starts (UTC ISO) of the meetings it names
    }

def example_context(group: Group, rule: Rule) -> dict[str, Any]:
    """A context like a real message's, for checking templates before anything is sent."""
    meeting = group.meetings[0] if group.meetings else Meeting(
        id="example", title=group.name, start=group.go_live + timedelta(days=30, hours=14),
        duration=timedelta(hours=2), location="Online", link="https://example.org/meet",
        description="", items=group.standing_items)
    ctx = shared_context(group, meeting, rule)
    ctx["recipient"] = member(group.members[0]) if group.members else member(
        Member(name="A Member", email="member@example.org", organisation="An Organisation"))
    ctx["revision"] = 0
    return ctx

def _series_of(group: Group, meeting: Meeting) -> Series | None:
    """The series whose master ``meeting`` is (None for a meeting or an occurrence)."""
    if meeting.series is None or meeting.recurrence_id is not None:
        return None
    return next((s for s in group.series if s.id == meeting.series), None)

def _chased(group: Group, rule: Rule) -> Rule | None:
    if rule.kind != "chaser":
        return None
    return next((r for r in group.rules if r.id == rule.chases), None)

def _deadline(group: Group, meeting: Meeting, rule: Rule) -> datetime | None:
    """17:00 on the deadline's day — the working day before, if the window is shut then."""
    if rule.deadline is None:
        return None
    when = timeutil.apply_offset(meeting.start, rule.deadline, (17, 0))
    if group.window is None:
        return when
    tz = timeutil.zone(group.zone)
    day = windows.working_day_on_or_before(group.window, when.astimezone(tz).date())
    return datetime.combine(day, time(17, 0), tzinfo=tz).astimezone(UTC)
