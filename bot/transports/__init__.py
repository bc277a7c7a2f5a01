"""Transports, loaded lazily by name so a heavy client library is imported only when chosen."""

from __future__ import annotations

import importlib
from typing import Any

from bot.errors import ConfigError, Problem
from bot.transports.base import Transport

REGISTRY = {
    "outbox": "bot.transports.outbox:OutboxTransport",
    "memory": "bot.transports.memory:MemoryTransport",
}


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
