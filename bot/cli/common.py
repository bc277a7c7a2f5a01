"""What every `clerk` command shares: the context (config folder, state URL), argument
parsing helpers and the common options. Nothing heavy is imported here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import date, datetime
    from pathlib import Path

    from bot.domain.model import Config, Settings
    from bot.engine.executor import Executor
    from bot.engine.store import Store


KIND = 13  # the width of a message's kind in the tables the commands print ("pack_preview")


class Ctx:
    """What every command shares: the config folder, the state URL override and the time
    the command acts at (``clerk --now``; the real clock by default)."""

    def __init__(self, folder: str, state: str | None, now: str | None = None) -> None:
        from pathlib import Path

        self.folder: Path = Path(folder)
        self.state = state
        self.now_text = now

    def now(self, config: Config | None, override: str | None = None) -> datetime:
        """The instant this command acts at: the command's own ``--now``, else the global
        ``clerk --now``, else the real clock. A time without an offset is read in the first
        group's zone."""
        return _now(override or self.now_text, config)

    def config(self) -> Config:
        from bot import config

        return config.load(self.folder)

    def store(self, config: Config | Settings, *, migrate: bool = True) -> Store:
        """The state store, its schema brought up to date (unless ``migrate`` is false). The
        settings alone do: ``clerk status`` opens the store of a config that does not load."""
        from bot.domain.model import Settings
        from bot.engine.store import Store

        s = config if isinstance(config, Settings) else config.settings
        store = Store(self.state or s.state, lease=s.lease, lock_timeout=s.lock_timeout,
                      statement_timeout=s.statement_timeout)
        context = click.get_current_context(silent=True)
        if context is not None:  # connections closed when the command ends
            context.call_on_close(store.dispose)
        if migrate:
            store.migrate()
        return store

    def executor(self, config: Config) -> Executor:
        from bot import transports
        from bot.engine.executor import Executor

        s = config.settings
        return Executor(config, self.store(config),
                        transports.load(s.transport, s.transport_options),
                        mailbox=transports.load_mailbox(s.mailbox, s.mailbox_options))


def _now(value: str | None, config: Config | None = None) -> datetime:
    from bot.domain import timeutil

    if value is None:
        return timeutil.utcnow()
    tz = timeutil.zone(config.groups[0].zone) if config and config.groups else None
    try:
        return timeutil.parse_instant(value, tz)
    except ValueError as exc:
        raise _usage_error(str(exc)) from None


def _when(iso: str | None, config: Config | None = None, group: str | None = None) -> str:
    """An instant as the admin reads it: local to its group's zone (the first group's, if
    none is named), with the zone's abbreviation — never UTC without saying so."""
    from datetime import datetime

    from bot.domain import timeutil

    if not iso:
        return "-"
    at = datetime.fromisoformat(iso)
    groups = config.groups if config else ()
    zone = next((g.zone for g in groups if g.id == group), groups[0].zone if groups else "UTC")
    return f"{at.astimezone(timeutil.zone(zone)):%Y-%m-%d %H:%M %Z}"


def _group(config: Config, group: str | None) -> str | None:
    if group is not None and group not in {g.id for g in config.groups}:
        known = ", ".join(g.id for g in config.groups)
        raise _usage_error(f"unknown group {group!r}; groups in {config.folder}: {known}")
    return group


def _usage_error(message: str) -> Exception:
    from bot.domain.errors import UsageError

    return UsageError(message)


def _json(value: Any) -> None:
    import json

    click.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def _json_array(items: Iterable[Any]) -> None:
    """A JSON array written an item at a time, as :func:`_json` would write the list whole:
    a reader sees the same text, and a long ledger is never held in memory."""
    import json

    first = True
    for item in items:
        text = json.dumps(item, indent=2, ensure_ascii=False, default=str)
        click.echo(("[\n" if first else ",\n") + "  " + text.replace("\n", "\n  "), nl=False)
        first = False
    click.echo("[]" if first else "\n]")


group_option = click.option("--group", "-g", "group_id", metavar="ID",
                            help="Only this group (its id in group.toml).")
json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print JSON (a stable contract; see docs/commands.md).")
now_option = click.option("--now", metavar="ISO-8601",
                          help="Act as if it were this time (default: the real clock).")


def _meeting_group(config: Config, meeting: str, group_id: str | None) -> Any:
    groups = [g for g in config.groups if (group_id is None or g.id == group_id)
              and meeting in {m.id for m in g.meetings}]
    if len(groups) != 1:
        where = f"group {group_id}" if group_id else "any group"
        raise _usage_error(f"meeting {meeting!r} is not in {where}" if not groups else
                           f"meeting {meeting!r} is in several groups; add --group")
    return groups[0]


def _date(text: str) -> date:
    """A date given on the command line, like 2027-05-01."""
    from datetime import date

    try:
        return date.fromisoformat(text)
    except ValueError:
        raise _usage_error(f"{text!r} is not a date; write it like 2027-05-01") from None


def _meeting_of(group: Any, meeting: str) -> str:
    """``meeting`` if it is one of the group's meetings (or empty)."""
    if meeting and meeting not in {m.id for m in group.meetings}:
        raise _usage_error(f"no meeting {meeting!r} in {group.id}")
    return meeting
