"""Messages one at a time, by ledger key (or a key prefix ending in "/"): see one as it will be
sent, approve or hold it, send a failed one again.

As in bot/cli/main.py, everything beyond click is imported inside the command that needs it.
"""

from __future__ import annotations

import os
from typing import Any

import click

from bot.cli.common import Ctx, _group, _usage_error, now_option


@click.command()
@click.argument("key")
@now_option
@click.option("--raw", is_flag=True, help="The message's bytes as they are sent.")
@click.pass_obj
def preview(obj: Ctx, key: str, now: str | None, raw: bool) -> None:
    """Show the rendered message KEY (headers and parts) without sending it."""
    from bot.engine import snapshot
    from bot.plan import planner
    from bot.render.email import build

    config = obj.config()
    store = obj.store(config)
    at = obj.now(config, now)
    desired = planner.plan(config, snapshot.state(store), at).by_key().get(key)
    if desired is None:
        row = store.row(key)
        why = f"it is in the ledger as {row.state}" if row else "no such key"
        raise _usage_error(f"{key!r} is not in the current plan ({why}); "
                         "`clerk plan --json` lists the keys")
    message = build(config.group(desired.group), desired, at, secret=store.secret())
    if raw:
        click.echo(message.data.replace(b"\r\n", b"\n").decode(errors="replace"))
        return
    click.echo(_readable(message.message), nl=False)


def _readable(msg: Any) -> str:
    """A message as its reader sees it: the headers decoded, the plain text, the calendar
    (unfolded) and the names of the files attached — not quoted-printable source."""
    out = [f"{name}: {msg[name]}" for name in ("From", "To", "Cc", "Subject", "Date")
           if msg[name] is not None]
    body = msg.get_body(("plain",))
    out += ["", body.get_content().rstrip("\n") if body is not None else "(no text)"]
    for part in msg.walk():
        if part.get_content_type() == "text/calendar":
            out += ["", "--- calendar ---",
                    part.get_content().replace("\r\n ", "").replace("\r\n", "\n").rstrip()]
    files = [f"{p.get_filename()} ({p.get_content_type()})" for p in msg.iter_attachments()]
    if files:
        out += ["", "Attached: " + ", ".join(files)]
    return "\n".join(out) + "\n"


def _move(obj: Ctx, keys: tuple[str, ...], from_states: tuple[str, ...], to_state: str,
          verb: str, done: str, *, retry: bool = False) -> None:
    config = obj.config()
    now = obj.now(config)
    values: dict[str, Any] = dict(next_attempt_at=now, first_failed_at=None,
                                  notified_at=None) if retry else {}
    moved = obj.store(config).set_state(keys, from_states, to_state, now,
                                        f"{done} by {os.environ.get('USER', 'the admin')}",
                                        **values)
    if not moved:
        raise _usage_error(f"nothing to {verb}: no row in state "
                         f"{' or '.join(from_states)} matches {', '.join(keys)}; "
                         "`clerk plan` shows the keys and states")
    for key in moved:
        click.echo(f"{done} {key}")


@click.command()
@click.argument("keys", nargs=-1)
@click.option("--guard", "guarded", metavar="GROUP",
              help="Also release what the guard holds in GROUP (an edit that would cancel "
                   "or invite many members at once).")
@click.pass_obj
def approve(obj: Ctx, keys: tuple[str, ...], guarded: str | None) -> None:
    """Release held messages (KEY, or a key prefix ending in "/") to be sent when due."""
    if guarded:
        from bot.plan.guard import HELD

        config = obj.config()
        keys += tuple(r.key for r in obj.store(config).rows(
            group=_group(config, guarded), states=("held",)) if r.reason.startswith(HELD))
        if not keys:
            raise _usage_error(f"the guard holds nothing in {guarded}")
    if not keys:
        raise _usage_error("give the KEYs to approve (or --guard GROUP); `clerk plan` lists "
                           "what is held")
    _move(obj, keys, ("held",), "planned", "approve", "approved")


@click.command()
@click.argument("keys", nargs=-1, required=True)
@click.pass_obj
def hold(obj: Ctx, keys: tuple[str, ...]) -> None:
    """Hold messages not yet sent (KEY, or a key prefix ending in "/") until approved."""
    _move(obj, keys, ("planned", "retry"), "held", "hold", "held")


@click.command()
@click.argument("keys", nargs=-1, required=True)
@click.pass_obj
def retry(obj: Ctx, keys: tuple[str, ...]) -> None:
    """Send failed or parked messages again (KEY, or a key prefix ending in "/")."""
    _move(obj, keys, ("failed", "parked"), "retry", "retry", "queued again", retry=True)

