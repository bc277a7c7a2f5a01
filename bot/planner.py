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
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from typing import Any

from bot import actions, invites, timeutil, windows
from bot.invites import CANCEL, REQUEST, Held, InviteSpec, NewRevision
from bot.model import (
    Action,
    Config,
    Desired,
    Group,
    Meeting,
    Member,
    Nudge,
    Offset,
    Person,
    Revision,
    Rule,
    Series,
)
from bot.render import templates
from bot.render.templates import render

MISSED = "skipped_late"
SAME_DAY = Offset("0d", 0, "d")


@dataclass(frozen=True)
class Undelivered:
    """A message that failed or was parked, not yet reported to the admin."""

    key: str
    recipient: str
    subject: str
    state: str
    error: str
    at: datetime


@dataclass(frozen=True)
class State:
    """The facts the planner reads, as a snapshot taken by the store."""

    keys: Mapping[str, str] = field(default_factory=dict)  # ledger key -> ledger state
    rules_recorded: frozenset[tuple[str, str, str]] = frozenset()  # (group, meeting, rule)
    revisions: Mapping[tuple[str, str], tuple[Revision, ...]] = field(default_factory=dict)
    delivered: frozenset[tuple[str, str, int]] = frozenset()  # (group, meeting, rev) sent
    # (group, meeting, request rule, organisation) -> "submitted" | "nil"
    submitted: Mapping[tuple[str, str, str, str], str] = field(default_factory=dict)
    revision_created: Mapping[tuple[str, str, int], datetime] = field(default_factory=dict)
    held: Mapping[tuple[str, str], Mapping[str, Held]] = field(default_factory=dict)
    first_planned: Mapping[tuple[str, str, str, int], datetime] = field(default_factory=dict)
    undelivered: Mapping[str, tuple[Undelivered, ...]] = field(default_factory=dict)
    # (group, meeting or series, original start or "") -> email -> (PARTSTAT, comment)
    rsvps: Mapping[tuple[str, str, str], Mapping[str, tuple[str, str]]] = field(
        default_factory=dict)
    actions: tuple[Action, ...] = ()  # all of them: open, done and dropped
    nudges: tuple[Nudge, ...] = ()
    proposals: tuple[tuple[str, str, str, str], ...] = ()  # (group, meeting, member, item)


@dataclass(frozen=True)
class Plan:
    messages: tuple[Desired, ...]
    revisions: tuple[NewRevision, ...]
    valid_until: datetime | None

    def by_key(self) -> dict[str, Desired]:
        return {m.key: m for m in self.messages}


def message_key(group: str, meeting: str, rule: str, email: str, sequence: int | None,
                method: str = REQUEST) -> str:
    """The idempotency key; invitations add r<SEQUENCE> (a REQUEST) or c<SEQUENCE> (a CANCEL)."""
    key = f"{group}/{meeting}/{rule}/{email}"
    if sequence is None:
        return key
    return f"{key}/{'c' if method == CANCEL else 'r'}{sequence}"


def person(p: Person) -> dict[str, str]:
    return {"name": p.name, "email": p.email}


def member(m: Member) -> dict[str, str]:
    return {"name": m.name, "email": m.email, "organisation": m.organisation, "role": m.role}


BUCKETS = {"ACCEPTED": "accepted", "TENTATIVE": "tentative", "DECLINED": "declined"}


def rsvp_summary(group: Group, meeting: Meeting, state: State) -> dict[str, list[dict[str, str]]]:
    """Who has accepted, is tentative, sent apologies (with their reason), or not answered —
    from the members' iMIP replies. A reply to one meeting of a series overrides one to the
    whole series."""
    unit = meeting.series or meeting.id
    answers = dict(state.rsvps.get((group.id, unit, ""), {}))
    if meeting.recurrence_id is not None:
        rid = meeting.recurrence_id.astimezone(UTC).isoformat()
        answers.update(state.rsvps.get((group.id, unit, rid), {}))
    out: dict[str, list[dict[str, str]]] = {
        "accepted": [], "tentative": [], "declined": [], "no_answer": []}
    for m in group.members:
        partstat, comment = answers.get(m.email, ("NEEDS-ACTION", ""))
        out[BUCKETS.get(partstat, "no_answer")].append(
            {"name": m.name, "email": m.email, "organisation": m.organisation,
             "comment": comment})
    return out


def nudge_meeting(group: Group, nudge: Nudge) -> Meeting | None:
    """The first meeting whose date falls inside the nudge's window."""
    return next((m for m in group.meetings if not m.cancelled
                 and nudge.start <= m.start.date() <= nudge.end), None)


def run_up(group: Group, meeting: Meeting, state: State) -> dict[str, Any]:
    """What the agenda pack carries: the action tracker (matters arising), the nudges that
    fall due, the items members proposed, and the returns register."""
    before = [m for m in group.meetings if m.start < meeting.start and not m.cancelled]
    since = before[-1].start.date() if before else None
    names = {m.email: m for m in group.members}
    tracker = [a for a in state.actions if a.group == group.id and (
        a.status == "open" or (since is not None and a.completed is not None
                               and a.completed >= since))]
    tracker.sort(key=lambda a: (a.status != "open", a.due, a.id))
    asked = [r.id for r in group.rules if r.kind == "request"]
    return {
        "actions": [{"ref": a.ref, "topic": a.topic, "text": a.text, "status": a.status,
                     "owner": "all members" if "*" in a.owners else ", ".join(
                         names[o].name if o in names else o for o in a.owners),
                     "due": a.due, "completed": a.completed} for a in tracker],
        "nudges": [{"text": n.text, "from": n.meeting} for n in state.nudges
                   if n.group == group.id and (found := nudge_meeting(group, n)) is not None
                   and found.id == meeting.id],
        "proposals": [{"item": item, "by": names[email].name if email in names else
                       f"the minutes of {email.split(':', 1)[1]}"
                       if email.startswith("minutes:") else email}
                      for (g, m, email, item) in state.proposals
                      if g == group.id and m == meeting.id],
        "returns": [{"organisation": org, "status": _return_status(state, group, meeting, org,
                                                                   asked)}
                    for org in sorted({m.organisation for m in group.members})] if asked
        else [],
    }


def _return_status(state: State, group: Group, meeting: Meeting, org: str,
                   asked: list[str]) -> str:
    found = {state.submitted[key] for key in state.submitted
             if key[:2] == (group.id, meeting.id) and key[3] == org and key[2] in asked}
    if "submitted" in found:
        return "submitted"
    return "nil return" if found else "outstanding"


def meeting_context(group: Group, meeting: Meeting,
                    state: State | None = None) -> dict[str, Any]:
    tz = timeutil.zone(group.zone)
    series = _series_of(group, meeting)
    return {
        "id": meeting.id, "title": meeting.title, "start": meeting.start.astimezone(tz),
        "end": meeting.end.astimezone(tz),
        "duration": timeutil.format_duration(meeting.duration),
        "location": meeting.location, "link": meeting.link,
        "description": meeting.description, "agenda": list(meeting.items),
        "rsvp": rsvp_summary(group, meeting, state or State()),
        **run_up(group, meeting, state or State()),
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
            "members": len(group.members),
            "organisations": len({m.organisation for m in group.members})}


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


def other_examples(group: Group) -> list[tuple[str, dict[str, Any]]]:
    """Example contexts of the templates no rule names: the action chaser, the digest of
    undelivered messages."""
    now = group.go_live
    sample = Action(id=1, group=group.id, meeting="", topic="Example", text="An example action",
                    owners=(group.members[0].email,) if group.members else ("*",),
                    due=now.date() + timedelta(days=30), status="open", completed=None,
                    created=now)
    owner = group.members[0] if group.members else Member(name="A Member",
                                                          email="member@example.org")
    digest = actions.Digest(owner, now.date(), (sample,), 1, now, now)
    chaser = [d for d in _action_chasers_for(group, [digest], now)]
    notice = _undelivered_notice(group, (Undelivered("k", owner.email, "A subject", "failed",
                                                     "550 no such user", now),))
    nudge = Nudge(1, group.id, "", "An example subject", now.date(),
                  now.date() + timedelta(days=90))
    notes = _nudge_notes(group, State(nudges=(nudge,)), now - timedelta(days=1), [])
    return [(d.template, d.context) for d in (*chaser, notice, *notes)]


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


def latest_time(group: Group, meeting: Meeting, rule: Rule, send_at: datetime) -> datetime:
    """The last instant a message may still go: past it, it is recorded skipped_late."""
    series = _series_of(group, meeting)
    if series is not None:  # a series' invitations are useful until its last meeting
        return max(o.start for o in series.occurrences).astimezone(UTC)
    if rule.latest is not None:
        return timeutil.apply_offset(meeting.start, rule.latest, rule.at)
    if rule.kind in ("request", "chaser"):
        deadline = _deadline(group, meeting, _chased(group, rule) or rule)
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
            for rule in group.rules:
                if meeting.cancelled and rule.kind != "invitation":
                    continue  # a cancelled meeting gets only its CANCELs
                if meeting.series and rule.kind == "invitation":
                    continue  # a series is invited as a whole, below
                messages += _plan_rule(group, meeting, rule, state, now, revisions, horizon)
        for series in group.series:
            for rule in group.rules:
                if rule.kind == "invitation":
                    messages += _plan_rule(group, series.master, rule, state, now, revisions,
                                           horizon)
        if state.undelivered.get(group.id):
            messages.append(_undelivered_notice(group, state.undelivered[group.id]))
        messages += _action_chasers(group, state, now, horizon)
        messages += _nudge_notes(group, state, now, horizon)
    return Plan(tuple(_in_window(config, messages)), tuple(revisions),
                min(horizon) if horizon else None)


def _in_window(config: Config, messages: list[Desired]) -> list[Desired]:
    """Each message at its send time, or the group's window's next opening after it."""
    groups = {g.id: g for g in config.groups}
    out = []
    for m in messages:
        g = groups[m.group]
        at = windows.next_opening(g.window, g.zone, m.send_at) if g.window else m.send_at
        out.append(m if at == m.send_at else replace(m, send_at=at))
    return out


def _plan_rule(group: Group, meeting: Meeting, rule: Rule, state: State, now: datetime,
               revisions: list[NewRevision], horizon: list[datetime]) -> list[Desired]:
    send_at = timeutil.apply_offset(meeting.start, rule.send, rule.at)
    latest = latest_time(group, meeting, rule, send_at)
    go_live = group.go_live.astimezone(UTC)
    if latest < go_live:
        return []  # dated before go-live: never sent, never recorded
    # a message whose time fell before go-live goes on go-live day, at the rule's time
    if send_at < go_live:
        send_at = timeutil.apply_offset(group.go_live, SAME_DAY, rule.at)
    if latest > now:
        horizon.append(latest)
    if rule.kind == "invitation":
        specs = _invitations(group, meeting, rule, state, now, send_at, latest, revisions)
    else:
        specs = [InviteSpec(p, "", -1, -1, send_at, _reason(group, rule), "")
                 for p in _recipients(group, meeting, rule, state)]
    initial = "held" if rule.approve else "planned"
    if latest <= now:
        # its window has passed: keep what is recorded; report the rule once if it never was
        if (group.id, meeting.id, rule.id) in state.rules_recorded:
            specs = [s for s in specs if _key(group, meeting, rule, s) in state.keys]
        else:
            initial = MISSED
            specs = [replace(s, reason=f"{s.reason} (its window had passed when first "
                             "planned)") for s in specs]
    shared = shared_context(group, meeting, rule, state)
    subjects: dict[tuple[str, int], str] = {}  # per (method, sequence) when no one is named
    return [_desired(group, meeting, rule, s, shared, latest, initial, subjects)
            for s in specs]


def _key(group: Group, meeting: Meeting, rule: Rule, spec: InviteSpec) -> str:
    seq = spec.sequence if spec.method else None
    return message_key(group.id, meeting.id, rule.id, spec.recipient.email, seq, spec.method)


def _desired(group: Group, meeting: Meeting, rule: Rule, spec: InviteSpec,
             shared: dict[str, Any], latest: datetime, initial: str,
             subjects: dict[tuple[str, int], str]) -> Desired:
    p = spec.recipient
    context = dict(shared, recipient=member(p) if isinstance(p, Member) else
                   dict(person(p), organisation="", role=""))
    kind, template = rule.kind, rule.template
    if spec.method:
        context["revision"], context["change"] = spec.sequence, spec.change
        context["scope"], context["rids"] = spec.scope, list(spec.rids)
    if spec.method == CANCEL:
        kind = "occurrence_cancellation" if spec.scope else "cancellation"
        template = "cancellation"
    return Desired(
        key=_key(group, meeting, rule, spec), group=group.id, meeting=meeting.id,
        rule=rule.id, kind=kind, recipient=p, send_at=spec.send_at, latest=latest,
        subject=_subject(group, template, context, spec, subjects), reason=spec.reason,
        template=template, context=context, revision=spec.revision if spec.method else None,
        sequence=spec.sequence if spec.method else None, initial=initial,
    )


def _subject(group: Group, template: str, context: dict[str, Any], spec: InviteSpec,
             cache: dict[tuple[str, int], str]) -> str:
    if templates.uses(group, template, "subject", "recipient"):
        return render(group, template, "subject", context)
    batch = (spec.method, spec.sequence)
    if batch not in cache:
        cache[batch] = render(group, template, "subject", context)
    return cache[batch]


def _recipients(group: Group, meeting: Meeting, rule: Rule, state: State) -> list[Person]:
    recipients = audience(group, rule)
    if rule.kind == "chaser":
        done = {org for (g, m, r, org) in state.submitted
                if (g, m, r) == (group.id, meeting.id, rule.chases)}
        recipients = [p for p in recipients if getattr(p, "organisation", None) not in done]
    return recipients


def _invitations(group: Group, meeting: Meeting, rule: Rule, state: State, now: datetime,
                 send_at: datetime, latest: datetime,
                 revisions: list[NewRevision]) -> list[InviteSpec]:
    held = state.held.get((group.id, meeting.id), {})
    history = state.revisions.get((group.id, meeting.id), ())
    series = _series_of(group, meeting)
    if latest > now:
        fields = invites.series_fields(series) if series else invites.invite_fields(meeting)
        current = invites.current_revision(group, meeting.id, fields, history,
                                           state.revision_created, state.delivered, now,
                                           revisions)
    else:
        current = invites.Current(history[-1].rev if history else 0, now, "")
    if series is not None and series.cancelled:
        meeting = replace(meeting, cancelled=True)
    specs = invites.invitation_specs(
        group, meeting, held=held, current=current, send_at=send_at, settle=group.settle,
        first_planned=state.first_planned, now=now)
    suffix = f" (rule {rule.id} {rule.send.text})"
    return [replace(s, reason=s.reason + suffix) if s.method == REQUEST else s for s in specs]


NOTICE = "notice"
NUDGE_NOTE = "nudge_note"


def _nudge_notes(group: Group, state: State, now: datetime,
                 horizon: list[datetime]) -> list[Desired]:
    """A note to the chair when a nudge's window opens: on which meeting's agenda it is, or
    that no meeting falls in the window."""
    tz = timeutil.zone(group.zone)
    to = group.chair or group.admin
    out = []
    for n in state.nudges:
        if n.group != group.id:
            continue
        send_at = datetime.combine(n.start, time(9, 0), tzinfo=tz).astimezone(UTC)
        latest = send_at + timedelta(days=14)
        if latest < group.go_live or (latest <= now and
                                      _nudge_key(group, n, to) not in state.keys):
            continue
        if send_at > now:
            horizon.append(send_at)
        target = nudge_meeting(group, n)
        ctx: dict[str, Any] = {
            "group": shared_context_group(group), "organiser": person(group.organiser),
            "admin": person(group.admin), "recipient": dict(person(to), organisation="",
                                                            role="chair"),
            "nudge": {"text": n.text, "from": n.meeting, "start": n.start, "end": n.end},
            "meeting": meeting_context(group, target, state) if target else None}
        out.append(Desired(
            key=_nudge_key(group, n, to), group=group.id, meeting=target.id if target else "-",
            rule="nudge", kind=NUDGE_NOTE, recipient=to, send_at=send_at, latest=latest,
            subject=render(group, "nudge_note", "subject", ctx),
            reason=f"nudge #{n.id}: its window opens"
                   + (f"; on the agenda of {target.id}" if target else "; no meeting in it"),
            template="nudge_note", context=ctx))
    return out


def _nudge_key(group: Group, nudge: Nudge, to: Person) -> str:
    return f"{group.id}/-/nudge/{to.email}/{nudge.id}"
ACTION_CHASER = "action_chaser"


def _action_chasers(group: Group, state: State, now: datetime,
                    horizon: list[datetime]) -> list[Desired]:
    """One digest per owner per chase day (bot/actions.py)."""
    found, upcoming = actions.digests(group, [a for a in state.actions if a.status == "open"],
                                      now, state.keys)
    if upcoming is not None:
        horizon.append(upcoming)
    return _action_chasers_for(group, found, now)


def _action_chasers_for(group: Group, found: list[actions.Digest],
                        now: datetime) -> list[Desired]:
    today = now.astimezone(timeutil.zone(group.zone)).date()
    chair = group.chair
    out = []
    for d in found:
        ctx: dict[str, Any] = {
            "group": shared_context_group(group), "organiser": person(group.organiser),
            "admin": person(group.admin), "chair": member(chair) if chair else None,
            "recipient": member(d.owner), **actions.context(group, d, today)}
        cc = (chair,) if ctx["copy_chair"] and chair and chair.email != d.owner.email else ()
        out.append(Desired(
            key=actions.digest_key(group, d.owner.email, d.day), group=group.id, meeting="-",
            rule="actions", kind=ACTION_CHASER, recipient=d.owner, send_at=d.send_at,
            latest=d.latest, subject=render(group, "action_chaser", "subject", ctx),
            reason=f"action chaser {d.number}: {len(d.actions)} open action(s)"
                   + (", chair copied" if cc else ""),
            template="action_chaser", context=ctx, cc=cc))
    return out


def _undelivered_notice(group: Group, rows: tuple[Undelivered, ...]) -> Desired:
    """One digest to the admin of the messages that failed or were parked since the last
    one; its key names exactly those messages, so a later failure makes a new digest."""
    keys = [r.key for r in rows]
    digest = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:12]
    at = max(r.at for r in rows)
    context = {
        "group": shared_context_group(group), "organiser": person(group.organiser),
        "admin": person(group.admin), "recipient": dict(person(group.admin), organisation="",
                                                        role="admin"),
        "undelivered": [{"key": r.key, "recipient": r.recipient, "subject": r.subject,
                         "state": r.state, "error": r.error} for r in rows],
        "undelivered_keys": keys,
    }
    return Desired(
        key=f"{group.id}/-/undelivered/{group.admin.email}/{digest}", group=group.id,
        meeting="-", rule="undelivered", kind=NOTICE, recipient=group.admin, send_at=at,
        latest=at + timedelta(days=7),
        subject=render(group, "undelivered", "subject", context),
        reason=f"{len(rows)} message(s) could not be delivered", template="undelivered",
        context=context)


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
