"""The `clerk` commands for what the group keeps: the action log, minutes, nudges and the
returns register. Registered on the main command by bot/cli/main.py."""

from __future__ import annotations

import os
from typing import Any

import click

from bot.cli.common import (
    Ctx,
    _date,
    _group,
    _json,
    _meeting_group,
    _meeting_of,
    _usage_error,
    group_option,
    json_option,
)


@click.group("actions")
def actions_cli() -> None:
    """The action log: list, add, and mark actions done, re-dated, updated or dropped."""


def _action_row(a: Any) -> dict[str, Any]:
    return {"id": a.id, "ref": a.ref, "group": a.group, "meeting": a.meeting,
            "topic": a.topic, "text": a.text, "owners": list(a.owners),
            "due": a.due.isoformat(), "status": a.status,
            "completed": a.completed.isoformat() if a.completed else None}


@actions_cli.command("list")
@group_option
@click.option("--status", type=click.Choice(["open", "done", "dropped", "all"]),
              default="open", show_default=True, help="Which actions.")
@json_option
@click.pass_obj
def actions_list(obj: Ctx, group_id: str | None, status: str, as_json: bool) -> None:
    """The actions, open first by due date."""
    from datetime import timedelta

    from bot.engine import snapshot
    from bot.plan import actions

    config = obj.config()
    every = snapshot.actions(obj.store(config))
    found = [a for a in every if (group_id is None or a.group == _group(config, group_id))
             and (status == "all" or a.status == status)]
    found.sort(key=lambda a: (a.status != "open", a.due, a.id))
    today = obj.now(config).date()
    plan = actions.schedule(config.groups, every, today + timedelta(days=400))
    chased: dict[int, list[str]] = {}  # id -> when each owner is chased next
    for d in plan.digests:
        for x in d.listed:
            if d.day >= today and not any(d.owner.email in w for w in chased.get(x.action.id,
                                                                                   [])):
                chased.setdefault(x.action.id, []).append(
                    f"{d.owner.email} on {d.day:%a} {d.day.day} {d.day:%b %Y}"
                    + (" (the last)" if x.number >= x.group.ladder.max_chasers else ""))
    if as_json:
        _json([dict(_action_row(a), next_chasers=chased.get(a.id, []),
                    no_longer_chased=a.id in plan.stalled and plan.stalled[a.id] < today,
                    owners_gone=list(plan.gone.get(a.id, ()))) for a in found])
        return
    for a in found:
        owners = "all members" if "*" in a.owners else ", ".join(a.owners)
        click.echo(f"{a.ref:>5} {a.status:<7} due {a.due}  {a.group}  {owners}")
        click.echo(f"{'':6}{a.topic + ': ' if a.topic else ''}{a.text}")
        if a.status == "open":
            nxt = chased.get(a.id)
            click.echo(f"{'':6}" + ("chased next: " + "; ".join(nxt) if nxt else
                                    "no longer chased: in the admin's weekly summary"
                                    if a.id in plan.stalled else "no chaser to come"))
            if a.id in plan.gone:
                click.echo(f"{'':6}not on the roster any more, not chased: "
                           f"{', '.join(plan.gone[a.id])} (`clerk actions owner {a.id} NAME` "
                           "gives it to someone else)")
    click.echo(f"{len(found)} action(s)")


@actions_cli.command("add")
@click.option("--group", "-g", "group_id", metavar="ID", required=True, help="The group.")
@click.option("--owner", "owners", metavar="EMAIL|NAME", multiple=True, required=True,
              help="Who owes it: an email, or a name on the roster matched as minutes are "
                   "(repeat for several; `all` for every member).")
@click.option("--due", metavar="DATE", help="Due date (default: [actions] due before the "
                                            "meeting after --meeting, else 28 days after it; "
                                            "without --meeting, counted from now).")
@click.option("--meeting", metavar="ID", default="", help="The meeting that made it.")
@click.option("--topic", default="", help="Its topic, as in the minutes' table.")
@click.argument("text")
@json_option
@click.pass_obj
def actions_add(obj: Ctx, group_id: str, owners: tuple[str, ...], due: str | None,
                meeting: str, topic: str, text: str, as_json: bool) -> None:
    """Record an action."""
    from bot.domain.errors import UsageError
    from bot.domain.timeutil import day_text
    from bot.engine import action_log
    from bot.listen import owners as roster

    config = obj.config()
    group = config.group(_group(config, group_id) or group_id)
    now = obj.now(config)
    agreed = next((m.start for m in group.meetings if m.id == _meeting_of(group, meeting)),
                  None) if meeting else None
    # the default counts from the meeting that agreed it; without one, from the admin's now
    when, why = (_date(due), "given") if due else action_log.default_due(group, agreed or now)
    if not due and agreed is not None:
        try:
            action_log.check_due(when, now, group)
        except UsageError:
            raise _usage_error(f"the default due date, {when} ({why}), is in the past; "
                               "give --due") from None
    emails = action_log.owners_of(group, owners)
    values = {"group_id": group.id, "meeting_id": _meeting_of(group, meeting),
              "topic": topic, "text": text, "owners": emails,
              "due": action_log.check_due(when, now, group)}
    store = obj.store(config)
    new_id = store.add_action(values, os.environ.get("USER", "admin"), "cli", now)
    if as_json:
        _json(_action_row(action_log.find(store, new_id)))
    else:
        names = {p.email: p.name for p in roster.people(group)}
        who = ", ".join("all members" if o == roster.ALL else names.get(o, o) for o in emails)
        click.echo(f"added #{new_id} for {who}, due {day_text(when)} "
                   f"({why})")


def _change(obj: Ctx, action_id: int, command: str, as_json: bool, **kw: Any) -> None:
    from bot.engine import action_log

    config = obj.config()
    store = obj.store(config)
    action = action_log.find(store, action_id)
    said = action_log.apply(store, config.group(action.group), action, command,
                         who=os.environ.get("USER", "admin"), via="cli",
                         now=obj.now(config), **kw)
    if as_json:
        _json(_action_row(action_log.find(store, action_id)))
    else:
        click.echo(said)


@actions_cli.command("export")
@group_option
@click.pass_obj
def actions_export(obj: Ctx, group_id: str | None) -> None:
    """Print the action log as CSV (open it in Excel; `import` reads it back)."""
    from bot.engine import action_log, snapshot

    config = obj.config()
    found = snapshot.actions(obj.store(config), _group(config, group_id))
    click.echo(action_log.to_csv(found), nl=False)


@actions_cli.command("import")
@click.argument("path", metavar="FILE", type=click.Path(dir_okay=False, exists=True))
@click.pass_obj
def actions_import(obj: Ctx, path: str) -> None:
    """Add (no id) or update (with an id) actions from a CSV; every bad row is listed and
    nothing is imported until all are right."""
    from pathlib import Path

    from bot.engine import action_log, snapshot

    config = obj.config()
    store = obj.store(config)
    now = obj.now(config)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise _usage_error(f"{path} is not UTF-8: save it from Excel as 'CSV UTF-8'") from None
    rows = action_log.from_csv(text, path, {g.id: g for g in config.groups},
                            {a.id: a for a in snapshot.actions(store)}, now)
    added, updated = store.import_actions(rows, os.environ.get("USER", "admin"),
                                          f"csv {Path(path).name}", now)
    click.echo(f"added {added}, updated {updated} action(s)")


@actions_cli.command("done")
@click.argument("action_id", metavar="ID", type=int)
@json_option
@click.pass_obj
def actions_done(obj: Ctx, action_id: int, as_json: bool) -> None:
    """Mark action ID done (its chasers stop at once)."""
    _change(obj, action_id, "DONE", as_json)


@actions_cli.command("update")
@click.argument("action_id", metavar="ID", type=int)
@click.argument("text")
@json_option
@click.pass_obj
def actions_update(obj: Ctx, action_id: int, text: str, as_json: bool) -> None:
    """Add a note on how action ID is going."""
    _change(obj, action_id, "UPDATE", as_json, text=text)


@actions_cli.command("new-date")
@click.argument("action_id", metavar="ID", type=int)
@click.argument("due", metavar="DATE")
@json_option
@click.pass_obj
def actions_new_date(obj: Ctx, action_id: int, due: str, as_json: bool) -> None:
    """Give action ID a new due date."""
    _change(obj, action_id, "NEW DATE", as_json, new_date=_date(due))


@actions_cli.command("owner")
@click.argument("action_id", metavar="ID", type=int)
@click.argument("owners", metavar="OWNER...", nargs=-1, required=True)
@json_option
@click.pass_obj
def actions_owner(obj: Ctx, action_id: int, owners: tuple[str, ...], as_json: bool) -> None:
    """Give action ID to OWNER (emails or names on the roster, several for several owners,
    `all` for every member): they are chased from now, afresh."""
    from bot.engine import action_log
    from bot.listen.owners import split

    config = obj.config()
    action = action_log.find(obj.store(config), action_id)
    settled = action_log.owners_of(config.group(action.group),
                                   [name for o in owners for name in split(o)])
    _change(obj, action_id, "OWNER", as_json, owners=settled)


@actions_cli.command("drop")
@click.argument("action_id", metavar="ID", type=int)
@json_option
@click.pass_obj
def actions_drop(obj: Ctx, action_id: int, as_json: bool) -> None:
    """Drop action ID (no longer needed; its chasers stop)."""
    _change(obj, action_id, "DROP", as_json)


@click.group("minutes")
def minutes_cli() -> None:
    """Minutes: circulate them, and import their actions and nudges."""


@minutes_cli.command("import")
@click.argument("path", metavar="FILE", type=click.Path(dir_okay=False))
@click.option("--meeting", "meeting", metavar="ID", required=True,
              help="The meeting the minutes are of.")
@group_option
@click.option("--yes", is_flag=True, help="Do not ask: import what matched, report the rest.")
@json_option
@click.pass_obj
def minutes_import(obj: Ctx, path: str, meeting: str, group_id: str | None, yes: bool,
                   as_json: bool) -> None:
    """Import the actions and "remind the group in N-M months" nudges of minutes FILE
    (.docx, .pdf, .md or .txt); names are matched to the roster and every doubt reported. Each
    action is printed with its owners and due date, and where that date came from."""
    from bot.cli import minutes_import

    minutes_import.run(obj, path, meeting, group_id, yes, as_json)


@minutes_cli.command("send")
@click.argument("path", metavar="FILE", type=click.Path(dir_okay=False, exists=True))
@click.option("--meeting", "meeting", metavar="ID", required=True,
              help="The meeting the minutes are of.")
@group_option
@click.pass_obj
def minutes_send(obj: Ctx, path: str, meeting: str, group_id: str | None) -> None:
    """Circulate minutes FILE to every member (held for approval first, unless the group
    says otherwise), with the website link and, for newcomers, the joining instructions."""
    from pathlib import Path

    from bot.engine import minutes_in

    config = obj.config()
    group = _meeting_group(config, meeting, group_id)
    target = minutes_in.place(group, meeting, Path(path))
    store = obj.store(config)
    if any(r.state in ("sending", "sent") for r in store.rows(group=group.id, states=None)
           if r.kind == "minutes" and r.meeting_id == meeting):
        click.echo(f"the minutes of {meeting} went out already; members who have them are "
                   "not sent the correction (newcomers get it)")
        return
    # the rows recorded now (held for approval, or due), so the command below works at once
    config = obj.config()
    obj.executor(config).current_plan(obj.now(config))
    how = (f"held for approval: `clerk approve {group.id}/{meeting}/minutes/` releases them"
           + ("; the chair is asked to approve them by replying APPROVE"
              if group.minutes_approval == "chair" else "")
           if group.minutes_approval != "none" else "they go at the next tick")
    click.echo(f"minutes of {meeting} saved as {target}; {how}")


@click.group("nudge")
def nudge_cli() -> None:
    """Nudges: "remind the group in 6-9 months" — a subject for a future agenda."""


@nudge_cli.command("add")
@click.option("--group", "-g", "group_id", metavar="ID", required=True, help="The group.")
@click.option("--window", required=True, metavar="N-Mm",
              help="From N to M months after --from (today by default), e.g. 6-9m.")
@click.option("--from", "since", metavar="DATE", help="Count the window from this date.")
@click.option("--meeting", default="", metavar="ID", help="The meeting that asked for it.")
@click.argument("text")
@click.pass_obj
def nudge_add(obj: Ctx, group_id: str, window: str, since: str | None, meeting: str,
              text: str) -> None:
    """Record a nudge; it goes on the agenda of the first meeting inside its window, else of the
    nearest."""
    import re

    from bot.domain import timeutil
    from bot.domain.model import Nudge
    from bot.engine import minutes_in
    from bot.listen import minutes
    from bot.plan import context

    config = obj.config()
    group = config.group(_group(config, group_id) or group_id)
    m = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*m(onths?)?\s*", window)
    if not m or int(m.group(1)) > int(m.group(2)):
        raise _usage_error(f"{window!r} is not a window; write it like 6-9m")
    now = obj.now(config)
    start_day = _date(since) if since else now.astimezone(timeutil.zone(group.zone)).date()
    _meeting_of(group, meeting)
    start, end = minutes.nudge_window(start_day, (int(m.group(1)), int(m.group(2))))
    values = {"group_id": group.id, "meeting_id": meeting, "text": text,
              "window_start": start, "window_end": end, "source": "cli"}
    new_id = obj.store(config).add_nudge(values, now)
    nudge = Nudge(new_id, group.id, meeting, text, start, end)
    target = context.nudge_meeting(group, nudge)
    landed = minutes_in.landing(group, nudge)["said"]
    click.echo(f"added nudge #{new_id}: {start} to {end}; " + (
        f"on the agenda of {target.id}" if target and context.in_window(nudge, target) else
        f"{landed} ({target.id})" if target else
        "warning: no meeting falls in that window; the chair is told when it opens"))


@nudge_cli.command("list")
@group_option
@json_option
@click.pass_obj
def nudge_list(obj: Ctx, group_id: str | None, as_json: bool) -> None:
    """The nudges and the meeting each one lands on."""
    from bot.domain.model import Nudge
    from bot.plan import context

    config = obj.config()
    rows = []
    for n in obj.store(config).nudges(_group(config, group_id)):
        group = config.group(n.group_id)
        nudge = Nudge(n.id, n.group_id, n.meeting_id, n.text, n.window_start, n.window_end)
        target = context.nudge_meeting(group, nudge)
        rows.append({"id": n.id, "group": n.group_id, "text": n.text, "from": n.meeting_id,
                     "window_start": n.window_start.isoformat(),
                     "window_end": n.window_end.isoformat(),
                     "meeting": target.id if target else None,
                     "inside": target is not None and context.in_window(nudge, target)})
    if as_json:
        _json(rows)
        return
    for r in rows:
        click.echo(f"#{r['id']} {r['window_start']}..{r['window_end']} {r['group']}: "
                   f"{r['text']} -> " + (r["meeting"] + ("" if r["inside"] else " (the nearest: "
                                                      "no meeting is in the window)")
                                      if r["meeting"] else "no meeting in the window"))


@click.group("submissions")
def submissions_cli() -> None:
    """The returns register: who has answered a request for information."""


@submissions_cli.command("mark")
@click.option("--meeting", required=True, metavar="ID", help="The meeting.")
@click.option("--organisation", "organisation", required=True, help="The organisation.")
@click.option("--nil", is_flag=True, help="A nil return.")
@click.option("--rule", default="", metavar="ID", help="The request rule (default: the "
              "group's only one).")
@group_option
@click.pass_obj
def submissions_mark(obj: Ctx, meeting: str, organisation: str, nil: bool, rule: str,
                     group_id: str | None) -> None:
    """Record that an organisation answered (by hand: a paper brought along, a phone call)."""
    config = obj.config()
    group = _meeting_group(config, meeting, group_id)
    orgs = {m.organisation for m in group.members}
    if organisation not in orgs:
        raise _usage_error(f"unknown organisation {organisation!r}; the roster of {group.id} "
                           f"has: {', '.join(sorted(orgs))}")
    requests = [r.id for r in group.rules if r.kind == "request"]
    if (rule and rule not in requests) or not requests or (not rule and len(requests) > 1):
        raise _usage_error(f"give --rule, one of: {', '.join(requests) or 'none'}")
    obj.store(config).mark_submitted(group.id, meeting, rule or requests[0], organisation,
                                     "nil" if nil else "submitted", obj.now(config),
                                     source="cli")
    click.echo(f"{organisation}: {'nil return' if nil else 'submitted'} for {meeting}")
