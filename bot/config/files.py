"""The files a config folder is made of, reading them, and noticing when they change."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from bot.domain.errors import Problem

SETTINGS_FILE = "clerk.toml"
GROUP_FILE = "group.toml"
ROSTER_FILE = "roster.csv"
ROSTER_COLUMNS = ("name", "email", "organisation", "role")

MINUTES_FOLDER = "minutes"
MINUTES_TYPES = (".docx", ".pdf", ".md", ".txt", ".odt", ".rtf")


def read_toml(path: Path, problems: list[Problem]) -> tuple[dict[str, Any], str] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(str(path), f"cannot read: {exc}"))
        return None
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        line = int(m.group(1)) if m else None
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        problems.append(Problem(str(path), f"not valid TOML: {message}", line=line,
                                hint="see https://toml.io for the syntax"))
        return None


def group_folders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if (p / GROUP_FILE).is_file())


def files_read(folder: Path) -> list[Path]:
    """Every file the config is made of, for change detection."""
    files = [folder / SETTINGS_FILE]
    for g in group_folders(folder):
        files += [g / GROUP_FILE, g / ROSTER_FILE]
        for sub in ("templates", MINUTES_FOLDER):
            if (g / sub).is_dir():
                files += sorted(p for p in (g / sub).rglob("*") if p.is_file())
    return [f for f in files if f.exists()]


def stat_signature(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """Cheap change detection for the worker: names, sizes and mtimes of the config files."""
    signature = []
    for p in files_read(folder):
        try:
            st = p.stat()
        except OSError:
            continue  # removed since it was listed: the next look sees the change
        signature.append((str(p), st.st_size, st.st_mtime_ns))
    return tuple(signature)
