"""Checks across a loaded config: every template renders, no rule sends after its latest
time, and each zone can be written in an invitation."""

from __future__ import annotations

import tomllib
from collections import Counter
from dataclasses import replace
from datetime import time

from bot.config.files import GROUP_FILE
from bot.domain import timeutil, windows
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
    return [p for group in config.groups for p in _checked(group)[0]]


def group_warnings(group: Group) -> list[Problem]:
    """The group's rule timing, zone and meeting dates (:func:`timing_warnings`,
    :func:`zone_problems`, :func:`calendar_warnings`)."""
    return _checked(group)[1]


def _checked(group: Group) -> tuple[list[Problem], list[Problem]]:
    """A group's template problems and its other checks, made once per version of its
    files (``Group.fingerprint``): a config loaded again after one group's edit checks that
    group alone."""
    found = _CHECKED.get(group.fingerprint) if group.fingerprint else None
    if found is None:
        found = (_template_problems(group),
                 timing_warnings(group) + zone_problems(group) + calendar_warnings(group))
        if group.fingerprint:
            if len(_CHECKED) >= 4096:
                _CHECKED.clear()
            _CHECKED[group.fingerprint] = found
    return found


_CHECKED: dict[str, tuple[list[Problem], list[Problem]]] = {}  # by Group.fingerprint


def _template_problems(group: Group) -> list[Problem]:
    from bot.plan.context import example_context
    from bot.plan.notices import other_examples

    uses = [(rule.id, rule.template, example_context(group, rule)) for rule in group.rules]
    uses += [(rule.id, "cancellation", example_context(group, rule))
             for rule in group.rules if rule.kind == "invitation"]
    uses += [(template, template, context) for template, context in other_examples(group)]
    return [_placed(group, p) for p in templates.check(group, uses)]


def _placed(group: Group, problem: Problem) -> Problem:
    """A template missing for rule ``id``: the problem is that rule's ``template`` key."""
    index = next((i for i, r in enumerate(group.rules) if problem.key == f"rule {r.id}"), None)
    if index is None or not problem.where.endswith(GROUP_FILE):
        return problem
    path = group.folder / GROUP_FILE
    reader = Reader(path, path.read_text(encoding="utf-8"))
    return replace(problem, key=f"rule[{index}].template",
                   line=reader.line_of("rule", index, "template"))


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
    """Invitations carry a compact VTIMEZONE (bot/render/vtimezone.py); a zone whose rules
    change within the years of the meetings cannot be written so, and would send a wrong time.
    Only meetings from go-live on count: nothing of an earlier one is ever sent."""
    sent = [m for m in group.meetings if m.end >= group.go_live]
    if not sent or not any(r.kind == "invitation" for r in group.rules):
        return []
    from bot.render.vtimezone import compact_vtimezone

    years = {m.start.year for m in sent} | {m.end.year for m in sent}
    try:
        compact_vtimezone(group.zone, range(min(years), max(years) + 1))
    except ValueError as exc:
        path = group.folder / GROUP_FILE
        line = Reader(path, path.read_text(encoding="utf-8")).line_of("group", 0, "zone")
        reason = str(exc) if len(str(exc)) < 200 else str(exc)[:200] + "…"
        return [Problem(str(path), f"invitations cannot carry this zone for "
                        f"{min(years)}–{max(years)}: {reason}", key="group.zone", line=line,
                        hint="split the meetings by year, or use a zone with stable rules")]
    return []


DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def calendar_warnings(group: Group) -> list[Problem]:
    """Plausible wrong dates, each a warning on the meeting's ``start``: before go-live, at a
    weekend, on a bank holiday, at night or outside the send window's hours, or on another
    weekday or at another time than the group's other meetings."""
    path = group.folder / GROUP_FILE
    text = path.read_text(encoding="utf-8")
    reader = Reader(path, text)
    order = {m.get("id"): i for i, m in enumerate(tomllib.loads(text).get("meeting", []))
             if isinstance(m, dict)}
    own = [m for m in group.meetings if not m.cancelled and m.series is None and m.id in order]
    usual = Counter((m.start.weekday(), m.start.strftime("%H:%M")) for m in own)
    (day, hour), count = usual.most_common(1)[0] if usual else ((0, ""), 0)
    for m in own:
        local, said = m.start, []
        if m.start < group.go_live:
            said.append(f"before go-live ({group.go_live:%d %B %Y}): nothing of it is sent")
        if local.weekday() >= 5:
            said.append(f"on a {DAY_NAMES[local.weekday()]}")
        elif group.window is not None and group.window.holidays and local.date() in \
                windows.closed_days(group.window.holidays, local.year):
            said.append("on a bank holiday")
        opens, closes = (group.window.opens, group.window.closes) if group.window \
            else (time(7), time(21))
        if not opens <= local.time() < closes:
            said.append(f"at {local:%H:%M}, outside {opens:%H:%M}–{closes:%H:%M}")
        if not said and count >= 3 and count * 2 > len(own) and (
                local.weekday(), f"{local:%H:%M}") != (day, hour):
            said.append(f"on a {DAY_NAMES[local.weekday()]} at {local:%H:%M}, while the group "
                        f"meets on {DAY_NAMES[day]}s at {hour}")
        if said:
            i = order[m.id]
            reader.problem(f"meeting[{i}].start", f"meeting {m.id!r} is {'; '.join(said)}",
                           table="meeting", index=i, name="start", warning=True,
                           hint="check the date and time")
    return reader.problems


def reply_warnings(config: Config) -> list[Problem]:
    """Requests ask members to reply and chasers to answer DONE: without a mailbox, nothing
    reads those replies."""
    if config.settings.mailbox:
        return []
    asking = [g.id for g in config.groups if any(r.kind in ("request", "chaser")
                                                  for r in g.rules)]
    if not asking:
        return []
    path = config.folder / "clerk.toml"
    line = Reader(path, path.read_text(encoding="utf-8")).line_of("clerk", 0, "mailbox") \
        if path.is_file() else None
    return [Problem(str(path), f"no mailbox: {', '.join(asking)} "
                    "ask members to reply (a nil return, DONE #id), but clerk reads no "
                    "replies, so answers never stop the chasers", key="clerk.mailbox",
                    line=line, warning=True, hint='set mailbox = "imap" (or "maildir", "exchange", '
                    '"graph") and its [mailbox], or mark returns with `clerk submissions '
                    'mark` and actions with `clerk actions done`')]
