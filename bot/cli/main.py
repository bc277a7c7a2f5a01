"""The ``clerk`` command: parse, call one function, format.

Everything beyond click is imported inside the command that needs it, so ``clerk --help``
costs little more than starting Python and importing click (see bench/help_time.py).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

import bot
from bot.cli.common import (
    KIND,
    Ctx,
    _group,
    _json,
    _json_array,
    _now,
    _usage_error,
    _when,
    group_option,
    json_option,
    now_option,
)
from bot.cli.inbox import inbox_cli
from bot.cli.init import init
from bot.cli.messages import approve, hold, preview, retry
from bot.cli.records import actions_cli, minutes_cli, nudge_cli, submissions_cli


class ClerkGroup(click.Group):
    """The one place that turns a user error into a message and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        from bot.domain.errors import ClerkError

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
@click.option("--now", metavar="TIME",
              help="Act as if it were TIME (ISO 8601, e.g. 2027-03-11T09:00; without an "
                   "offset, in the first group's zone): every command, and `run` starts its "
                   "clock there. For rehearsing a cycle on a scratch state.")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(package_name="clerkbot")
@click.pass_context
def cli(ctx: click.Context, folder: str, state: str | None, now: str | None,
        verbose: int) -> None:
    """clerk: the clerk of a recurring group.

    It plans every message of a group (invitations, requests for information, chasers,
    agenda packs, reminders) from the config folder, records each in a ledger, and sends
    what is due.
    """
    import logging

    # what clerk writes (the state, the outbox, papers, the quarantine) is its user's alone;
    # bot/engine/store.py and bot/transports/files.py also give those modes explicitly
    os.umask(0o077)
    bot.tune_collector()
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s")
    ctx.obj = Ctx(folder, state, now)


@cli.command()
@click.pass_obj
def check(obj: Ctx) -> None:
    """Check settings, rosters and templates; list every problem (exit 2 on any)."""
    config = obj.config()
    for w in config.warnings:
        click.echo(str(w))
    for trip in _held_by_guard(obj, config):
        click.echo(f"warning: {trip.group}: {trip.why}; clerk holds {len(trip.keys)} "
                   f"message(s) until `clerk approve --guard {trip.group}`")
    for g in config.groups:
        click.echo(f"{g.id}: {len(g.members)} members, "
                   f"{len({m.organisation for m in g.members})} organisations, "
                   f"{len(g.meetings)} meetings, {len(g.rules)} rules")
    click.echo("config OK")


def _held_by_guard(obj: Ctx, config: Any) -> list[Any]:
    """What the blast-radius guard would hold, planned against the state as it is (nothing
    when there is no state yet: a new install has nothing to compare with)."""
    from pathlib import Path

    url = obj.state or config.settings.state
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        return []
    from bot.engine import snapshot
    from bot.plan import planner

    store = obj.store(config)
    return list(planner.plan(config, snapshot.state(store), obj.now(config)).held)


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
    from bot.cli import report

    config = obj.config()
    rows = report.plan_rows(config, obj.store(config), obj.now(config, now),
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
        click.echo(f"{_when(send_at, config, g)}  {state:<12} {items[0]['kind']:<{KIND}} "
                   f"{g}/{m}  {who}")
        click.echo(f"{'':22}{items[0]['subject']}")
        click.echo(f"{'':22}rule {rule}: {items[0]['reason']}")
    click.echo(f"{len(rows)} message(s)")


@cli.command()
@now_option
@click.option("--dry-run", is_flag=True, help="Show what would be sent; change nothing.")
@json_option
@click.pass_obj
def tick(obj: Ctx, now: str | None, dry_run: bool, as_json: bool) -> None:
    """One reconcile pass: plan, record, send what is due, print a summary."""
    config = obj.config()
    at = obj.now(config, now)
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
    from bot.domain.timeutil import Clock
    from bot.engine.worker import Worker

    config = obj.config()  # refuses to start on a config with problems
    import logging

    logging.getLogger().setLevel(min(logging.getLogger().level, logging.INFO))
    clock = Clock(obj.now(config) if obj.now_text else None)
    Worker(obj.executor(config), obj.folder, clock).run()


def _broken_status(obj: Ctx, exc: Exception, as_json: bool) -> None:
    """``clerk status`` when the config does not load: what the worker made of it (it goes on
    with the last good one, and recorded since when), before the problems themselves."""
    from datetime import datetime

    from bot.config.settings import load_settings

    settings = load_settings(obj.folder, [])  # what of clerk.toml reads; defaults for the rest
    recorded = obj.store(settings).config_problems()
    since = recorded["since"] if recorded else None
    if as_json:
        _json({"config_problems": {"since": since, "problems": [
            str(p) for p in getattr(exc, "problems", [])]}})
        return
    click.echo("The config does not load: "
               + (f"a worker running since before the edit goes on with the last good one "
                  f"(it met these problems at "
                  f"{datetime.fromisoformat(since).isoformat(timespec='minutes')})" if since else
                  "a worker started now would refuse it; one already running goes on with "
                  "the last good one (it has not met these problems yet)")
               + ". Fix them (`clerk check` lists them too):")


@cli.command()
@now_option
@group_option
@json_option
@click.pass_obj
def status(obj: Ctx, now: str | None, group_id: str | None, as_json: bool) -> None:
    """Next meetings, what is due next, counts by state, failures."""
    from bot.cli import report
    from bot.domain.errors import ConfigError

    try:
        config = obj.config()
    except ConfigError as exc:
        _broken_status(obj, exc, as_json)
        raise
    data = report.status(config, obj.store(config), obj.now(config, now),
                         _group(config, group_id))
    if as_json:
        _json(data)
        return
    broken = data["config_problems"]
    if broken:
        from datetime import datetime

        since = datetime.fromisoformat(broken["since"]).isoformat(timespec="minutes")
        click.echo(f"The config has had problems since {since}: the worker goes on with the "
                   "last good one:")
        for p in broken["problems"]:
            click.echo(f"  {p}")
    click.echo("Next meetings:")
    for m in data["meetings"]:
        r = m["rsvp"]
        click.echo(f"  {_when(m['start'], config, m['group'])}  {m['group']}/{m['meeting']}  "
                   f"{m['title']}: "
                   f"{len(r['accepted'])} accepted, {len(r['tentative'])} tentative, "
                   f"{len(r['declined'])} apologies, {len(r['no_answer'])} no answer"
                   + (f", {len(r['stale'])} answered for an earlier time" if r["stale"]
                      else ""))
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
        click.echo(f"  {_when(n['send_at'], config, n['group'])}  {n['state']:<10} "
                   f"{n['kind']:<{KIND}} "
                   f"{n['group']}/{n['meeting']}  {n['messages']} message(s)")
    click.echo("Messages by state: " + (", ".join(f"{k} {v}" for k, v in
                                                  data["counts"].items()) or "none"))
    for b in data["bouncing"]:
        click.echo(f"Bouncing: {b} (fix it in the roster)")
    if data["unprocessed"]:
        click.echo(f"Unprocessed mail ({len(data['unprocessed'])}), in clerk/unprocessed:")
        for u in data["unprocessed"][-10:]:
            click.echo(f"  {_when(u['at'], config)}  {u['sender']}: {u['reason']}")
    if data["quarantined"]:
        click.echo(f"Papers kept back from the packs ({len(data['quarantined'])}), in "
                   f"{config.settings.quarantine} when kept:")
        for q in data["quarantined"][-10:]:
            click.echo(f"  {_when(q['at'], config, q['group'])}  {q['group']}/{q['meeting']}  "
                       f"{q['organisation']}: {q['file']}: {q['reason']}")
    if data["failures"]:
        click.echo("Failures:")
        for f in data["failures"]:
            click.echo(f"  {f['state']} {f['key']}: {f['error']}")


@cli.command()
@click.argument("key", required=False)
@group_option
@click.option("--state", "state", metavar="STATE", help="Only rows in this state.")
@click.option("--mail", "mail", is_flag=True,
              help="What clerk read by mail instead: who sent it, and what clerk did (or why "
                   "not).")
@json_option
@click.pass_obj
def log(obj: Ctx, key: str | None, group_id: str | None, state: str | None, mail: bool,
        as_json: bool) -> None:
    """The ledger: what went to whom, when and why (KEY: one row and its history)."""
    from bot.cli import report

    config = obj.config()
    if mail:
        read = report.mail_rows(obj.store(config))
        if as_json:
            _json_array(read)
            return
        for m in read:
            done = "done" if m["handled"] else "NOT DONE"
            click.echo(f"{_when(m['at'], config, None)}  {done:<8} {m['kind']:<10} "
                       f"{m['sender'] or '?':<36} {m['detail']}")
        return
    rows = report.log_rows(obj.store(config), group=_group(config, group_id), state=state,
                           key=key)
    if key:  # one row, or none: said before anything is written
        one = list(rows)
        if not one:
            raise _usage_error(f"no ledger row with key {key!r}; `clerk log` lists them")
        rows = iter(one)
    if as_json:
        _json_array(rows)
        return
    for r in rows:
        when = _when(r["sent_at"] or r["send_at"], config, r["group"])
        click.echo(f"{when}  {r['state']:<12} {r['kind']:<{KIND}} {r['recipient']:<36} "
                   f"{r['subject']}")
        if key:
            click.echo(f"  key {r['key']}\n  reason {r['reason']}\n  message-id "
                       f"{r['message_id']}")
            for h in r["history"]:
                click.echo(f"  {_when(h['at'], config, r['group'])}  {h['state']:<12} "
                           f"{h['detail']}")


for _command in (actions_cli, approve, hold, inbox_cli, init, minutes_cli, nudge_cli, preview,
                 retry, submissions_cli):
    cli.add_command(_command)


@cli.command()
@json_option
@click.pass_obj
def doctor(obj: Ctx, as_json: bool) -> None:
    """Check the state store, the transport and the mailbox (exit 1 on a fault)."""
    from bot import transports
    from bot.domain.errors import ClerkError
    from bot.engine import failures

    config = obj.config()
    s = config.settings
    parts: list[tuple[str, Any]] = [
        ("store", lambda: failures.doctor(obj.store(config, migrate=False))),
        ("transport", transports.load(s.transport, s.transport_options).doctor)]
    if s.mailbox:
        parts.append(("mailbox", transports.load_mailbox(s.mailbox, s.mailbox_options).doctor))
    found: list[dict[str, Any]] = []
    for part, checks_of in parts:
        try:
            checks = checks_of()
        except ClerkError as exc:  # a secret file clerk cannot read; a store it cannot open
            checks = [(False, f"{part} settings", str(exc))]
        found += [{"part": part, "ok": ok, "check": what, "fix": fix}
                  for ok, what, fix in checks]
    if as_json:
        _json(found)
    else:
        for c in found:
            click.echo(f"{'ok ' if c['ok'] else 'FAIL'} {c['part']}: {c['check']}"
                       + (f"\n     fix: {c['fix']}" if c["fix"] else ""))
    if not all(c["ok"] for c in found):
        sys.exit(1)


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

    from bot.engine.simulate import simulate as run_simulation

    config = obj.config()
    start = _now(since, config) if since else max(
        [obj.now(config)] + [g.go_live for g in config.groups])
    end = _now(until, config) if until else start + timedelta(days=365)
    timeline, outbox = run_simulation(obj.folder, obj.state or config.settings.state, start,
                                      end, Path(out) if out else None)
    if as_json:
        _json(timeline)
        return
    for e in timeline:
        who = e["recipients"][0] if len(e["recipients"]) == 1 else \
            f"{len(e['recipients'])} recipients"
        click.echo(f"{_when(e['at'], config, e['group'])}  {e['state']:<12} {e['kind']:<{KIND}} "
                   f"{e['group']}/{e['meeting']}  {who}: {e['subject']}")
    total = Counter(e["state"] for e in timeline for _ in e["recipients"])
    counts = ", ".join(f"{k} {v}" for k, v in total.items())
    click.echo(f"{sum(total.values())} message(s) ({counts}); mail in {outbox}")


def main() -> None:
    """Entry point of the ``clerk`` command."""
    cli(prog_name="clerk")


if __name__ == "__main__":
    main()
