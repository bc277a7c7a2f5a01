"""The admin's report as mail (bot/plan/desk_report.py gathers it): the answer to her
``STATUS``, once, threaded under her message, and her weekly digest.

The weekly digest (:func:`admin_digests`) goes on the group's ``[desk] digest_day`` at the
chasers' time of day (``[actions] at``), one a week at most, and only when something needs her
or the report changed since the last digest sent: its key carries the week and the report's
digest, so the planner tells both from the ledger alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from bot.domain import timeutil, windows
from bot.domain.model import Action, Desired, Group, Member, Person
from bot.plan import actions
from bot.plan.context import person, shared_context_group
from bot.plan.desk_report import nominal, report
from bot.plan.state import OwedReply, Quarantined, Question, State, Undelivered
from bot.render.templates import render

STATUS = "status"  # the kind of the answer to STATUS, and the template of both
DIGEST = "admin_digest"  # the kind of the weekly digest
DIGEST_RULE = "admin-digest"
REPORTS = (STATUS, DIGEST)  # the kinds that carry a report (and its CSV)
# a recorded week's digest in one of these is done: nothing more that week
_DONE = ("sent", "skipped_late")
# ... in one of these it is kept in the plan as it is (sent again by `clerk retry`)
_KEPT = ("sending", "retry", "failed", "parked")

def _context(group: Group, to: Person, occasion: str, rep: dict[str, Any],
             subject: str = "") -> dict[str, Any]:
    return {"group": shared_context_group(group), "organiser": person(group.organiser),
            "admin": person(group.admin),
            "recipient": dict(person(to), organisation="", role="admin"),
            "occasion": occasion, "subject": subject, "report": rep}


def status_reply(group: Group, reply: OwedReply, to: Person, key: str, state: State,
                 now: datetime, chased: actions.Schedule | None = None) -> Desired:
    """The answer to her ``STATUS`` (``reply``, owed to ``to``): the report as it is at
    ``now``, threaded under it."""
    at = max(now, reply.at)
    today = at.astimezone(timeutil.zone(group.zone)).date()
    rep = report(group, state, at, chased=chased,
                 since=last_digest(group, state.keys, today + timedelta(days=1)))
    context = _context(group, to, STATUS, rep, reply.subject)
    return Desired(
        key=key, group=group.id, meeting="-", rule="reply", kind=STATUS, recipient=to,
        send_at=reply.at, latest=reply.at + timedelta(days=2),
        subject=render(group, STATUS, "subject", context),
        reason=f"the status, as {reply.email} asked: {rep['headline']}", template=STATUS,
        context=context, in_reply_to=reply.in_reply_to)


def admin_digests(groups: Sequence[Group], state: State, now: datetime,
                  horizon: list[datetime], chased: actions.Chased,
                  until: datetime | None = None) -> list[Desired]:
    """Each group's weekly digest to its admin that is due at ``now`` (the next digest day's
    time goes into ``horizon``); with ``until``, those that would follow up to then as things
    stand, each as of its own day (``clerk plan --until``: a forecast)."""
    due: list[tuple[Group, list[date]]] = []
    for group in groups:
        if group.desk.digest_day is None:
            continue
        tz = timeutil.zone(group.zone)
        today = now.astimezone(tz).date()
        weekday = actions.DAYS.index(group.desk.digest_day)
        day = today - timedelta(days=(today.weekday() - weekday) % 7)
        if nominal(group, day) > now:
            day -= timedelta(days=7)
        days = []
        if until is None:  # this week's, from its time to the end of its day
            horizon.append(nominal(group, day + timedelta(days=7)))
            days = [day] if _times(group, day)[1] > now else []
        else:
            while nominal(group, day + timedelta(days=7)) < until:
                day += timedelta(days=7)
                days.append(day)
        days = [d for d in days if _times(group, d)[0] >= group.go_live]
        if days:
            due.append((group, days))
    if not due:
        return []  # most plans: no need to look through the ledger
    ledger = {g.id: {key: st for key, st in state.group_keys(g.id).items()
                     if st == "held" or f"/-/{DIGEST_RULE}/" in key} for g, _ in due}
    due = [(g, [d for d in days if not any(  # a week's digest done: nothing more that week
        st in _DONE for k, st in ledger[g.id].items() if k.startswith(_base(g) + _week(d)))])
        for g, days in due]
    if not any(days for _, days in due):
        return []
    # a day past any group's today, whatever its zone
    end = (until or now).astimezone(UTC).date() + timedelta(days=1)
    return [d for group, days in due for d in _digests(
        group, state, ledger[group.id], now, days, chased.until(end),
        forecast=until is not None)]


def _digests(group: Group, state: State, keys: Mapping[str, str], now: datetime,
             days: Sequence[date], chased: actions.Schedule, forecast: bool) -> list[Desired]:
    """The digests of ``days`` that go: ``keys`` holds the group's held rows and its
    digests."""
    base = _base(group)
    mine = {k[len(base):]: st for k, st in keys.items() if k.startswith(base)}
    sent = sorted(k.split("/") for k, st in mine.items() if st in ("sent", "sending"))
    last = sent[-1][1] if sent else None
    went: date | None = None  # a forecast's last digest
    out = []
    for day in days:
        send_at, latest = _times(group, day)
        week = _week(day)
        this = {k: st for k, st in mine.items() if k.startswith(f"{week}/")}
        kept = next((k for k, st in sorted(this.items()) if st in _KEPT), None)
        since = went or last_digest(group, keys, day)
        rep = report(group, state, max(now, send_at) if forecast else now, chased=chased,
                     keys=keys, since=since)
        digest = rep["digest"][:12]
        if kept is None and not rep["needs_her"] and digest == last:
            continue  # nothing needs her, and she has read all of it
        context = _context(group, group.admin, "digest", rep)
        out.append(Desired(
            key=base + (kept or f"{week}/{digest}"), group=group.id, meeting="-",
            rule=DIGEST_RULE, kind=DIGEST, recipient=group.admin, send_at=send_at,
            latest=latest, subject=render(group, STATUS, "subject", context),
            reason=f"the admin's weekly digest: {rep['headline']}"
                   + ("" if rep["needs_her"] else "; her first" if last is None else
                      "; changed since the last"),
            template=STATUS, context=context))
        last, went = digest, day
    return out


def _base(group: Group) -> str:
    """What the keys of the group's digests start with."""
    return f"{group.id}/-/{DIGEST_RULE}/{group.admin.email}/"


def _week(day: date) -> str:
    """"2027-W09": the ISO week in a digest's key."""
    return "{}-W{:02d}".format(*day.isocalendar()[:2])


def last_digest(group: Group, keys: Mapping[str, str], before: date) -> date | None:
    """The day of the last digest sent to the group's admin before ``before``, from the ISO
    week in its key; None when there was none (or the group has none)."""
    if group.desk.digest_day is None:
        return None
    weekday = actions.DAYS.index(group.desk.digest_day) + 1
    base = _base(group)
    days = [_week_day(k[len(base):].split("/")[0], weekday)
            for k, st in keys.items() if k.startswith(base) and st in ("sent", "sending")]
    return max((d for d in days if d < before), default=None)


def _week_day(week: str, weekday: int) -> date:
    """The day of ``week`` ("2027-W09", :func:`_week`) that is ``weekday`` (1: Monday)."""
    year, _, n = week.partition("-W")
    return date.fromisocalendar(int(year), int(n), weekday)




def _times(group: Group, day: date) -> tuple[datetime, datetime]:
    """When the digest of ``day`` goes (the send window's next opening from the chasers'
    time of day), and until when: the end of that day."""
    at = nominal(group, day)
    if group.window is not None:
        at = windows.next_opening(group.window, group.zone, at)
    tz = timeutil.zone(group.zone)
    end = datetime.combine(at.astimezone(tz).date() + timedelta(days=1), time(0), tzinfo=tz)
    return at, end.astimezone(UTC)


def examples(group: Group) -> list[tuple[str, dict[str, Any]]]:
    """Example contexts of the status template, the answer and the digest, with something in
    every section, for checking a group's templates before anything is sent."""
    now = group.go_live
    someone = group.members[0] if group.members else Person("A Member", "member@example.org")
    meeting = min(group.meetings, key=lambda m: m.start) if group.meetings else None
    first = meeting.id if meeting else "example"
    week = f"{_base(group)}{_week(now.date() - timedelta(days=7))}/0"  # her last digest
    state = State(
        keys={f"{group.id}/{first}/minutes/{someone.email}": "held", week: "sent"},
        actions=(Action(1, group.id, first, "Example", "An example action", (someone.email,),
                        now.date() - timedelta(days=3), "open", None, now),),
        questions=(Question(1, group.id, first, 1, 1, "Who is 'Jo'?",
                            (("A Member", (someone.email,)), ("Nobody", ())), None),),
        quarantined=(Quarantined(1, group.id, first, "An Organisation", someone.email,
                                 "paper.exe", True, "a program, not a paper", now, False),),
        bounced={someone.email: frozenset({someone.row})} if isinstance(someone, Member)
        else {},
        undelivered={group.id: (Undelivered(f"{group.id}/{first}/x/{someone.email}",
                                            someone.email, "A subject", "failed",
                                            "550 no such user", now),)},
        config_problems=("d", now, ("group.toml:3: an example problem",)))
    rep = report(group, state, now,
                 since=last_digest(group, state.keys, now.date() + timedelta(days=1)))
    answer = _context(group, group.admin, STATUS, rep, "Re: STATUS")
    return [(STATUS, answer), (STATUS, _context(group, group.admin, "digest", rep))]

