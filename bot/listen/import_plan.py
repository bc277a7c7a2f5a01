"""What importing a minutes file records: each item's owners matched (and, interactively,
asked about), its due date (stated, else the default counted from the meeting), its done
state, and the nudges with their windows — and what is left for the admin to settle."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from bot.domain.errors import UsageError
from bot.domain.model import Group, Person
from bot.listen.dates import Anchor
from bot.listen.minutes import Item, nudge_window
from bot.listen.owners import Match, Owner, match


def meeting_day(group: Group, meeting: str) -> date:
    found = next((m for m in group.meetings if m.id == meeting), None)
    if found is None:
        raise UsageError(f"no meeting {meeting!r} in {group.id}; `clerk status` lists them")
    return found.start.date()


def anchor(group: Group, meeting: str) -> Anchor:
    """What the minutes of ``meeting`` count their dates from: its day and the next
    meeting's (the first after it that is not cancelled)."""
    day = meeting_day(group, meeting)
    start = next(m.start for m in group.meetings if m.id == meeting)
    later = [m.start.date() for m in sorted(group.meetings, key=lambda m: m.start)
             if m.start > start and not m.cancelled]
    return Anchor(day, later[0] if later else None, tuple(later))


@dataclass(frozen=True)
class Planned:
    """One action an import records: the item, who its owners are, and its row."""

    item: Item
    owners: Match
    row: dict[str, object]
    due_why: str  # where its due date came from: "stated: 'by 31 March'", "default: …"


@dataclass
class Import:
    """What importing a minutes file would record, and what the admin must settle."""

    planned: list[Planned] = field(default_factory=list)
    nudges: list[dict[str, object]] = field(default_factory=list)
    matched: list[tuple[str, str]] = field(default_factory=list)  # (place, a match's note)
    remarks: list[str] = field(default_factory=list)  # odd cells, dates, done with no date
    # the actions whose owners are not all settled, with their rows so far (not recorded:
    # for the admin to settle, at the picker or by mail)
    unresolved: list[Planned] = field(default_factory=list)
    already: int = 0  # items imported before (same minutes, same meeting)

    @property
    def actions(self) -> list[dict[str, object]]:
        """The rows to record, in order."""
        return [p.row for p in self.planned]

    @property
    def notes(self) -> list[str]:
        """Every note, each starting with its place: the matches, then the remarks."""
        return [f"{place}: {note}" for place, note in self.matched] + self.remarks


Choose = Callable[[Item, Owner], list[Person]]


def plan_import(group: Group, meeting: str, items: list[Item], *,
                default: tuple[date, str], seen: set[str],
                choose: Choose | None = None) -> Import:
    """Match owners and build the rows. ``default`` is the due date of an action that states
    none and why ("default: 28 days after the meeting"); ``seen`` holds the sources already
    imported; ``choose(item, owner)`` (interactive use) may settle an owner the roster does
    not settle, returning the people it is (none: left unsettled)."""
    out = Import()
    day = meeting_day(group, meeting)
    for item in items:
        source = f"minutes:{group.id}:{meeting}:{item.key}"
        if source in seen:
            out.already += 1
            continue
        out.remarks += item.notes
        if item.nudge is not None:
            start, end = nudge_window(day, item.nudge)
            out.nudges.append({"group_id": group.id, "meeting_id": meeting,
                               "text": item.subject or item.text, "window_start": start,
                               "window_end": end, "source": source})
            continue
        found = match(item.owner_text, group)
        if not found.owners:  # no owner named: a question too
            found = Match((Owner(""),))
        if choose is not None:
            for owner in found.unsettled:
                if chosen := choose(item, owner):
                    found = found.answer(owner.name, chosen)
        if item.due is not None and item.due < day:
            out.remarks.append(f"{item.place}: the date it states, {item.due}, is before the "
                             "meeting")
        completed = item.completed
        if item.status == "done" and completed is None:
            completed = day
            out.remarks.append(f"{item.place}: done, with no date given: recorded as done on "
                             "the day of the meeting")
        due, why = (item.due, item.due_source or "") if item.due is not None else default
        planned = Planned(item, found, {
            "group_id": group.id, "meeting_id": meeting, "topic": item.topic,
            "text": item.text, "owners": found.emails, "due": due, "source": source,
            "status": item.status, "completed": completed}, why)
        if not found.settled:
            out.unresolved.append(planned)
            continue
        out.matched += [(item.place, note) for note in found.notes]
        out.planned.append(planned)
    return out
