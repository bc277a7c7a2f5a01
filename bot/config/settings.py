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
    _count,
    _duration,
    _float,
    _int,
    _size,
    _str,
)
from bot.listen import authn
from bot.listen.mime import WALK
from bot.transports import MAILBOXES

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
    "mailbox": Option("", _choice("", *MAILBOXES),
                      "where replies are read: imap, maildir, exchange, graph (or empty)"),
    "rsvp_every": Option(Settings.rsvp_every, _duration,
                         "exchange, graph: how often attendees' answers are read"),
    "papers": Option(Settings.papers, _str, "folder for the papers members send"),
    "max_attachment": Option(Settings.max_attachment, _size,
                             "largest attachment kept, in bytes (or \"10MB\")"),
    "zip_papers_above": Option(Settings.zip_papers_above, _int,
                               "the pack's papers go as one zip when larger, in bytes"),
    "quarantine": Option(Settings.quarantine, _str, "folder for attachments kept back from "
                         "the packs (not an allowed type, or over a limit), for the admin; "
                         "never inside papers"),
    "max_message": Option(Settings.max_message, _size, "a larger message is not fetched nor "
                          "read: it goes to the unprocessed folder (bytes, or \"25MB\")"),
    "max_parts": Option(Settings.max_parts, _count, "a message of more MIME parts is not "
                        f"read (at most {WALK})"),
    "max_attachments": Option(Settings.max_attachments, _count,
                              "attachments kept from one message; the rest are not"),
    "max_meeting_papers": Option(Settings.max_meeting_papers, _size,
                                 "one meeting's papers together, at most; more are "
                                 "quarantined (bytes, or \"50MB\")"),
    "lock_timeout": Option(Settings.lock_timeout, _float, "seconds clerk waits for a lock "
                           "another process holds on the state store; then the tick fails "
                           "with a message, and the next one tries again"),
    "statement_timeout": Option(Settings.statement_timeout, _float, "PostgreSQL: seconds one "
                                "statement may run before it is cancelled (0: no limit)"),
    "lease": Option(Settings.lease, _duration, "how long a message a worker on another host "
                    "claimed may stay in sending before this one takes it as in doubt (a "
                    "worker on the same host knows sooner); longer than any one send"),
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
    # a value with a problem is reported and its default used, so every problem is found
    clerk = {**{k: o.default for k, o in SETTINGS_OPTIONS.items()},
             **r.section(data.get("clerk", {}), SETTINGS_OPTIONS, "clerk", table="clerk")}
    for name in data:
        if name not in ("clerk", "transport", "mailbox"):
            r.problem(name, "unknown section", hint="sections: [clerk], [transport], [mailbox]")
    transport = _transport_options(r, clerk["transport"], data.get("transport", {}))
    mailbox: dict[str, Any] = {}
    raw = data.get("mailbox", {})
    only_trust = isinstance(raw, dict) and set(raw) <= set(authn.OPTIONS)
    if clerk.get("mailbox") in ("exchange", "graph") and only_trust:
        if clerk["mailbox"] != clerk["transport"]:  # the transport's own account, or say so
            r.problem("clerk.mailbox", f"mailbox {clerk['mailbox']!r} needs a [mailbox] "
                      "section", table="clerk", name="mailbox",
                      hint=f"add [mailbox], or set transport = {clerk['mailbox']!r} to read "
                      "the mailbox clerk sends from")
        # the mailbox clerk sends from, with how to tell who sent a reply
        mailbox = {**transport, **r.section(raw, authn.OPTIONS, "mailbox", table="mailbox")}
    elif clerk.get("mailbox"):
        mailbox = _transport_options(r, clerk["mailbox"], raw, "mailbox")
    elif only_trust:  # no mailbox, but message files read by hand (`clerk inbox read`)
        mailbox = r.section(raw, authn.OPTIONS, "mailbox", table="mailbox")
    elif "mailbox" in data:
        r.problem("mailbox", "a [mailbox] section, but no mailbox", table="mailbox",
                  hint='set mailbox = "imap" (or "maildir", "exchange", "graph") in [clerk]')
    if clerk.get("mailbox"):
        _trust_problems(r, clerk["mailbox"], mailbox)
    _limit_problems(r, clerk)
    problems.extend(r.problems)
    return Settings(
        state=clerk["state"], transport=clerk["transport"], transport_options=transport,
        interval=max(1, clerk["interval"]), pause=clerk["pause"],
        retry_base=clerk["retry_base"], retry_cap=clerk["retry_cap"],
        park_after=clerk["park_after"], mailbox=clerk["mailbox"], mailbox_options=mailbox,
        rsvp_every=clerk["rsvp_every"],
        papers=clerk["papers"], max_attachment=clerk["max_attachment"],
        zip_papers_above=clerk["zip_papers_above"], quarantine=clerk["quarantine"],
        max_message=clerk["max_message"], max_parts=clerk["max_parts"],
        max_attachments=clerk["max_attachments"],
        max_meeting_papers=clerk["max_meeting_papers"],
        lock_timeout=clerk["lock_timeout"], statement_timeout=clerk["statement_timeout"],
        lease=clerk["lease"],
    )


def _limit_problems(r: Reader, clerk: dict[str, Any]) -> None:
    """Limits that contradict each other, and a quarantine the packs could reach."""
    if clerk["max_parts"] > WALK:
        r.problem("clerk.max_parts", f"must be {WALK} or less", table="clerk",
                  name="max_parts", hint="a message of a few attachments has under 20 parts")
    if clerk["max_attachment"] > clerk["max_message"]:
        r.problem("clerk.max_attachment", "is larger than max_message: no message carrying "
                  "such an attachment is read", table="clerk", name="max_attachment",
                  warning=True, hint="raise max_message, or lower max_attachment")
    papers, quarantine = (Path(clerk[k]).expanduser().absolute()
                          for k in ("papers", "quarantine"))
    if papers == quarantine or papers in quarantine.parents or \
            quarantine in papers.parents:
        r.problem("clerk.quarantine", f"{clerk['quarantine']!r} overlaps the papers folder "
                  f"{clerk['papers']!r}: a quarantined file could reach an agenda pack",
                  table="clerk", name="quarantine",
                  hint='use a folder of its own, e.g. quarantine = "quarantine"')


def _transport_options(r: Reader, name: str, raw: Any,
                       section: str = "transport") -> dict[str, Any]:
    """``[transport]`` (or ``[mailbox]``) checked against the chosen one's declarations."""
    from bot import transports
    from bot.transports.credentials import forbidden

    registry = transports.REGISTRY if section == "transport" else transports.MAILBOXES
    declared = transports.options(name, registry)
    if declared is not None and section == "mailbox":
        declared = {**declared, **authn.OPTIONS}  # every mailbox: who sent a reply
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


def _trust_problems(r: Reader, mailbox: str, options: dict[str, Any]) -> None:
    """A mailbox with no way to tell who sent a reply applies none of them: say so."""
    if options.get("trusted") and mailbox not in authn.VOUCHING:
        r.problem("mailbox.trusted", f"a {mailbox} mailbox cannot vouch for its senders",
                  table="mailbox", name="trusted",
                  hint="set authserv_id to your mail server's authserv-id instead")
    if options.get("microsoft365") and mailbox not in authn.TENANT:
        r.problem("mailbox.microsoft365", f"Microsoft 365's verdict cannot be read from a "
                  f"{mailbox} mailbox", table="mailbox", name="microsoft365",
                  hint="only for exchange, graph or imap reading the tenant's mailbox")
    if not authn.trust_of(options, mailbox).configured:
        r.problem("mailbox.authserv_id", "clerk cannot tell who sent a reply, so it applies "
                  "none: every answer goes to the unprocessed folder", table="mailbox",
                  name="authserv_id", warning=True,
                  hint='set authserv_id = "<your mail server\'s authserv-id>" (the first word '
                  "of the Authentication-Results it adds), or trusted = true for an Exchange "
                  "mailbox that admits authenticated senders only")
