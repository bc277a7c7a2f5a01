"""The transport contract (bot/transports/base.py), one test class run against every
transport: outbox (a Maildir), smtp (an in-process SMTP server), exchange and graph (fakes of
the services at the HTTP layer)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest

from bot import config as config_mod
from bot.domain.errors import TransportError
from bot.domain.tokens import make_token
from bot.plan.planner import plan
from bot.plan.state import State
from bot.render import email as render_email
from bot.transports.base import Mail, Transport
from tests.conftest import EXAMPLE

GO_LIVE = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
SECRET = "hunter2-not-for-logs"


@dataclass
class Backend:
    """A transport and a way to see what reached the other side and to break it."""

    transport: Transport
    delivered: Callable[[], list[tuple[str, str, str]]]  # (to, subject, ledger key)
    break_it: Callable[[], None]  # the next send fails in a way that may clear
    ordered: bool = True  # whether the other side shows the order messages came in


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

    return Backend(t, delivered, break_it, ordered=False)  # a Maildir keeps no order


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
def messages() -> list[Mail]:
    """Three rendered requests for information, as the executor builds them."""
    config = config_mod.load(EXAMPLE.parent)
    group = config.groups[0]
    wanted = [d for d in plan(config, State(), datetime(2026, 12, 20, tzinfo=UTC)).messages
              if d.kind == "request"][:3]
    assert len(wanted) == 3
    return [render_email.build(group, d, GO_LIVE, make_token(b"secret", d.key),
                               secret=b"secret") for d in wanted]


class TestTransportContract:
    def test_send_delivers_to_the_recipient_with_subject_and_key(
            self, backend: Backend, messages: list[Mail]):
        backend.transport.send(messages[0])
        [(to, subject, key)] = backend.delivered()
        assert to == messages[0].to[0][1]
        assert subject == messages[0].subject
        assert key == messages[0].key

    def test_send_many_gives_one_outcome_per_message_in_order(
            self, backend: Backend, messages: list[Mail]):
        outcomes = backend.transport.send_many(messages)
        assert outcomes == [None, None, None]
        got = [k for _, _, k in backend.delivered()]
        want = [m.key for m in messages]
        assert got == want if backend.ordered else sorted(got) == sorted(want)

    def test_lookup_never_says_sent_before_and_never_denies_after(
            self, backend: Backend, messages: list[Mail]):
        m = messages[1]
        mid, key = m.message_id, m.key
        assert backend.transport.lookup(mid, key) is not True
        backend.transport.send(m)
        assert backend.transport.lookup(mid, key) is not False

    def test_a_failure_that_may_clear_is_a_retryable_error_not_a_return_value(
            self, backend: Backend, messages: list[Mail]):
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


# --- the calendar side (bot/plan/calendar.py), for the transports whose server owns meetings ----

@dataclass
class Calendar:
    transport: Any
    requests: Callable[[], int]  # requests made so far (sign-in not counted)
    answer: Callable[[str, str, str], None]  # (item, email, ACCEPTED|DECLINED|TENTATIVE)
    delete: Callable[[str], None]  # the organiser deletes the item by hand
    attendees: Callable[[str], set[str]]


def _graph_calendar(graph: Any, monkeypatch: pytest.MonkeyPatch, **_: Any) -> Calendar:
    monkeypatch.setenv("CLERK_TEST_GRAPH_SECRET", "s3cret")
    words = {"ACCEPTED": "accepted", "DECLINED": "declined", "TENTATIVE": "tentativelyAccepted"}
    return Calendar(
        graph.transport(), lambda: len(graph.graph_calls()),
        lambda item, email, a: graph.answer(item, email, words[a]),
        lambda item: graph.events.pop(item),
        lambda item: {a["emailAddress"]["address"] for a in graph.events[item]["attendees"]})


def _exchange_calendar(ews: Any, **_: Any) -> Calendar:
    words = {"ACCEPTED": "Accept", "DECLINED": "Decline", "TENTATIVE": "Tentative"}
    return Calendar(ews.transport(), lambda: len(ews.requests),
                    lambda item, email, a: ews.respond(item, email, words[a]),
                    lambda item: ews.items.pop(item), lambda item: set(ews.attendees(item)))


@pytest.fixture(params=["exchange", "graph"])
def server(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    if request.param == "graph":
        c = _graph_calendar(request.getfixturevalue("graph"), monkeypatch)
    else:
        c = _exchange_calendar(request.getfixturevalue("ews"))
    yield c
    c.transport.close()


def _people(n: int) -> tuple[tuple[str, str], ...]:
    return tuple((f"Member {i}", f"member{i}@council.example") for i in range(n))


def _change(revision: int, invite: tuple[tuple[str, str], ...] = (),
            cancel: tuple[tuple[str, str], ...] = (), hours: int = 2,
            cancelled: bool = False) -> Any:
    from zoneinfo import ZoneInfo

    from bot.domain.model import Person
    from bot.render.ical import EventSpec
    from bot.transports.calendar import Attendee, Content, MeetingChange

    start = datetime(2027, 1, 14, 14, tzinfo=ZoneInfo("Europe/London"))
    return MeetingChange(
        uid="qa-leads.2027-q1@network.example", group="qa-leads", unit="2027-q1",
        revision=revision,
        content=Content("QA Leads Network meeting", "<p>Dear members</p>", "Europe/London",
                        Person("QA Leads", "clerk@contoso.example"),
                        (EventSpec(start, start + timedelta(hours=hours), "QA Leads"),)),
        cancelled=cancelled, invite=tuple(Attendee(f"k{e}", n, e) for n, e in invite),
        cancel=tuple(Attendee(f"c{e}", n, e) for n, e in cancel))


def _apply(server: Calendar, change: Any, parts: list[Any]) -> list[Any]:
    from bot.plan.calendar import operations

    return list(server.transport.apply_all(change, operations(change, parts), parts))


class TestCalendarContract:
    def test_inviting_25_is_a_constant_number_of_requests(self, server: Calendar):
        before = server.requests()
        [part] = _apply(server, _change(0, _people(25)), [])
        assert server.requests() - before <= 2  # whatever the number of members
        assert server.attendees(part.item_id) == {e for _, e in _people(25)}

    def test_what_is_made_is_found_again_by_its_uid(self, server: Calendar):
        made = _apply(server, _change(0, _people(3)), [])
        made = _apply(server, _change(0, _people(4)), made)  # a newcomer's own item
        found = server.transport.find("qa-leads.2027-q1@network.example")
        assert [(p.part, p.item_id, p.emails, p.revision) for p in found] == [
            (p.part, p.item_id, p.emails, p.revision) for p in made]

    def test_an_update_and_a_removal_keep_the_same_item(self, server: Calendar):
        parts = _apply(server, _change(0, _people(3)), [])
        parts = _apply(server, _change(1, _people(3), hours=3), parts)
        parts = _apply(server, _change(1, cancel=_people(3)[2:]), parts)
        [part] = parts
        assert part.revision == 1 and server.attendees(part.item_id) == {
            e for _, e in _people(2)}
        [found] = server.transport.find("qa-leads.2027-q1@network.example")
        assert found.revision == 1 and found.emails == part.emails

    def test_answers_are_read_for_every_item(self, server: Calendar):
        [part] = _apply(server, _change(0, _people(3)), [])
        (_, a), (_, b), (_, c) = _people(3)
        server.answer(part.item_id, a, "ACCEPTED")
        server.answer(part.item_id, b, "DECLINED")
        server.answer(part.item_id, c, "TENTATIVE")
        assert server.transport.responses([part.item_id]) == {
            part.item_id: {a: "ACCEPTED", b: "DECLINED", c: "TENTATIVE"}}

    def test_cancelling_an_item_already_gone_is_done_not_an_error(self, server: Calendar):
        [part] = _apply(server, _change(0, _people(2)), [])
        server.delete(part.item_id)
        [after] = _apply(server, _change(0, cancel=_people(2), cancelled=True), [part])
        assert after.cancelled

    def test_an_update_of_an_item_deleted_by_hand_may_be_retried(self, server: Calendar):
        [part] = _apply(server, _change(0, _people(2)), [])
        server.delete(part.item_id)
        with pytest.raises(TransportError) as caught:
            _apply(server, _change(1, _people(2), hours=3), [part])
        assert caught.value.retryable and "deleted in Outlook" in str(caught.value)
        assert server.transport.find("qa-leads.2027-q1@network.example") == []
