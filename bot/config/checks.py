"""Checks across a loaded config: every template renders, no rule sends after its latest
time, and each zone can be written in an invitation."""

from __future__ import annotations

from bot.config.files import GROUP_FILE
from bot.domain import timeutil
from bot.domain.errors import Problem
from bot.domain.model import (
    Config,
    Group,
)
from bot.domain.options import (
    Reader,
)
from bot.render import templates


def template_problems(config: Config) -> list[Problem]:
    """Render every template each group uses against an example context."""
    from bot.plan.context import example_context
    from bot.plan.notices import other_examples

    problems: list[Problem] = []
    for group in config.groups:
        uses = [(rule.id, rule.template, example_context(group, rule)) for rule in group.rules]
        uses += [(rule.id, "cancellation", example_context(group, rule))
                 for rule in group.rules if rule.kind == "invitation"]
        uses += [(template, template, context) for template, context in other_examples(group)]
        problems += templates.check(group, uses)
    return problems


def timing_warnings(group: Group) -> list[Problem]:
    """Rules that can never send in time: their send time falls after their latest time."""
    from bot.plan.planner import latest_time

    reader = Reader(group.folder / GROUP_FILE,
                     (group.folder / GROUP_FILE).read_text(encoding="utf-8"))
    for i, rule in enumerate(group.rules):
        late = []
        for m in group.meetings:
            send = timeutil.apply_offset(m.start, rule.send, rule.at)
            if send > latest_time(group, m, rule, send):
                late.append(m.id)
        if late:
            reader.problem(f"rule[{i}].send", f"rule {rule.id!r} would send after its latest "
                           f"time (deadline or meeting) for {', '.join(late)}; those messages "
                           "are recorded skipped_late", table="rule", index=i, name="send",
                           hint="send earlier, or set `latest`", warning=True)
    return reader.problems


def zone_problems(group: Group) -> list[Problem]:
    """Invitations carry a compact VTIMEZONE (bot/render/vtimezone.py); a zone whose rules change
    within the years of the meetings cannot be written so, and would send a wrong time."""
    if not group.meetings or not any(r.kind == "invitation" for r in group.rules):
        return []
    from bot.render.vtimezone import compact_vtimezone

    years = {m.start.year for m in group.meetings} | {m.end.year for m in group.meetings}
    try:
        compact_vtimezone(group.zone, range(min(years), max(years) + 1))
    except ValueError as exc:
        return [Problem(str(group.folder / GROUP_FILE), f"invitations cannot carry this zone "
                        f"for {min(years)}–{max(years)}: {exc}", key="group.zone",
                        hint="split the meetings by year, or use a zone with stable rules")]
    return []
