"""Benchmark: the start-up cost of ``clerk --help``, as a ratio to ``python -c pass``.

The target is the ``clerk`` console script with a warm help cache (bot/cli/launch.py): what a user
gets from the second ``--help`` on. The cache lives in a temp ``XDG_CACHE_HOME`` that the
untimed warm-up runs fill; a warm run that imports click stops the benchmark. For information
it also times ``python -m bot --help`` (warm), the console script with ``CLERK_HELP_CACHE=0``
(cold: click every time) and ``python -c "import click"`` (the floor for any click command).
Runs each command ``--runs`` times (default 15), interleaved so that drift hits every command
alike, and prints medians and ratios to the ``python -c pass`` median measured in the same run.
Then runs the cold path once under ``python -X importtime`` and lists the heavy libraries it
imports (none should be: ``--help`` needs only click), and what the warm path imports.
Nothing here asserts on time.

Run from the repository root:  python bench/help_time.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
HEAVY = ("sqlalchemy", "jinja2", "icalendar", "apscheduler", "exchangelib", "msal", "httpx",
         "tzlocal", "dateutil")
TARGET = 3.0
BASE = "python -c pass (baseline)"
WARM = "clerk --help (script, warm)"
COLD = {"CLERK_HELP_CACHE": "0"}
Command = tuple[list[str], dict[str, str]]  # argv, environment on top of env()


def commands(script: Path) -> dict[str, Command]:
    return {
        BASE: ([PY, "-c", "pass"], {}),
        WARM: ([str(script), "--help"], {}),
        "python -m bot --help (warm)": ([PY, "-m", "bot", "--help"], {}),
        "clerk --help (script, cold)": ([str(script), "--help"], COLD),
        "python -c 'import click'": ([PY, "-c", "import click"], {}),
    }


def env(extra: dict[str, str]) -> dict[str, str]:
    e = dict(os.environ)
    for name in ("PYTHONPROFILEIMPORTTIME", "CLERK_HELP_CACHE", "COLUMNS"):
        e.pop(name, None)
    # as installed: pip compiles a wheel's modules, so clerk's .pyc files exist (the warm-up
    # run writes them for an editable install, where an environment may forbid it)
    e.pop("PYTHONDONTWRITEBYTECODE", None)
    e["PYTHONPATH"] = str(ROOT) + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    return {**e, **extra}


def run(cmd: Command) -> float:
    argv, extra = cmd
    t = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, env=env(extra), stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, check=False)
    elapsed = (time.perf_counter() - t) * 1000
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n"
                         f"{done.stderr.decode(errors='replace')}")
    return elapsed


def import_times(cmd: Command) -> list[tuple[int, int, str]]:
    """(self µs, cumulative µs, module) for every import of one run of ``cmd``."""
    argv, extra = cmd
    done = subprocess.run(argv, cwd=ROOT, env=env({**extra, "PYTHONPROFILEIMPORTTIME": "1"}),
                          capture_output=True, text=True, check=True)
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
    script = Path(PY).parent / "clerk"  # the console script pip installed next to PY
    if not script.is_file():
        raise SystemExit(f"no console script {script}: install clerk first (pip install -e .)")
    with tempfile.TemporaryDirectory(prefix="clerk-help-bench-") as cache:
        os.environ["XDG_CACHE_HOME"] = cache  # every command's; the warm-up fills the cache
        cmds = commands(script)
        for cmd in cmds.values():  # warm the page cache, write the .pyc files and the cache
            run(cmd)
        warm_imports = import_times(cmds[WARM])
        if any(m.strip().split(".")[0] == "click" for _, _, m in warm_imports):
            raise SystemExit("the warm `clerk --help` imported click: the cache did not answer")
        times: dict[str, list[float]] = {name: [] for name in cmds}
        for _ in range(args.runs):
            for name, cmd in cmds.items():
                times[name].append(run(cmd))

    base = statistics.median(times[BASE])
    print(f"\n{args.runs} interleaved runs each; wall time in ms; ratio = median / baseline")
    print(f"  {'command':<30}{'median':>9}{'min':>9}{'max':>9}{'ratio':>8}")
    for name, values in times.items():
        m = statistics.median(values)
        print(f"  {name:<30}{m:9.1f}{min(values):9.1f}{max(values):9.1f}{m / base:8.2f}")
    ratio = statistics.median(times[WARM]) / base
    verdict = "met" if ratio <= TARGET else "MISSED"
    print(f"\ntarget: clerk --help (warm cache) ≤ {TARGET:.0f}× python -c pass — {ratio:.2f}×: "
          f"{verdict}")
    cold = statistics.median(times["clerk --help (script, cold)"]) / base
    floor = statistics.median(times["python -c 'import click'"]) / base
    print(f"  (cold, click every time: {cold:.2f}×; importing click alone is {floor:.2f}× "
          f"python -c pass here, the cold path {cold / floor:.2f}× that floor)")
    print(f"\nwarm `clerk --help`: {len(warm_imports)} modules imported, "
          f"{sum(s for s, _, _ in warm_imports) / 1000:.1f} ms; clerk's among them: "
          + ", ".join(m.strip() for _, _, m in warm_imports if m.strip().startswith("bot")))

    imports = import_times(([PY, "-m", "bot", "--help"], COLD))
    total = sum(s for s, _, _ in imports)
    print(f"\n`python -X importtime -m bot --help` with CLERK_HELP_CACHE=0 (cold): "
          f"{len(imports)} modules, {total / 1000:.1f} ms of imports in all")
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
