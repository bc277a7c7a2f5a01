"""Generating large installs from config/example, for the benchmarks."""

from __future__ import annotations

import csv
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config" / "example"


def example_people(organisations: int) -> tuple[list[str], list[str]]:
    """The example roster's names, and ``organisations`` organisation names."""
    with (EXAMPLE / "roster.csv").open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    names = [r["name"] for r in rows]
    orgs = list(dict.fromkeys(r["organisation"] for r in rows))
    if len(orgs) < organisations:
        orgs += [f"Organisation {i}" for i in range(len(orgs), organisations)]
    return names, orgs[:organisations]


def renamed_group(template: str, n: int) -> str:
    """The example's group.toml with a unique id, name and mailboxes."""
    text, count = re.subn(r'(?m)^id = "qa-leads"', f'id = "bench-{n:03d}"', template, count=1)
    if count != 1:
        raise SystemExit('config/example/group.toml: no id = "qa-leads" in [group]')
    text = re.sub(r'(?m)^name = "([^"]*)"', rf'name = "\1 {n:03d}"', text, count=1)
    return re.sub(r'(?m)^(email = "[^"@]+)@', rf"\1-{n:03d}@", text)  # organiser, admin
