"""The planner: a pure function from config, state and now to the messages clerk wants sent.

``plan(config, state, now)`` reads nothing and writes nothing. Every message it returns has an
idempotency key built from stable ids — group, meeting, rule, recipient and, for invitations,
the invite revision — so planning twice gives the same keys, and the executor's
insert-if-absent makes a second tick at the same ``now`` send nothing new.

The plan also says until when it stays valid (``valid_until``): the next instant at which
time alone would change it (a rule's latest time passing). The worker re-plans when that
instant passes or when config or state change, and otherwise only claims due rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bot import timeutil
from bot.model import Config, Desired, Group, Meeting, Member, Offset, Person, Revision, Rule
from bot.render.templates import render

MISSED = "skipped_late"
SAME_DAY = Offset("0d", 0, "d")


@dataclass(frozen=True)
class State:
    """The facts the planner reads, as a snapshot taken by the store."""

    keys: Mapping[str, str] = field(default_factory=dict)  # ledger key -> ledger state
    rules_recorded: frozenset[tuple[str, str, str]] = frozenset()  # (group, meeting, rule)
    revisions: Mapping[tuple[str, str], Revision] = field(default_factory=dict)  # latest
    delivered: frozenset[tuple[str, str, int]] = frozenset()  # (group, meeting, rev) sent
    submitted: frozenset[tuple[str, str, str, str]] = frozenset()  # (g, m, rule, org)
    revision_created: Mapping[tuple[str, str, int], datetime] = field(default_factory=dict)


@dataclass(frozen=True)
class NewRevision:
    group: str
    meeting: str
    revision: Revision
    replaces: bool  # True: the same rev number, never sent, gets new content


@dataclass(frozen=True)
class Plan:
    messages: tuple[Desired, ...]
    revisions: tuple[NewRevision, ...]
    valid_until: datetime | None

    def by_key(self) -> dict[str, Desired]:
        return {m.key: m for m in self.messages}


def message_key(group: str, meeting: str, rule: str, email: str, rev: int | None) -> str:
    key = f"{group}/{meeting}/{rule}/{email}"
    return key if rev is None else f"{key}/r{rev}"


def invite_fields(meeting: Meeting) -> dict[str, str]:
    return {
        "start": meeting.start.astimezone(UTC).isoformat(),
        "duration": timeutil.format_duration(meeting.duration),
        "location": meeting.location,
        "link": meeting.link,
        "title": meeting.title,
        "description": meeting.description,
    }


MATERIAL = ("start", "duration", "location", "link", "title")  # RFC 5546 3.2.2: bump SEQUENCE


def invite_digest(fields: Mapping[str, str]) -> str:
    text = "\0".join(f"{k}={fields[k]}" for k in MATERIAL)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def describe_change(old: Mapping[str, str], new: Mapping[str, str]) -> str:
    changes = [f"{k} {old.get(k) or '-'} → {new[k] or '-'}" for k in MATERIAL
               if old.get(k) != new[k]]
    return ", ".join(changes)


def person(p: Person) -> dict[str, str]:
    return {"name": p.name, "email": p.email}


def member(m: Member) -> dict[str, str]:
    return {"name": m.name, "email": m.email, "organisation": m.organisation, "role": m.role}


def meeting_context(group: Group, meeting: Meeting) -> dict[str, Any]:
    tz = timeutil.zone(group.zone)
    return {
        "id": meeting.id, "title": meeting.title, "start": meeting.start.astimezone(tz),
        "end": meeting.end.astimezone(tz),
        "duration": timeutil.format_duration(meeting.duration),
        "location": meeting.location, "link": meeting.link,
        "description": meeting.description, "agenda": list(meeting.items),
    }


def rule_context(group: Group, meeting: Meeting, rule: Rule) -> dict[str, Any]:
    tz = timeutil.zone(group.zone)
    request = _chased(group, rule) or rule
    deadline = _deadline(meeting, request)
    return {
        "id": rule.id, "kind": rule.kind, "questions": list(request.questions),
        "deadline": deadline.astimezone(tz) if deadline else None,
    }


def shared_context(group: Group, meeting: Meeting, rule: Rule) -> dict[str, Any]:
    chair = group.chair
    return {
        "group": {"id": group.id, "name": group.name, "website": group.website,
                  "joining_instructions": group.joining_instructions, "zone": group.zone,
                  "members": len(group.members),
                  "organisations": len({m.organisation for m in group.members})},
        "meeting": meeting_context(group, meeting),
        "rule": rule_context(group, meeting, rule),
        "organiser": person(group.organiser),
        "admin": person(group.admin),
        "chair": member(chair) if chair else None,
        "revision": None,
        "change": "",
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


def _chased(group: Group, rule: Rule) -> Rule | None:
    if rule.kind != "chaser":
        return None
    return next((r for r in group.rules if r.id == rule.chases), None)


def _deadline(meeting: Meeting, rule: Rule) -> datetime | None:
    if rule.deadline is None:
        return None
    return timeutil.apply_offset(meeting.start, rule.deadline, (17, 0))


def latest_time(group: Group, meeting: Meeting, rule: Rule, send_at: datetime) -> datetime:
    """The last instant a message may still go: past it, it is recorded skipped_late."""
    if rule.latest is not None:
        return timeutil.apply_offset(meeting.start, rule.latest, rule.at)
    if rule.kind in ("request", "chaser"):
        deadline = _deadline(meeting, _chased(group, rule) or rule)
        if deadline is not None:
            return deadline
    if rule.kind == "minutes_due":
        return send_at + timedelta(days=7)
    return meeting.start.astimezone(UTC)


def audience(group: Group, rule: Rule) -> list[Person]:
    if rule.to == "admin":
        return [group.admin]
    if rule.to == "chair":
        return [group.chair] if group.chair else [group.admin]
    if rule.to == "leads":
        return list(group.leads())
    return list(group.members)


def plan(config: Config, state: State, now: datetime) -> Plan:
    messages: list[Desired] = []
    revisions: list[NewRevision] = []
    horizon: list[datetime] = []
    for group in config.groups:
        for meeting in group.meetings:
            if meeting.cancelled:
                continue  # cancellation notices are the invite issue's CANCEL
            for rule in group.rules:
                messages += _plan_rule(group, meeting, rule, state, now, revisions, horizon)
    return Plan(tuple(messages), tuple(revisions), min(horizon) if horizon else None)


def _revision(group: Group, meeting: Meeting, state: State, now: datetime,
              out: list[NewRevision]) -> tuple[int, datetime, str]:
    """The invite revision members should hold now, and why; records any new one in ``out``."""
    fields = invite_fields(meeting)
    digest = invite_digest(fields)
    current = state.revisions.get((group.id, meeting.id))
    if current is None:
        out.append(NewRevision(group.id, meeting.id, Revision(0, digest, fields), False))
        return 0, now, "invitation rev 0"
    created = state.revision_created.get((group.id, meeting.id, current.rev), now)
    if current.digest == digest:
        if current.fields != fields and (group.id, meeting.id, current.rev) not in state.delivered:
            out.append(NewRevision(group.id, meeting.id, Revision(current.rev, digest, fields),
                                   True))
        return current.rev, created, _rev_reason(current.rev)
    if (group.id, meeting.id, current.rev) in state.delivered:
        rev = current.rev + 1
        out.append(NewRevision(group.id, meeting.id, Revision(rev, digest, fields), False))
        return rev, now, f"update rev {rev}: {describe_change(current.fields, fields)}"
    out.append(NewRevision(group.id, meeting.id, Revision(current.rev, digest, fields), True))
    return current.rev, created, _rev_reason(current.rev)


def _rev_reason(rev: int) -> str:
    return "invitation rev 0" if rev == 0 else f"update rev {rev}"


def _plan_rule(group: Group, meeting: Meeting, rule: Rule, state: State, now: datetime,
               revisions: list[NewRevision], horizon: list[datetime]) -> Iterable[Desired]:
    send_at = timeutil.apply_offset(meeting.start, rule.send, rule.at)
    latest = latest_time(group, meeting, rule, send_at)
    go_live = group.go_live.astimezone(UTC)
    if latest < go_live:
        return []  # dated before go-live: never sent, never recorded
    # a message whose time fell before go-live goes on go-live day, at the rule's time
    if send_at < go_live:
        send_at = timeutil.apply_offset(group.go_live, SAME_DAY, rule.at)
    rev: int | None = None
    reason = _reason(group, rule)
    if rule.kind == "invitation":
        if latest > now:
            rev, created, why = _revision(group, meeting, state, now, revisions)
            reason = f"{why} to every member (rule {rule.id} {rule.send.text})"
            send_at = max(send_at, created)
        else:
            current = state.revisions.get((group.id, meeting.id))
            rev = current.rev if current else 0
    recipients = audience(group, rule)
    if rule.kind == "chaser":
        done = {org for (g, m, r, org) in state.submitted
                if (g, m, r) == (group.id, meeting.id, rule.chases)}
        recipients = [p for p in recipients if getattr(p, "organisation", None) not in done]
    initial = "held" if rule.approve else "planned"
    if latest <= now:
        if (group.id, meeting.id, rule.id) in state.rules_recorded:
            keys = state.keys
            recipients = [p for p in recipients
                          if message_key(group.id, meeting.id, rule.id, p.email, rev) in keys]
        else:
            initial, reason = MISSED, f"{reason} (its window had passed when first planned)"
    else:
        horizon.append(latest)
    shared = shared_context(group, meeting, rule)
    shared["revision"] = rev
    if rev:
        shared["change"] = reason
    out = []
    for p in recipients:
        context = dict(shared, recipient=member(p) if isinstance(p, Member) else
                       dict(person(p), organisation="", role="admin"))
        out.append(Desired(
            key=message_key(group.id, meeting.id, rule.id, p.email, rev), group=group.id,
            meeting=meeting.id, rule=rule.id, kind=rule.kind, recipient=p, send_at=send_at,
            latest=latest, subject=render(group, rule.template, "subject", context),
            reason=reason, template=rule.template, context=context, revision=rev,
            initial=initial,
        ))
    return out


def _reason(group: Group, rule: Rule) -> str:
    if rule.kind == "chaser":
        return f"chaser for {rule.chases}: no reply from the organisation yet"
    if rule.kind == "request":
        return "request for information" + (" to each organisation's lead"
                                            if rule.to == "leads" else " to every member")
    return {
        "invitation": "invitation", "pack": "agenda pack",
        "minutes_due": "minutes are due: reminder to the admin",
    }[rule.kind] + f" (rule {rule.id} {rule.send.text})"
