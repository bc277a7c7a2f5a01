"""The files a config folder is made of, reading them, and noticing when they change."""

from __future__ import annotations

import os
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
    """The group folders in ``folder``, by name (sorted by their names as strings: the same
    order as the paths', without comparing thousands of paths part by part)."""
    return sorted((p for p in folder.iterdir() if (p / GROUP_FILE).is_file()),
                  key=lambda p: p.name)


def group_files(g: Path) -> list[Path]:
    """The files of group folder ``g`` the config is made of (some may not exist)."""
    files = [g / GROUP_FILE, g / ROSTER_FILE]
    for sub in ("templates", MINUTES_FOLDER):
        if (g / sub).is_dir():
            files += sorted(p for p in (g / sub).rglob("*") if p.is_file())
    return files


Signature = tuple[tuple[str, int, int], ...]


def folder_signature(g: Path) -> Signature:
    """Names, sizes and mtimes of the files of group folder ``g`` (:func:`group_files`), read
    with ``os.scandir`` (a tenth of pathlib's cost: the worker looks at many a tick)."""
    out: list[tuple[str, int, int]] = []
    base = str(g)
    for name in (GROUP_FILE, ROSTER_FILE):
        _stat(os.path.join(base, name), out)
    for sub in ("templates", MINUTES_FOLDER):
        _walk(os.path.join(base, sub), out)
    return tuple(out)


def _stat(path: str, out: list[tuple[str, int, int]]) -> None:
    try:
        st = os.stat(path)
    except OSError:
        return  # not there (or removed since it was listed): the next look sees it
    out.append((path, st.st_size, st.st_mtime_ns))


def _walk(folder: str, out: list[tuple[str, int, int]]) -> None:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return
    for e in entries:
        if e.is_dir():
            _walk(e.path, out)
        elif e.is_file():
            _stat(e.path, out)


class Watch:
    """The worker's change detection, costing the groups it looks at rather than every
    file: each look stats the config folder (a group folder made, removed or renamed) and
    clerk.toml, and the files of ``per_look`` of its folders in turn — so an edit to a file
    is noticed at the latest ceil(folders / per_look) looks later (at the next look, up to
    ``per_look`` folders)."""

    def __init__(self, folder: Path, per_look: int = 50) -> None:
        self.folder, self.per_look = folder, per_look
        self._top = self._top_signature()
        self._folders = self._list()
        self._turn = 0
        # what changed since ``settled()``: the folders whose files did, and whether the
        # folder's listing or clerk.toml did (then everything is read again)
        self.edited: set[Path] = set()
        self.relisted = False

    def settled(self) -> None:
        """The changes seen so far are taken in (the config loaded from them)."""
        self.edited, self.relisted = set(), False

    def _top_signature(self) -> tuple[int, Signature]:
        try:
            mtime = self.folder.stat().st_mtime_ns
        except OSError:
            mtime = -1
        out: list[tuple[str, int, int]] = []
        _stat(str(self.folder / SETTINGS_FILE), out)
        return mtime, tuple(out)

    def _list(self) -> dict[Path, Signature]:
        found = sorted(p for p in self.folder.iterdir() if p.is_dir()) \
            if self.folder.is_dir() else []
        return {p: folder_signature(p) for p in found}

    def changed(self) -> bool:
        """Whether the config changed since the last look (as far as this look sees)."""
        top = self._top_signature()
        if top != self._top:
            self._top, self._folders, self.relisted = top, self._list(), True
            return True
        folders = list(self._folders)
        changed = False
        for i in range(min(self.per_look, len(folders))):
            folder = folders[(self._turn + i) % len(folders)]
            now = folder_signature(folder)
            if now != self._folders[folder]:
                self._folders[folder], changed = now, True
                self.edited.add(folder)
        self._turn = (self._turn + self.per_look) % max(1, len(folders))
        return changed
