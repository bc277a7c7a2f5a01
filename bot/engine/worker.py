"""The worker: APScheduler 3.11 as a clock around :meth:`Executor.tick`.

One interval job in a MemoryJobStore (max_instances=1, coalesce=True,
misfire_grace_time=None) plus a tick at start-up. Never one stored job per email:
APScheduler 3 advances or deletes a job before it runs and drops late runs, so the ledger —
not the scheduler — knows what is due. SIGINT/SIGTERM stop it after the message in hand.
"""

from __future__ import annotations

import gc
import logging
import signal
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import FrameType

from bot import config as config_mod
from bot.config.files import Watch
from bot.domain.errors import ClerkError, StoreError
from bot.domain.timeutil import utcnow
from bot.engine.executor import Executor

log = logging.getLogger("clerk")


class Worker:
    def __init__(self, executor: Executor, folder: Path,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.executor = executor
        self.folder = folder
        self.clock = clock  # the real clock, or a rehearsal's (``clerk --now TIME run``)
        self.watch = Watch(folder)
        self.stop = executor.stop
        self.ticks = 0
        # the kind of store failure the last tick met (bot/engine/failures.py), said once
        self.store_failing: str | None = None
        # the config loaded at start stays for the worker's life, but for the groups edited
        # since: kept out of the collector's way (gc.freeze), so that a full collection
        # walks what the worker made since (a group reloaded, its plans), not every group
        # (2,000 groups: a quarter of a second, in whichever tick it fell). What of it is
        # replaced is freed by its reference counts; what it holds in cycles, never — no
        # more than the config at start. The garbage loading it left goes first, not kept.
        gc.collect()
        gc.freeze()

    def reload_if_changed(self, now: datetime) -> None:
        """Pick up config edits; a config with problems is reported (the log; the store, so
        that `clerk status` and, past the settle window, the admin hear of it) and the old
        one kept."""
        if not self.watch.changed():
            return
        # the groups of the config in use whose folders did not change are taken as they are
        reuse = None if self.watch.relisted else {
            g.folder: g for g in self.executor.config.groups
            if g.folder not in self.watch.edited}
        from bot.render.templates import clear_cache

        clear_cache(None if reuse is None else self.watch.edited)
        store = self.executor.store
        try:
            self.executor.use_config(config_mod.load(self.folder, reuse))
            self.watch.settled()
            store.clear_config_problems()
            log.info("config reloaded from %s", self.folder)
        except ClerkError as exc:
            log.error("config has problems; still using the last good one:\n%s", exc)
            store.note_config_problems([str(p) for p in exc.problems if not p.warning]
                                       or [str(exc)], now)

    def tick(self, now: datetime | None = None) -> None:
        if self.stop.is_set():
            return
        try:
            at = now or self.clock()
            self.reload_if_changed(at)
            result = self.executor.tick(at)
            self.ticks += 1
            if self.store_failing is not None:
                log.warning("state store answers again: ticking as usual")
                self.store_failing = None
            if result.sent or result.failed or result.skipped_late or result.retry:
                log.info("tick: %d sent, %d retry, %d failed, %d skipped_late",
                         len(result.sent), len(result.retry), len(result.failed),
                         len(result.skipped_late))
        except StoreError as exc:  # one line, said once while it lasts: the admin's to put right
            if exc.kind != self.store_failing:
                log.error("tick failed: %s (each tick tries again; said again when it changes)",
                          exc)
            else:
                log.debug("tick failed again: %s", exc)
            self.store_failing = exc.kind
        except Exception:  # the worker keeps running; the next tick tries again
            log.exception("tick failed")
        finally:
            # what the tick left in reference cycles (a traceback, a dropped connection)
            # goes now, not after the next 50,000 allocations (bot.tune_collector): the
            # young generations (on Python 3.14, whose collector is incremental, the young
            # and one increment of the old), a few milliseconds at most
            gc.collect(1)

    def run(self) -> None:
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.jobstores.memory import MemoryJobStore
        from apscheduler.schedulers.background import BackgroundScheduler

        scheduler = BackgroundScheduler(
            jobstores={"default": MemoryJobStore()},
            executors={"default": ThreadPoolExecutor(1)},
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
        )
        interval = self.executor.config.settings.interval
        scheduler.add_job(self.tick, "interval", seconds=interval, id="tick",
                          next_run_time=datetime.now().astimezone())  # a tick at start-up

        def on_signal(signum: int, frame: FrameType | None) -> None:
            log.info("stopping after the message in hand (signal %d)", signum)
            self.stop.set()

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        scheduler.start()
        log.info("clerk worker started: ticking every %ss; Ctrl-C stops it", interval)
        try:
            while not self.stop.wait(0.5):
                pass
        finally:
            scheduler.shutdown(wait=True)
            for s, handler in previous.items():
                signal.signal(s, handler)
            log.info("clerk worker stopped")


