"""The blast-radius guard: an edit that would cancel or invite a large share of a group at
once is held, not sent, until the admin says it is right.

Saving the wrong Excel sheet as roster.csv, or only its header line, or renaming the group's
``id`` are everyday mistakes, and each would send hundreds of cancellations or invitations
within the settle window. So before the plan is recorded, each group's *new* messages are
looked at: cancellations to members no longer on the roster, invitations (and everything
else) to people added once the others were invited. When those people are more than the
group's ``guard`` share of its members (20 % by default), or when the group's id changed
(its members had their invitations under another id), those messages are recorded ``held``
with the reason, and the admin gets one notice at once saying what happened in plain words.
``clerk approve --guard GROUP`` releases them; fixing the file withdraws them by itself.

A meeting edited on purpose — moved, re-worded, ``cancelled = true`` — is not held: it is what
the admin meant, and it waits for the settle window like every edit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from bot.domain.model import Config, Desired, Group
from bot.plan.context import person, shared_context_group
from bot.plan.invites import REQUEST
from bot.plan.state import State
from bot.render.templates import render

HELD = "held by the guard"  # the reason of a row the guard holds starts with this
GONE = "no longer on the roster"  # the change of a removal's cancellation


@dataclass(frozen=True)
class Trip:
    """What the guard found in one group."""

    group: str
    why: str  # in plain words, for the admin
    keys: tuple[str, ...]  # the messages it holds
    people: frozenset[str] = frozenset()  # the addresses of their recipients


def guard(config: Config, state: State, messages: Sequence[Desired],
          now: datetime) -> tuple[list[Desired], list[Trip]]:
    """``messages`` with the guard's holds applied, its notices added, and what tripped.

    It looks at the messages not yet recorded and at those recorded ``held``: a hold stays
    the guard's (same reason, same notice) until the admin approves or puts the file right."""
    ids = config.by_id.keys()
    pending: dict[str, list[Desired]] = {}  # per group: not recorded yet, or held
    for m in messages:
        if state.keys.get(m.key, "held") == "held":
            pending.setdefault(m.group, []).append(m)
    trips = [t for g, new in pending.items()
             if (t := _trip(config.by_id[g], ids, state, new)) is not None]
    if not trips:
        return list(messages), []
    held = {k: t for t in trips for k in t.keys}
    out = [replace(m, initial="held", reason=f"{HELD}: {held[m.key].why}; {m.reason}")
           if m.key in held else m for m in messages]
    out += [notice(config.by_id[t.group], t, now) for t in trips]
    return out, trips


def withheld(group: Group, trips: Sequence[Trip],
             messages: Sequence[Desired]) -> list[Desired]:
    """``messages`` (a group's weekly part, planned on its own) less those to someone its
    group's ``trips`` hold — a stranger saved as the chair is not sent the group's actions —
    until the admin approves or puts the roster right, when they are planned again. Left
    out rather than held: a held row would stay held once the roster is right. Her own mail
    is never withheld (it tells her what is held)."""
    people = {e for t in trips for e in t.people} - {group.admin.email}
    return [m for m in messages if m.recipient.email not in people]


def _trip(group: Group, ids: Collection[str], state: State, new: Sequence[Desired]) -> Trip | None:
    renamed = _renamed(group, ids, state)
    if renamed:
        return Trip(group.id, f"the group's id changed from {renamed!r} to {group.id!r}: "
                              f"all {len(new)} of its messages would go again, every "
                              "invitation as a new calendar entry — change the id back in "
                              "group.toml, unless this is a new group", tuple(m.key for m in new),
                    frozenset(m.recipient.email for m in new))
    removed = {m.recipient.email: m.recipient.name for m in new
               if m.kind == "cancellation" and m.context.get("change") == GONE}
    newcomers = {m.recipient.email: m.recipient.name for m in new if _newcomer(m, state)}
    before = len(group.attendees) - len(newcomers) + len(removed)
    if not before or (len(removed) + len(newcomers)) <= group.guard * before:
        return None
    people = frozenset(removed.keys() | newcomers.keys())
    keys = tuple(m.key for m in new if m.recipient.email in people)
    return Trip(group.id, _words(removed, newcomers, before), keys, people)


def _newcomer(m: Desired, state: State) -> bool:
    """An invitation to someone added once the others were invited."""
    if m.kind != "invitation":
        return False
    held = state.held.get((m.group, m.meeting), {})
    return m.recipient.email not in held and any(h.method == REQUEST for h in held.values())


def _renamed(group: Group, ids: Collection[str], state: State) -> str:
    """The group's id before, when it has no messages of its own yet (none but held ones)
    but most of its members had their messages under an id no longer in the config."""
    if any(s != "held" for s in state.group_keys(group.id).values()):
        return ""
    members = {m.email for m in group.attendees}
    for old, emails in sorted(state.recipients_by_group().items()):
        if old not in ids and members and len(members.intersection(emails)) * 2 > len(members):
            return old
    return ""


def _names(people: Mapping[str, str]) -> str:
    shown = sorted(people.values())
    more = f" and {len(shown) - 5} more" if len(shown) > 5 else ""
    return ", ".join(shown[:5]) + more


def _words(removed: Mapping[str, str], newcomers: Mapping[str, str], before: int) -> str:
    if removed and newcomers:
        return (f"{len(removed)} of {before} members would be taken off the meetings "
                f"({_names(removed)}) and {len(newcomers)} others invited "
                f"({_names(newcomers)}) — was the right sheet saved as roster.csv?")
    if removed:
        return (f"{len(removed)} of {before} members would be taken off the meetings "
                f"({_names(removed)}) — was roster.csv saved complete?")
    return (f"{len(newcomers)} people would be invited at once ({_names(newcomers)}), "
            f"to a group of {before} — is roster.csv the right list?")


def notice(group: Group, trip: Trip, now: datetime) -> Desired:
    """One notice to the admin per distinct hold (its key names the messages held)."""
    digest = hashlib.sha256("\n".join(sorted(trip.keys)).encode()).hexdigest()[:12]
    context = {
        "group": shared_context_group(group), "organiser": person(group.organiser),
        "admin": person(group.admin),
        "recipient": dict(person(group.admin), organisation="", role="admin"),
        "why": trip.why, "held": len(trip.keys), "group_id": group.id,
    }
    return Desired(
        key=f"{group.id}/-/guard/{group.admin.email}/{digest}", group=group.id, meeting="-",
        rule="guard", kind="notice", recipient=group.admin, send_at=now,
        latest=now + timedelta(days=7), subject=render(group, "guard", "subject", context),
        reason=f"the guard holds {len(trip.keys)} message(s): {trip.why}", template="guard",
        context=context)
