"""Transports, loaded lazily by name so a heavy client library is imported only when chosen."""

from __future__ import annotations

import importlib
from typing import Any

from bot.errors import ConfigError, Problem
from bot.transports.base import Transport

REGISTRY = {
    "outbox": "bot.transports.outbox:OutboxTransport",
    "memory": "bot.transports.memory:MemoryTransport",
    "smtp": "bot.transports.smtp:SmtpTransport",
}


def options(name: str) -> dict[str, Any] | None:
    """The option declarations of transport ``name`` (its module's OPTIONS), None if the
    name is unknown. Imports only that transport's module."""
    if name not in REGISTRY:
        return None
    module = importlib.import_module(REGISTRY[name].partition(":")[0])
    declared: dict[str, Any] = getattr(module, "OPTIONS", {})
    return declared


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
