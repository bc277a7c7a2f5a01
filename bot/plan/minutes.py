"""The minutes of each meeting, to every member: which file they are (the group's minutes
folder, or what the admin mailed, bot/engine/desk.py), held for approval until released, with
the joining instructions for a member who joined since the minutes before."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.domain.model import Desired, Group, Meeting
from bot.plan.context import (
    meeting_context,
    member,
    person,
    recipient,
    shared_context_group,
)
from bot.plan.state import State
from bot.render import templates
from bot.render.templates import render

MINUTES = "minutes"


def minutes_messages(group: Group, state: State, now: datetime,
                     horizon: list[datetime]) -> list[Desired]:
    """The minutes of each meeting that has a file in the group's minutes folder, to every
    member, held for approval (``minutes_approval``) until released; a member who joined
    since the minutes before gets the joining instructions too, once."""
    out = []
    personal = templates.uses(group, "minutes", "subject", "recipient")
    received, released_in = _minutes_sent(group, state)
    invited = _first_invited(group, state)
    for meeting in group.meetings:
        path = group.minutes.get(meeting.id)
        if path is None:
            continue
        send_at = max(meeting.end, group.go_live).astimezone(UTC)
        latest = meeting.end.astimezone(UTC) + timedelta(days=90)
        if latest <= now:
            continue
        horizon.append(latest)
        prefix = f"{group.id}/{meeting.id}/minutes/"
        released = meeting.id in released_in
        # minutes the admin mailed wait for her APPROVE whatever minutes_approval says: she
        # was sent a summary of them first (bot/engine/desk.py)
        version = hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else ""
        by_mail = any((x.meeting, x.digest) == (meeting.id, version)
                      for x in state.group_mailed_minutes(group.id))
        said = [d.decision for d in state.group_decisions(group.id)
                if (d.meeting, d.subject, d.version) == (meeting.id, MINUTES, version)]
        hold = ((group.minutes_approval != "none" or by_mail) and not released
                and said[-1:] != ["approved"]) or said[-1:] == ["held"]
        shared = {
            "group": shared_context_group(group), "organiser": person(group.organiser),
            "admin": person(group.admin), "meeting": meeting_context(group, meeting, state),
            "file": path.name}
        subjects: dict[bool, str] = {}  # by new_member, unless it names the recipient
        newcomer = _newcomers(group, meeting, received, invited)
        for m in group.attendees:
            new = newcomer(m.email)
            ctx = dict(shared, recipient=recipient(group, m, state), new_member=new)
            if personal or new not in subjects:
                subjects[new] = render(group, "minutes", "subject", ctx)
            out.append(Desired(
                key=prefix + m.email, group=group.id,
                meeting=meeting.id, rule=MINUTES, kind=MINUTES, recipient=m, send_at=send_at,
                latest=latest, subject=subjects[new],
                reason=f"minutes of {meeting.id} ({path.name})"
                       + ("; with the joining instructions" if new else ""),
                template="minutes", context=ctx, initial="held" if hold else "planned",
                hold=said[-1:] == ["held"]))
        if group.minutes_approval == "chair" and group.chair is not None:
            ctx = dict(shared, recipient=member(group.chair), new_member=False)
            out.append(Desired(
                key=approval_key(group, meeting.id, group.chair.email, path), group=group.id,
                meeting=meeting.id, rule=MINUTES, kind=APPROVAL,
                recipient=group.chair, send_at=send_at, latest=latest,
                subject=render(group, "approval_request", "subject", ctx),
                reason=f"the chair is asked to approve the minutes of {meeting.id}",
                template="approval_request", context=ctx))
    return out


def approval_key(group: Group, meeting: str, chair: str, path: Path) -> str:
    """One request per version of the file: a corrected file is a new request, and an
    APPROVE of an older one releases nothing."""
    version = hashlib.sha256(path.read_bytes()).hexdigest()[:10] if path.exists() else "-"
    return f"{group.id}/{meeting}/minutes-approval/{chair}/{version}"


def _minutes_sent(group: Group, state: State) -> tuple[dict[str, set[str]], set[str]]:
    """Per member, the meetings whose minutes they were sent (or are being sent); and the
    meetings whose minutes were released (a row of them planned, retrying, sending or sent)."""
    received: dict[str, set[str]] = {}
    released: set[str] = set()
    for key, st in state.group_keys(group.id).items():
        parts = key.split("/", 3)
        if len(parts) < 4 or parts[2] != MINUTES:
            continue
        if st in ("sending", "sent") and "/" not in parts[3]:
            received.setdefault(parts[3], set()).add(parts[1])
        if st in ("planned", "retry", "sending", "sent"):
            released.add(parts[1])
    return received, released


def _first_invited(group: Group, state: State) -> tuple[datetime, dict[str, datetime]] | None:
    """When clerk first planned the group's invitations (the roster as it stood then), and
    when each person's first was planned; None before any."""
    seen = state.group_first_planned(group.id)
    if not seen:
        return None
    joined: dict[str, datetime] = {}
    for _, email, at in seen:
        if email not in joined or at < joined[email]:
            joined[email] = at
    return min(joined.values()), joined


def _newcomers(group: Group, meeting: Meeting, received: dict[str, set[str]],
               invited: tuple[datetime, dict[str, datetime]] | None) -> Callable[[str], bool]:
    """Whether a member (by address) gets the joining instructions with these minutes: they
    were sent no earlier minutes though others were; or, before clerk circulated any, they
    were first invited after the meeting before (and after go-live). Worked out once per
    meeting."""
    order = [m.id for m in group.meetings]
    earlier = set(order[:order.index(meeting.id)])
    had_earlier = {email for email, got in received.items() if got & earlier}
    before = [m for m in group.meetings if m.start < meeting.start and not m.cancelled]
    since = before[-1].start if before else meeting.start

    def newcomer(email: str) -> bool:
        if email in had_earlier or meeting.id in received.get(email, ()):
            return False
        if had_earlier:  # others were sent earlier minutes
            return True
        if invited is None:
            return False
        start, first = invited
        joined = first.get(email)
        return joined is not None and joined > max(since, start + timedelta(hours=1))

    return newcomer


APPROVAL = "approval_request"
