"""``clerk init``: a new group folder, copied from the shipped example."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from bot.domain.errors import UsageError


def example_folder() -> Path:
    """The example group: inside the wheel, or ``config/example`` of a source checkout."""
    here = Path(__file__).resolve().parent.parent  # bot/
    packaged = here / "_example"
    return packaged if packaged.is_dir() else here.parent / "config" / "example"


def init_group(folder: Path) -> None:
    if folder.exists() and any(folder.iterdir()):
        raise UsageError(f"{folder} exists and is not empty; choose a new folder")
    group_id = re.sub(r"[^a-z0-9_.-]+", "-", folder.resolve().name.lower()).strip("-")
    if not group_id:
        raise UsageError(f"cannot make a group id from {folder.name!r}; choose another name")
    source = example_folder()
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("group.toml", "roster.csv"):
        shutil.copy(source / name, folder / name)
    toml = folder / "group.toml"
    text = toml.read_text(encoding="utf-8")
    text = re.sub(r'(?m)^id = "qa-leads"', f'id = "{group_id}"', text, count=1)
    toml.write_text(text, encoding="utf-8")
