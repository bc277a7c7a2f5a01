"""Benchmark: several workers on one PostgreSQL share the sending, and finish a killed one's.

Generates (in a temp dir) ``--groups`` groups of ``--members`` members from ``config/example``
(default 300 × 10), so that at ``now = 2026-12-01T10:00Z`` exactly the first meeting's 3,000
invitations are due, and sends them through the ``smtp`` transport to one loopback SMTP sink
(aiosmtpd, in a child process) that takes ``--delay`` (20 ms) over each message, as a real
relay does, and notes each message's Message-ID.

Three runs, each on an emptied database with the plan recorded beforehand (untimed):

1. one worker (``clerk --now … run``, a real process) sends them all;
2. three workers do the same, started together;
3. three workers, and one of them is sent SIGKILL once a third of the messages have gone:
   the other two must finish its work.

It prints each run's messages per second while sending (from the sink's first message to its
last: the workers' start — Python, the config, the first plan — is shown apart), the ratio of
three workers to one (target ≥ 2.5), the duplicates the sink received (a Message-ID twice:
target 0, and at most 1 for the kill) and the tracebacks in the workers' logs (target 0). It
asserts nothing on time; it refuses to report when a run did not end with every invitation
``sent``.

PostgreSQL: the URL in ``CLERK_BENCH_PG_URL`` (a database the benchmark may empty: it drops
clerk's tables), else, as root on Debian, a private server started and stopped as
tests/postgres.sh does.

Run from the repository root:  python bench/scale_out.py [--groups 300] [--members 10]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from bench.install import generate  # noqa: E402
from bot import config as config_mod  # noqa: E402
from bot import transports  # noqa: E402
from bot.engine.executor import Executor  # noqa: E402
from bot.engine.store import Store, ledger, metadata  # noqa: E402

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)  # the first meeting's invitations are due
HOST = "127.0.0.1"
TARGET = 2.5
# each worker imports clerk first, then waits for the word to go: they start together
AT_ONCE = """
import os, sys, time
from bot.cli.main import cli
while not os.path.exists(sys.argv[1]):
    time.sleep(0.001)
cli(sys.argv[2:], prog_name="clerk")
"""
MESSAGE_ID = re.compile(rb"(?im)^Message-ID:[ \t]*(<[^>\r\n]+>)")


# --- the slow sink ---------------------------------------------------------------------------


class SlowHandler:
    """aiosmtpd handler: take ``delay`` seconds over each message, then accept it and write
    its Message-ID, one a line, to ``seen``."""

    def __init__(self, delay: float, seen: str) -> None:
        self.delay = delay
        self.seen = open(seen, "ab", buffering=0)  # noqa: SIM115  (closed with the process)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(self.delay)
        found = MESSAGE_ID.search(envelope.original_content or envelope.content or b"")
        self.seen.write((found.group(1) if found else b"<none>") + b"\n")
        return "250 OK: taken"


def _sink(port: int, delay: float, seen: str, ready: Any, stop: Any) -> None:
    from aiosmtpd.controller import Controller

    controller = Controller(SlowHandler(delay, seen), hostname=HOST, port=port,
                            server_hostname="bench-sink.localhost", ready_timeout=10.0)
    controller.start()
    ready.set()
    stop.wait()
    controller.stop()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class Sink:
    def __init__(self, delay: float, seen: Path) -> None:
        self.port, self.seen = free_port(), seen
        ctx = mp.get_context("spawn")
        self._ready, self._stop = ctx.Event(), ctx.Event()
        self._proc = ctx.Process(target=_sink, daemon=True,
                                 args=(self.port, delay, str(seen), self._ready, self._stop))

    def start(self) -> None:
        self._proc.start()
        if not self._ready.wait(30):
            raise SystemExit("the SMTP sink did not start")

    def stop(self) -> None:
        self._stop.set()
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.terminate()

    def ids(self) -> list[bytes]:
        return self.seen.read_bytes().splitlines() if self.seen.exists() else []


# --- PostgreSQL ------------------------------------------------------------------------------


class Postgres:
    """``CLERK_BENCH_PG_URL``, or a private server (tests/postgres.sh) for this run."""

    def __init__(self, base: Path) -> None:
        self.dir: Path | None = None
        self.url = os.environ.get("CLERK_BENCH_PG_URL", "")
        if not self.url:
            self.dir = base / "pg"
            base.chmod(0o755)  # its user, postgres, works in there
            started = subprocess.run(["bash", str(ROOT / "tests" / "postgres.sh"), "start",
                                      str(self.dir)], capture_output=True, text=True)
            if started.returncode != 0:
                raise SystemExit("no PostgreSQL: set CLERK_BENCH_PG_URL, or run as root on "
                                 f"Debian for a private one ({started.stderr.strip()})")
            self.url = started.stdout.strip()

    def stop(self) -> None:
        if self.dir is not None:
            subprocess.run(["bash", str(ROOT / "tests" / "postgres.sh"), "stop",
                            str(self.dir)], check=False)


def emptied(url: str) -> Store:
    store = Store(url)
    with store.atomic() as conn:
        metadata.drop_all(conn)
        conn.execute(sa.text("DROP TABLE IF EXISTS migrations"))
    store.migrate()
    return store


# --- one run ---------------------------------------------------------------------------------


@dataclass
class Run:
    workers: int
    sent: int = 0
    sending_s: float = 0.0  # the sink's first message to its last
    start_s: float = 0.0  # the word to go to the sink's first message
    duplicates: int = 0
    tracebacks: int = 0
    killed_at: int | None = None

    @property
    def rate(self) -> float:
        return self.sent / self.sending_s if self.sending_s else 0.0


def run(base: Path, config_folder: Path, url: str, sink: Sink, workers: int, want: int,
        kill_after: int | None = None, timeout: float = 900) -> Run:
    store = emptied(url)
    config = config_mod.load(config_folder)
    transport = transports.load("smtp", {"host": HOST, "port": sink.port, "security": "none"})
    Executor(config, store, transport).current_plan(NOW)  # recorded: not what is measured
    with store.engine.connect() as conn:
        due = conn.execute(sa.select(sa.func.count()).where(
            ledger.c.state == "planned", ledger.c.send_at <= NOW)).scalar()
    if due != want:
        raise SystemExit(f"{due} messages due at {NOW.isoformat()}, expected {want}")
    sink.seen.write_bytes(b"")  # emptied: the sink goes on appending to it
    out = base / f"run-{workers}-{'kill' if kill_after else 'all'}"
    out.mkdir()
    go = out / "go"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CLERK_STATE": url}
    args = ["--config", str(config_folder), "--now", NOW.isoformat(), "run"]
    procs = []
    for n in range(workers):
        with (out / f"worker-{n}.log").open("wb") as log:
            procs.append(subprocess.Popen([sys.executable, "-c", AT_ONCE, str(go), *args],
                                          cwd=out, env=env, stdout=log, stderr=log))
    result = Run(workers)
    time.sleep(3)  # every worker has imported clerk
    go.touch()
    began = time.perf_counter()
    first = last = None
    count = 0
    try:
        while True:
            time.sleep(0.05)
            ids = sink.ids()
            now = time.perf_counter()
            if len(ids) > count:
                count, last = len(ids), now
                first = first or now
            if kill_after is not None and result.killed_at is None and count >= kill_after:
                procs[0].send_signal(signal.SIGKILL)
                result.killed_at = count
            with store.engine.connect() as conn:
                sent = conn.execute(sa.select(sa.func.count()).where(
                    ledger.c.state == "sent", ledger.c.send_at <= NOW)).scalar()
            if sent >= want and count >= want:
                break
            if now - began > timeout:
                raise SystemExit(f"{workers} worker(s): {sent} of {want} sent after "
                                 f"{timeout:.0f} s; logs in {out}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        store.dispose()
    ids = sink.ids()
    result.sent = len(set(ids))
    result.duplicates = len(ids) - len(set(ids))
    assert first is not None and last is not None
    result.sending_s, result.start_s = last - first, first - began
    for n in range(workers):
        text = (out / f"worker-{n}.log").read_text(errors="replace")
        result.tracebacks += text.count("Traceback")
    if result.sent != want:
        raise SystemExit(f"the sink received {result.sent} messages, expected {want}")
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--groups", type=int, default=300, help="groups (default 300)")
    ap.add_argument("--members", type=int, default=10,
                    help="members per group (default 10); invitations = groups × members")
    ap.add_argument("--workers", type=int, default=3, help="workers against one (default 3)")
    ap.add_argument("--delay", type=float, default=0.020,
                    help="seconds the sink takes over each message (default 0.020)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (the workers' logs)")
    args = ap.parse_args(argv)
    want = args.groups * args.members
    # stopped (timeout, Ctrl-C): the workers, the sink and a private PostgreSQL stopped too
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(1))

    import aiosmtpd

    base = Path(tempfile.mkdtemp(prefix="clerk-bench-scale-"))
    print(f"clerk scale-out benchmark — Python {platform.python_version()}, SQLAlchemy "
          f"{sa.__version__}, aiosmtpd {aiosmtpd.__version__}, {mp.cpu_count()} CPUs")
    print(f"{args.groups} groups × {args.members} members = {want:,} invitations due at "
          f"{NOW.isoformat()}; the sink takes {args.delay * 1000:g} ms a message")
    pg = Postgres(base)
    sink = Sink(args.delay, base / "seen")
    try:
        with Store(pg.url).engine.connect() as conn:
            print(f"PostgreSQL {conn.exec_driver_sql('SHOW server_version').scalar()}")
        sink.start()
        config_folder = base / "config"
        generate(config_folder, args.groups, args.members)
        (config_folder / "clerk.toml").write_text(
            f'[clerk]\ntransport = "smtp"\ninterval = 2\n\n[transport]\nhost = "{HOST}"\n'
            f'port = {sink.port}\nsecurity = "none"\n', encoding="utf-8")
        runs = [run(base, config_folder, pg.url, sink, 1, want),
                run(base, config_folder, pg.url, sink, args.workers, want),
                run(base, config_folder, pg.url, sink, args.workers, want,
                    kill_after=want // 3)]
    finally:
        sink.stop()
        pg.stop()
        if not args.keep:
            import shutil

            shutil.rmtree(base, ignore_errors=True)
        else:
            print(f"kept: {base}")
    print(f"{'run':<28} {'msg/s':>7} {'sending':>9} {'start':>7} {'dups':>5} {'tracebacks':>10}")
    for r in runs:
        name = f"{r.workers} worker(s)" + (f", one killed at {r.killed_at:,}"
                                          if r.killed_at is not None else "")
        print(f"{name:<28} {r.rate:>7.1f} {r.sending_s:>8.1f}s {r.start_s:>6.1f}s "
              f"{r.duplicates:>5} {r.tracebacks:>10}")
    one, many, killed = runs
    ratio = many.rate / one.rate
    print(f"{args.workers} workers / 1: {ratio:.2f} × (target ≥ {TARGET}: "
          f"{'met' if ratio >= TARGET else 'MISSED'}); duplicates {many.duplicates} (target 0), "
          f"after a kill {killed.duplicates} (target ≤ 1); tracebacks "
          f"{sum(r.tracebacks for r in runs)} (target 0)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
