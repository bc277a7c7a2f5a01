"""The transport contract (bot/transports/base.py), one test class run against every
transport: outbox (a Maildir), smtp (an in-process SMTP server), exchange and graph (fakes of
the services at the HTTP layer)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from bot import config as config_mod
from bot.errors import TransportError
from bot.planner import plan
from bot.render import email as render_email
from bot.replies import make_token
from bot.state import State
from bot.transports.base import Transport
from tests.conftest import EXAMPLE

GO_LIVE = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
SECRET = "hunter2-not-for-logs"


@dataclass
class Backend:
    """A transport and a way to see what reached the other side and to break it."""

    transport: Transport
    delivered: Callable[[], list[tuple[str, str, str]]]  # (to, subject, ledger key)
    break_it: Callable[[], None]  # the next send fails in a way that may clear


def _outbox(tmp_path: Path, **_: Any) -> Backend:
    from bot.transports.outbox import OutboxTransport

    folder = tmp_path / "outbox"
    t = OutboxTransport({"path": str(folder), "fsync": False})

    def delivered() -> list[tuple[str, str, str]]:
        found = []
        for f in sorted((folder / "new").glob("*")):
            m = message_from_bytes(f.read_bytes(), policy=policy.default)
            found.append((m["To"].addresses[0].addr_spec, str(m["Subject"]),
                          str(m["X-Clerk-Key"])))
        return found

    def break_it() -> None:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
        folder.write_text("a file where the Maildir should be")

    return Backend(t, delivered, break_it)


def _smtp(tmp_path: Path, fault_smtp: Any, monkeypatch: pytest.MonkeyPatch,
          **_: Any) -> Backend:
    from bot.transports.smtp import SmtpTransport

    monkeypatch.setenv("CLERK_SMTP_PASSWORD", SECRET)
    t = SmtpTransport({"host": fault_smtp.host, "port": fault_smtp.port, "security": "none",
                       "timeout": 5.0})

    def delivered() -> list[tuple[str, str, str]]:
        return [(r.rcpt_tos[0], str(r.message["Subject"]), str(r.message["X-Clerk-Key"]))
                for r in fault_smtp.received]

    def break_it() -> None:
        t.close()
        fault_smtp.stop()

    return Backend(t, delivered, break_it)


def _graph(graph: Any, monkeypatch: pytest.MonkeyPatch, **_: Any) -> Backend:
    monkeypatch.setenv("CLERK_TEST_GRAPH_SECRET", "s3cret")
    t = graph.transport()

    def delivered() -> list[tuple[str, str, str]]:
        return [(m["toRecipients"][0]["emailAddress"]["address"], m["subject"],
                 m["singleValueExtendedProperties"][0]["value"]) for m in graph.sent]

    return Backend(t, delivered, lambda: graph.fail(503, retry_after=300))


def _exchange(ews: Any, **_: Any) -> Backend:
    t = ews.transport()

    def delivered() -> list[tuple[str, str, str]]:
        return [(m.to, m.subject, m.key) for m in ews.sent_messages()]

    return Backend(t, delivered, ews.server_busy)


BACKENDS = {"outbox": _outbox, "smtp": _smtp, "graph": _graph, "exchange": _exchange}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    name = request.param
    needs = {"smtp": ["fault_smtp"], "graph": ["graph"], "exchange": ["ews"]}.get(name, [])
    fixtures = {f: request.getfixturevalue(f) for f in needs}
    b = BACKENDS[name](tmp_path=tmp_path, monkeypatch=monkeypatch, **fixtures)
    yield b
    b.transport.close()


@pytest.fixture(scope="module")
def messages() -> list[EmailMessage]:
    """Three rendered requests for information, as the executor builds them."""
    config = config_mod.load(EXAMPLE.parent)
    group = config.groups[0]
    wanted = [d for d in plan(config, State(), datetime(2026, 12, 20, tzinfo=UTC)).messages
              if d.kind == "request"][:3]
    assert len(wanted) == 3
    return [render_email.build(group, d, GO_LIVE, make_token(b"secret", d.key))
            for d in wanted]


class TestTransportContract:
    def test_send_delivers_to_the_recipient_with_subject_and_key(
            self, backend: Backend, messages: list[EmailMessage]):
        backend.transport.send(messages[0])
        [(to, subject, key)] = backend.delivered()
        assert to == messages[0]["To"].addresses[0].addr_spec
        assert subject == str(messages[0]["Subject"])
        assert key == str(messages[0]["X-Clerk-Key"])

    def test_send_many_gives_one_outcome_per_message_in_order(
            self, backend: Backend, messages: list[EmailMessage]):
        outcomes = backend.transport.send_many(messages)
        assert outcomes == [None, None, None]
        assert [k for _, _, k in backend.delivered()] == [str(m["X-Clerk-Key"])
                                                          for m in messages]

    def test_lookup_never_says_sent_before_and_never_denies_after(
            self, backend: Backend, messages: list[EmailMessage]):
        m = messages[1]
        mid, key = str(m["Message-ID"]), str(m["X-Clerk-Key"])
        assert backend.transport.lookup(mid, key) is not True
        backend.transport.send(m)
        assert backend.transport.lookup(mid, key) is not False

    def test_a_failure_that_may_clear_is_a_retryable_error_not_a_return_value(
            self, backend: Backend, messages: list[EmailMessage]):
        backend.break_it()
        with pytest.raises(TransportError) as caught:
            backend.transport.send(messages[2])
        assert caught.value.retryable
        assert backend.delivered() == []
        backend.break_it()
        [outcome] = backend.transport.send_many([messages[2]])
        assert isinstance(outcome, TransportError) and outcome.retryable

    def test_it_describes_itself_without_credentials(self, backend: Backend):
        t = backend.transport
        for text in (repr(t), t.describe()):
            assert text and SECRET not in text and "s3cret" not in text
        assert t.batch >= 1
        t.close()
        t.close()  # harmless twice
