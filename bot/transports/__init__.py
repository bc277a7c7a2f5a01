"""Transports, loaded lazily by name so a heavy client library is imported only when chosen."""

from __future__ import annotations

import importlib
from typing import Any

from bot.domain.errors import ConfigError, Problem
from bot.transports.base import Transport

REGISTRY = {
    "outbox": "bot.transports.outbox:OutboxTransport",
    "memory": "bot.transports.memory:MemoryTransport",
    "smtp": "bot.transports.smtp:SmtpTransport",
    "exchange": "bot.transports.exchange:ExchangeTransport",
    "graph": "bot.transports.graph:GraphTransport",
}


MAILBOXES = {
    "imap": "bot.transports.imap:ImapMailbox",
    "maildir": "bot.transports.maildir:MaildirMailbox",
    "exchange": "bot.transports.exchange:ExchangeMailbox",
    "graph": "bot.transports.graph:GraphMailbox",
}


def options(name: str, registry: dict[str, str] = REGISTRY) -> dict[str, Any] | None:
    """The option declarations of transport (or mailbox) ``name`` — its module's OPTIONS —
    or None if the name is unknown. Imports only that module."""
    if name not in registry:
        return None
    module = importlib.import_module(registry[name].partition(":")[0])
    declared: dict[str, Any] = getattr(module, "OPTIONS", {})
    return declared


def load_mailbox(name: str, options: dict[str, Any]) -> Any:
    """The mailbox clerk reads replies from (``[clerk] mailbox``), or None."""
    if not name:
        return None
    module, _, cls = MAILBOXES[name].partition(":")
    return getattr(importlib.import_module(module), cls)(options)


def load(name: str, options: dict[str, Any]) -> Transport:
    """The transport called ``name``, built from its ``[transport]`` options."""
    try:
        module, _, cls = REGISTRY[name].partition(":")
    except KeyError:
        raise ConfigError(f"unknown transport {name!r}", [Problem(
            "clerk.toml", f"unknown transport {name!r}", key="clerk.transport",
            hint=f"choose one of: {', '.join(sorted(REGISTRY))}")]) from None
    transport: Transport = getattr(importlib.import_module(module), cls)(options)
    return transport
