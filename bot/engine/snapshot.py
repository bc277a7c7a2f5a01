"""The facts the planner reads, made from the store's rows: a :class:`State` snapshot, the
action log as :class:`Action` values, a meeting's calendar items as :class:`Part` values.
The store itself (bot/engine/store.py, facts.py) holds rows and knows none of these types."""

from __future__ import annotations

import functools
import json
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from bot.domain.model import Action, Nudge, Revision
from bot.engine.schema import (
    ACTIONS,
    DELIVERED,
    bounces,
    decisions,
    invite_revisions,
    ledger,
    mailed_minutes,
    nudges,
    proposals,
    quarantine,
    questions,
    replies,
    roster,
    rsvps,
    submissions,
)
from bot.engine.schema import actions as actions_table
from bot.engine.store import Store
from bot.engine.units import DIGESTS, group_rows
from bot.plan.invites import Held
from bot.plan.state import (
    Decision,
    MailedMinutes,
    OwedReply,
    Quarantined,
    Question,
    State,
    Undelivered,
)
from bot.transports.calendar import Part


def state(store: Store, groups: Collection[str] | None = None, *,
          others: Collection[str] = (), actions_of: Sequence[Action] | None = None) -> State:
    """Everything the planner reads, as it is now: of the whole install, or (``groups``) of
    those groups alone — their ledger rows (and, with :data:`ACTIONS` among them, the owners'
    digests, keyed ``-/…``) and their facts, read by indexed queries — with the facts every
    group reads (bounces, the config's problems, the whole action log: an owner's digests
    span groups, or ``actions_of`` when the caller read it already) and, for the groups in
    ``others`` (in the ledger, no longer in the config), who their messages went to (a group
    whose id was changed is recognised by its members: bot/plan/guard.py)."""
    scoped = groups is not None
    ids = sorted(set(groups or ()) - {ACTIONS})
    asked = {"ids": ids} if scoped else {}

    def rows(table: sa.Table, *order: str) -> Any:  # of the groups asked for
        return conn.execute(_select(table, scoped, *order), asked)

    with store.engine.connect() as conn:
        keys: dict[str, str] = {}
        recorded: set[tuple[str, str, str]] = set()
        delivered: set[tuple[str, str, int]] = set()
        held: dict[tuple[str, str], dict[str, Held]] = {}
        first: dict[tuple[str, str, str, int], datetime] = {}
        q = _keys(scoped, ACTIONS in (groups or ()))
        for key, state, g, m, r, rev, seq, kind, email, name, planned_at in conn.execute(
                q, asked):
            keys[key] = state
            recorded.add((g, m, r))
            if seq is None:
                continue
            first[(g, m, email, seq)] = planned_at
            if state in DELIVERED:
                if kind != "cancellation":
                    delivered.add((g, m, rev))
                mine = held.setdefault((g, m), {})
                if email not in mine or mine[email].sequence < seq:
                    method = "CANCEL" if kind == "cancellation" else "REQUEST"
                    mine[email] = Held(seq, method, rev, name,
                                       partial=kind == "occurrence_cancellation")
        revisions: dict[tuple[str, str], tuple[Revision, ...]] = {}
        created: dict[tuple[str, str, int], datetime] = {}
        for row in rows(invite_revisions, "rev"):
            revisions[(row.group_id, row.meeting_id)] = (
                *revisions.get((row.group_id, row.meeting_id), ()),
                Revision(row.rev, row.digest, json.loads(row.fields)))
            created[(row.group_id, row.meeting_id, row.rev)] = row.created_at
        submitted = {(r.group_id, r.meeting_id, r.rule_id, r.organisation): r.status
                     for r in rows(submissions)}
        answers: dict[tuple[str, str, str], dict[str, tuple[str, str, str]]] = {}
        for r in rows(rsvps):
            answers.setdefault((r.group_id, r.unit, r.rid), {})[r.email] = (
                r.partstat, r.comment, r.for_start or "")
        bounced: dict[str, set[str]] = {}
        for r in conn.execute(_BOUNCED):
            bounced.setdefault(r.email, set()).add(r.row)
        undelivered: dict[str, list[Undelivered]] = {}
        for r in conn.execute(_undelivered(scoped), asked):
            undelivered.setdefault(r.group_id, []).append(Undelivered(
                r.key, r.recipient, r.subject, r.state, r.last_error or "", r.updated_at,
                r.notified_at is not None))
        recipients = {g: frozenset(r for k, r in conn.execute(sa.select(
            ledger.c.key, ledger.c.recipient).where(ledger.c.group_id == g))
            if k.split("/", 2)[1:2] != ["-"])  # its meetings' messages, as the keys say
            for g in others} if scoped else None

        logged = list(actions_of) if actions_of is not None else [
            action(r) for r in conn.execute(sa.select(actions_table).order_by(
                actions_table.c.id))]
        return State(
            keys=keys, rules_recorded=frozenset(recorded), revisions=revisions,
            delivered=frozenset(delivered), submitted=submitted, revision_created=created,
            held=held, first_planned=first,
            undelivered={g: tuple(u) for g, u in undelivered.items()}, rsvps=answers,
            bounced={e: frozenset(found) for e, found in bounced.items()},
            quarantined=tuple(Quarantined(
                r.id, r.group_id, r.meeting_id, r.organisation, r.sender, r.name,
                r.path is not None, r.reason, r.at, r.notified_at is not None)
                for r in rows(quarantine, "id")),
            roster_changed={(r.group_id, r.email): r.changed_at for r in rows(roster)},
            config_problems=_config_problems(store),
            replies=tuple(OwedReply(r.id, r.group_id, r.email, r.name, r.subject, r.body,
                                    r.in_reply_to or "", r.at, r.about or "")
                          for r in rows(replies, "id")),
            actions=tuple(logged),
            nudges=tuple(Nudge(r.id, r.group_id, r.meeting_id, r.text, r.window_start,
                               r.window_end, r.source) for r in rows(nudges, "id")),
            proposals=tuple((r.group_id, r.meeting_id, r.email, r.item)
                            for r in rows(proposals, "id")),
            mailed_minutes=tuple(mailed(r) for r in rows(mailed_minutes, "id")),
            questions=tuple(question(r) for r in rows(questions, "minutes_id", "n")),
            decisions=tuple(Decision(r.group_id, r.meeting_id, r.subject, r.decision,
                                     r.version, r.who, r.at)
                            for r in rows(decisions, "id")),
            other_recipients=recipients)


# The statements of a snapshot, built once (building them was most of a small snapshot's
# time); the groups it is of are the expanding parameter ``ids``.
_IDS: Any = sa.bindparam("ids", expanding=True)
_BOUNCED = sa.select(bounces.c.email, bounces.c.row).where(
    bounces.c.permanent.is_(True), bounces.c.row.is_not(None))


@functools.cache
def _select(table: sa.Table, scoped: bool, *order: str) -> Any:
    q = sa.select(table).order_by(*(table.c[name] for name in order))
    return q.where(table.c.group_id.in_(_IDS)) if scoped else q


@functools.cache
def _keys(scoped: bool, digests: bool) -> Any:
    """The ledger rows' keys and what a plan reads of them: of the groups (and with
    ``digests``, the owners' digests)."""
    q = sa.select(
        ledger.c.key, ledger.c.state, ledger.c.group_id, ledger.c.meeting_id,
        ledger.c.rule_id, ledger.c.revision, ledger.c.sequence, ledger.c.kind,
        ledger.c.recipient, ledger.c.recipient_name,
        # when an invitation's revision was first planned (its time read only for those)
        sa.case((ledger.c.sequence.is_not(None), ledger.c.created_at)))
    if not scoped:
        return q
    return q.where(sa.or_(group_rows(_IDS), DIGESTS) if digests else group_rows(_IDS))


@functools.cache
def _undelivered(scoped: bool) -> Any:
    q = sa.select(ledger).where(ledger.c.state.in_(("failed", "parked")),
                                ledger.c.kind != "notice")
    if scoped:
        q = q.where(ledger.c.group_id.in_(_IDS))
    return q.order_by(ledger.c.updated_at, ledger.c.key)


def mailed(row: Any) -> MailedMinutes:
    return MailedMinutes(row.id, row.group_id, row.meeting_id, row.path, row.name, row.digest,
                         row.sender, row.at)


def question(row: Any) -> Question:
    return Question(row.id, row.group_id, row.meeting_id, row.minutes_id, row.n, row.text,
                    tuple((label, tuple(emails)) for label, emails in json.loads(row.choices)),
                    row.answer)


def _config_problems(store: Store) -> tuple[str, datetime, tuple[str, ...]] | None:
    found = store.config_problems()
    if found is None:
        return None
    return (found["digest"], datetime.fromisoformat(found["since"]), tuple(found["problems"]))


def action(row: Any) -> Action:
    return Action(id=row.id, group=row.group_id, meeting=row.meeting_id, topic=row.topic,
                  text=row.text, owners=tuple(json.loads(row.owners)), due=row.due,
                  status=row.status, completed=row.completed, created=row.created_at,
                  assigned=row.assigned_at)


def actions(store: Store, group: str | None = None) -> list[Action]:
    """The action log (of ``group``, or all), oldest first."""
    return [action(r) for r in store.action_rows(group)]


def calendar_parts(store: Store, transport: str, group: str | None = None,
                   unit: str | None = None) -> dict[tuple[str, str], list[Part]]:
    """The calendar items clerk keeps on ``transport``'s server, by (group, unit)."""
    out: dict[tuple[str, str], list[Part]] = {}
    for r in store.calendar_rows(transport, group, unit):
        out.setdefault((r.group_id, r.unit), []).append(Part(
            r.part, r.item_id, tuple((n, e) for n, e in json.loads(r.attendees)),
            r.revision, bool(r.cancelled), r.change_key))
    return out
