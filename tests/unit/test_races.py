"""Several workers on one store: every insert two of them may race on is absorbed by the
database (INSERT … ON CONFLICT), so neither fails. Each test holds one worker's transaction
open, its row written but not committed, while another makes the same fact — on SQLite (the
second waits for the write lock) and on PostgreSQL (it waits for the first one's row)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot.engine.schema import quarantine, replies, roster
from bot.engine.store import Store, invite_revisions, meta, rsvps, submissions

NOW = datetime(2026, 12, 1, 10, tzinfo=UTC)


@contextmanager
def slow_commit(store: Store, written: threading.Event) -> Iterator[None]:
    """The store's transactions, once their writes are done, wait half a second before they
    commit (``written`` is set then): another worker's write comes in between."""
    real = store.atomic

    @contextmanager
    def atomic(conn: Connection | None = None) -> Iterator[Connection]:
        with real(conn) as c:
            yield c
            written.set()
            time.sleep(0.5)

    store.atomic = atomic  # type: ignore[method-assign]
    try:
        yield
    finally:
        store.atomic = real  # type: ignore[method-assign]


def race(store: Store, first: Callable[[Store], Any], second: Callable[[Store], Any]
         ) -> tuple[Any, Any]:
    """``first`` in another worker (its own store object and connections), its transaction
    held open once written; ``second`` in this one meanwhile. Both results; either's
    error is raised."""
    other = Store(store.url)
    written = threading.Event()
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            with slow_commit(other, written):
                out["first"] = first(other)
        except BaseException as exc:
            out["error"] = exc
        finally:
            written.set()

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert written.wait(30)
        out["second"] = second(store)
    finally:
        thread.join(30)
        other.dispose()
    if "error" in out:
        raise out["error"]
    return out["first"], out["second"]


def count(store: Store, table: sa.Table) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_the_secret_made_twice_at_once_is_one_secret(store: Store):
    first, second = race(store, lambda s: s.secret(), lambda s: s.secret())
    assert first == second == store.secret()


def test_one_revision_recorded_by_two_workers_at_once(store: Store):
    def record(s: Store) -> None:
        with s.atomic() as conn:
            s.record_revisions(conn, [("g", "m", 1, "d" * 64, {"start": "x"}, False, False),
                                      ("g", "m2", 1, "e" * 64, {"start": "y"}, False, False)],
                               NOW)

    race(store, record, record)
    assert count(store, invite_revisions) == 2


def test_the_facts_version_bumped_by_two_workers_at_once_counts_both(store: Store):
    def bump(s: Store) -> None:
        with s.atomic() as conn:
            s.bump_facts(conn)

    race(store, bump, bump)  # a new store: the first bump makes the row
    assert store.facts_version() == 2


def test_a_roster_noted_by_two_workers_at_once(store: Store):
    rosters = {"g": {"a@x.example": "row1", "b@x.example": "row2"}}
    first, second = race(store, lambda s: s.note_roster(rosters, NOW),
                         lambda s: s.note_roster(rosters, NOW))
    assert (first, second) == (2, 0)
    assert count(store, roster) == 2


def test_an_answer_recorded_by_two_workers_at_once(store: Store):
    def answer(partstat: str) -> Callable[[Store], None]:
        return lambda s: s.record_rsvp("g", "m", "", "a@x.example", partstat, "", 0, NOW)

    race(store, answer("ACCEPTED"), answer("DECLINED"))
    with store.engine.connect() as conn:
        assert list(conn.execute(sa.select(rsvps.c.partstat)).scalars()) == ["DECLINED"]


def test_papers_marked_by_two_workers_at_once(store: Store):
    def mark(status: str) -> Callable[[Store], None]:
        return lambda s: s.mark_submitted("g", "m", "rfi", "Kent", status, NOW)

    race(store, mark("submitted"), mark("nil"))  # a later nil does not undo papers in
    with store.engine.connect() as conn:
        assert list(conn.execute(sa.select(submissions.c.status)).scalars()) == ["submitted"]


def test_a_reply_owed_for_one_message_by_two_workers_is_owed_once(store: Store):
    def owe(s: Store) -> int:
        return s.owe_reply("g", "a@x.example", "A", "Re: x", "Which action?", "<m@x>", NOW)

    first, second = race(store, owe, owe)
    assert first == second and count(store, replies) == 1
    # without a Message-ID to tell them apart, two answers are two
    store.owe_reply("g", "a@x.example", "A", "Re: x", "Which action?", None, NOW)
    store.owe_reply("g", "a@x.example", "A", "Re: x", "Which action?", None, NOW)
    assert count(store, replies) == 3


def test_an_attachment_kept_back_by_two_workers_is_kept_back_once(store: Store):
    values = {"group_id": "g", "meeting_id": "m", "organisation": "Kent",
              "sender": "a@x.example", "message_id": "<m@x>", "name": "x.exe", "path": None,
              "size": 10, "reason": "not an allowed type"}
    first, second = race(store, lambda s: s.keep_back(values, NOW),
                         lambda s: s.keep_back(values, NOW))
    assert first == second and count(store, quarantine) == 1


def test_the_config_problems_noted_by_two_workers_at_once(store: Store):
    race(store, lambda s: s.note_config_problems(["a: bad"], NOW),
         lambda s: s.note_config_problems(["b: worse"], NOW))
    found = store.config_problems()
    assert found is not None and found["problems"] == ["b: worse"]


def test_two_first_starts_at_once_migrate_once(store: Store):
    from bot.engine.migrations import MIGRATIONS
    from tests.conftest import _drop_all

    if store.engine.dialect.name == "postgresql":
        _drop_all(store)
    else:
        store.dispose()
        store = Store(store.url.replace("state.sqlite", "fresh.sqlite"))
    first, second = race(store, lambda s: s.migrate(), lambda s: s.migrate())
    assert first == [name for name, _ in MIGRATIONS] and second == []
    assert store.migrate() == []


# --- claims: who is at work, and recovering what a worker left ----------------------------


def other_worker(store: Store, nonce: str = "b") -> Store:
    """Another worker's store on the same database: this process by another name (so its
    claims are not this one's, and this host sees it alive)."""
    from dataclasses import replace

    from bot.engine.claims import me

    other = Store(store.url)
    other.claimant = str(replace(me(), nonce=nonce))
    return other


def test_a_lock_taken_by_two_workers_at_once_is_taken_once(store: Store):
    b = other_worker(store)
    try:
        first, second = race(store, lambda s: s.lock("mailbox"), lambda s: b.lock("mailbox"))
    finally:
        b.dispose()
    assert (first, second) == (True, False)
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).where(
            meta.c.name == "lock:mailbox")).scalar_one() == 1
