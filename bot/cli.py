"""The ``clerk`` command: parse, call one function, format.

Everything beyond click is imported inside the command that needs it, so ``clerk --help``
costs little more than starting Python and importing click (see bench/help_time.py).
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from datetime import datetime
    from pathlib import Path

    from bot.executor import Executor
    from bot.model import Config
    from bot.store import Store


class Ctx:
    """What every command shares: the config folder and the state URL override."""

    def __init__(self, folder: str, state: str | None) -> None:
        from pathlib import Path

        self.folder: Path = Path(folder)
        self.state = state

    def config(self) -> Config:
        from bot import config

        return config.load(self.folder)

    def store(self, config: Config) -> Store:
        from bot.store import Store

        store = Store(self.state or config.settings.state)
        store.migrate()
        return store

    def executor(self, config: Config) -> Executor:
        from bot import transports
        from bot.executor import Executor

        s = config.settings
        return Executor(config, self.store(config),
                        transports.load(s.transport, s.transport_options),
                        mailbox=transports.load_mailbox(s.mailbox, s.mailbox_options))


def _now(value: str | None, config: Config | None = None) -> datetime:
    from bot import timeutil

    if value is None:
        return timeutil.utcnow()
    tz = timeutil.zone(config.groups[0].zone) if config and config.groups else None
    try:
        return timeutil.parse_instant(value, tz)
    except ValueError as exc:
        raise _usage_error(str(exc)) from None


def _group(config: Config, group: str | None) -> str | None:
    if group is not None and group not in {g.id for g in config.groups}:
        known = ", ".join(g.id for g in config.groups)
        raise _usage_error(f"unknown group {group!r}; groups in {config.folder}: {known}")
    return group


def _usage_error(message: str) -> Exception:
    from bot.errors import UsageError

    return UsageError(message)


def _json(value: Any) -> None:
    import json

    click.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


group_option = click.option("--group", "-g", "group_id", metavar="ID",
                            help="Only this group (its id in group.toml).")
json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print JSON (a stable contract; see README).")
now_option = click.option("--now", metavar="ISO-8601",
                          help="Act as if it were this time (default: the real clock).")


class ClerkGroup(click.Group):
    """The one place that turns a user error into a message and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        from bot.errors import ClerkError

        try:
            return super().invoke(ctx)
        except ClerkError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=ClerkGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "folder", envvar="CLERK_CONFIG", default="config", show_default=True,
              type=click.Path(file_okay=False),
              help="Config folder (env CLERK_CONFIG).")
@click.option("--state", envvar="CLERK_STATE", metavar="URL",
              help="State store URL; overrides clerk.toml (env CLERK_STATE).")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(package_name="clerkbot")
@click.pass_context
def cli(ctx: click.Context, folder: str, state: str | None, verbose: int) -> None:
    """clerk: the clerk of a recurring group.

    It plans every message of a group (invitations, requests for information, chasers,
    agenda packs, reminders) from the config folder, records each in a ledger, and sends
    what is due.
    """
    import logging

    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s")
    ctx.obj = Ctx(folder, state)


@cli.command()
@click.pass_obj
def check(obj: Ctx) -> None:
    """Check settings, rosters and templates; list every problem (exit 2 on any)."""
    config = obj.config()
    for w in config.warnings:
        click.echo(str(w))
    for g in config.groups:
        click.echo(f"{g.id}: {len(g.members)} members, "
                   f"{len({m.organisation for m in g.members})} organisations, "
                   f"{len(g.meetings)} meetings, {len(g.rules)} rules")
    click.echo("config OK")


@cli.command()
@click.option("--from", "since", metavar="DATE", help="Only messages sent on or after this.")
@click.option("--until", metavar="DATE", help="Only messages sent before this.")
@now_option
@group_option
@json_option
@click.pass_obj
def plan(obj: Ctx, since: str | None, until: str | None, now: str | None,
         group_id: str | None, as_json: bool) -> None:
    """Every message clerk will send: when, what, to whom, why, and its state."""
    from bot import report

    config = obj.config()
    rows = report.plan_rows(config, obj.store(config), _now(now, config),
                            since=_now(since, config) if since else None,
                            until=_now(until, config) if until else None,
                            group=_group(config, group_id))
    if as_json:
        _json(rows)
        return
    batches: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in rows:
        batches.setdefault((r["send_at"], r["group"], r["meeting"], r["rule"], r["revision"],
                            r["state"]), []).append(r)
    for (send_at, g, m, rule, _rev, state), items in batches.items():
        who = items[0]["recipients"][0] if len(items) == 1 else f"{len(items)} recipients"
        click.echo(f"{send_at[:16]}  {state:<12} {items[0]['kind']:<11} {g}/{m}  {who}")
        click.echo(f"{'':18}{items[0]['subject']}")
        click.echo(f"{'':18}rule {rule}: {items[0]['reason']}")
    click.echo(f"{len(rows)} message(s)")


@cli.command()
@now_option
@click.option("--dry-run", is_flag=True, help="Show what would be sent; change nothing.")
@json_option
@click.pass_obj
def tick(obj: Ctx, now: str | None, dry_run: bool, as_json: bool) -> None:
    """One reconcile pass: plan, record, send what is due, print a summary."""
    config = obj.config()
    at = _now(now, config)
    result = obj.executor(config).tick(at, dry_run=dry_run)
    if as_json:
        _json(result.as_dict())
    else:
        verb = "would send" if dry_run else "sent"
        click.echo(f"{result.now}: {verb} {len(result.sent)}, retry {len(result.retry)}, "
                   f"failed {len(result.failed)}, skipped_late {len(result.skipped_late)}, "
                   f"recorded {result.recorded}, updated {result.updated}, "
                   f"withdrawn {result.withdrawn}, recovered {result.recovered}")
        for key in result.skipped_late:
            click.echo(f"  skipped_late {key}")
        for line in result.errors:
            click.echo(f"  failed {line}")
    if result.failed:
        sys.exit(1)


@cli.command()
@click.pass_obj
def run(obj: Ctx) -> None:
    """Run the worker: a tick at start-up, then one every `interval` seconds."""
    from bot.worker import Worker

    config = obj.config()  # refuses to start on a config with problems
    import logging

    logging.getLogger().setLevel(min(logging.getLogger().level, logging.INFO))
    Worker(obj.executor(config), obj.folder).run()


@cli.command()
@now_option
@group_option
@json_option
@click.pass_obj
def status(obj: Ctx, now: str | None, group_id: str | None, as_json: bool) -> None:
    """Next meetings, what is due next, counts by state, failures."""
    from bot import report

    config = obj.config()
    data = report.status(config, obj.store(config), _now(now, config),
                         _group(config, group_id))
    if as_json:
        _json(data)
        return
    click.echo("Next meetings:")
    for m in data["meetings"]:
        r = m["rsvp"]
        click.echo(f"  {m['start'][:16]}  {m['group']}/{m['meeting']}  {m['title']}: "
                   f"{len(r['accepted'])} accepted, {len(r['tentative'])} tentative, "
                   f"{len(r['declined'])} apologies, {len(r['no_answer'])} no answer")
        for a in m["apologies"]:
            click.echo(f"      apologies: {a['name']}" + (f" ({a['reason']})"
                                                          if a["reason"] else ""))
        for p in m["proposals"]:
            click.echo(f"      proposed for the agenda: {p['item']} ({p['by']})")
        for n in m["nudges"]:
            click.echo(f"      coming back to: {n}")
        if m["returns"]:
            outstanding = [r["organisation"] for r in m["returns"]
                           if r["status"] == "outstanding"]
            click.echo(f"      returns: {len(m['returns']) - len(outstanding)} in, "
                       f"{len(outstanding)} outstanding")
    click.echo("Due next:")
    for n in data["next"]:
        click.echo(f"  {n['send_at'][:16]}  {n['state']:<10} {n['kind']:<11} "
                   f"{n['group']}/{n['meeting']}  {n['messages']} message(s)")
    click.echo("Messages by state: " + (", ".join(f"{k} {v}" for k, v in
                                                  data["counts"].items()) or "none"))
    for b in data["bouncing"]:
        click.echo(f"Bouncing: {b} (fix it in the roster)")
    if data["unprocessed"]:
        click.echo(f"Unprocessed mail ({len(data['unprocessed'])}), in clerk/unprocessed:")
        for u in data["unprocessed"][-10:]:
            click.echo(f"  {u['at'][:16]}  {u['sender']}: {u['reason']}")
    if data["failures"]:
        click.echo("Failures:")
        for f in data["failures"]:
            click.echo(f"  {f['state']} {f['key']}: {f['error']}")


@cli.command()
@click.argument("key", required=False)
@group_option
@click.option("--state", "state", metavar="STATE", help="Only rows in this state.")
@json_option
@click.pass_obj
def log(obj: Ctx, key: str | None, group_id: str | None, state: str | None,
        as_json: bool) -> None:
    """The ledger: what went to whom, when and why (KEY: one row and its history)."""
    from bot import report

    config = obj.config()
    rows = report.log_rows(obj.store(config), group=_group(config, group_id), state=state,
                           key=key)
    if key and not rows:
        raise _usage_error(f"no ledger row with key {key!r}; `clerk log` lists them")
    if as_json:
        _json(rows)
        return
    for r in rows:
        when = (r["sent_at"] or r["send_at"])[:16]
        click.echo(f"{when}  {r['state']:<12} {r['kind']:<11} {r['recipient']:<36} "
                   f"{r['subject']}")
        if key:
            click.echo(f"  key {r['key']}\n  reason {r['reason']}\n  message-id "
                       f"{r['message_id']}")
            for h in r["history"]:
                click.echo(f"  {h['at'][:19]}  {h['state']:<12} {h['detail']}")


@cli.command()
@click.argument("key")
@now_option
@click.pass_obj
def preview(obj: Ctx, key: str, now: str | None) -> None:
    """Show the rendered message KEY (headers and parts) without sending it."""
    from email.policy import SMTP

    from bot import planner
    from bot.render.email import build

    config = obj.config()
    store = obj.store(config)
    at = _now(now, config)
    desired = planner.plan(config, store.snapshot(), at).by_key().get(key)
    if desired is None:
        row = store.row(key)
        why = f"it is in the ledger as {row.state}" if row else "no such key"
        raise _usage_error(f"{key!r} is not in the current plan ({why}); "
                         "`clerk plan --json` lists the keys")
    message = build(config.group(desired.group), desired, at)
    click.echo(message.as_bytes(policy=SMTP.clone(linesep="\n")).decode(errors="replace"))


def _move(obj: Ctx, keys: tuple[str, ...], from_states: tuple[str, ...], to_state: str,
          verb: str, done: str, **values: Any) -> None:
    from bot import timeutil

    config = obj.config()
    moved = obj.store(config).set_state(keys, from_states, to_state, timeutil.utcnow(),
                                        f"{done} by {os.environ.get('USER', 'the admin')}",
                                        **values)
    if not moved:
        raise _usage_error(f"nothing to {verb}: no row in state "
                         f"{' or '.join(from_states)} matches {', '.join(keys)}; "
                         "`clerk plan` shows the keys and states")
    for key in moved:
        click.echo(f"{done} {key}")


@cli.command()
@click.argument("keys", nargs=-1, required=True)
@click.pass_obj
def approve(obj: Ctx, keys: tuple[str, ...]) -> None:
    """Release held messages (KEY, or a key prefix ending in "/") to be sent when due."""
    _move(obj, keys, ("held",), "planned", "approve", "approved")


@cli.command()
@click.argument("keys", nargs=-1, required=True)
@click.pass_obj
def hold(obj: Ctx, keys: tuple[str, ...]) -> None:
    """Hold messages not yet sent (KEY, or a key prefix ending in "/") until approved."""
    _move(obj, keys, ("planned", "retry"), "held", "hold", "held")


@cli.group("actions")
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
    config = obj.config()
    found = [a for a in obj.store(config).actions(_group(config, group_id))
             if status == "all" or a.status == status]
    found.sort(key=lambda a: (a.status != "open", a.due, a.id))
    if as_json:
        _json([_action_row(a) for a in found])
        return
    for a in found:
        owners = "all members" if "*" in a.owners else ", ".join(a.owners)
        click.echo(f"{a.ref:>5} {a.status:<7} due {a.due}  {a.group}  {owners}")
        click.echo(f"{'':6}{a.topic + ': ' if a.topic else ''}{a.text}")
    click.echo(f"{len(found)} action(s)")


@actions_cli.command("add")
@click.option("--group", "-g", "group_id", metavar="ID", required=True, help="The group.")
@click.option("--owner", "owners", metavar="EMAIL", multiple=True, required=True,
              help="A member who owes it (repeat for several; `all` for every member).")
@click.option("--due", metavar="DATE", help="Due date (default: [actions] due before the "
                                            "next meeting, else four weeks).")
@click.option("--meeting", metavar="ID", default="", help="The meeting that made it.")
@click.option("--topic", default="", help="Its topic, as in the minutes' table.")
@click.argument("text")
@json_option
@click.pass_obj
def actions_add(obj: Ctx, group_id: str, owners: tuple[str, ...], due: str | None,
                meeting: str, topic: str, text: str, as_json: bool) -> None:
    """Record an action."""
    from datetime import date

    from bot import actions, timeutil

    config = obj.config()
    group = config.group(_group(config, group_id) or group_id)
    now = timeutil.utcnow()
    try:
        when = date.fromisoformat(due) if due else actions.default_due(group, now)
    except ValueError:
        raise _usage_error(f"{due!r} is not a date; write it like 2027-05-01") from None
    if meeting and meeting not in {m.id for m in group.meetings}:
        raise _usage_error(f"no meeting {meeting!r} in {group.id}")
    values = {"group_id": group.id, "meeting_id": meeting, "topic": topic, "text": text,
              "owners": actions.owners_of(group, owners),
              "due": actions.check_due(when, now, group)}
    store = obj.store(config)
    new_id = store.add_action(values, os.environ.get("USER", "admin"), "cli", now)
    if as_json:
        _json(_action_row(actions.find(store, new_id)))
    else:
        click.echo(f"added #{new_id}, due {when}")


def _change(obj: Ctx, action_id: int, command: str, as_json: bool, **kw: Any) -> None:
    from bot import actions, timeutil

    config = obj.config()
    store = obj.store(config)
    action = actions.find(store, action_id)
    said = actions.apply(store, config.group(action.group), action, command,
                         who=os.environ.get("USER", "admin"), via="cli",
                         now=timeutil.utcnow(), **kw)
    if as_json:
        _json(_action_row(actions.find(store, action_id)))
    else:
        click.echo(said)


@actions_cli.command("export")
@group_option
@click.pass_obj
def actions_export(obj: Ctx, group_id: str | None) -> None:
    """Print the action log as CSV (open it in Excel; `import` reads it back)."""
    from bot import actions

    config = obj.config()
    click.echo(actions.to_csv(obj.store(config).actions(_group(config, group_id))), nl=False)


@actions_cli.command("import")
@click.argument("path", metavar="FILE", type=click.Path(dir_okay=False, exists=True))
@click.pass_obj
def actions_import(obj: Ctx, path: str) -> None:
    """Add (no id) or update (with an id) actions from a CSV; every bad row is listed and
    nothing is imported until all are right."""
    from pathlib import Path

    from bot import actions, timeutil

    config = obj.config()
    store = obj.store(config)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise _usage_error(f"{path} is not UTF-8: save it from Excel as 'CSV UTF-8'") from None
    rows = actions.from_csv(text, path, {g.id: g for g in config.groups},
                            {a.id: a for a in store.actions()})
    added, updated = store.import_actions(rows, os.environ.get("USER", "admin"),
                                          f"csv {Path(path).name}", timeutil.utcnow())
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
    from datetime import date

    try:
        when = date.fromisoformat(due)
    except ValueError:
        raise _usage_error(f"{due!r} is not a date; write it like 2027-05-01") from None
    _change(obj, action_id, "NEW DATE", as_json, new_date=when)


@actions_cli.command("drop")
@click.argument("action_id", metavar="ID", type=int)
@json_option
@click.pass_obj
def actions_drop(obj: Ctx, action_id: int, as_json: bool) -> None:
    """Drop action ID (no longer needed; its chasers stop)."""
    _change(obj, action_id, "DROP", as_json)


@cli.group("minutes")
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
    (.docx, .md or .txt); names are matched to the roster and every doubt reported."""
    from pathlib import Path

    from bot import actions, minutes, timeutil

    config = obj.config()
    group = _meeting_group(config, meeting, group_id)
    store = obj.store(config)
    now = timeutil.utcnow()
    items = minutes.read(Path(path))

    def choose(item: minutes.Item, found: minutes.Match) -> minutes.Match:
        if yes or as_json:
            return found
        options = found.candidates or list(group.members)
        click.echo(f"line {item.line}: who is {item.owner_text!r}? ({item.text})")
        for n, p in enumerate(options, 1):
            click.echo(f"  {n}. {p.name} <{p.email}>")
        pick = click.prompt("number (0 to skip)", type=click.IntRange(0, len(options)),
                            default=0)
        return minutes.Match((options[pick - 1].email,), f"{item.owner_text!r} → "
                             f"{options[pick - 1].name} (chosen)") if pick else found

    plan = minutes.plan_import(group, meeting, items, due=actions.default_due(group, now),
                               seen=store.sources(), choose=choose)
    following = [m for m in group.meetings if m.start > next(
        x.start for x in group.meetings if x.id == meeting) and not m.cancelled]
    proposed = [p for p in minutes.next_agenda(Path(path))
                if following and (group.id, following[0].id, f"minutes:{meeting}", p)
                not in set(store.proposals())]
    for item in proposed:
        store.propose(group.id, following[0].id, f"minutes:{meeting}", item, now)
    ids = store.import_minutes(plan.actions, plan.nudges, os.environ.get("USER", "admin"),
                               f"minutes {Path(path).name}", now)
    unresolved: list[dict[str, Any]] = [
        {"line": i.line, "owner": i.owner_text, "text": i.text,
         "candidates": [p.email for p in m.candidates]} for i, m in plan.unresolved]
    if as_json:
        _json({"actions": ids, "nudges": len(plan.nudges), "already": plan.already,
               "notes": plan.notes, "unresolved": unresolved, "next_agenda": proposed})
        return
    click.echo(f"imported {len(ids)} action(s) and {len(plan.nudges)} nudge(s) for "
               f"{group.id}/{meeting}" + (f"; {plan.already} already imported"
                                         if plan.already else ""))
    for item in proposed:
        click.echo(f"  for the agenda of {following[0].id}: {item}")
    for note in plan.notes:
        click.echo(f"  matched {note}")
    for u in unresolved:
        who = f" (could be {', '.join(u['candidates'])})" if u["candidates"] else ""
        click.echo(f"  NOT imported, line {u['line']}: who is {u['owner']!r}?{who} — add it "
                   "with `clerk actions add`")


@minutes_cli.command("send")
@click.argument("path", metavar="FILE", type=click.Path(dir_okay=False, exists=True))
@click.option("--meeting", "meeting", metavar="ID", required=True,
              help="The meeting the minutes are of.")
@group_option
@click.pass_obj
def minutes_send(obj: Ctx, path: str, meeting: str, group_id: str | None) -> None:
    """Circulate minutes FILE to every member (held for approval first, unless the group
    says otherwise), with the website link and, for newcomers, the joining instructions."""
    import shutil
    from pathlib import Path

    from bot.config import MINUTES_FOLDER, MINUTES_TYPES

    config = obj.config()
    group = _meeting_group(config, meeting, group_id)
    source = Path(path)
    if source.suffix.lower() not in MINUTES_TYPES:
        raise _usage_error(f"{source.name}: minutes go as {', '.join(MINUTES_TYPES)}")
    target = group.folder / MINUTES_FOLDER / f"{meeting}{source.suffix.lower()}"
    target.parent.mkdir(exist_ok=True)
    if source.resolve() != target.resolve():
        for old in target.parent.glob(f"{meeting}.*"):
            if old.resolve() != source.resolve():
                old.unlink()  # a corrected file replaces the one before
        shutil.copyfile(source, target)
    store = obj.store(config)
    if any(r.state in ("sending", "sent") for r in store.rows(group=group.id, states=None)
           if r.kind == "minutes" and r.meeting_id == meeting):
        click.echo(f"the minutes of {meeting} went out already; members who have them are "
                   "not sent the correction (newcomers get it)")
        return
    how = (f"held for approval: `clerk approve {group.id}/{meeting}/minutes/` releases them"
           + ("; the chair is asked to approve them by replying APPROVE"
              if group.minutes_approval == "chair" else "")
           if group.minutes_approval != "none" else "they go at the next tick")
    click.echo(f"minutes of {meeting} saved as {target}; {how}")


def _meeting_group(config: Config, meeting: str, group_id: str | None) -> Any:
    groups = [g for g in config.groups if (group_id is None or g.id == group_id)
              and meeting in {m.id for m in g.meetings}]
    if len(groups) != 1:
        where = f"group {group_id}" if group_id else "any group"
        raise _usage_error(f"meeting {meeting!r} is not in {where}" if not groups else
                           f"meeting {meeting!r} is in several groups; add --group")
    return groups[0]


@cli.group("nudge")
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
    """Record a nudge; it goes on the agenda of the first meeting inside its window."""
    import re
    from datetime import date

    from bot import context, minutes, timeutil
    from bot.model import Nudge

    config = obj.config()
    group = config.group(_group(config, group_id) or group_id)
    m = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*m(onths?)?\s*", window)
    if not m or int(m.group(1)) > int(m.group(2)):
        raise _usage_error(f"{window!r} is not a window; write it like 6-9m")
    now = timeutil.utcnow()
    try:
        start_day = date.fromisoformat(since) if since else now.astimezone(
            timeutil.zone(group.zone)).date()
    except ValueError:
        raise _usage_error(f"{since!r} is not a date; write it like 2027-05-01") from None
    if meeting and meeting not in {x.id for x in group.meetings}:
        raise _usage_error(f"no meeting {meeting!r} in {group.id}")
    start, end = minutes.nudge_window(start_day, (int(m.group(1)), int(m.group(2))))
    values = {"group_id": group.id, "meeting_id": meeting, "text": text,
              "window_start": start, "window_end": end, "source": "cli"}
    new_id = obj.store(config).add_nudge(values, now)
    target = context.nudge_meeting(group, Nudge(new_id, group.id, meeting, text, start, end))
    click.echo(f"added nudge #{new_id}: {start} to {end}; " + (
        f"on the agenda of {target.id}" if target else
        "warning: no meeting falls in that window; the chair is told when it opens"))


@nudge_cli.command("list")
@group_option
@json_option
@click.pass_obj
def nudge_list(obj: Ctx, group_id: str | None, as_json: bool) -> None:
    """The nudges and the meeting each one lands on."""
    from bot import context
    from bot.model import Nudge

    config = obj.config()
    rows = []
    for n in obj.store(config).nudges(_group(config, group_id)):
        group = config.group(n.group_id)
        nudge = Nudge(n.id, n.group_id, n.meeting_id, n.text, n.window_start, n.window_end)
        target = context.nudge_meeting(group, nudge)
        rows.append({"id": n.id, "group": n.group_id, "text": n.text, "from": n.meeting_id,
                     "window_start": n.window_start.isoformat(),
                     "window_end": n.window_end.isoformat(),
                     "meeting": target.id if target else None})
    if as_json:
        _json(rows)
        return
    for r in rows:
        click.echo(f"#{r['id']} {r['window_start']}..{r['window_end']} {r['group']}: "
                   f"{r['text']} -> {r['meeting'] or 'no meeting in the window'}")


@cli.group("submissions")
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
    from bot import timeutil

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
                                     "nil" if nil else "submitted", timeutil.utcnow(),
                                     source="cli")
    click.echo(f"{organisation}: {'nil return' if nil else 'submitted'} for {meeting}")


@cli.command()
@click.argument("keys", nargs=-1, required=True)
@click.pass_obj
def retry(obj: Ctx, keys: tuple[str, ...]) -> None:
    """Send failed or parked messages again (KEY, or a key prefix ending in "/")."""
    from bot import timeutil

    _move(obj, keys, ("failed", "parked"), "retry", "retry", "queued again",
          next_attempt_at=timeutil.utcnow(), first_failed_at=None, notified_at=None)


@cli.command()
@click.argument("folder", type=click.Path())
def init(folder: str) -> None:
    """Create FOLDER: a commented starting config for a new group, from the example."""
    from pathlib import Path

    from bot.scaffold import init_group

    init_group(Path(folder))
    click.echo(f"created {folder}: edit group.toml and roster.csv, then run `clerk check`")


@cli.command()
@click.option("--from", "since", metavar="DATE", help="Start here (default: now or go-live).")
@click.option("--until", metavar="DATE", help="End here (default: a year after the start).")
@click.option("--out", type=click.Path(file_okay=False),
              help="Write the simulated mail to this Maildir (default: a scratch folder).")
@json_option
@click.pass_obj
def simulate(obj: Ctx, since: str | None, until: str | None, out: str | None,
             as_json: bool) -> None:
    """Run a scratch copy of the config and state through simulated time."""
    from collections import Counter
    from datetime import timedelta
    from pathlib import Path

    from bot.simulate import simulate as run_simulation

    config = obj.config()
    start = _now(since, config) if since else max(
        [_now(None)] + [g.go_live for g in config.groups])
    end = _now(until, config) if until else start + timedelta(days=365)
    timeline, outbox = run_simulation(obj.folder, obj.state or config.settings.state, start,
                                      end, Path(out) if out else None)
    if as_json:
        _json(timeline)
        return
    for e in timeline:
        who = e["recipients"][0] if len(e["recipients"]) == 1 else \
            f"{len(e['recipients'])} recipients"
        click.echo(f"{e['at'][:16]}  {e['state']:<12} {e['kind']:<11} "
                   f"{e['group']}/{e['meeting']}  {who}: {e['subject']}")
    total = Counter(e["state"] for e in timeline for _ in e["recipients"])
    counts = ", ".join(f"{k} {v}" for k, v in total.items())
    click.echo(f"{sum(total.values())} message(s) ({counts}); mail in {outbox}")


def main() -> None:
    """Entry point of the ``clerk`` command."""
    cli(prog_name="clerk")


if __name__ == "__main__":
    main()
