"""The admin's status report: what ``STATUS`` by mail answers, and what her weekly digest
carries — the next meeting's attendance and returns, the overdue and stalled actions, and what
waits for her. Pure: built from config, state and ``now``.

``report(group, state, now)`` is a JSON-able dict. Its keys are a contract for the template
``status`` (templates/status.*.j2) and the CSV sent with it (bot/render/report_csv.py); times
are in the group's zone, as ISO 8601 for programs and as text ("Thu 15 April 2027, 14:00")
for people:

- ``group``: ``id``, ``name``, ``zone``
- ``now`` (ISO 8601) and ``as_of`` (text): when the report was made
- ``meeting``: the next meeting (not cancelled, not yet over), or null: ``id``, ``title``,
  ``start`` (ISO 8601), ``when`` (text), ``location``; ``attendance``: ``accepted``,
  ``apologies``, ``tentative`` and ``no_answer``, lists of ``name``, ``email``,
  ``organisation``, ``comment`` (an apology's reason; for someone who answered for an earlier
  time, what they answered then); ``counts``: the same four, as numbers; ``returns``: the
  returns register (``organisation``, ``status``: submitted, nil return or outstanding;
  empty when the group asks for none) and ``returns_outstanding`` (a number)
- ``overdue``: open actions past their due date: ``ref`` ("#12"), ``topic``, ``text``,
  ``owners`` (names), ``due`` (ISO date), ``due_text``, ``days_overdue``, ``new`` (not
  overdue at her last digest)
- ``stalled``: open actions no longer chased — chased ``max_chasers`` times, or an owner
  left the roster: the same, and ``last_chased`` (ISO date, or null) and ``last_chased_text``,
  ``gone`` (the addresses of the owners who left, or ""), ``why`` (one of those two, in
  words); ``new``: still chased at her last digest
- ``held``: messages waiting, by meeting and rule: ``what`` ("the minutes"), ``meeting``
  (its id, or ""), ``meeting_text`` ("QA Leads Network meeting, Thu 14 January 2027", or ""),
  ``date`` (the meeting's, ISO 8601, or ""), ``recipients`` (a number), ``to`` ("17
  members", or the one person's name), ``why`` ("held for your approval"), ``text`` (all of
  it, one sentence) and ``prefix`` (what ``clerk approve`` releases them by)
- ``questions``: the open questions an import of mailed minutes left: ``ref`` ("Q1"),
  ``minutes_id``, ``text``, ``choices`` (their labels), ``file`` (the minutes' file name),
  ``meeting_text``, ``new`` (those minutes came after her last digest)
- ``quarantined``: papers kept back from the packs of a meeting not yet over: ``id``,
  ``file``, ``from`` (the sender's name), ``email``, ``organisation``, ``why``, ``kept``
  (false: not kept at all), ``received`` (ISO 8601) and ``received_text``, ``meeting_text``,
  ``new`` (not yet in a status or digest she was sent)
- ``bouncing``: members whose address bounces, until their roster row changes: ``name``,
  ``email``, ``organisation``
- ``undelivered``: messages that failed or were parked, for a meeting not yet over (any
  other: for 30 days), until ``clerk retry`` sends them: ``to``, ``email``, ``subject``,
  ``state``, ``error``, ``at`` (ISO 8601) and ``at_text``, ``new`` (since her last digest)
- ``config_problems``: the problems of a config the worker cannot load (texts), and since
  when: ``config_since`` (ISO 8601) and ``config_since_text`` (null when there are none);
  ``config_new``: since after her last digest
- ``needs_her``: whether something above waits for her (a quarantined paper only while it is
  ``new``), or an action is overdue or stalled
- ``headline``: what needs her in a few words ("minutes held, 1 question, 2 overdue
  actions"), or "nothing needs you"
- ``since`` (ISO date) and ``since_text``: the day of her last weekly digest, or null; what
  is ``new`` is new since then (nothing is, without one); ``news``: what needs her that is
  new, in a few words ("1 action no longer chased"), or ""
- ``digest``: the sha256 of the canonical JSON of the content — everything but ``now``,
  ``as_of``, ``needs_her``, ``headline``, ``since``, ``news`` and what is ``new`` — so that
  it changes when, and only when, what she would read changes

The mail that carries it, the answer to STATUS and the weekly digest, is bot/plan/admin_mail.py.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from bot.domain import timeutil
from bot.domain.model import Action, Group, Meeting
from bot.domain.timeutil import day_text
from bot.plan import actions
from bot.plan.context import rsvp_summary, run_up
from bot.plan.pack import PACK, decided
from bot.plan.state import State, Undelivered

# not part of the content: when it was made, and what follows from the papers being new
_NOT_CONTENT = ("now", "as_of", "needs_her", "headline", "digest")


_HELD_WHAT = {"invitation": "the invitations", "request": "the requests for information",
              "chaser": "the chasers", "pack": "the agenda pack",
              "minutes_due": "the reminder that the minutes are due"}
_BEFORE = ("invitation", "request", "chaser", "pack")  # moot once the meeting is over
_SPECIAL_WHAT = {"minutes": "the minutes",
                 "minutes-approval": "the request to the chair to approve the minutes",
                 "nudge": "the note of a subject coming back", "actions": "the action chasers",
                 "reply": "the answers", "overdue": "the summary of overdue actions",
                 "stalled": "the summary of actions no longer chased"}
_SHORT = {"the invitations": "invitations", "the agenda pack": "agenda pack",
          "the minutes": "minutes"}


def when_text(at: datetime) -> str:
    """"Tue 3 March 2027, 10:00" (``at`` already in the zone the reader reads)."""
    return f"{day_text(at.date())}, {at:%H:%M}"


def report(group: Group, state: State, now: datetime, *,
           chased: actions.Schedule | None = None,
           keys: Mapping[str, str] | None = None,
           since: date | None = None) -> dict[str, Any]:
    """The group's status at ``now`` (the keys: this module's docstring). ``chased`` is the
    action schedule of all the groups (an owner's chasers are counted across them); without
    it, the group's own. ``keys``: the ledger rows to find the held ones and the digests in,
    when the caller has picked them out (all of ``state.keys`` by default). ``since``: the
    day of her last digest, what is ``new`` is new since (:func:`last_digest`)."""
    tz = timeutil.zone(group.zone)
    local = now.astimezone(tz)
    today = local.date()
    keys = state.keys if keys is None else keys
    if chased is None:
        chased = actions.schedule([group], state.actions, today)
    problems = state.config_problems
    out: dict[str, Any] = {
        "group": {"id": group.id, "name": group.name, "zone": group.zone},
        "now": local.isoformat(), "as_of": when_text(local),
        "meeting": (meeting := _meeting(group, state, now)),
        "overdue": [], "stalled": [],
        "held": _held(group, keys, state, now, meeting["id"] if meeting else None),
        "questions": _questions(group, state),
        "quarantined": _quarantined(group, state, now),
        "bouncing": [{"name": m.name, "email": m.email, "organisation": m.organisation}
                     for m in group.members
                     if m.row in state.bounced.get(m.email, frozenset())],
        "undelivered": [{"to": actions.name(group, u.recipient), "email": u.recipient,
                         "subject": u.subject, "state": u.state, "error": u.error,
                         "at": u.at.astimezone(tz).isoformat(),
                         "at_text": when_text(u.at.astimezone(tz))}
                        for u in _undelivered(group, state, now)],
        "config_problems": list(problems[2]) if problems else [],
        "config_since": problems[1].astimezone(tz).isoformat() if problems else None,
        "config_since_text": when_text(problems[1].astimezone(tz)) if problems else None,
    }
    for a in sorted((a for a in state.group_actions(group.id) if a.status == "open"),
                    key=lambda a: (a.due, a.id)):
        last = chased.stalled.get(a.id)
        gone = ", ".join(chased.gone.get(a.id, ()))
        if gone or (last is not None and last < today):
            why = f"{gone} {'are' if ',' in gone else 'is'} no longer on the roster" if gone \
                else f"no longer chased (last on {day_text(last)}): chased as often as the " \
                     "group allows, with no answer" if last else ""
            out["stalled"].append(dict(
                _action(group, a, today), last_chased=last.isoformat() if last else None,
                last_chased_text=day_text(last) if last else None, gone=gone, why=why))
        elif a.due < today:
            out["overdue"].append(_action(group, a, today))
    content = {k: v for k, v in out.items() if k not in _NOT_CONTENT}
    content["quarantined"] = [{k: v for k, v in q.items() if k != "new"}
                              for q in out["quarantined"]]
    out["digest"] = hashlib.sha256(json.dumps(
        content, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
    ).hexdigest()
    needs = _needs(out)
    out["needs_her"] = bool(needs)
    out["headline"] = ", ".join(needs) or "nothing needs you"
    _mark_new(group, out, since, state)
    return out


def _mark_new(group: Group, r: dict[str, Any], since: date | None, state: State) -> None:
    """``since`` (the day of her last digest), and on each action, question and config
    problem whether it is ``new`` since then; ``news``: what needs her that is new, in a few
    words. A paper is new until a report she was sent has listed it."""
    r["since"] = since.isoformat() if since else None
    r["since_text"] = day_text(since) if since else None
    then = nominal(group, since) if since else None
    for a in r["overdue"]:  # at the last digest, due on or after its day: not overdue then
        a["new"] = since is not None and date.fromisoformat(a["due"]) >= since
    for a in r["stalled"]:  # ... chased on or after its day, or its owner left since
        a["new"] = then is not None and (
            any(state.roster_changed.get((group.id, e), then) > then
                for e in a["gone"].split(", ") if e)
            if a["gone"] else since is not None and date.fromisoformat(a["last_chased"]) >= since)
    mailed = {m.id: m.at for m in state.mailed_minutes}
    for q in r["questions"]:
        at = mailed.get(q["minutes_id"])
        q["new"] = then is not None and at is not None and at >= then
    for u in r["undelivered"]:
        u["new"] = then is not None and datetime.fromisoformat(u["at"]) >= then
    r["config_new"] = then is not None and bool(r["config_problems"]) and \
        datetime.fromisoformat(r["config_since"]) >= then
    fresh = dict(r, held=[], bouncing=[],
                 config_problems=r["config_problems"] if r["config_new"] else [],
                 **{k: [x for x in r[k] if x["new"]]
                    for k in ("overdue", "stalled", "questions", "quarantined", "undelivered")})
    r["news"] = ", ".join(_needs(fresh)) if since else ""


def _needs(r: dict[str, Any]) -> list[str]:
    """What needs her, each in a few words."""
    def count(n: int, one: str, many: str) -> list[str]:
        return [f"{n} {one if n == 1 else many}"] if n else []

    held = [_SHORT.get(h["what"], h["what"].removeprefix("the ")) for h in r["held"]]
    return [
        *([(" and ".join(held) if len(held) <= 2 else f"{len(held)} batches") + " held"]
          if held else []),
        *count(len(r["questions"]), "question", "questions"),
        *count(sum(1 for q in r["quarantined"] if q["new"]), "paper kept back",
               "papers kept back"),
        *count(len(r["bouncing"]), "address bouncing", "addresses bouncing"),
        *count(len(r["undelivered"]), "message undelivered", "messages undelivered"),
        *(["the config is broken"] if r["config_problems"] else []),
        *count(len(r["overdue"]), "overdue action", "overdue actions"),
        *count(len(r["stalled"]), "action no longer chased", "actions no longer chased"),
    ]


def _meeting_text(group: Group, meeting: Meeting) -> str:
    local = meeting.start.astimezone(timeutil.zone(group.zone))
    return f"{meeting.title}, {day_text(local.date())}"


def _of(group: Group, meeting: Meeting | None) -> str:
    """" of the QA Leads Network meeting on Thu 14 January 2027", or nothing."""
    if meeting is None:
        return ""
    local = meeting.start.astimezone(timeutil.zone(group.zone))
    return f" of the {meeting.title} on {day_text(local.date())}"


def _meeting(group: Group, state: State, now: datetime) -> dict[str, Any] | None:
    ahead = [m for m in group.meetings if not m.cancelled and m.end > now]
    if not ahead:
        return None
    m = min(ahead, key=lambda m: m.start)
    start = m.start.astimezone(timeutil.zone(group.zone))
    rsvp = rsvp_summary(group, m, state)

    def people(rows: list[dict[str, str]]) -> list[dict[str, str]]:
        return [{k: p[k] for k in ("name", "email", "organisation", "comment")} for p in rows]

    stale = [dict(p, comment=f"{p['answer']} for the earlier time") for p in rsvp["stale"]]
    attendance = {"accepted": people(rsvp["accepted"]), "apologies": people(rsvp["declined"]),
                  "tentative": people(rsvp["tentative"]),
                  "no_answer": people(rsvp["no_answer"] + stale)}
    returns = run_up(group, m, state)["returns"]
    return {"id": m.id, "title": m.title, "start": start.isoformat(), "when": when_text(start),
            "location": m.location, "attendance": attendance,
            "counts": {k: len(v) for k, v in attendance.items()}, "returns": returns,
            "returns_outstanding": sum(1 for r in returns if r["status"] == "outstanding")}


def _action(group: Group, a: Action, today: date) -> dict[str, Any]:
    return {"ref": a.ref, "topic": a.topic, "text": a.text,
            "owners": actions.owner_names(group, a.owners), "due": a.due.isoformat(),
            "due_text": day_text(a.due), "days_overdue": max(0, (today - a.due).days)}


def _held(group: Group, keys: Mapping[str, str], state: State, now: datetime,
          next_meeting: str | None) -> list[dict[str, Any]]:
    """The held rows of the group, one entry per meeting and rule, and why each is held; not
    those a meeting's end made moot (its invitations, requests, chasers and pack), nor the
    packs waiting for an approval (``pack_approval = "required"``, or the rule's ``approve``)
    but the next meeting's."""
    batches: dict[tuple[str, str], set[str]] = {}
    for key, st in keys.items():
        parts = key.split("/")
        if st == "held" and len(parts) >= 4 and parts[0] == group.id:
            batches.setdefault((parts[1], parts[2]), set()).add(parts[3])
    meetings = {m.id: m for m in group.meetings}
    kinds = {r.id: r for r in group.rules}
    order = {m.id: (m.start.astimezone(UTC).isoformat(), m.id) for m in group.meetings}
    out = []
    for (meeting_id, rule_id), emails in sorted(
            batches.items(), key=lambda b: (order.get(b[0][0], ("", b[0][0])), b[0][1])):
        rule = kinds.get(rule_id)
        what = _HELD_WHAT[rule.kind] if rule else _SPECIAL_WHAT.get(rule_id,
                                                                    f"the {rule_id} messages")
        meeting = meetings.get(meeting_id)
        pack = decided(state, group, meeting_id) if rule and rule.kind == PACK else None
        if rule is not None and meeting is not None and (
                (rule.kind in _BEFORE and meeting.end <= now)
                or (rule.kind == PACK and pack is None and meeting_id != next_meeting
                    and (rule.approve or group.desk.pack_approval == "required"))):
            continue
        if rule_id == "minutes" and group.minutes_approval == "chair":
            why = "held for the chair's approval"
        elif pack is not None and pack.decision == "held":
            why = "held: you answered HOLD to its preview"
        elif rule and rule.kind == PACK and group.desk.pack_approval == "required":
            why = "held until you answer APPROVE to its preview"
        elif rule_id == "minutes" or (rule is not None and rule.approve):
            why = "held for your approval"
        else:
            why = "held"
        of = _meeting_text(group, meeting) if meeting else ""
        to = actions.name(group, next(iter(emails))) if len(emails) == 1 else \
            f"{len(emails)} members"
        day = meeting.start.astimezone(timeutil.zone(group.zone)).date() if meeting else None
        out.append({"what": what, "meeting": meeting_id if meeting else "", "meeting_text": of,
                    "date": day.isoformat() if day else "",
                    "recipients": len(emails), "to": to, "why": why,
                    "text": f"{what}{_of(group, meeting)}, to {to}: {why}",
                    "prefix": f"{group.id}/{meeting_id}/{rule_id}/"})
    return out


def _questions(group: Group, state: State) -> list[dict[str, Any]]:
    files = {m.id: m.name for m in state.mailed_minutes}
    meetings = {m.id: m for m in group.meetings}
    return [{"ref": f"Q{q.n}", "minutes_id": q.minutes_id, "text": q.text,
             "choices": [label for label, _ in q.choices],
             "file": files.get(q.minutes_id, ""),
             "meeting_text": _meeting_text(group, meetings[q.meeting])
             if q.meeting in meetings else ""}
            for q in sorted(state.questions, key=lambda q: (q.minutes_id, q.n))
            if q.group == group.id and q.answer is None]


def _undelivered(group: Group, state: State, now: datetime) -> list[Undelivered]:
    """The messages that failed or were parked and still matter: for a meeting not yet over
    (any other: for 30 days), until ``clerk retry`` sends them."""
    ends = {m.id: m.end for m in group.meetings}
    return [u for u in state.undelivered.get(group.id, ())
            if ends.get([*u.key.split("/"), ""][1], u.at + timedelta(days=30)) > now]


def _quarantined(group: Group, state: State, now: datetime) -> list[dict[str, Any]]:
    """Papers kept back for a meeting not yet over (one of a meeting no longer in the config:
    for 30 days)."""
    tz = timeutil.zone(group.zone)
    meetings = {m.id: m for m in group.meetings}
    out = []
    for q in state.quarantined:
        meeting = meetings.get(q.meeting)
        if q.group != group.id or (meeting.end <= now if meeting else
                                   q.at + timedelta(days=30) <= now):
            continue
        out.append({"id": q.id, "file": q.name, "from": actions.name(group, q.sender),
                    "email": q.sender, "organisation": q.organisation, "why": q.reason,
                    "kept": q.kept, "received": q.at.astimezone(tz).isoformat(),
                    "received_text": when_text(q.at.astimezone(tz)),
                    "meeting_text": _meeting_text(group, meeting) if meeting else "",
                    "new": not q.reported})
    return out


def nominal(group: Group, day: date) -> datetime:
    """The chasers' time of day on ``day`` (``[actions] at``), in UTC."""
    tz = timeutil.zone(group.zone)
    return datetime.combine(day, time(*group.ladder.at), tzinfo=tz).astimezone(UTC)
