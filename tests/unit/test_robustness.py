"""What a long-running worker meets: another process at work, odd mail, late edits, a second
group, a go-live date — each handled without a duplicate, a loss or a stopped worker."""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bot.engine.executor import Executor
from bot.engine.store import Store, ledger
from bot.transports.base import Mail
from bot.transports.memory import MemoryTransport
from tests.conftest import edit, second_group

T0 = datetime(2026, 12, 1, 10, tzinfo=UTC)
AMAN = "aman.sekhon-gill@bucks.example"


def test_a_row_another_live_process_is_sending_is_not_recovered(
        make_executor: Callable[[], Executor], store: Store):
    ex = make_executor()
    ex.tick(T0)
    key = "qa-leads/2027-q1/invitation/tina.jameson@brighton-hove.example/r0"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        import socket

        with store.atomic() as conn:  # as if that process were sending it right now
            conn.execute(ledger.update().where(ledger.c.key == key).values(
                state="sending", claimed_by=f"{socket.gethostname()}:{other.pid}",
                claimed_at=datetime.now(UTC)))
        assert make_executor().tick(T0 + timedelta(minutes=1)).recovered == 0
        assert store.row(key).state == "sending"
    finally:
        other.kill()
        other.wait()
    result = make_executor().tick(T0 + timedelta(minutes=2))  # now it is gone: in doubt
    assert result.recovered == 1
    assert store.row(key).state == "sent"  # the memory transport has it: not sent again


class ListMailbox:
    """A mailbox of our own interface (bot/transports/imap.py) holding raw messages."""

    def __init__(self, raws: list[bytes]) -> None:
        self.inbox = dict(enumerate(raws))
        self.filed: dict[int, bool] = {}

    def messages(self) -> Iterator[tuple[int, bytes]]:
        yield from list(self.inbox.items())

    def file(self, uid: int, handled: bool) -> None:
        self.filed[uid] = handled
        del self.inbox[uid]

    def find_sent(self, message_id: str) -> bool | None:
        return None

    def keep_sent(self, raw: bytes) -> None:
        pass

    def close(self) -> None:
        pass


def test_a_message_clerk_cannot_use_is_filed_and_sending_goes_on(
        make_executor: Callable[[], Executor], store: Store, config_dir: Path):
    ex = make_executor()
    ex.tick(T0)
    assert isinstance(ex.transport, MemoryTransport)
    invite = ex.transport.sent[0]
    reply = EmailMessage()
    reply["From"] = str(invite["To"])
    reply["To"], reply["Subject"] = "qa-leads@network.example", "Re: invitation"
    reply["In-Reply-To"] = invite["Message-ID"]
    reply["Message-ID"] = "<" + "x" * 400 + "@spam.example>"  # longer than any column
    reply.set_content("AGENDA: an item")
    with store.atomic() as conn:  # its group has since left the config
        conn.execute(ledger.update().where(ledger.c.message_id == invite["Message-ID"])
                     .values(group_id="gone"))
    mailbox = ListMailbox([reply.as_bytes(), b"\x00\xff not mail at all"])
    executor = Executor(ex.config, store, ex.transport, mailbox=mailbox)
    result = executor.tick(datetime(2026, 12, 17, 10, tzinfo=UTC))
    assert result.read == 2 and mailbox.inbox == {} and set(mailbox.filed.values()) == {False}
    assert len([k for k in result.sent if "/rfi/" in k]) == 16  # the requests still went


def test_a_message_recorded_too_late_goes_when_an_edit_makes_it_timely(
        make_executor: Callable[[], Executor], store: Store, group_dir: Path):
    toml = group_dir / "group.toml"
    edit(toml, "start = 2027-04-15T14:00:00", "start = 2027-02-11T14:00:00")
    make_executor().tick(datetime(2027, 2, 3, 10, tzinfo=UTC))  # q2's request is too late
    assert {r.state for r in store.rows() if "/2027-q2/rfi/" in r.key} == {"skipped_late"}
    edit(toml, "start = 2027-02-11T14:00:00", "start = 2027-04-15T14:00:00")  # moved back
    sent = make_executor().tick(datetime(2027, 3, 18, 10, tzinfo=UTC)).sent
    assert len([k for k in sent if "/2027-q2/rfi/" in k]) == 16


def test_done_in_one_group_does_not_bring_a_second_chaser_that_day(
        make_executor: Callable[[], Executor], store: Store, clerk: Callable[..., object],
        config_dir: Path):
    second_group(config_dir)  # the same roster
    created = datetime(2027, 1, 15, 12, tzinfo=UTC)
    first = store.add_action({"group_id": "qa-leads", "meeting_id": "", "topic": "A",
                              "text": "In the first group", "owners": (AMAN,),
                              "due": date(2027, 2, 12)}, "t", "t", created)
    store.add_action({"group_id": "second", "meeting_id": "", "topic": "B",
                      "text": "In the second group", "owners": (AMAN,),
                      "due": date(2027, 2, 12)}, "t", "t", created)
    ex = make_executor()
    day = datetime(2027, 1, 22, 10, tzinfo=UTC)
    chasers = [k for k in ex.tick(day).sent if "/-/actions/" in k]
    store.change_action(first, "DONE", AMAN, "reply", day, status="done",
                        completed=day.date())
    chasers += [k for k in ex.tick(day + timedelta(hours=1)).sent if "/-/actions/" in k]
    assert chasers == [f"-/-/actions/{AMAN}/2027-01-22"]


def test_nothing_is_chased_before_go_live(make_executor: Callable[[], Executor],
                                         store: Store):
    store.add_action({"group_id": "qa-leads", "meeting_id": "", "topic": "Old",
                      "text": "From before clerk", "owners": (AMAN,),
                      "due": date(2026, 11, 20)}, "t", "t", datetime(2026, 11, 2, tzinfo=UTC))
    ex = make_executor()
    day = datetime(2026, 11, 2, 10, tzinfo=UTC)
    sent: list[str] = []
    while day < datetime(2026, 12, 12, tzinfo=UTC):
        sent += [k for k in ex.tick(day).sent if "/-/actions/" in k]
        day += timedelta(days=1)
    with store.engine.connect() as conn:
        first = conn.execute(sa.select(sa.func.min(ledger.c.send_at)).where(
            ledger.c.kind == "action_chaser")).scalar()
    assert sent and first is not None and first.date() >= date(2026, 12, 1)


def test_a_transport_with_a_batch_gets_messages_together_and_each_outcome_is_recorded(
        config_dir: Path, store: Store):
    from bot import config as config_mod
    from bot.domain.errors import TransportError

    class Batched(MemoryTransport):
        batch = 8

        def __init__(self) -> None:
            super().__init__()
            self.calls: list[int] = []

        def send_many(self, messages: list[Mail]) -> list[TransportError | None]:
            self.calls.append(len(messages))
            return super().send_many(messages)

    t = Batched()
    t.fail["joanne.beale@bracknell.example"] = TransportError("451 later", retryable=True)
    t.fail["tina.jameson@brighton-hove.example"] = TransportError("550 no", retryable=False)
    result = Executor(config_mod.load(config_dir), store, t).tick(
        datetime(2026, 12, 1, 10, 0, tzinfo=UTC))
    assert t.calls == [8, 8, 5]  # the 21 invitations, eight at a time
    assert len(result.sent) == 19 and len(t.sent) == 19
    assert [store.row(k).state for k in result.retry + result.failed] == ["retry", "failed"]
    assert "sending" not in store.counts()


def test_a_message_whose_answer_was_lost_is_looked_up_before_it_goes_again(
        config_dir: Path, store: Store):
    from bot import config as config_mod
    from bot.domain.errors import TransportError

    class LostAnswers(MemoryTransport):
        lose = True

        def send(self, message: Mail) -> None:
            super().send(message)  # delivered …
            if self.lose:
                raise TransportError("timed out", retryable=True, in_doubt=True)  # … not known

    t = LostAnswers()
    ex = Executor(config_mod.load(config_dir), store, t)
    assert len(ex.tick(datetime(2026, 12, 1, 10, 0, tzinfo=UTC)).retry) == 21
    t.lose = False
    result = ex.tick(datetime(2026, 12, 1, 11, 0, tzinfo=UTC))
    assert len(result.sent) == 21 and len(t.sent) == 21  # found, not sent twice
    assert {store.row(k).state for k in result.sent} == {"sent"}


def test_a_message_surely_refused_is_not_looked_up_before_it_goes_again(
        config_dir: Path, store: Store):
    from bot import config as config_mod
    from bot.domain.errors import TransportError

    class Counting(MemoryTransport):
        lookups = 0

        def lookup(self, message_id: str, key: str = "") -> bool | None:
            self.lookups += 1
            return super().lookup(message_id, key)

    t = Counting()
    t.fail["@"] = TransportError("451 try later", retryable=True)  # every recipient
    ex = Executor(config_mod.load(config_dir), store, t)
    assert len(ex.tick(datetime(2026, 12, 1, 10, 0, tzinfo=UTC)).retry) == 21
    t.fail.clear()
    assert len(ex.tick(datetime(2026, 12, 1, 11, 0, tzinfo=UTC)).sent) == 21
    assert t.lookups == 0


def test_the_next_message_is_rendered_while_one_is_in_flight_and_one_alone_is_in_doubt(
        config_dir: Path, store: Store, monkeypatch: Any):
    """smtp reads the server's last answer to a message only once the next one is rendered;
    that answer is recorded before the next row is claimed, so at every moment at most one
    row is in `sending` — what a kill can leave in doubt."""
    from bot import config as config_mod
    from bot.domain.errors import TransportError
    from bot.render import email as render_email

    steps: list[tuple[str, str, int]] = []

    def in_doubt() -> int:
        return store.counts().get("sending", 0)

    def build(*args: Any, **kwargs: Any) -> Mail:
        mail = real_build(*args, **kwargs)
        steps.append(("render", mail.key, in_doubt()))
        return mail

    class Answering(MemoryTransport):
        def start(self, message: Mail,
                  claim: Callable[[], bool]) -> Callable[[], None] | None:
            if not claim():  # records the one before, claims this one: one transaction
                return None
            steps.append(("start", message.key, in_doubt()))

            def finish() -> None:
                steps.append(("answer", message.key, in_doubt()))
                if "joanne.beale" in message.key:
                    raise TransportError("554 refused at the end of data", retryable=False)
                self.send(message)

            return finish

    real_build = render_email.build
    monkeypatch.setattr(render_email, "build", build)
    t = Answering()
    result = Executor(config_mod.load(config_dir), store, t).tick(T0)
    assert len(result.sent) == 20 and len(result.failed) == 1 and not result.retry
    assert [store.row(k).state for k in result.failed] == ["failed"]
    assert "sending" not in store.counts()
    assert all(n == 1 for what, _, n in steps if what != "render")  # the one in flight
    keys = [k for what, k, _ in steps if what == "start"]
    assert len(keys) == 21
    for before, after in itertools.pairwise(keys):
        at = steps.index(("start", before, 1))
        # after `before` starts: the next is rendered, then `before`'s answer, then the next
        # starts (with `before` recorded: one row in sending again)
        assert [(w, k) for w, k, _ in steps[at + 1:at + 4]] == [
            ("render", after), ("answer", before), ("start", after)]


def test_a_claim_that_fails_never_takes_the_delivered_message_before_it_with_it(
        config_dir: Path, store: Store, monkeypatch: Any):
    """Recording message k sent and claiming k+1 are one transaction; when the claim fails
    (the database locked, a connection lost), k is still recorded sent before the error goes
    on — never left in `sending` to be sent twice after the lease."""
    import pytest

    from bot import config as config_mod

    calls = [0]
    real_claim = store.claim

    def claim(*args: Any, **kwargs: Any) -> bool:
        calls[0] += 1
        if calls[0] == 3:
            raise sa.exc.OperationalError("UPDATE ledger", {}, Exception("database is locked"))
        return real_claim(*args, **kwargs)

    monkeypatch.setattr(store, "claim", claim)
    t = MemoryTransport()
    with pytest.raises(sa.exc.OperationalError):
        Executor(config_mod.load(config_dir), store, t).tick(T0)
    assert len(t.sent) == 2
    counts = store.counts()
    assert counts.get("sent") == 2 and "sending" not in counts


def test_a_pause_between_messages_never_sleeps_with_one_delivered_and_unrecorded(
        config_dir: Path, store: Store, monkeypatch: Any):
    from bot import config as config_mod
    from bot.engine import executor as executor_mod

    (config_dir / "clerk.toml").write_text("[clerk]\npause = 5\n")
    seen: list[tuple[int, int]] = []
    t = MemoryTransport()
    monkeypatch.setattr(executor_mod.time, "sleep", lambda _s: seen.append(
        (len(t.sent), store.counts().get("sent", 0))))
    config = config_mod.load(config_dir)
    assert config.settings.pause == 5
    Executor(config, store, t).tick(T0)
    assert len(seen) >= 20 and all(delivered == sent for delivered, sent in seen)


def test_the_statements_of_sending_write_what_sqlalchemy_writes(store: Store):
    """The claim, the `sent` update and their events run as prepared SQL (bot/engine/prepared.py):
    the same values as SQLAlchemy's own execute writes — instants in any zone stored as
    the same naive UTC, read back aware — on SQLite and PostgreSQL alike."""
    from zoneinfo import ZoneInfo

    from bot.engine.store import events

    at = datetime(2026, 12, 1, 11, 30, 15, 250000, tzinfo=ZoneInfo("Europe/Paris"))
    common = {"group_id": "g", "meeting_id": "m", "rule_id": "r", "kind": "invitation",
              "recipient": "a@example.org", "send_at": at, "latest_at": at,
              "created_at": at, "updated_at": at}
    with store.atomic() as conn:  # SQLAlchemy's execute: what the rows must read alike
        conn.execute(ledger.insert(), [{"key": k, "state": s, **common}
                                       for k, s in (("k1", "planned"), ("k2", "retry"),
                                                    ("k3", "sent"))])
    assert store.claim("k1", at, "<m1@x>", "smtp") and store.claim("k2", at, "<m2@x>", "smtp")
    assert not store.claim("k3", at, "<m3@x>", "smtp")  # only planned and retry rows go
    with store.atomic() as conn:
        store.update_row(conn, "k1", at, "delivered", state="sent", sent_at=at)
    with store.engine.connect() as conn:
        rows = {r.key: r for r in conn.execute(sa.select(ledger))}
        raw = conn.exec_driver_sql("SELECT key, created_at, updated_at, sent_at FROM ledger "
                                   "WHERE key = 'k1'").one()
        logged = [(e.key, e.at, e.state, e.detail) for e in conn.execute(
            sa.select(events).order_by(events.c.id))]
    assert raw.updated_at == raw.created_at == raw.sent_at  # the same stored form
    assert rows["k1"].sent_at == rows["k1"].updated_at == at.astimezone(UTC)
    assert (rows["k1"].state, rows["k2"].state, rows["k3"].state) == ("sent", "sending", "sent")
    assert (rows["k1"].attempts, rows["k2"].attempts, rows["k3"].attempts) == (1, 1, 0)
    assert rows["k2"].message_id == "<m2@x>" and rows["k2"].transport == "smtp"
    assert rows["k2"].claimed_by and rows["k2"].claimed_at.tzinfo is UTC
    assert logged == [("k1", at, "sending", ""), ("k2", at, "sending", ""),
                      ("k1", at, "sent", "delivered")]


def test_a_thread_holding_a_connection_runs_its_transactions_on_it(store: Store):
    """Store.held(): this thread's transactions share one connection; a transaction opened
    while one is in progress, or by another thread, takes its own from the pool."""
    import threading

    def connection_of(conn: sa.Connection) -> Any:
        return conn.connection.dbapi_connection

    with store.held():
        with store.atomic() as first:
            held = connection_of(first)
            with store.atomic() as inner:  # the held one is busy: another connection
                assert connection_of(inner) is not held
        with store.held(), store.atomic() as again:  # nested held(): the same connection
            assert connection_of(again) is held
        other: list[Any] = []

        def elsewhere() -> None:
            with store.atomic() as conn:
                other.append(connection_of(conn))

        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join()
        assert other and other[0] is not held
    with store.atomic() as conn:  # released: back to the pool
        conn.execute(sa.select(ledger.c.key)).all()


def test_a_tick_takes_a_connection_once_not_once_a_message(
        make_executor: Callable[[], Executor], store: Store):
    checkouts = [0]

    def count(*_: Any) -> None:
        checkouts[0] += 1

    ex = make_executor()
    ex.current_plan(T0)
    sa.event.listen(store.engine, "checkout", count)
    try:
        sent = len(ex.tick(T0).sent)
    finally:
        sa.event.remove(store.engine, "checkout", count)
    assert sent == 21 and checkouts[0] < 10


def test_a_failed_commit_on_the_held_connection_is_rolled_back_not_carried_on(tmp_path: Path):
    """SQLite can refuse a COMMIT and stay in the transaction (a deferred constraint);
    the held connection is then dropped, so the failed writes are never committed by the
    next transaction and nothing holds the database meanwhile."""
    import sqlite3

    import pytest

    path = tmp_path / "state.sqlite"
    store = Store(f"sqlite:///{path}")
    store.migrate()
    sa.event.listen(store.engine, "connect",
                    lambda dbapi, _: dbapi.execute("PRAGMA foreign_keys=ON"))
    store.engine.dispose()  # connections from now on enforce foreign keys
    with store.atomic() as conn:
        conn.exec_driver_sql("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        conn.exec_driver_sql("CREATE TABLE child (id INTEGER PRIMARY KEY, parent INTEGER "
                             "REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)")
    with store.held():
        with pytest.raises(sa.exc.IntegrityError), store.atomic() as conn:
            conn.exec_driver_sql("INSERT INTO child VALUES (1, 99)")  # refused at COMMIT
        other = sqlite3.connect(path, timeout=0.1)  # nothing holds the database
        other.execute("INSERT INTO parent VALUES (7)")
        other.commit()
        other.close()
        with store.atomic() as conn:
            conn.exec_driver_sql("INSERT INTO parent VALUES (1)")
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM child").scalar() == 0
        assert conn.exec_driver_sql("SELECT count(*) FROM parent").scalar() == 2
    store.dispose()
