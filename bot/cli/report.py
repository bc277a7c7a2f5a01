"""Read-only views for the CLI: the plan merged with the ledger, status and the log.

Each function returns plain dicts; their keys are the ``--json`` contract documented in
docs/commands.md.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from bot.domain import timeutil
from bot.domain.model import Config, Desired
from bot.engine import snapshot
from bot.engine.store import Store
from bot.plan import context, notices, planner

# ledger states shown as they are; "planned" is shown as scheduled or due
FINAL = ("sent", "failed", "skipped_late", "parked")


def display_state(state: str | None, send_at: datetime, latest: datetime, now: datetime) -> str:
    if state in (None, "planned"):
        if send_at > now:
            return "scheduled"
        return "due" if now <= latest else "skipped_late"
    return state


def _iso(value: datetime | None, zone: Any = None) -> str | None:
    if value is None:
        return None
    return value.astimezone(zone or UTC).isoformat()


def plan_rows(config: Config, store: Store, now: datetime, *, since: datetime | None = None,
              until: datetime | None = None, group: str | None = None) -> list[dict[str, Any]]:
    """Every message clerk will send (and has sent), with its state at ``now``."""
    state = snapshot.state(store)
    plan = planner.plan(config, state, now)
    zones = {g.id: timeutil.zone(g.zone) for g in config.groups}
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()

    def keep(g: str, send_at: datetime) -> bool:
        return ((group is None or g == group) and (since is None or send_at >= since)
                and (until is None or send_at < until))

    for d in plan.messages:
        seen.add(d.key)
        if not keep(d.group, d.send_at):
            continue
        current = state.keys.get(d.key)
        if current == "withdrawn":
            current = None
        shown = d.initial if current is None and d.initial != "planned" else current
        rows.append(_desired_row(d, display_state(shown, d.send_at, d.latest, now),
                                 zones[d.group]))
    for r in store.rows(group=group, states=(*FINAL, "sending", "retry", "held"),
                        since=since, until=until):
        if r.key in seen:
            continue
        rows.append({
            "key": r.key, "kind": r.kind, "group": r.group_id, "meeting": r.meeting_id,
            "rule": r.rule_id, "revision": r.revision, "sequence": r.sequence,
            "send_at": _iso(r.send_at, zones.get(r.group_id)),
            "latest": _iso(r.latest_at, zones.get(r.group_id)), "recipients": [r.recipient],
            "subject": r.subject, "reason": r.reason, "state": r.state,
        })
    if until is not None:  # the chasers and summaries that would follow, as things stand
        for d in notices.action_chasers(config, state, now, [], until):
            if d.key not in seen and d.key not in state.keys and d.send_at > now \
                    and keep(d.group, d.send_at):
                seen.add(d.key)
                rows.append(_desired_row(d, "forecast", zones[d.group]))
    rows.sort(key=lambda x: (x["send_at"], x["key"]))
    return rows


def _desired_row(d: Desired, state: str, zone: Any) -> dict[str, Any]:
    return {
        "key": d.key, "kind": d.kind, "group": d.group, "meeting": d.meeting, "rule": d.rule,
        "revision": d.revision, "sequence": d.sequence, "send_at": _iso(d.send_at, zone),
        "latest": _iso(d.latest, zone), "recipients": [d.recipient.email],
        "subject": d.subject, "reason": d.reason, "state": state,
    }


def status(config: Config, store: Store, now: datetime,
           group: str | None = None) -> dict[str, Any]:
    groups = [g for g in config.groups if group is None or g.id == group]
    meetings = []
    state = snapshot.state(store)
    for g in groups:
        tz = timeutil.zone(g.zone)
        upcoming = [m for m in g.meetings if m.end > now and not m.cancelled][:3]
        for m in upcoming:
            rsvp = context.rsvp_summary(g, m, state)
            extra = context.run_up(g, m, state)
            meetings.append({
                "group": g.id, "meeting": m.id, "title": m.title, "start": _iso(m.start, tz),
                "end": _iso(m.end, tz),
                "rsvp": {k: [p["email"] for p in v] for k, v in rsvp.items()},
                "apologies": [{"email": p["email"], "name": p["name"], "reason": p["comment"]}
                              for p in rsvp["declined"]],
                "proposals": extra["proposals"], "returns": extra["returns"],
                "nudges": [n["text"] for n in extra["nudges"]]})
    # what the workers recorded, read as it is: no re-plan (`clerk plan` shows the plan)
    counts: Counter[str] = Counter()
    for r in store.by_state(now, group):
        if r.state == "planned":  # as display_state() tells one row
            counts["scheduled" if r.ahead else "skipped_late" if r.past else "due"] += r.n
        else:
            counts[r.state] += r.n
    zones = {g.id: timeutil.zone(g.zone) for g in config.groups}
    next_rows = [{"send_at": _iso(r.send_at, zones.get(r.group_id)), "group": r.group_id,
                  "meeting": r.meeting_id, "rule": r.rule_id, "kind": r.kind,
                  "state": display_state(r.state, r.send_at, now, now), "messages": r.n}
                 for r in store.next_batches(now, group)]
    failures = [{"key": r.key, "recipient": r.recipient, "error": r.last_error,
                 "attempts": r.attempts, "state": r.state}
                for r in store.rows(group=group, states=("failed", "parked", "retry"))]
    inbox = store.inbox_log(handled=False)
    return {
        "now": now.isoformat(), "meetings": meetings, "next": next_rows,
        "counts": dict(sorted(counts.items())),
        "ledger": store.counts(group), "failures": failures,
        "bouncing": sorted({b.email for b in store.bouncing() if b.permanent}),
        # the config the worker could not load: {"since", "problems", "digest"}, or None
        "config_problems": store.config_problems(),
        "unprocessed": [{"at": _iso(i.at), "sender": i.sender, "subject": i.subject,
                         "reason": i.detail} for i in inbox],
        "quarantined": [{"at": _iso(q.at), "group": q.group_id, "meeting": q.meeting_id,
                         "organisation": q.organisation, "sender": q.sender,
                         "file": q.name, "kept": q.path, "size": q.size, "reason": q.reason}
                        for q in store.quarantined(group)],
    }


def log_rows(store: Store, *, group: str | None = None, state: str | None = None,
             key: str | None = None) -> Iterator[dict[str, Any]]:
    """The ledger's rows as ``clerk log --json`` gives them, one at a time (a ledger of any
    size in little memory)."""
    rows = [store.row(key)] if key else store.stream_rows(group=group,
                                                          states=[state] if state else None)
    for r in rows:
        if r is None:
            continue
        item = {
            "key": r.key, "kind": r.kind, "group": r.group_id, "meeting": r.meeting_id,
            "rule": r.rule_id, "revision": r.revision, "sequence": r.sequence,
            "recipient": r.recipient,
            "state": r.state, "send_at": _iso(r.send_at), "sent_at": _iso(r.sent_at),
            "subject": r.subject, "reason": r.reason, "message_id": r.message_id,
            "transport": r.transport, "attempts": r.attempts, "last_error": r.last_error,
        }
        if key:
            item["history"] = [{"at": _iso(e.at), "state": e.state, "detail": e.detail}
                               for e in store.history(key)]
        yield item


def mail_rows(store: Store) -> list[dict[str, Any]]:
    """Every message clerk read (the inbox log), oldest first: who sent it, what it was, and
    what clerk did with it — or why it did nothing."""
    return [{"at": _iso(i.at), "sender": i.sender, "subject": i.subject, "kind": i.kind,
             "handled": bool(i.handled), "detail": i.detail, "message_id": i.message_id}
            for i in store.inbox_log()]
