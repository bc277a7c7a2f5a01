"""Benchmark: invitations per second through the ``smtp`` transport, against bare smtplib.

Generates (in a temp dir) an install of groups derived from ``config/example`` — the example's
4 meetings and 5 rules, each group with ``--members`` members (default 40) — so that at
``now = 2026-12-01T10:00Z`` (go-live day, after the rules' 09:00 local send time) exactly the
first meeting's invitations are due: ``--groups`` × ``--members`` = 2,000 by default. A fresh
SQLite store records the plan (untimed), then the benchmark times ``Executor.tick(now)`` with
``transports.load("smtp", ...)`` until every due invitation has gone: rendering (jinja2 text
and HTML), the iCalendar object, the MIME message and the ledger commits (claim as
``sending``, then ``sent``) are all included.

The baseline, in the same run and against the same server: a bare ``smtplib.SMTP`` loop that
sends the same number of pre-built messages over one connection — the very messages clerk
builds for that tick, flattened to bytes before timing. Both sides talk to one loopback SMTP
sink (aiosmtpd, by default in a child process so it does not share the benchmark's GIL) that
accepts and counts. Rounds are interleaved (each round runs both once). Nothing here asserts
on time; it only refuses to report when a side did not deliver exactly what it should.

Run from the repository root:  python bench/smtp_throughput.py [--rounds N] [--profile]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import functools
import gc
import io
import multiprocessing as mp
import platform
import pstats
import shutil
import smtplib
import socket
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from bench.install import generate  # noqa: E402
from bot import config as config_mod  # noqa: E402
from bot import transports  # noqa: E402
from bot.engine import sending as sending_mod  # noqa: E402
from bot.engine.executor import Executor  # noqa: E402
from bot.engine.result import TickResult  # noqa: E402
from bot.engine.store import Store  # noqa: E402
from bot.render import email as render_email  # noqa: E402
from bot.transports import smtp as smtp_mod  # noqa: E402

# go-live day of the example, after the invitation rule's 09:00 (Europe/London = UTC in
# December): the first meeting's invitations (-90d, clamped to go-live) are due, nothing else
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
TARGET = 0.7
HOST = "127.0.0.1"


# --- the loopback sink -------------------------------------------------------------------


class _Counter:
    """Messages and bytes the sink accepted; shared with a child process or a thread."""

    def __init__(self, ctx: Any = None) -> None:
        if ctx is not None:  # a multiprocessing context: shared with a child process
            self.messages: Any = ctx.Value("q", 0)
            self.octets: Any = ctx.Value("q", 0)
            self._lock: Any = self.messages.get_lock()
        else:
            self.messages = _Box()
            self.octets = _Box()
            self._lock = threading.Lock()

    def add(self, size: int) -> None:
        with self._lock:
            self.messages.value += 1
            self.octets.value += size

    def read(self) -> tuple[int, int]:
        with self._lock:
            return self.messages.value, self.octets.value


class _Box:
    value = 0


class CountingHandler:
    """aiosmtpd handler: accept every message, count it, keep nothing."""

    def __init__(self, counter: _Counter) -> None:
        self.counter = counter

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.original_content or envelope.content or b""
        self.counter.add(len(content))
        return "250 OK: counted"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _controller(counter: _Counter, port: int) -> Any:
    from aiosmtpd.controller import Controller

    return Controller(CountingHandler(counter), hostname=HOST, port=port,
                      server_hostname="bench-sink.localhost", ready_timeout=10.0)


def _sink_process(counter: _Counter, port: int, ready: Any, stop: Any) -> None:
    controller = _controller(counter, port)
    controller.start()
    ready.set()
    stop.wait()
    controller.stop()


class Sink:
    """One SMTP server on 127.0.0.1 for both sides: aiosmtpd in a child process (default)
    or in a thread of this process (as tests/mail.py runs it)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.port = free_port()
        # spawn: a clean interpreter for the sink, no engine or threads copied
        self._ctx = mp.get_context("spawn")
        self.counter = _Counter(self._ctx if mode == "process" else None)
        self._proc: Any = None
        self._stop: Any = None
        self._controller: Any = None

    def start(self) -> None:
        if self.mode == "process":
            ready, self._stop = self._ctx.Event(), self._ctx.Event()
            proc = self._ctx.Process(target=_sink_process, daemon=True,
                                     args=(self.counter, self.port, ready, self._stop))
            proc.start()
            self._proc = proc
            if not ready.wait(30):
                raise SystemExit("the SMTP sink did not start")
        else:
            self._controller = _controller(self.counter, self.port)
            self._controller.start()

    def stop(self) -> None:
        if self._proc is not None:
            self._stop.set()
            self._proc.join(10)
            if self._proc.is_alive():
                self._proc.terminate()
            self._proc = None
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def read(self) -> tuple[int, int]:
        return self.counter.read()


# --- generating an install ---------------------------------------------------------------


# --- one clerk install per round ---------------------------------------------------------


@dataclass
class Install:
    folder: Path
    store: Store
    executor: Executor
    due: int
    plan_s: float  # plan + record, untimed by the benchmark


def build(base: Path, config_folder: Path, port: int, n: int) -> Install:
    """A fresh store and executor over a freshly loaded config, with the plan recorded."""
    folder = base / f"round-{n:02d}"
    config = config_mod.load(config_folder)
    store = Store(f"sqlite:///{folder / 'state.sqlite'}")
    store.migrate()
    transport = transports.load("smtp", {"host": HOST, "port": port, "security": "none",
                                         "timeout": 30.0})
    executor = Executor(config, store, transport)
    t = time.perf_counter()
    counts = executor.current_plan(NOW)  # plan and record: not what is measured here
    plan_s = time.perf_counter() - t
    if counts is None or counts[0] == 0:
        raise SystemExit(f"round {n}: recording the plan did nothing: {counts}")
    due = store.rows(states=["planned"])
    due = [r for r in due if r.send_at <= NOW]
    kinds = {r.kind for r in due}
    if kinds != {"invitation"}:
        raise SystemExit(f"round {n}: due at {NOW.isoformat()} are not just invitations: "
                         f"{sorted(kinds)}")
    return Install(folder, store, executor, len(due), plan_s)


def send_all(inst: Install) -> tuple[list[TickResult], int]:
    """Tick at ``now`` until a tick sends nothing (the timed part). Returns the results and
    the number of messages sent."""
    results: list[TickResult] = []
    sent = 0
    while True:
        r = inst.executor.tick(NOW)
        results.append(r)
        sent += len(r.sent)
        if r.errors or r.retry or r.failed or r.parked or r.skipped_late or r.replanned:
            raise SystemExit(f"a clerk tick went wrong: {_brief(r)}")
        if not r.sent:
            return results, sent


def _brief(r: TickResult) -> str:
    d = r.as_dict()
    return ", ".join(f"{k}={len(v) if isinstance(v, list) else v}" for k, v in d.items()
                     if v and k != "now")


# --- the baseline ------------------------------------------------------------------------


@dataclass(frozen=True)
class Prebuilt:
    sender: str
    recipient: str
    data: bytes


def prebuild(inst: Install) -> list[Prebuilt]:
    """The messages ``inst``'s tick would send, built and flattened (CRLF) now, untimed:
    what ``SmtpTransport.send`` hands to smtplib."""
    out = []
    by_key = {d.key: d for d in inst.executor.messages()}
    secret = inst.store.secret()  # the install's, as clerk's own side uses for Message-IDs
    for row in inst.store.due_keys(NOW, limit=10**9):
        d = by_key[row.key]
        group = inst.executor.config.group(d.group)
        msg = render_email.build(group, d, NOW, None, secret=secret)
        out.append(Prebuilt(group.organiser.email, d.recipient.email, msg.data))
    return out


def bare_loop(port: int, messages: list[Prebuilt]) -> int:
    conn = smtplib.SMTP(HOST, port, timeout=30)
    try:
        for m in messages:
            refused = conn.sendmail(m.sender, [m.recipient], m.data)
            if refused:
                raise SystemExit(f"the sink refused {refused}")
    finally:
        conn.quit()
    return len(messages)


# --- where a clerk tick's time goes ------------------------------------------------------


class Breakdown:
    """Exclusive wall time per label (a label's time excludes labelled calls inside it)."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._stack: list[tuple[str, list[float]]] = []  # (label, [children's time])

    @contextlib.contextmanager
    def part(self, label: str) -> Iterator[None]:
        start = time.perf_counter()
        self._stack.append((label, [0.0]))
        try:
            yield
        finally:
            _, (child,) = self._stack.pop()
            elapsed = time.perf_counter() - start
            self.totals[label] += elapsed - child
            self.calls[label] += 1
            if self._stack:
                self._stack[-1][1][0] += elapsed

    def wrap(self, label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self.part(label):
                return fn(*args, **kwargs)

        return wrapper


LABELS = {
    "jinja": "jinja2: text + HTML parts",
    "ical": "iCalendar (invite_ics)",
    "mime": "MIME: headers and parts written to bytes (rest of build)",
    "start": "SMTP: MAIL FROM, the first RCPT TO, their answers",
    "smtp": "SMTP: DATA and its answer, the message (_data)",
    "answer": "SMTP: waiting for the answer to the message's data",
    "begin": "ledger: begin; the message before → sent (UPDATE + INSERT)",
    "claim": "ledger: this row → sending (UPDATE + INSERT), commit",
    "due": "ledger: due_keys + tick set-up (current_plan check)",
    "connect": "SMTP connect + EHLO + QUIT",
    "other": "executor loop, token, Message-ID, logging, rest",
}


def breakdown_round(inst: Install) -> tuple[Breakdown, float, int]:
    """One clerk round with the parts of a send timed separately (a little slower)."""
    bd = Breakdown()
    ex, store, transport = inst.executor, inst.store, inst.executor.transport
    smtp_cls = smtplib.SMTP
    patches = [
        mock.patch.object(render_email, "render", bd.wrap("jinja", render_email.render)),
        mock.patch.object(render_email, "invite_ics",
                          bd.wrap("ical", render_email.invite_ics)),
        mock.patch.object(render_email, "build", bd.wrap("mime", render_email.build)),
        mock.patch.object(transport, "start", bd.wrap("start", transport.start)),
        mock.patch.object(smtp_mod, "_data", bd.wrap("smtp", smtp_mod._data)),
        mock.patch.object(smtp_mod, "_end", bd.wrap("answer", smtp_mod._end)),
        mock.patch.object(smtp_cls, "connect", bd.wrap("connect", smtp_cls.connect)),
        mock.patch.object(smtp_cls, "ehlo", bd.wrap("connect", smtp_cls.ehlo)),
        mock.patch.object(smtp_cls, "quit", bd.wrap("connect", smtp_cls.quit)),
        # the claim's transaction: begun while MAIL FROM is answered, committed after RCPT
        mock.patch.object(sending_mod._Claim, "begin",
                          bd.wrap("begin", sending_mod._Claim.begin)),
        mock.patch.object(sending_mod._Claim, "__call__",
                          bd.wrap("claim", sending_mod._Claim.__call__)),
        mock.patch.object(store, "due_keys", bd.wrap("due", store.due_keys)),
        mock.patch.object(ex, "current_plan", bd.wrap("due", ex.current_plan)),
        mock.patch.object(ex, "recover", bd.wrap("due", ex.recover)),
    ]
    with contextlib.ExitStack() as stack:
        for p in patches:
            stack.enter_context(p)
        t = time.perf_counter()
        with bd.part("other"):
            _, sent = send_all(inst)
        total = time.perf_counter() - t
    return bd, total, sent


def print_breakdown(bd: Breakdown, total: float, sent: int) -> None:
    print(f"\nwhere a clerk round's time goes ({sent:,} messages, {total:.2f} s with the "
          f"instrumentation, {total / sent * 1e6:.0f} µs/message; exclusive times)")
    for label, seconds in sorted(bd.totals.items(), key=lambda kv: -kv[1]):
        print(f"  {LABELS[label]:<62}{seconds:7.2f} s {seconds / total:6.1%}"
              f"{seconds / sent * 1e6:8.0f} µs/msg")


def profile_round(inst: Install, top: int) -> None:
    prof = cProfile.Profile()
    prof.enable()
    _, sent = send_all(inst)
    prof.disable()
    for key, title in (("tottime", "own time"), ("cumulative", "cumulative time")):
        out = io.StringIO()
        pstats.Stats(prof, stream=out).strip_dirs().sort_stats(key).print_stats(top)
        print(f"\n--- cProfile of a clerk round ({sent:,} messages): top {top} by {title} ---")
        print(out.getvalue().split("\n", 4)[-1].rstrip())


# --- main --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--groups", type=int, default=50, help="groups (default 50)")
    ap.add_argument("--members", type=int, default=40,
                    help="members per group (default 40); invitations = groups × members")
    ap.add_argument("--rounds", type=int, default=7, help="interleaved timed rounds")
    ap.add_argument("--sink", choices=("process", "thread"), default="process",
                    help="run aiosmtpd in a child process (default) or in a thread here")
    ap.add_argument("--profile", action="store_true",
                    help="also time the parts of a send and print a cProfile of a clerk round")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir and print it")
    args = ap.parse_args(argv)

    import aiosmtpd

    want = args.groups * args.members
    print(f"clerk smtp throughput benchmark — Python {platform.python_version()}, "
          f"SQLAlchemy {sa.__version__}, SQLite {sqlite3.sqlite_version}, aiosmtpd "
          f"{aiosmtpd.__version__}, {mp.cpu_count()} CPUs")
    print(f"{args.groups} groups × {args.members} members = {want:,} invitations due at "
          f"{NOW.isoformat()}; sink: aiosmtpd in a {args.sink} on {HOST}")

    base = Path(tempfile.mkdtemp(prefix="clerk-bench-smtp-"))
    sink = Sink(args.sink)
    try:
        sink.start()
        config_folder = base / "config"
        generate(config_folder, args.groups, args.members)
        print(f"sink on port {sink.port}; temp dir {base}")

        round_no = 0

        def fresh() -> Install:
            nonlocal round_no
            round_no += 1
            inst = build(base, config_folder, sink.port, round_no)
            if inst.due != want:
                raise SystemExit(f"{inst.due} invitations due, expected {want}")
            return inst

        # the baseline's messages: what clerk's first tick sends, built before any timing
        first = fresh()
        messages = prebuild(first)
        if len(messages) != want:
            raise SystemExit(f"pre-built {len(messages)} messages, expected {want}")
        size = sum(len(m.data) for m in messages) / len(messages)
        print(f"plan + record (untimed): {first.plan_s:.2f} s, "
              f"{sum(first.store.counts().values()):,} ledger rows; "
              f"mean message {size:,.0f} bytes")

        cpu_s: dict[str, list[float]] = {"clerk": [], "bare": []}  # this process's CPU time

        def clerk_side(inst: Install) -> tuple[float, int, int, int]:
            before = sink.read()
            gc.collect()
            t, cpu = time.perf_counter(), time.process_time()
            results, sent = send_all(inst)
            elapsed = time.perf_counter() - t
            cpu_s["clerk"].append(time.process_time() - cpu)
            after = sink.read()
            got, octets = after[0] - before[0], after[1] - before[1]
            if sent != want or got != want:
                raise SystemExit(f"clerk: sent {sent}, the sink got {got}; expected {want}")
            left = inst.store.due_keys(NOW)
            if left:
                raise SystemExit(f"clerk: {len(left)} rows still due after the ticks")
            inst.store.dispose()
            return elapsed, len(results) - 1, sent, octets

        def bare_side() -> tuple[float, int, int]:
            before = sink.read()
            gc.collect()
            t, cpu = time.perf_counter(), time.process_time()
            n = bare_loop(sink.port, messages)
            elapsed = time.perf_counter() - t
            cpu_s["bare"].append(time.process_time() - cpu)
            after = sink.read()
            got, octets = after[0] - before[0], after[1] - before[1]
            if got != n or n != want:
                raise SystemExit(f"bare: sent {n}, the sink got {got}; expected {want}")
            return elapsed, n, octets

        # warm-up, untimed: prebuild() already rendered every message (jinja templates,
        # icalendar and the email package are loaded); one bare pass warms the sink (its
        # CPU time is left out below)
        first.store.dispose()
        bare_side()

        clerk_s: list[float] = []
        bare_s: list[float] = []
        ticks: set[int] = set()
        octets_c: set[int] = set()
        octets_b: set[int] = set()
        setup_s: list[float] = []
        for i in range(args.rounds):
            t = time.perf_counter()
            inst = fresh()  # fresh config load, store and executor, untimed
            setup_s.append(time.perf_counter() - t)
            # alternate which side goes first, so neither always follows the other
            if i % 2 == 0:
                c = clerk_side(inst)
                b = bare_side()
            else:
                b = bare_side()
                c = clerk_side(inst)
            clerk_s.append(c[0])
            ticks.add(c[1])
            octets_c.add(c[3])
            bare_s.append(b[0])
            octets_b.add(b[2])
            print(f"  round {i + 1}: clerk {want / c[0]:7.0f} msg/s ({c[1]} ticks), bare "
                  f"{want / b[0]:7.0f} msg/s, ratio {b[0] / c[0]:.3f}")

        print(f"\n{args.rounds} interleaved rounds of {want:,} messages each "
              f"(set-up of each clerk round, untimed: {statistics.median(setup_s):.1f} s)")
        print(f"  {'side':<44}{'median s':>9}{'msg/s':>9}{'µs/msg':>9}{'min s':>8}{'max s':>8}")
        rows = (("clerk: Executor.tick via smtp (all due)", clerk_s),
                ("bare: smtplib loop, pre-built, 1 connection", bare_s))
        for name, values in rows:
            m = statistics.median(values)
            print(f"  {name:<44}{m:9.3f}{want / m:9.0f}{m / want * 1e6:9.0f}"
                  f"{min(values):8.3f}{max(values):8.3f}")
        ratios = [b / c for b, c in zip(bare_s, clerk_s, strict=True)]
        ratio = statistics.median(bare_s) / statistics.median(clerk_s)
        print(f"  ratio clerk/bare throughput: {ratio:.3f} (per round: "
              f"{', '.join(f'{r:.3f}' for r in ratios)})")
        print(f"  bytes at the sink per round: clerk {sorted(octets_c)}, bare "
              f"{sorted(octets_b)}")
        print(f"  clerk needed {sorted(ticks)} tick(s) per round to send {want:,}")
        cpu_c, cpu_b = (statistics.median(cpu_s[k][-args.rounds:]) / want * 1e6
                        for k in ("clerk", "bare"))
        print(f"  this process's CPU time per message (median): clerk {cpu_c:,.0f} µs, bare "
              f"{cpu_b:,.0f} µs (the rest of the wall time is waiting for the sink)")
        per_c = statistics.median(clerk_s) / want * 1e6
        per_b = statistics.median(bare_s) / want * 1e6
        print(f"  clerk spends {per_c - per_b:,.0f} µs/message more than the bare loop; the "
              f"target allows {per_b / TARGET - per_b:,.0f} µs/message more")
        verdict = "met" if ratio >= TARGET else "MISSED"
        print(f"\ntarget: clerk ≥ {TARGET} × the bare loop's throughput — {ratio:.3f}: "
              f"{verdict}")

        if args.profile:
            inst = fresh()
            bd, total, sent = breakdown_round(inst)
            inst.store.dispose()
            print_breakdown(bd, total, sent)
            inst = fresh()
            profile_round(inst, 25)
            inst.store.dispose()
    finally:
        sink.stop()
        if args.keep:
            print(f"\nkept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
