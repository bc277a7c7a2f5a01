"""How the admin's desk words what it did (bot/engine/desk.py): a meeting by its title and
date, dates in words, people by name, and the summary of minutes she mailed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.domain import timeutil
from bot.domain.model import Group, Meeting
from bot.plan.state import Question


def options(q: Question) -> str:
    if not q.choices:
        return "answer with a name or email on the roster"
    return "  ".join(f"{i} {label}" for i, (label, _) in enumerate(q.choices, 1))


def title(group: Group, meeting_id: str) -> str:
    m = next((m for m in group.meetings if m.id == meeting_id), None)
    if m is None:
        return meeting_id
    return f"{m.title or group.name} on {day(m.start, group)}"


def said(target: str, group: Group) -> str:
    what, _, ref = target.partition(":")
    return f"the pack of {title(group, ref)}" if what == "pack" else "minutes"


def day(at: datetime, group: Group) -> str:
    return timeutil.day_text(at.astimezone(timeutil.zone(group.zone)))


def short(text: str, most: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= most else text[:most - 1].rstrip() + "…"


def summary(group: Group, meeting: Meeting, name: str, out: dict[str, Any],
             asked: list[dict[str, Any]], *, circulated: bool) -> list[str]:
    """What an import by mail recorded and left, as the first part of her answer."""
    lines = [f"clerk has read the minutes of {title(group, meeting.id)} ({name})."]
    if out["imported"]:
        lines += ["", f"Actions recorded ({len(out['imported'])}):"]
        for a in out["imported"]:
            state = {"done": "done", "dropped": "dropped"}.get(a["status"], "open")
            lines.append(f"  #{a['id']}  {', '.join(a['owner_names'])}: {short(a['text'])}")
            lines.append(f"        due {timeutil.day_text(a['due'])} ({a['due_why']}); {state}")
    if out["already"]:
        lines.append(f"({out['already']} item(s) were imported before, from these minutes.)")
    for n in out["nudge_meetings"]:
        lines.append(f"Nudge: {short(n['text'])} — {n['said']}")
    for item in out["next_agenda"]:
        lines.append(f"For the next agenda: {item}")
    if asked:
        lines += ["", "Questions — answer in your reply, one a line, like \"Q1 2\":"]
        for q in asked:
            lines.append(f"  Q{q['n']}: {q['text']}")
            lines.append("        " + ("  ".join(f"{i} {label}" for i, (label, _) in
                                                enumerate(q["choices"], 1))
                                       or "answer with a name or email on the roster"))
    for left in out["left_out"]:
        lines.append(f"Not imported (not in the actions table): {left['place']}: "
                     f"{short(left['text'])}")
    for note in out["notes"]:
        lines.append(f"Note: {note}")
    if circulated:
        lines += ["", f"The minutes are held: they go to the {len(group.attendees)} members "
                      "when you reply APPROVE (newcomers get the joining instructions with "
                      "them)."]
    return lines

