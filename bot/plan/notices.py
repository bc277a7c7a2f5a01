"""Group-level messages that no rule schedules: the admin's digest of undelivered mail, the
owners' action chasers (bot/plan/actions.py) and the chair's nudge notes."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from bot.domain import timeutil
from bot.domain.model import (
    Action,
    Config,
    Desired,
    Group,
    Member,
    Nudge,
    Person,
    Settings,
)
from bot.plan import actions, admin_mail, pack
from bot.plan.context import (
    in_window,
    meeting_context,
    member,
    nudge_meeting,
    person,
    shared_context_group,
)
from bot.plan.guard import Trip
from bot.plan.guard import notice as guard_notice
from bot.plan.minutes import APPROVAL, minutes_messages
from bot.plan.state import OwedReply, State, Undelivered
from bot.render.templates import render

NOTICE = "notice"
SUMMARIES = ("overdue", "stalled")  # the rules of the chair's and the admin's weekly summaries

NUDGE_NOTE = "nudge_note"

ACTION_CHASER = "action_chaser"

REPLY = "reply"

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
    digest = actions.Digest(owner, now.date(), (actions.Listed(group, sample, 1),), now, now)
    chaser = [_digest_message(digest)]
    left = replace(sample, id=2, owners=("former.member@example.org",))
    undigested = replace(group, desk=replace(group.desk, digest_day=None))  # both kinds
    summary = summaries(undigested, State(actions=(sample, left)), actions.Chased(
        (), (), actions.Schedule(stalled={1: now.date() - timedelta(days=30)},
                                 gone={2: left.owners})),
        datetime.combine(actions.summary_days(group, now.date() + timedelta(days=40),
                                              now.date() + timedelta(days=60))[0],
                         time(12), tzinfo=UTC), [])
    notice = _undelivered_notice(group, (Undelivered("k", owner.email, "A subject", "failed",
                                                     "550 no such user", now),))
    nudge = Nudge(1, group.id, "", "An example subject", now.date(),
                  now.date() + timedelta(days=90))
    notes = _nudge_notes(group, State(nudges=(nudge,)), now - timedelta(days=1), [])
    circulated: list[Desired] = []  # the minutes and, for a chair who approves, the request
    if group.meetings and group.members:
        first = group.meetings[0]
        example = replace(group, minutes={first.id: Path(f"{first.id}.docx")},
                          minutes_approval="chair")
        found = minutes_messages(example, State(), first.start, [])
        circulated = found[:1] + [d for d in found if d.kind == APPROVAL]
    held = guard_notice(group, Trip(group.id, "3 of 20 members would be taken off the meetings "
                                         "(A, B, C) — was roster.csv saved complete?",
                               ("k1", "k2", "k3")), now)
    broken = config_notice(
        Config(folder=group.folder.parent, settings=Settings(), groups=(group,),
               fingerprint=""), group,
        State(config_problems=("d", now, ("clerk.toml:3: clerk.interval: 'abc' is not a "
                                          "whole number",))))
    answer = owed_replies(group, State(replies=(OwedReply(
        1, group.id, owner.email, owner.name, "Re: your actions", "Which action did you mean?",
        "<a@b>", now),)), None, actions.Chased((group,), ()))
    return [(d.template, d.context)
            for d in (*chaser, *summary, notice, *notes, *circulated, held, *broken, *answer)
            ] + admin_mail.examples(group) + pack.examples(group)

def _nudge_notes(group: Group, state: State, now: datetime,
                 horizon: list[datetime]) -> list[Desired]:
    """A note to the chair when a nudge's window opens: on which meeting's agenda it is, or
    that no meeting falls in the window. A nudge that lands on the nearest meeting before its
    window (none is inside it) is told 28 days before that meeting instead, while it is ahead."""
    tz = timeutil.zone(group.zone)
    to = group.chair or group.admin
    out = []
    for n in state.group_nudges(group.id):
        target = nudge_meeting(group, n)
        opens = n.start
        if target is not None and target.start.date() < n.start:
            opens = min(n.start, target.start.astimezone(tz).date() - timedelta(days=28))
        send_at = max(datetime.combine(opens, time(9, 0), tzinfo=tz),
                      datetime.combine(group.go_live.date(), time(9, 0), tzinfo=tz)
                      ).astimezone(UTC)
        latest = send_at + timedelta(days=14)
        if latest < group.go_live or (latest <= now and
                                      _nudge_key(group, n, to) not in state.keys):
            continue
        if send_at > now:
            horizon.append(send_at)
        asked = next((m for m in group.meetings if m.id == n.meeting), None)
        inside = target is not None and in_window(n, target)
        ctx: dict[str, Any] = {
            "group": shared_context_group(group), "organiser": person(group.organiser),
            "admin": person(group.admin), "recipient": dict(person(to), organisation="",
                                                            role="chair"),
            "nudge": {"text": n.text, "from": n.meeting, "start": n.start, "end": n.end,
                      # the meeting that asked for it, by title and date (never its id)
                      "asked": {"title": asked.title, "start": asked.start.astimezone(tz)}
                      if asked else None, "inside": inside},
            "meeting": meeting_context(group, target, state) if target else None}
        out.append(Desired(
            key=_nudge_key(group, n, to), group=group.id, meeting=target.id if target else "-",
            rule="nudge", kind=NUDGE_NOTE, recipient=to, send_at=send_at, latest=latest,
            subject=render(group, "nudge_note", "subject", ctx),
            reason=f"nudge #{n.id}: its window opens"
                   + (f"; on the agenda of {target.id}" + ("" if inside else
                                                            " (the nearest: none is in it)")
                      if target else "; no meeting in it"),
            template="nudge_note", context=ctx))
    return out

def _nudge_key(group: Group, nudge: Nudge, to: Person) -> str:
    return f"{group.id}/-/nudge/{to.email}/{nudge.id}"

def action_chasers(config: Config, state: State, now: datetime, horizon: list[datetime],
                   until: datetime | None = None) -> list[Desired]:
    """The digests that fall due around ``now`` (bot/plan/actions.py: at most one a week per
    person across all their groups), and each group's weekly summaries: the chair's of its
    overdue actions, the admin's of those whose chasing stopped. With ``until``, all of them
    up to then, as the actions stand (``clerk plan --until``: a forecast), and the admin's
    weekly digests (bot/plan/admin_mail.py), which take over her summary when they are on."""
    chased = actions.Chased(config.groups, state.actions)
    out = action_digests(config, state, now, horizon, chased, until)
    for group in sorted(config.groups, key=lambda g: g.id):
        out += summaries(group, state, chased, now, horizon, until)
    if until is not None:  # the admin's digests, which list the actions no longer chased
        out += admin_mail.admin_digests(config.groups, state, now, [], chased, until)
    return out


def chased_until(now: datetime, until: datetime | None = None) -> date:
    """The day the schedule of the chasers and summaries runs to: 400 days ahead."""
    today = now.astimezone(UTC).date()
    end = until.date() if until is not None else today + timedelta(days=400)
    return max(end, today + timedelta(days=400))


def action_digests(config: Config, state: State, now: datetime, horizon: list[datetime],
                   chased: actions.Chased, until: datetime | None = None) -> list[Desired]:
    """The owners' digests that fall due around ``now`` (with ``until``: up to then); the
    next one's time goes into ``horizon``."""
    out: list[Desired] = []
    today: dict[str, date] = {}  # by zone
    ahead: datetime | None = None  # the next one's time
    for d in chased.until(chased_until(now, until)).digests:
        zone = d.listed[0].group.zone
        local = today.get(zone)
        if local is None:
            local = today[zone] = now.astimezone(timeutil.zone(zone)).date()
        if abs((d.day - local).days) <= 1 or (until is not None and now < d.send_at < until) \
                or actions.digest_key(d.owner.email, d.day) in state.keys:
            out.append(_digest_message(d))
        elif d.send_at > now and (ahead is None or d.send_at < ahead):
            ahead = d.send_at
    if ahead is not None:
        horizon.append(ahead)
    return out


def _meetings(group: Group) -> dict[str, Any]:
    return {m.id: {"title": m.title, "start": m.start} for m in group.meetings}


def _digest_message(d: actions.Digest) -> Desired:
    home = min((x.group for x in d.listed), key=lambda g: g.id)
    listed = [actions.listed_context(x, d.day, _meetings(x.group)) for x in d.listed]
    by_id = {x.group.id: x.group for x in d.listed}
    names = [g.name for g in by_id.values()]
    if len(set(names)) < len(names):  # two groups of one name: say which by their ids
        for a, x in zip(listed, d.listed, strict=True):
            a["group"] = x.group.id
    groups = sorted({a["group"] for a in listed})
    dues = [a["due"] for a in listed]
    ctx: dict[str, Any] = {
        "group": shared_context_group(home), "organiser": person(home.organiser),
        "admin": person(home.admin), "recipient": member(d.owner), "actions": listed,
        "chaser_number": d.number, "last": d.last, "groups": groups,
        "new_date_example": (max(dues) + timedelta(days=28)) if dues else None}
    return Desired(
        key=actions.digest_key(d.owner.email, d.day), group=home.id,
        meeting="-", rule="actions", kind=ACTION_CHASER, recipient=d.owner,
        send_at=d.send_at, latest=d.latest,
        subject=render(home, "action_chaser", "subject", ctx),
        reason=f"action chaser {d.number}: {len(listed)} open action(s)"
               + (f" in {len(groups)} groups" if len(groups) > 1 else "")
               + (" (the last for one of them)" if d.last else ""),
        template="action_chaser", context=ctx)


def summaries(group: Group, state: State, chased: actions.Chased, now: datetime,
              horizon: list[datetime], until: datetime | None = None) -> list[Desired]:
    """The chair's weekly summary of the group's overdue actions, and the admin's of those
    whose chasing stopped (chased as often as allowed, or their owner left the roster) unless
    her weekly digest lists them (``[desk] digest_day``), each on the group's summary day and
    only when there is one."""
    tz = timeutil.zone(group.zone)
    today = now.astimezone(tz).date()
    mine = [a for a in state.group_actions(group.id) if a.status == "open"]
    out: list[Desired] = []
    if not mine:
        return out
    plan = chased.until(chased_until(now, until))
    last = until.astimezone(tz).date() if until is not None else today + timedelta(weeks=8)
    for day in actions.summary_days(group, today - timedelta(days=1), last):
        send_at = datetime.combine(day, time(*group.ladder.at), tzinfo=tz).astimezone(UTC)
        latest = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
        if send_at < group.go_live:
            continue
        if day > today + timedelta(days=1) and until is None:
            # planned from the day before on (the plan changes then, not at its send time)
            horizon.append(datetime.combine(day - timedelta(days=1), time(0), tzinfo=tz)
                           .astimezone(UTC))
            break
        overdue = [a for a in mine if a.due < day]
        stalled = [a for a in mine if a.id in plan.gone or (
            a.id in plan.stalled and plan.stalled[a.id] < day)]
        chair = group.chair or group.admin
        for kind, to, found in zip(SUMMARIES, (chair, group.admin), (overdue, stalled),
                                   strict=True):
            if not found or (kind == "stalled" and group.desk.digest_day is not None):
                continue  # the admin's weekly digest lists them (bot/plan/admin_mail.py)
            ctx: dict[str, Any] = {
                "group": shared_context_group(group), "organiser": person(group.organiser),
                "admin": person(group.admin),
                "recipient": dict(person(to), organisation="", role=""), "summary": kind,
                "actions": [dict(actions.listed_context(actions.Listed(group, a, 0), day,
                                                        _meetings(group)),
                                 owners=actions.owner_names(group, a.owners),
                                 gone=", ".join(plan.gone.get(a.id, ()))) for a in found]}
            out.append(Desired(
                key=f"{group.id}/-/{kind}/{to.email}/{day.isoformat()}", group=group.id,
                meeting="-", rule=kind, kind=NOTICE, recipient=to, send_at=send_at,
                latest=latest, subject=render(group, "action_summary", "subject", ctx),
                reason=f"weekly summary: {len(found)} {kind} action(s)",
                template="action_summary", context=ctx))
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


def config_notice(config: Config, group: Group, state: State) -> list[Desired]:
    """The config the worker cannot load, once its problems outlast the settle window: one
    notice to each admin (of the groups as last loaded; from the first group she is the admin
    of), once per distinct set of problems."""
    if state.config_problems is None or _admins(config).get(group.admin.email) is not group:
        return []
    digest, since, problems = state.config_problems
    context = {
        "group": shared_context_group(group), "organiser": person(group.organiser),
        "admin": person(group.admin),
        "recipient": dict(person(group.admin), organisation="", role="admin"),
        "problems": list(problems), "folder": str(config.folder),
        "since": since.astimezone(timeutil.zone(group.zone)),  # as the admin reads it
    }
    at = since + group.settle
    return [Desired(
        key=f"{group.id}/-/config/{group.admin.email}/{digest}", group=group.id,
        meeting="-", rule="config", kind=NOTICE, recipient=group.admin, send_at=at,
        latest=at + timedelta(days=7),
        subject=render(group, "config_problems", "subject", context),
        reason=f"the config has had {len(problems)} problem(s) since "
               f"{since.isoformat(timespec='minutes')}; the worker uses the last good one",
        template="config_problems", context=context)]


_ADMINS: dict[int, tuple[Config, dict[str, Group]]] = {}


def _admins(config: Config) -> dict[str, Group]:
    """Each admin's first group in the config (worked out once per loaded config)."""
    found = _ADMINS.get(id(config))
    if found is None or found[0] is not config:
        _ADMINS.clear()
        first: dict[str, Group] = {}
        for g in config.groups:
            first.setdefault(g.admin.email, g)
        found = _ADMINS[id(config)] = (config, first)
    return found[1]


def owed_replies(group: Group, state: State, now: datetime | None,
                 chased: actions.Chased) -> list[Desired]:
    """The answers clerk owes people who wrote to the group, each one message, threaded
    under theirs; the answer to ``STATUS`` is the status report as it is at ``now``
    (bot/plan/admin_mail.py), and once sent it is not made again."""
    out = []
    for r in state.group_replies(group.id):
        key = f"{group.id}/-/reply/{r.email}/{r.id}"
        known = {p.email: p.name for p in (group.admin, *group.members)}
        to = Person(name=known.get(r.email) or r.name or r.email, email=r.email)
        if r.about == admin_mail.STATUS:
            if state.keys.get(key) in ("sent", "skipped_late"):
                continue  # its report is not worked out again on every plan
            at = max(now or r.at, r.at)
            schedule = chased.until(at.astimezone(UTC).date() + timedelta(days=1))
            out.append(admin_mail.status_reply(group, r, to, key, state, at, schedule))
            continue
        context = {"group": shared_context_group(group), "organiser": person(group.organiser),
                   "admin": person(group.admin), "recipient": dict(person(to), organisation="",
                                                                   role=""),
                   "subject": r.subject, "body": r.body}
        out.append(Desired(
            key=key, group=group.id, meeting="-", rule="reply", kind=REPLY, recipient=to,
            send_at=r.at,
            latest=r.at + timedelta(days=2), subject=render(group, "reply", "subject", context),
            reason=f"an answer to {r.email}", template="reply", context=context,
            in_reply_to=r.in_reply_to))
    return out


