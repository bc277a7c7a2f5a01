"""Minutes coming in, by `clerk minutes import`/`send` or by the admin's mail
(bot/engine/desk.py): the file put where the group's minutes live, and its actions, nudges
and next-agenda items recorded — with what was recorded and what is left for the admin, as
data (the --json contract of `clerk minutes import`)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from bot.config.files import MINUTES_FOLDER, MINUTES_TYPES
from bot.domain.errors import UsageError
from bot.domain.model import Group, Meeting, Nudge
from bot.engine import action_log
from bot.engine.store import Store
from bot.listen import import_plan, minutes, owners


@dataclass(frozen=True)
class Recorded:
    out: dict[str, Any]  # what was recorded and left, as data
    plan: import_plan.Import
    next_meeting: str  # the id of the meeting after, "" when none is set


def record(group: Group, store: Store, path: Path, meeting: str, now: datetime, *, who: str,
           via: str = "", choose: import_plan.Choose | None = None) -> Recorded:
    """Import minutes ``path`` of ``meeting``: its actions (those whose owners are settled),
    nudges and next-agenda items. ``choose`` (interactive use) may settle an owner the
    roster does not; what stays unsettled is in ``out["unresolved"]``, not recorded."""
    agreed = next(m for m in group.meetings if m.id == meeting)
    found = minutes.read_minutes(path, import_plan.anchor(group, meeting))
    plan = import_plan.plan_import(group, meeting, found.items,
                                   default=action_log.default_due(group, agreed.start),
                                   seen=store.sources(), choose=choose)
    following = sorted((m for m in group.meetings if m.start > agreed.start
                        and not m.cancelled), key=lambda m: m.start)
    proposed = [p for p in minutes.next_agenda(path)
                if following and (group.id, following[0].id, f"minutes:{meeting}", p)
                not in set(store.proposals())]
    for item in proposed:
        store.propose(group.id, following[0].id, f"minutes:{meeting}", item, now)
    ids = store.import_minutes(plan.actions, plan.nudges, who, via or f"minutes {path.name}",
                               now)
    names = {p.email: p.name for p in owners.people(group)}
    imported: list[dict[str, Any]] = [{
        "id": new_id, "place": p.item.place, "topic": p.item.topic, "text": p.item.text,
        "owners": list(p.owners.emails),
        "owner_names": ["all members" if e == owners.ALL else names.get(e, e)
                        for e in p.owners.emails],
        "due": p.row["due"], "due_source": p.item.due_source if p.item.due else None,
        "due_why": p.due_why, "status": p.row["status"], "completed": p.row["completed"]}
        for new_id, p in zip(ids, plan.planned, strict=True)]
    landings = [landing(group, Nudge(0, group.id, meeting, str(n["text"]),
                                     _day(n["window_start"]), _day(n["window_end"])))
                for n in plan.nudges]
    unresolved = [unsettled(p.item, p.owners) for p in plan.unresolved]
    left_out = [{"place": i.place, "line": i.line, "text": i.text} for i in found.left_out]
    out = {"actions": ids, "nudges": len(plan.nudges), "already": plan.already,
           "notes": plan.notes, "unresolved": unresolved, "next_agenda": proposed,
           "imported": imported, "nudge_meetings": landings, "left_out": left_out}
    return Recorded(out, plan, following[0].id if following else "")


def place(group: Group, meeting: str, source: Path) -> Path:
    """Put minutes ``source`` where the group's minutes live (``<group>/minutes/<meeting
    id>.<ext>``), replacing an earlier file of that meeting: the planner circulates it."""
    if source.suffix.lower() not in MINUTES_TYPES:
        raise UsageError(f"{source.name}: minutes go as {', '.join(MINUTES_TYPES)}")
    target = group.folder / MINUTES_FOLDER / f"{meeting}{source.suffix.lower()}"
    target.parent.mkdir(exist_ok=True)
    if source.resolve() != target.resolve():
        for old in target.parent.glob(f"{meeting}.*"):
            if old.resolve() != source.resolve():
                old.unlink()  # a corrected file replaces the one before
        shutil.copyfile(source, target)
    return target
def unsettled(item: minutes.Item, found: owners.Match) -> dict[str, Any]:
    """An action whose owners are not all settled, as data: each unsettled name is a
    question with its numbered candidates (a later answer may be one, several, or all)."""
    questions = [{"name": o.name, "candidates": [{"name": p.name, "email": p.email}
                                                 for p in o.candidates]}
                 for o in found.unsettled]
    asked = []
    for o in found.unsettled:
        who = ", ".join(f"{p.name} <{p.email}>" for p in o.candidates)
        asked.append("no owner is named" if not o.name else f"who is {o.name!r}? " + (
            f"could be {who}" if who else "nobody on the roster fits"))
    words = "; ".join(asked)
    return {"line": item.line, "place": item.place, "owner": item.owner_text,
            "text": item.text, "candidates": [p.email for p in found.candidates],
            "matched": list(found.emails), "questions": questions, "question": words}


def landing(group: Group, nudge: Nudge) -> dict[str, Any]:
    """The meeting a nudge lands on, as data and in words."""
    from bot.plan.context import in_window, nudge_meeting

    target = nudge_meeting(group, nudge)
    inside = target is not None and in_window(nudge, target)
    window = f"{_long(nudge.start)} and {_long(nudge.end)}"
    if target is None:
        said = (f"no meeting falls between {window}, and none is set after it; the chair is "
                "told when the window opens")
    elif inside:
        said = f"on the agenda of the meeting on {_on(_local(group, target))}"
    else:
        said = (f"no meeting falls between {window}; it goes on the agenda of the meeting "
                f"on {_on(_local(group, target))}, the nearest")
    return {"text": nudge.text, "window_start": nudge.start.isoformat(),
            "window_end": nudge.end.isoformat(), "meeting": target.id if target else None,
            "meeting_start": target.start.isoformat() if target else None,
            "inside": inside, "said": said}


def _local(group: Group, meeting: Meeting) -> date:
    from bot.domain import timeutil

    return meeting.start.astimezone(timeutil.zone(group.zone)).date()


def _day(value: object) -> date:
    assert isinstance(value, date)
    return value


def _long(day: date) -> str:
    """17 December 2023."""
    return f"{day.day} {day:%B %Y}"


def _on(day: date) -> str:
    """Thursday 14 December 2023."""
    return f"{day:%A} {_long(day)}"
