"""Generating large installs from config/example, for the benchmarks."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config" / "example"
ORGANISATIONS = 15  # in each generated group


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


def _roster(n: int, members: int, names: list[str], orgs: list[str]) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["name", "email", "organisation", "role"])
    k = min(len(orgs), members)
    for i in range(members):
        role = "chair" if i == 0 else "lead" if i < k else "member"
        name = f"{names[i % len(names)]} {i // len(names) + 1}"
        w.writerow([name, f"m{i:04d}.g{n:03d}@org{i % k:02d}.example", orgs[i % k], role])
    return out.getvalue()


def generate(folder: Path, groups: int, members: int) -> None:
    """``groups`` groups in ``folder``, each the example's group.toml with its own id and
    ``members`` members of its own."""
    template = (EXAMPLE / "group.toml").read_text(encoding="utf-8")
    names, orgs = example_people(ORGANISATIONS)
    for n in range(groups):
        g = folder / f"group-{n:03d}"
        g.mkdir(parents=True)
        (g / "group.toml").write_text(renamed_group(template, n), encoding="utf-8")
        (g / "roster.csv").write_text(_roster(n, members, names, orgs), encoding="utf-8")
