"""``clerk.toml``: the install's settings, its ``[transport]`` and ``[mailbox]``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.config.files import (
    SETTINGS_FILE,
    read_toml,
)
from bot.domain.errors import Problem
from bot.domain.model import (
    Settings,
)
from bot.domain.options import (
    Option,
    Reader,
    _choice,
    _duration,
    _float,
    _int,
    _str,
)

SETTINGS_OPTIONS = {
    "state": Option(Settings.state, _str, "SQLAlchemy URL of the state store"),
    "transport": Option(Settings.transport, _str, "how mail leaves: outbox (a Maildir), "
                        "smtp, exchange (Exchange Server) or graph (Microsoft 365)"),
    "interval": Option(Settings.interval, _int, "seconds between the worker's ticks"),
    "pause": Option(Settings.pause, _float, "seconds to wait between two messages (two "
                    "requests' batches for exchange and graph)"),
    "retry_base": Option(Settings.retry_base, _int, "seconds before the first retry"),
    "retry_cap": Option(Settings.retry_cap, _int, "longest wait between retries, seconds"),
    "park_after": Option(Settings.park_after, _duration,
                         "a message failing this long is parked and the admin told"),
    "mailbox": Option("", _choice("", "imap", "exchange", "graph"),
                      "where replies are read: imap, exchange, graph (or empty)"),
    "rsvp_every": Option(Settings.rsvp_every, _duration,
                         "exchange, graph: how often attendees' answers are read"),
    "papers": Option(Settings.papers, _str, "folder for the papers members send"),
    "max_attachment": Option(Settings.max_attachment, _int,
                             "largest attachment kept, in bytes"),
    "zip_papers_above": Option(Settings.zip_papers_above, _int,
                               "the pack's papers go as one zip when larger, in bytes"),
}


def load_settings(folder: Path, problems: list[Problem]) -> Settings:
    path = folder / SETTINGS_FILE
    if not path.exists():
        return Settings()
    read = read_toml(path, problems)
    if read is None:
        return Settings()
    data, text = read
    r = Reader(path, text)
    clerk = r.section(data.get("clerk", {}), SETTINGS_OPTIONS, "clerk", table="clerk")
    for name in data:
        if name not in ("clerk", "transport", "mailbox"):
            r.problem(name, "unknown section", hint="sections: [clerk], [transport], [mailbox]")
    transport = _transport_options(r, clerk["transport"], data.get("transport", {}))
    mailbox: dict[str, Any] = {}
    if clerk.get("mailbox") in ("exchange", "graph") and "mailbox" not in data:
        if clerk["mailbox"] != clerk["transport"]:  # the transport's own account, or say so
            r.problem("clerk.mailbox", f"mailbox {clerk['mailbox']!r} needs a [mailbox] "
                      "section", table="clerk", name="mailbox",
                      hint=f"add [mailbox], or set transport = {clerk['mailbox']!r} to read "
                      "the mailbox clerk sends from")
        mailbox = transport
    elif clerk.get("mailbox"):
        mailbox = _transport_options(r, clerk["mailbox"], data.get("mailbox", {}), "mailbox")
    problems.extend(r.problems)
    return Settings(
        state=clerk["state"], transport=clerk["transport"], transport_options=transport,
        interval=max(1, clerk["interval"]), pause=clerk["pause"],
        retry_base=clerk["retry_base"], retry_cap=clerk["retry_cap"],
        park_after=clerk["park_after"], mailbox=clerk["mailbox"], mailbox_options=mailbox,
        rsvp_every=clerk["rsvp_every"],
        papers=clerk["papers"], max_attachment=clerk["max_attachment"],
        zip_papers_above=clerk["zip_papers_above"],
    )


def _transport_options(r: Reader, name: str, raw: Any,
                       section: str = "transport") -> dict[str, Any]:
    """``[transport]`` (or ``[mailbox]``) checked against the chosen one's declarations."""
    from bot import transports
    from bot.transports.credentials import forbidden

    registry = transports.REGISTRY if section == "transport" else transports.MAILBOXES
    declared = transports.options(name, registry)
    if declared is None:
        known = ", ".join(sorted(registry))
        r.problem(f"clerk.{section}", f"unknown {section} {name!r}", table="clerk",
                  name=section, hint=f"choose one of: {known}")
        return {}
    if not isinstance(raw, dict):
        r.problem(section, "must be a table", table=section)
        return {}
    bad = forbidden(section, raw)
    for key, hint in bad:
        r.problem(key, "a credential in a config file", table=section,
                  name=key.split(".")[1], hint=hint)
    clean = {k: v for k, v in raw.items() if f"{section}.{k}" not in dict(bad)}
    return r.section(clean, declared, section, table=section)
