"""Benchmark: the cost of an idle tick against a large ledger.

Generates (in a temp dir) an install of groups derived from ``config/example`` — each with
40 members over 15 organisations, 8 meetings in 2027 and the example's 5 rules, so 888 ledger
rows a group — records the full plan with one tick at a ``now`` before anything is due, then
times idle ticks (nothing due, nothing changed) at that same ``now``.

Two installs are built in the same run: a large one (``--rows``, default 100,000) and a small
one (``--small-rows``, default 10,000), so the large/small ratio says whether an idle tick
grows with the ledger. Every figure is also printed as a ratio to a baseline measured in the
same run (a ``SELECT 1`` round trip on the large store) because machines are noisy. Nothing
here asserts on time; it only refuses to report if an "idle" tick was not idle.

Run from the repository root:  python bench/idle_tick.py [--rows N] [--ticks N] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import gc
import io
import math
import platform
import pstats
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from bench.install import example_people, renamed_group  # noqa: E402
from bot import config as config_mod  # noqa: E402
from bot.domain.model import Config  # noqa: E402
from bot.engine.executor import Executor  # noqa: E402
from bot.engine.store import Store  # noqa: E402
from bot.engine.worker import Worker  # noqa: E402
from bot.transports.memory import MemoryTransport  # noqa: E402

EXAMPLE = ROOT / "config" / "example"
MEMBERS = 40
ORGANISATIONS = 15
# 8 meetings in 2027, local time (Europe/London, from the example); go-live is 2026-12-01
MEETINGS = ("2027-01-14", "2027-02-25", "2027-04-15", "2027-05-27", "2027-07-15",
            "2027-09-09", "2027-10-14", "2027-11-25")
# before go-live: every message is planned, nothing is due
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


# --- generating an install --------------------------------------------------------------


def rows_per_group() -> int:
    """Ledger rows one generated group records (the example's rules: invitation and pack
    to every member, request and chaser to each organisation's lead, minutes to the admin)."""
    return len(MEETINGS) * (MEMBERS + ORGANISATIONS + ORGANISATIONS + MEMBERS + 1)


def _group_toml(template: str, n: int) -> str:
    """The example's group.toml with a unique id, name and mailboxes, and 8 meetings."""
    text = renamed_group(template, n)
    head, sep, _ = text.partition("\n[[meeting]]")
    rules_at = text.find("\n[[rule]]")
    if not sep or rules_at < 0:
        raise SystemExit("config/example/group.toml has no [[meeting]] or [[rule]] table")
    meetings = "".join(f'\n[[meeting]]\nid = "2027-m{i + 1}"\nstart = {day}T14:00:00\n'
                       for i, day in enumerate(MEETINGS))
    return head.rstrip("\n") + "\n" + meetings + text[rules_at:]


def _roster(n: int, names: list[str], orgs: list[str]) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["name", "email", "organisation", "role"])
    for i in range(MEMBERS):
        o = i % ORGANISATIONS
        role = "chair" if i == 0 else "lead" if i < ORGANISATIONS else "member"
        name = f"{names[i % len(names)]} {i // len(names) + 1}"
        w.writerow([name, f"m{i:02d}.g{n:03d}@org{o:02d}.example", orgs[o], role])
    return out.getvalue()


def generate(folder: Path, groups: int) -> None:
    template = (EXAMPLE / "group.toml").read_text(encoding="utf-8")
    names, orgs = example_people(ORGANISATIONS)
    for n in range(groups):
        g = folder / f"group-{n:03d}"
        g.mkdir(parents=True)
        (g / "group.toml").write_text(_group_toml(template, n), encoding="utf-8")
        (g / "roster.csv").write_text(_roster(n, names, orgs), encoding="utf-8")


# --- one install -------------------------------------------------------------------------


@dataclass
class Install:
    label: str
    groups: int
    folder: Path
    config: Config
    store: Store
    executor: Executor
    worker: Worker
    rows: int = 0
    setup: dict[str, float] = field(default_factory=dict)  # seconds


def build(label: str, base: Path, groups: int) -> Install:
    t0 = time.perf_counter()
    folder = base / label / "config"
    generate(folder, groups)
    t1 = time.perf_counter()
    config = config_mod.load(folder)
    t2 = time.perf_counter()
    store = Store(f"sqlite:///{base / label / 'state.sqlite'}")
    store.migrate()
    executor = Executor(config, store, MemoryTransport())
    t3 = time.perf_counter()
    first = executor.tick(NOW)  # plans everything and records it in the ledger
    t4 = time.perf_counter()
    if not first.replanned or first.sent or first.errors:
        raise SystemExit(f"{label}: the first tick did not just plan: {first}")
    rows = sum(store.counts().values())
    # a forced re-plan with nothing to change: what every config edit, fact change or
    # passing valid_until costs once the ledger is full
    executor.plan_again()
    again = executor.tick(NOW)
    t5 = time.perf_counter()
    if not again.replanned or again.recorded or again.updated or again.withdrawn:
        raise SystemExit(f"{label}: the re-plan tick changed the ledger: {again}")
    worker = Worker(executor, folder)
    install = Install(label, groups, folder, config, store, executor, worker, rows)
    install.setup = {"generate": t1 - t0, "load": t2 - t1, "first": t4 - t3,
                     "replan": t5 - t4}
    return install


def idle_check(inst: Install) -> None:
    """Refuse to time ticks that are not idle."""
    r = inst.executor.tick(NOW)
    if r.replanned or r.sent or r.recorded or r.updated or r.withdrawn or r.recovered \
            or r.retry or r.failed or r.skipped_late:
        raise SystemExit(f"{inst.label}: an idle tick did something: {r}")


# --- timing ------------------------------------------------------------------------------


def select_one(store: Store) -> Callable[[], object]:
    def run() -> object:
        with store.engine.connect() as conn:
            return conn.execute(sa.text("SELECT 1")).scalar()

    return run


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - t) / 1e6  # ms


def measure(cases: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """Interleaved: each round runs every case once, so drift hits all cases alike."""
    for fn in cases.values():  # warm caches and connection pools
        for _ in range(3):
            fn()
    gc.collect()
    out: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            out[name].append(timed(fn))
    return out


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, math.ceil(q * len(s)) - 1)]


def profile(label: str, fn: Callable[[], object], top: int) -> None:
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).strip_dirs().sort_stats("cumulative").print_stats(top)
    print(f"\n--- cProfile: {label} (top {top} by cumulative time) ---")
    print(out.getvalue().split("\n", 4)[-1].rstrip())


def profile_setup(folder: Path, groups: int) -> None:
    """cProfile summaries of what building a large install costs: loading its config,
    the first tick (plan + record) and a forced re-plan with nothing to change."""
    generate(folder / "config", groups)
    profile(f"config.load, {groups} groups", lambda: config_mod.load(folder / "config"), 15)
    cfg = config_mod.load(folder / "config")
    st = Store(f"sqlite:///{folder / 'state.sqlite'}")
    st.migrate()
    ex = Executor(cfg, st, MemoryTransport())
    profile(f"first tick, {groups} groups (plan + record)", lambda: ex.tick(NOW), 25)
    ex.plan_again()
    profile(f"re-plan tick, {groups} groups (forced, nothing to change)",
            lambda: ex.tick(NOW), 25)
    st.dispose()


# --- main --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000,
                    help="ledger rows of the large install (rounded to whole groups of "
                         f"{rows_per_group()})")
    ap.add_argument("--small-rows", type=int, default=10_000,
                    help="ledger rows of the small install, for the growth ratio")
    ap.add_argument("--groups", type=int, default=None,
                    help="groups of the large install (overrides --rows; 200 = the issue's "
                         "full install, 177,600 rows)")
    ap.add_argument("--ticks", type=int, default=200, help="idle ticks timed per case")
    ap.add_argument("--profile", action="store_true",
                    help="also print cProfile summaries of config.load, the first tick, a "
                         "re-plan and idle ticks")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir and print it")
    args = ap.parse_args(argv)

    per = rows_per_group()
    big_groups = args.groups or max(1, round(args.rows / per))
    small_groups = max(1, round(args.small_rows / per))
    print(f"clerk idle-tick benchmark — Python {platform.python_version()}, "
          f"SQLAlchemy {sa.__version__}, SQLite {sqlite3.sqlite_version}, "
          f"{platform.machine()}")
    print(f"each group: {MEMBERS} members, {ORGANISATIONS} organisations, {len(MEETINGS)} "
          f"meetings, 5 rules = {per} ledger rows; now = {NOW.isoformat()}")

    base = Path(tempfile.mkdtemp(prefix="clerk-bench-"))
    try:
        installs = []
        for label, groups in (("small", small_groups), ("large", big_groups)):
            if args.profile and label == "large":
                profile_setup(base / "profile", groups)
            inst = build(label, base, groups)
            s = inst.setup
            print(f"\n{label}: {groups} groups, {inst.rows:,} ledger rows")
            print(f"  generate config  {s['generate']:8.2f} s")
            print(f"  config.load      {s['load']:8.2f} s")
            print(f"  first tick       {s['first']:8.2f} s   (plan + record "
                  f"{inst.rows:,} rows: {s['first'] / inst.rows * 1e6:.0f} µs/row)")
            print(f"  re-plan tick     {s['replan']:8.2f} s   (forced, nothing to change)")
            inst.executor.current_plan(NOW)
            until = inst.executor.units.until
            print(f"  plan valid until {until.isoformat() if until else 'forever'}")
            idle_check(inst)
            installs.append(inst)
        small, large = installs

        cases: dict[str, Callable[[], object]] = {
            "SELECT 1 (baseline)": select_one(large.store),
            "idle Executor.tick, small": lambda: small.executor.tick(NOW),
            "idle Executor.tick, large": lambda: large.executor.tick(NOW),
            "idle Worker.tick, small": lambda: small.worker.tick(NOW),
            "idle Worker.tick, large": lambda: large.worker.tick(NOW),
        }
        results = measure(cases, args.ticks)
        for inst in installs:
            idle_check(inst)
            if inst.worker.ticks != 3 + args.ticks:  # Worker.tick logs and swallows errors
                raise SystemExit(f"{inst.label}: a Worker.tick failed; see the log above")
        if args.profile:
            profile("idle Executor.tick, large ×100",
                    lambda: [large.executor.tick(NOW) for _ in range(100)], 20)
            profile("idle Worker.tick, large ×100",
                    lambda: [large.worker.tick(NOW) for _ in range(100)], 20)

        base_ms = statistics.median(results["SELECT 1 (baseline)"])
        print(f"\nidle ticks: {args.ticks} interleaved rounds; median, p90, max in ms; "
              "ratio = median / baseline median")
        print(f"  {'case':<28}{'median':>9}{'p90':>9}{'max':>9}{'ratio':>9}")
        med: dict[str, float] = {}
        for name, values in results.items():
            med[name] = statistics.median(values)
            print(f"  {name:<28}{med[name]:9.3f}{pct(values, 0.9):9.3f}{max(values):9.3f}"
                  f"{med[name] / base_ms:9.1f}")

        rows_ratio = large.rows / small.rows
        print(f"\ngrowth, large/small ({large.rows:,} / {small.rows:,} rows = "
              f"{rows_ratio:.1f}× the rows):")
        for kind in ("Executor", "Worker"):
            a = med[f"idle {kind}.tick, small"]
            b = med[f"idle {kind}.tick, large"]
            print(f"  idle {kind}.tick: {b / a:.2f}×  (linear would be {rows_ratio:.1f}×)")
        first_ratio = large.setup["first"] / small.setup["first"]
        print(f"  first tick (plan + record): {first_ratio:.2f}×")

        target = 50.0
        got = med["idle Executor.tick, large"]
        verdict = "met" if got <= target else "MISSED"
        print(f"\ntarget: idle tick median ≤ {target:.0f} ms at {large.rows:,} rows — "
              f"{got:.2f} ms: {verdict}")
        growth = med["idle Executor.tick, large"] / med["idle Executor.tick, small"]
        sub = "sub-linear" if growth < rows_ratio / 3 else "NOT clearly sub-linear"
        print(f"target: growing sub-linearly — {growth:.2f}× for {rows_ratio:.1f}× the rows: "
              f"{sub}")
        for inst in installs:
            inst.store.dispose()
    finally:
        if args.keep:
            print(f"\nkept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
