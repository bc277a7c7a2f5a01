"""``clerk simulate``: a scratch copy of config and state run through simulated time.

It ticks as the worker would, but jumps straight from one instant where something can happen
(:meth:`Executor.next_instant`: a row's send or retry time, a send window opening for a row
that waits for it, a row's latest time, the plan's ``valid_until``) to the next, rounded up to
the worker's interval, so a year of the group's mail takes seconds and goes out at the very
ticks the worker would send it at. Nothing real is touched: the
state is a copy and the transport is an outbox in ``--out``.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import OrderedDict
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot import config as config_mod
from bot.engine.executor import Executor
from bot.engine.store import Store
from bot.transports.outbox import OutboxTransport


def simulate(folder: Path, state_url: str, start: datetime, until: datetime,
             out: Path | None) -> tuple[list[dict[str, Any]], Path]:
    # UTC arithmetic: adding the interval to a zoned time would follow the wall clock
    start, until = start.astimezone(UTC), until.astimezone(UTC)
    scratch = Path(tempfile.mkdtemp(prefix="clerk-simulate-"))
    keep = out is None  # the scratch folder then holds the simulated mail, and only that
    out = out or scratch / "outbox"
    try:
        timeline = _run(folder, state_url, scratch, start, until, out)
    finally:
        # the copied config and state are scratch: never left behind, whatever happened
        for name in ("config", "state.sqlite", "state.sqlite-journal", "state.sqlite-wal"):
            path = scratch / name
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        if not keep or not out.exists():
            shutil.rmtree(scratch, ignore_errors=True)
    return timeline, out


def _run(folder: Path, state_url: str, scratch: Path, start: datetime, until: datetime,
         out: Path) -> list[dict[str, Any]]:
    shutil.copytree(folder, scratch / "config")
    db = scratch / "state.sqlite"
    if state_url.startswith("sqlite:///") and Path(state_url[10:]).is_file():
        shutil.copy(state_url[10:], db)
    config = config_mod.load(scratch / "config")
    config = replace(config, settings=replace(config.settings, pause=0.0))
    store = Store(f"sqlite:///{db}")
    try:
        store.migrate()
        executor = Executor(config, store, OutboxTransport({"path": str(out), "fsync": False}))
        return _timeline(executor, store, start, until, timedelta(seconds=config.settings.interval))
    finally:
        store.dispose()


def _timeline(executor: Executor, store: Store, start: datetime, until: datetime,
              interval: timedelta) -> list[dict[str, Any]]:
    timeline: OrderedDict[tuple[str, ...], dict[str, Any]] = OrderedDict()
    now: datetime | None = start
    while now is not None and now <= until:
        result = executor.tick(now)
        keys = result.sent + result.skipped_late + result.failed
        rows = store.rows_of(keys) if keys else {}
        for key in keys:
            row = rows[key]
            state = row.state
            line = (now.isoformat(), row.group_id, row.meeting_id, row.rule_id, row.kind,
                    state, row.subject if row.recipient else "")
            entry = timeline.setdefault(line[:6], {
                "at": now.isoformat(), "group": row.group_id, "meeting": row.meeting_id,
                "rule": row.rule_id, "kind": row.kind, "state": state,
                "subject": row.subject, "recipients": []})
            entry["recipients"].append(row.recipient)
        nxt = executor.next_instant(now)
        if nxt is None:
            break
        steps = -(-(nxt - start) // interval)  # ceil: the first worker tick at or after it
        now = max(start + steps * interval, now + interval)
    return list(timeline.values())
