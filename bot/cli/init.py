"""`clerk init`: a new group of its own. Registered on the main command by bot/cli/main.py."""

from __future__ import annotations

import sys

import click

from bot.cli.common import Ctx, _usage_error


@click.command("init")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--name", help="The group's name, as members read it.")
@click.option("--id", "group_id", metavar="ID",
              help="Its stable id (default: made from FOLDER's name).")
@click.option("--admin", metavar="'NAME <EMAIL>'",
              help="The admin: told when minutes are due and when something fails.")
@click.option("--chair", metavar="'NAME <EMAIL>'", help="The chair: the roster's first line.")
@click.option("--organiser", metavar="EMAIL",
              help="The mailbox clerk sends from; replies come here.")
@click.option("--zone", default="Europe/London", show_default=True,
              help="The IANA time zone of the meetings.")
@click.option("--first-meeting", metavar="DATE", help="The next meeting, local time "
              "(2027-03-11T14:00).")
@click.option("--meetings", "count", type=int, default=4, show_default=True,
              help="How many meetings to write.")
@click.option("--every", type=int, default=3, show_default=True, metavar="MONTHS",
              help="Months between them.")
@click.pass_obj
def init(obj: Ctx, folder: str, name: str | None, group_id: str | None, admin: str | None,
         chair: str | None, organiser: str | None, zone: str, first_meeting: str | None,
         count: int, every: int) -> None:
    """Create FOLDER: a new group of its own (asks for what the options do not give)."""
    from datetime import datetime
    from pathlib import Path

    from bot.config import scaffold
    from bot.domain import timeutil

    path = Path(folder)
    asked = {"name": name, "admin": admin, "chair": chair, "organiser": organiser,
             "first_meeting": first_meeting}
    prompts = {"name": "The group's name", "admin": "The admin (Name <email>)",
               "chair": "The chair (Name <email>)",
               "organiser": "The mailbox clerk sends from (email)",
               "first_meeting": "The next meeting (2027-03-11T14:00, local time)"}
    missing = [k for k, v in asked.items() if not v]
    if missing and not sys.stdin.isatty():
        raise _usage_error("clerk init needs " + ", ".join(
            f"--{k.replace('_', '-')}" for k in missing) + " (or run it in a terminal to "
            "be asked)")
    for key in missing:
        asked[key] = click.prompt(prompts[key]).strip()
    try:
        first = datetime.fromisoformat(str(asked["first_meeting"]).replace(" ", "T"))
    except ValueError:
        raise _usage_error(f"--first-meeting {asked['first_meeting']!r}: write it like "
                           "2027-03-11T14:00") from None
    if first.tzinfo is not None:
        raise _usage_error("--first-meeting is a local time in --zone: leave out the offset")
    try:
        today = obj.now(None).astimezone(timeutil.zone(zone)).date()
    except ValueError as exc:
        raise _usage_error(f"--zone {zone!r}: {exc}") from None
    new = scaffold.NewGroup(
        name=str(asked["name"]), group_id=group_id or scaffold.group_id_of(path),
        admin=scaffold.person(str(asked["admin"]), "--admin"),
        chair=scaffold.person(str(asked["chair"]), "--chair"),
        organiser=str(asked["organiser"]), zone=zone, first=first, count=count, every=every,
        go_live=today)
    for written in scaffold.init_group(path, new):
        click.echo(f"wrote {written}")
    click.echo(f"next: add the members to {path / 'roster.csv'}, then `clerk check` and "
               "`clerk plan`")
