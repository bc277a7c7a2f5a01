"""Configuration: the install's settings and each group's settings, roster and meetings.

Layout of the config folder (``--config``, ``CLERK_CONFIG``, default ``./config``)::

    clerk.toml            install settings (optional; embedded defaults otherwise)
    <group>/group.toml    one folder per group: its settings, meetings and message rules
    <group>/roster.csv    name,email,organisation,role
    <group>/templates/    optional overrides of the default templates

Every option is declared once (here, in bot/domain/options.py and bot/config/meetings.py)
with its default, check and help. Loading reports *every* problem at once, each with its
file and line (or key), and raises :class:`ConfigError`; nothing is sent from a config
with problems.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from bot.config.checks import (
    group_warnings,
    reply_warnings,
    template_problems,
)
from bot.config.files import GROUP_FILE, SETTINGS_FILE, group_files, group_folders
from bot.config.group import load_group
from bot.config.settings import load_settings
from bot.domain.errors import ConfigError, Problem
from bot.domain.model import Config, Group


def load(folder: Path, reuse: Mapping[Path, Group] | None = None) -> Config:
    """Load and check everything under ``folder``; raise ConfigError listing every problem.

    ``reuse``: groups of the last good config, by folder, whose files have not changed
    since (the worker's Watch says which): taken as they are, not read again."""
    problems: list[Problem] = []
    if not folder.is_dir():
        raise ConfigError(f"config folder {folder} does not exist", [Problem(
            str(folder), "not a folder", hint="pass --config DIR or set CLERK_CONFIG, or "
            "create one with `clerk init DIR`")])
    settings = load_settings(folder, problems)
    groups: list[Group] = []
    folders = group_folders(folder)
    if not folders:
        problems.append(Problem(str(folder), f"no group folders (each holds a {GROUP_FILE})",
                                hint="create one with `clerk init`"))
    for gf in folders:
        group = reuse.get(gf) if reuse else None
        if group is None:
            group = load_group(gf, problems)
            if group is not None:
                group = replace(group, fingerprint=_digest(group_files(gf)))
        if group is not None:
            groups.append(group)
    seen: dict[str, Path] = {}
    for group in groups:
        if group.id in seen:
            problems.append(Problem(str(group.folder / GROUP_FILE), f"group id {group.id!r} "
                                    f"is also used by {seen[group.id]}", key="group.id"))
        seen[group.id] = group.folder
    # changes whenever a file clerk read changes: clerk.toml, and each group's files
    fingerprint = _digest([folder / SETTINGS_FILE], *(g.fingerprint for g in groups))
    config = Config(folder=folder, settings=settings, groups=tuple(groups),
                    fingerprint=fingerprint)
    # templates are checked for every group that could be built, so one run lists
    # template problems beside roster and settings problems
    problems += template_problems(config)
    for group in groups:
        problems += group_warnings(group)
    problems += reply_warnings(config)
    errors = [p for p in problems if not p.warning]
    if errors:
        raise ConfigError(f"{len(errors)} problem(s) in {folder}; nothing was sent", problems)
    return replace(config, warnings=tuple(problems))


def _digest(files: list[Path], *more: str) -> str:
    """A digest of the names and contents of ``files`` (those there), and of ``more``."""
    digest = hashlib.sha256()
    for f in files:
        if f.is_file():
            digest.update(str(f).encode() + b"\0" + f.read_bytes() + b"\0")
    for text in more:
        digest.update(text.encode() + b"\0")
    return digest.hexdigest()
