"""Credentials come from the environment or a secret file — never from config files or logs.

A transport declares ``<name>_env`` (the variable to read, with a default) and
``<name>_file`` (a file holding the value, for container secrets) options; this module reads
them. Values are never logged and never appear in ``repr`` of a transport.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bot.domain.errors import ConfigError, Problem

FORBIDDEN = ("password", "username", "secret", "token", "client_secret")


def secret(options: Mapping[str, Any], name: str) -> str | None:
    """The credential ``name``: the file ``<name>_file`` if set, else the environment
    variable named by ``<name>_env``; None when neither is set."""
    path = options.get(f"{name}_file")
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the {name} file", [Problem(
                "clerk.toml", f"cannot read {path}: {exc.strerror}", key=f"{name}_file",
                hint="check the path and that clerk may read it")]) from None
    variable = options.get(f"{name}_env")
    return os.environ.get(variable) if variable else None


def forbidden(section: str, data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(key, hint) for each credential written into a config file."""
    return [(f"{section}.{key}", f"credentials never go in config files: set the variable "
             f"named by {key}_env or point {key}_file at a secret file")
            for key in data if key in FORBIDDEN]
