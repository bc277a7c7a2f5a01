"""`clerk inbox`: message files read as mail from the mailbox (replies saved from Outlook on
the web as .eml, say). Registered on the main command by bot/cli/main.py."""

from __future__ import annotations

from typing import Any

import click

from bot.cli.common import Ctx, _json, json_option


@click.group("inbox")
def inbox_cli() -> None:
    """Replies that came as files: read them as if from the mailbox."""


@inbox_cli.command("read")
@click.argument("paths", metavar="FILE...", nargs=-1, required=True,
                type=click.Path(dir_okay=False, exists=True))
@json_option
@click.pass_obj
def inbox_read(obj: Ctx, paths: tuple[str, ...], as_json: bool) -> None:
    """Apply each message FILE (.eml) exactly as mail read from the mailbox would be; a
    sender counts only when the file carries your mail server's Authentication-Results
    ([mailbox] authserv_id). The files are left where they are."""
    from pathlib import Path

    from bot.engine.inbox import Inbox, read
    from bot.listen import authn
    from bot.listen.replies import HEAD
    from bot.transports.base import Oversized

    config = obj.config()
    store = obj.store(config)
    now = obj.now(config)
    inbox = Inbox(config, store)
    # a file is never vouched for by a mailbox, nor by Microsoft's stamp: only our server's
    trust = authn.trust_of(config.settings.mailbox_options, "file")
    found: list[dict[str, Any]] = []
    for path in paths:
        size = Path(path).stat().st_size
        if size > config.settings.max_message:  # not read whole: its header, for the log
            with open(path, "rb") as stream:
                raw: bytes | Oversized = Oversized(size, stream.read(HEAD))
        else:
            raw = Path(path).read_bytes()
        outcome = read(inbox, raw, trust, now)
        found.append({"file": path, "applied": outcome.handled, "detail": outcome.detail})
    if as_json:
        _json(found)
        return
    for f in found:
        click.echo(f"{f['file']}: {'applied' if f['applied'] else 'NOT applied'}: "
                   f"{f['detail']}")
