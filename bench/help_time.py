"""Benchmark: the start-up cost of ``clerk --help``, as a ratio to ``python -c pass``.

Runs each command ``--runs`` times (default 15), interleaved so that drift hits every command
alike, and prints medians and ratios to the ``python -c pass`` median measured in the same run.
Then runs ``python -X importtime -m bot.cli --help`` once and lists the heavy libraries it
imports (none should be: ``--help`` needs only click). Nothing here asserts on time.

Run from the repository root:  python bench/help_time.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
HEAVY = ("sqlalchemy", "jinja2", "icalendar", "apscheduler", "exchangelib", "msal", "httpx",
         "tzlocal", "dateutil")
TARGET = 3.0


def commands() -> dict[str, list[str]]:
    cmds = {
        "python -c pass (baseline)": [PY, "-c", "pass"],
        "python -c 'import click'": [PY, "-c", "import click"],
        "python -m bot.cli --help": [PY, "-m", "bot.cli", "--help"],
    }
    script = Path(PY).parent / "clerk"
    if script.is_file():  # the console script pip installed next to this interpreter
        cmds["clerk --help (script)"] = [str(script), "--help"]
    return cmds


def env() -> dict[str, str]:
    e = dict(os.environ)
    e.pop("PYTHONPROFILEIMPORTTIME", None)
    # as installed: pip compiles a wheel's modules, so clerk's .pyc files exist (the warm-up
    # run writes them for an editable install, where an environment may forbid it)
    e.pop("PYTHONDONTWRITEBYTECODE", None)
    e["PYTHONPATH"] = str(ROOT) + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    return e


def run(cmd: list[str]) -> float:
    t = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env(), stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, check=False)
    elapsed = (time.perf_counter() - t) * 1000
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n"
                         f"{done.stderr.decode(errors='replace')}")
    return elapsed


def import_times() -> list[tuple[int, int, str]]:
    """(self µs, cumulative µs, module) for every import of ``clerk --help``."""
    done = subprocess.run([PY, "-X", "importtime", "-m", "bot.cli", "--help"], cwd=ROOT,
                          env=env(), capture_output=True, text=True, check=True)
    out = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cum_us, name = line.removeprefix("import time:").split("|")
        out.append((int(self_us), int(cum_us), name.rstrip()))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15, help="timed runs of each command")
    args = ap.parse_args(argv)

    print(f"clerk --help start-up benchmark — Python {platform.python_version()} "
          f"({PY}), {os.cpu_count()} CPUs")
    cmds = commands()
    for cmd in cmds.values():  # warm the page cache and write the .pyc files
        run(cmd)
    times: dict[str, list[float]] = {name: [] for name in cmds}
    for _ in range(args.runs):
        for name, cmd in cmds.items():
            times[name].append(run(cmd))

    base = statistics.median(times["python -c pass (baseline)"])
    print(f"\n{args.runs} interleaved runs each; wall time in ms; ratio = median / baseline")
    print(f"  {'command':<30}{'median':>9}{'min':>9}{'max':>9}{'ratio':>8}")
    for name, values in times.items():
        m = statistics.median(values)
        print(f"  {name:<30}{m:9.1f}{min(values):9.1f}{max(values):9.1f}{m / base:8.2f}")
    ratio = statistics.median(times["python -m bot.cli --help"]) / base
    verdict = "met" if ratio <= TARGET else "MISSED"
    print(f"\ntarget: clerk --help ≤ {TARGET:.0f}× python -c pass — {ratio:.2f}×: {verdict}")
    floor = statistics.median(times["python -c 'import click'"]) / base
    print(f"  (importing click alone is {floor:.2f}× python -c pass here; clerk --help is "
          f"{ratio / floor:.2f}× that floor)")

    imports = import_times()
    total = sum(s for s, _, _ in imports)
    print(f"\n`python -X importtime -m bot.cli --help`: {len(imports)} modules, "
          f"{total / 1000:.1f} ms of imports in all")
    print("  heavy libraries imported:")
    found = False
    for name in HEAVY:
        mods = [m for _, _, m in imports if m.strip().split(".")[0] == name]
        if mods:
            found = True
            cum = max(c for _, c, m in imports if m.strip().split(".")[0] == name)
            print(f"    {name:<12} {len(mods):4d} modules, {cum / 1000:7.1f} ms cumulative")
    if not found:
        print("    none of " + ", ".join(HEAVY))
    print("  largest cumulative imports (top level; a module shared by two is charged to the "
          "first importer):")
    roots = sorted(((c, m.strip()) for _, c, m in imports if m.startswith(" ")
                    and not m.startswith("  ")), reverse=True)[:10]
    for cum, name in roots:
        print(f"    {name:<28} {cum / 1000:7.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
