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

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.domain import timeutil, windows
from bot.domain.model import (
    Config,
    Desired,
    Group,
    Meeting,
    Offset,
    Person,
    Rule,
)
from bot.plan import actions, invites
from bot.plan.admin_mail import DIGEST_RULE, admin_digests
from bot.plan.calendar import OWNED_BY_SERVER
from bot.plan.context import (
    _chased,
    _deadline,
    _series_of,
    recipient,
    shared_context,
)
from bot.plan.guard import Trip, guard, withheld
from bot.plan.invites import CANCEL, REQUEST, InviteSpec, NewRevision
from bot.plan.minutes import minutes_messages
from bot.plan.notices import (
    SUMMARIES,
    _nudge_notes,
    _undelivered_notice,
    action_digests,
    config_notice,
    owed_replies,
    summaries,
)
from bot.plan.pack import previews
from bot.plan.state import State
from bot.render import templates
from bot.render.templates import render

__all__ = ["GroupPlan", "Plan", "State", "plan"]


MISSED = "skipped_late"
# the rules of a group's weekly part (:func:`weekly_plan`), keyed ``<group>/-/<rule>/…``
WEEKLY = (*SUMMARIES, DIGEST_RULE)

SAME_DAY = Offset("0d", 0, "d")

@dataclass(frozen=True)
class Plan:
    messages: tuple[Desired, ...]
    revisions: tuple[NewRevision, ...]
    valid_until: datetime | None
    held: tuple[Trip, ...] = ()  # what the blast-radius guard holds (bot/plan/guard.py)

    def by_key(self) -> dict[str, Desired]:
        return {m.key: m for m in self.messages}

def message_key(group: str, meeting: str, rule: str, email: str, sequence: int | None,
                method: str = REQUEST) -> str:
    """The idempotency key; invitations add r<SEQUENCE> (a REQUEST) or c<SEQUENCE> (a CANCEL)."""
    key = f"{group}/{meeting}/{rule}/{email}"
    if sequence is None:
        return key
    return f"{key}/{'c' if method == CANCEL else 'r'}{sequence}"

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
    return list(group.attendees)

@dataclass(frozen=True)
class GroupPlan:
    """One unit of a plan — a group's messages, or the owners' digests across groups
    (:func:`digests_plan`) — with the revisions they need recorded, until when time alone
    leaves them as they are, and what the blast-radius guard holds. Each is made from the
    facts of its own group (and the action log): a worker plans again only the units whose
    files or facts changed, or whose time came (bot/engine/units.py)."""

    messages: tuple[Desired, ...]
    revisions: tuple[NewRevision, ...]
    valid_until: datetime | None
    held: tuple[Trip, ...] = ()


def plan(config: Config, state: State, now: datetime) -> Plan:
    """The whole install's plan: every group's, then the owners' digests."""
    chased = actions.Chased(config.groups, state.actions)
    parts = []
    for group in config.groups:
        parts.append(group_plan(config, group, state, now, chased))
        parts.append(weekly_plan(config, group, state, now, chased, parts[-1].held))
    parts.append(digests_plan(config, state, now, chased))
    valid = [p.valid_until for p in parts if p.valid_until is not None]
    return Plan(tuple(m for p in parts for m in p.messages),
                tuple(r for p in parts for r in p.revisions), min(valid) if valid else None,
                tuple(t for p in parts for t in p.held))


def group_plan(config: Config, group: Group, state: State, now: datetime,
               chased: actions.Chased) -> GroupPlan:
    """The group's part of the plan (:class:`GroupPlan`): its rules' messages, its series,
    its undelivered digest, nudge notes, minutes, config notice and owed replies, with her
    decisions on its packs, the guard and its send window applied (its weekly part:
    :func:`weekly_plan`)."""
    messages: list[Desired] = []
    revisions: list[NewRevision] = []
    horizon: list[datetime] = []
    for meeting in group.meetings:
        for rule in group.rules:
            if meeting.cancelled and rule.kind != "invitation":
                continue  # a cancelled meeting gets only its CANCELs
            if meeting.series and rule.kind == "invitation":
                continue  # a series is invited as a whole, below
            if rule.kind == "minutes_due" and meeting.id in group.minutes:
                continue  # the minutes are in: no reminder
            messages += _plan_rule(group, meeting, rule, state, now, revisions, horizon)
    for series in group.series:
        for rule in group.rules:
            if rule.kind == "invitation":
                messages += _plan_rule(group, series.master, rule, state, now, revisions,
                                       horizon)
    untold = tuple(u for u in state.undelivered.get(group.id, ()) if not u.notified)
    if untold:
        messages.append(_undelivered_notice(group, untold))
    messages += _nudge_notes(group, state, now, horizon)
    messages += minutes_messages(group, state, now, horizon)
    messages += config_notice(config, group, state)
    messages += owed_replies(group, state, now, chased)
    messages = previews(config, state, messages, now, horizon)
    return _finish(config, state, now, messages, revisions, horizon)


def weekly_plan(config: Config, group: Group, state: State, now: datetime,
                chased: actions.Chased, trips: Sequence[Trip] = ()) -> GroupPlan:
    """The group's weekly part: the chair's and the admin's action summaries and the admin's
    weekly digest (their rules: :data:`WEEKLY`). A unit of its own, so that the week turning
    plans these again, not the group's meetings. To the people the blast-radius guard holds
    the group's own part for (``trips``: a stranger saved as its chair, say), nothing goes
    (:func:`bot.plan.guard.withheld`)."""
    horizon: list[datetime] = []
    messages = summaries(group, state, chased, now, horizon)
    messages += admin_digests((group,), state, now, horizon, chased)
    return _finish(config, state, now, withheld(group, trips, messages), [], horizon,
                   guarded=False)


def digests_plan(config: Config, state: State, now: datetime,
                 chased: actions.Chased) -> GroupPlan:
    """The owners' digests of their actions, across groups (bot/plan/actions.py)."""
    horizon: list[datetime] = []
    return _finish(config, state, now, action_digests(config, state, now, horizon, chased),
                   [], horizon, guarded=False)


def _finish(config: Config, state: State, now: datetime, messages: list[Desired],
            revisions: list[NewRevision], horizon: list[datetime],
            guarded: bool = True) -> GroupPlan:
    messages = _not_bouncing(config, state, messages)
    if config.settings.transport in OWNED_BY_SERVER:
        messages = _on_server(state, messages)
    trips: list[Trip] = []
    if guarded:
        messages, trips = guard(config, state, messages, now)
    return GroupPlan(tuple(_in_window(config, messages)), tuple(revisions),
                     min(horizon) if horizon else None, tuple(trips))


def _not_bouncing(config: Config, state: State, messages: list[Desired]) -> list[Desired]:
    """Nothing more to an address that bounced for good, until its roster row changes (the
    admin was told of the bounce; fixing the row — or re-saving it — lets mail go again)."""
    if not state.bounced:
        return messages
    rows: dict[str, dict[str, str]] = {}  # group -> email -> its roster row
    for m in messages:
        if m.group not in rows:
            group = config.by_id.get(m.group)
            rows[m.group] = {p.email: p.row for p in group.members} if group else {}
    return [m for m in messages if rows[m.group].get(m.recipient.email, "") not in
            state.bounced.get(m.recipient.email, frozenset())]


def _on_server(state: State, messages: list[Desired]) -> list[Desired]:
    """Say in the plan how a server-owned meeting reaches a newcomer (bot/plan/calendar.py)."""
    out = []
    for m in messages:
        held = state.held.get((m.group, m.meeting), {})
        if m.kind == "invitation" and m.recipient.email not in held and any(
                h.method == REQUEST for h in held.values()):
            m = replace(m, reason=f"{m.reason}; a calendar item of their own, so nobody "
                        "else is mailed")
        out.append(m)
    return out

def _in_window(config: Config, messages: list[Desired]) -> list[Desired]:
    """Each message at its send time, or the group's window's next opening after it."""
    groups = config.by_id
    opening: dict[tuple[str, datetime], datetime] = {}  # a rule's messages share a send time
    out = []
    for m in messages:
        g = groups[m.group]
        if g.window:
            at = opening.get((g.id, m.send_at))
            if at is None:
                at = opening[(g.id, m.send_at)] = windows.next_opening(g.window, g.zone,
                                                                       m.send_at)
        else:
            at = m.send_at
        if at > m.latest:
            at = m.send_at  # the window would make it too late: it goes as it was due
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
    if rule.kind == "invitation":
        specs = _invitations(group, meeting, rule, state, now, send_at, latest, revisions)
    else:
        specs = [InviteSpec(p, "", -1, -1, send_at, _reason(group, rule), "")
                 for p in _recipients(group, meeting, rule, state)]
    # past its latest time, the rule's messages are those recorded: planned again then only
    # if some are not (an invitation's revision is worked out until then, so always)
    if latest > now and (rule.kind == "invitation" or any(
            _key(group, meeting, rule, s) not in state.keys for s in specs)):
        horizon.append(latest)
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
    subjects: dict[Any, Any] = {}  # (_subject)
    return [_desired(group, meeting, rule, s, shared, latest, initial, subjects, state)
            for s in specs]

def _key(group: Group, meeting: Meeting, rule: Rule, spec: InviteSpec) -> str:
    seq = spec.sequence if spec.method else None
    return message_key(group.id, meeting.id, rule.id, spec.recipient.email, seq, spec.method)

def _desired(group: Group, meeting: Meeting, rule: Rule, spec: InviteSpec,
             shared: dict[str, Any], latest: datetime, initial: str,
             subjects: dict[Any, Any], state: State) -> Desired:
    p = spec.recipient
    context = dict(shared, recipient=recipient(group, p, state))
    kind, template = rule.kind, rule.template
    if spec.method:  # a first invitation says so, whatever the meeting's revision
        context["revision"] = 0 if spec.first else spec.sequence
        context["change"] = spec.change
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
             cache: dict[Any, Any]) -> str:
    """The subject, rendered once for a rule's batch of recipients unless it names them
    (``cache``: the rule's, by template and by batch)."""
    personal = cache.get(template)
    if personal is None:
        personal = cache[template] = templates.uses(group, template, "subject", "recipient")
    if personal:
        return render(group, template, "subject", context)
    batch = (template, spec.method, spec.sequence, spec.first)
    if batch not in cache:
        cache[batch] = render(group, template, "subject", context)
    return str(cache[batch])

def _recipients(group: Group, meeting: Meeting, rule: Rule, state: State) -> list[Person]:
    recipients = audience(group, rule)
    if rule.kind == "chaser":
        done = {org for (_, m, r, org), _status in state.group_submitted(group.id)
                if (m, r) == (meeting.id, rule.chases)}
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
    return invites.invitation_specs(
        group, meeting, held=held, current=current, send_at=send_at, settle=group.settle,
        first_planned=state.first_planned, now=now, roster_changed=state.roster_changed,
        suffix=f" (rule {rule.id} {rule.send.text})")

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
