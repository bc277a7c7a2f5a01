"""The graph transport against a fake Microsoft 365 at the HTTP layer (tests/graph_fake.py):
the exact requests for meetings, messages, answers, throttling, tokens and recovery."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot import config as config_mod
from bot.domain.errors import TransportError
from bot.engine import snapshot
from bot.engine.executor import Executor
from bot.engine.store import Store
from bot.render import email as render_email
from bot.transports.graph.session import DONE_PROP, PART_PROP, REV_PROP, UID_PROP
from tests.conftest import (
    ROOT,
    add_series,
    cancel_series_meeting,
    edit,
    move_series_meeting,
    remove_member,
)
from tests.graph_fake import MAILBOX, FakeGraph

GO_LIVE = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
USER = f"/users/{MAILBOX}"
EVENT = rf"{USER}/events/[^/]+"
SETTLE = timedelta(minutes=10)  # the example group's settle window: newcomers wait for it
NEWCOMERS = [("Ada Byron", "ada.byron@council.example"), ("Bo Chen", "bo.chen@trust.example"),
             ("Cy Diaz", "cy.diaz@school.example"), ("Di Evans", "di.evans@college.example")]


def use_graph(config_dir: Path) -> None:
    (config_dir / "clerk.toml").write_text(
        '[clerk]\ntransport = "graph"\n\n[transport]\nmailbox = "clerk@contoso.example"\n'
        'tenant_id = "contoso-tenant"\nclient_id = "app-id"\n'
        'client_secret_env = "CLERK_TEST_GRAPH_SECRET"\n', encoding="utf-8")


def add_members(group_dir: Path, people: list[tuple[str, str]]) -> None:
    with (group_dir / "roster.csv").open("a", encoding="utf-8") as f:
        for name, email in people:
            f.write(f"{name},{email},{email.split('@')[1]},member\n")


@pytest.fixture
def on_graph(config_dir: Path, store: Store, graph: FakeGraph) -> Callable[[], Executor]:
    use_graph(config_dir)

    def make() -> Executor:
        return Executor(config_mod.load(config_dir), store, graph.transport())

    return make


def event_posts(graph: FakeGraph) -> list[Any]:
    return graph.calls("POST", rf"{USER}/events")


def q1(graph: FakeGraph) -> dict[str, Any]:
    return next(e for e in graph.events.values()
                if e["singleValueExtendedProperties"][0]["value"].startswith("qa-leads.2027-q1"))


# --- meetings ------------------------------------------------------------------------------

def test_inviting_25_members_is_one_request_per_meeting_with_the_exact_event(
        on_graph: Callable[[], Executor], graph: FakeGraph, group_dir: Path):
    add_members(group_dir, NEWCOMERS)  # 21 + 4 = 25 members
    result = on_graph().tick(GO_LIVE)
    assert len(result.sent) == 25 and not result.errors  # the January meeting's
    posts = event_posts(graph)
    assert len(posts) == 1  # one request for the meeting, whatever the number of members
    assert len(graph.graph_calls()) == 1 + 1  # and one $batch reading the answers
    body = posts[0].body
    assert body["subject"] == "QA Leads Network meeting"
    assert body["start"] == {"dateTime": "2027-01-14T14:00:00", "timeZone": "Europe/London"}
    assert body["end"] == {"dateTime": "2027-01-14T16:00:00", "timeZone": "Europe/London"}
    assert body["location"] == {"displayName": "Online (Microsoft Teams)"}
    assert body["body"]["contentType"] == "HTML"
    assert len(body["attendees"]) == 25
    assert {"emailAddress": {"address": "ada.byron@council.example", "name": "Ada Byron"},
            "type": "required"} in body["attendees"]
    assert body["singleValueExtendedProperties"] == [
        {"id": UID_PROP, "value": "qa-leads.2027-q1@network.example"},
        {"id": PART_PROP, "value": "0"}, {"id": REV_PROP, "value": "0"},
        {"id": DONE_PROP, "value": "0"}]
    assert len(body["transactionId"]) == 36
    assert "recurrence" not in body
    assert posts[0].headers["authorization"] == f"Bearer {graph.token(1)}"
    assert graph.tokens == 1  # one token for the whole tick


def test_a_summer_meeting_keeps_its_wall_clock_time_in_london(
        on_graph: Callable[[], Executor], graph: FakeGraph):
    on_graph().tick(datetime(2027, 4, 20, 9, 0, tzinfo=UTC))  # q3 is invited in April
    july = next(p.body for p in event_posts(graph)
                if p.body["start"]["dateTime"].startswith("2027-07-15"))
    assert july["start"] == {"dateTime": "2027-07-15T14:00:00", "timeZone": "Europe/London"}


def test_a_second_tick_sends_nothing_more(on_graph: Callable[[], Executor],
                                          graph: FakeGraph):
    ex = on_graph()
    ex.tick(GO_LIVE)
    before = len(event_posts(graph))
    assert ex.tick(GO_LIVE + timedelta(minutes=1)).sent == []
    assert len(event_posts(graph)) == before


def test_a_three_hour_meeting_cut_to_two_is_one_patch_of_its_times(
        on_graph: Callable[[], Executor], graph: FakeGraph, group_dir: Path):
    edit(group_dir / "group.toml", 'duration = "2h"', 'duration = "3h"')
    on_graph().tick(GO_LIVE)
    assert q1(graph)["end"]["dateTime"] == "2027-01-14T17:00:00"
    edit(group_dir / "group.toml", 'duration = "3h"', 'duration = "2h"')
    later = GO_LIVE + timedelta(hours=1)
    on_graph().tick(later)  # the settle window starts
    result = on_graph().tick(later + timedelta(minutes=15))
    assert len(result.sent) == 21
    patches = graph.calls("PATCH", EVENT)
    assert len(patches) == 1 and len(event_posts(graph)) == 1
    body = next(p.body for p in patches if p.path.endswith(q1(graph)["id"]))
    assert body["end"] == {"dateTime": "2027-01-14T16:00:00", "timeZone": "Europe/London"}
    assert body["start"] == {"dateTime": "2027-01-14T14:00:00", "timeZone": "Europe/London"}
    assert {"id": REV_PROP, "value": "1"} in body["singleValueExtendedProperties"]
    assert len(body["attendees"]) == 21


def test_a_newcomer_gets_an_event_of_their_own_and_nobody_else_is_mailed(
        on_graph: Callable[[], Executor], graph: FakeGraph, group_dir: Path,
        clerk: Callable[..., Any], store: Store):
    on_graph().tick(GO_LIVE)
    add_members(group_dir, NEWCOMERS[:1])
    plan = clerk("--state", store.url, "plan", "--json", "--from", "2026-12-01")
    assert "a calendar item of their own" in plan.output
    assert on_graph().tick(GO_LIVE + timedelta(hours=1)).sent == []  # the settle window
    result = on_graph().tick(GO_LIVE + timedelta(hours=1) + SETTLE)
    assert len(result.sent) == 1
    posts = event_posts(graph)[1:]
    assert len(posts) == 1 and not graph.calls("PATCH", EVENT)
    assert [a["emailAddress"]["address"] for a in posts[0].body["attendees"]] == [
        "ada.byron@council.example"]


def test_a_member_removed_is_taken_off_the_event(
        on_graph: Callable[[], Executor], graph: FakeGraph, group_dir: Path):
    on_graph().tick(GO_LIVE)
    gone = "joanne.beale@bracknell.example"
    assert gone in {a["emailAddress"]["address"] for a in q1(graph)["attendees"]}
    remove_member(group_dir, gone)
    on_graph().tick(GO_LIVE + timedelta(hours=1))
    result = on_graph().tick(GO_LIVE + timedelta(hours=2))
    assert len(result.sent) == 1
    patch = next(p for p in graph.calls("PATCH", EVENT) if p.path.endswith(q1(graph)["id"]))
    assert "start" not in patch.body and "subject" not in patch.body  # attendees alone
    assert len(patch.body["attendees"]) == 20
    assert gone not in {a["emailAddress"]["address"] for a in patch.body["attendees"]}


def test_a_newcomer_removed_again_has_their_own_event_cancelled(
        on_graph: Callable[[], Executor], graph: FakeGraph, group_dir: Path):
    on_graph().tick(GO_LIVE)
    add_members(group_dir, NEWCOMERS[:1])
    on_graph().tick(GO_LIVE + timedelta(hours=1))
    on_graph().tick(GO_LIVE + timedelta(hours=1) + SETTLE)
    remove_member(group_dir, NEWCOMERS[0][1])
    on_graph().tick(GO_LIVE + timedelta(hours=2))
    on_graph().tick(GO_LIVE + timedelta(hours=3))
    cancels = graph.calls("POST", rf"{EVENT}/cancel")
    assert len(cancels) == 1 and not graph.calls("PATCH", EVENT)
    assert cancels[0].body == {"comment": "You are no longer on this meeting's list."}


def test_a_cancelled_meeting_cancels_every_event_of_it(
        on_graph: Callable[[], Executor], graph: FakeGraph, group_dir: Path):
    on_graph().tick(GO_LIVE)
    add_members(group_dir, NEWCOMERS[:1])
    on_graph().tick(GO_LIVE + timedelta(hours=1))
    on_graph().tick(GO_LIVE + timedelta(hours=1) + SETTLE)
    edit(group_dir / "group.toml", 'id = "2027-q1"\n', 'id = "2027-q1"\ncancelled = true\n')
    on_graph().tick(GO_LIVE + timedelta(hours=2))
    on_graph().tick(GO_LIVE + timedelta(hours=3))
    cancels = graph.calls("POST", rf"{EVENT}/cancel")
    assert len(cancels) == 2  # the shared event and the newcomer's
    assert {c.body["comment"] for c in cancels} == {"This meeting is cancelled."}
    assert len(graph.events) == 2 and all(e["isCancelled"] for e in graph.events.values())


def test_a_series_is_one_event_with_its_recurrence_pattern(
        on_graph: Callable[[], Executor], graph: FakeGraph, group_dir: Path):

    add_series(group_dir)
    on_graph().tick(GO_LIVE)
    series = next(p.body for p in event_posts(graph) if "recurrence" in p.body)
    assert series["recurrence"] == {
        "pattern": {"type": "weekly", "interval": 2, "daysOfWeek": ["thursday"]},
        "range": {"type": "numbered", "startDate": "2027-02-25", "numberOfOccurrences": 6,
                  "recurrenceTimeZone": "Europe/London"}}
    assert series["start"] == {"dateTime": "2027-02-25T14:00:00", "timeZone": "Europe/London"}


def test_a_cancelled_meeting_of_a_series_cancels_that_occurrence(
        on_graph: Callable[[], Executor], graph: FakeGraph, group_dir: Path):

    toml = add_series(group_dir)
    on_graph().tick(GO_LIVE)
    event = next(e for e in graph.events.values() if "recurrence" in e)
    event["instances"] = [{"id": f"occ{i}", "originalStart": f"2027-{d}T14:00:00Z"}
                          for i, d in enumerate(("03-11", "03-25"))]
    cancel_series_meeting(toml)
    on_graph().tick(GO_LIVE + timedelta(hours=1))
    on_graph().tick(GO_LIVE + timedelta(hours=2))
    assert [c.path for c in graph.calls("POST", rf"{EVENT}/cancel")] == [
        f"{USER}/events/occ0/cancel"]


# --- answers -------------------------------------------------------------------------------

def test_attendees_answers_are_read_back_as_rsvps_in_one_batch(
        on_graph: Callable[[], Executor], graph: FakeGraph, store: Store):
    on_graph().tick(GO_LIVE)
    event = q1(graph)
    graph.answer(event["id"], "joanne.beale@bracknell.example", "accepted")
    graph.answer(event["id"], "tina.jameson@brighton-hove.example", "declined")
    graph.answer(event["id"], "otilia.brandt@reading-futures.example", "tentativelyAccepted")
    ex = on_graph()
    calls = len(graph.graph_calls())
    ex.tick(GO_LIVE + timedelta(minutes=20))
    batches = graph.calls("POST", "/\\$batch")
    assert len(graph.graph_calls()) - calls == 1 and len(batches[-1].body["requests"]) == 1
    answers = snapshot.state(store).rsvps[("qa-leads", "2027-q1", "")]
    assert {e: a[0] for e, a in answers.items()} == {
        "joanne.beale@bracknell.example": "ACCEPTED",
        "tina.jameson@brighton-hove.example": "DECLINED",
        "otilia.brandt@reading-futures.example": "TENTATIVE"}
    ex.tick(GO_LIVE + timedelta(minutes=25))  # read again only after rsvp_every
    assert len(graph.calls("POST", "/\\$batch")) == len(batches)


# --- messages ------------------------------------------------------------------------------

def _message(config_dir: Path, attachments: list[tuple[str, str, bytes]]) -> Any:
    from bot.plan.planner import plan
    from bot.plan.state import State

    config = config_mod.load(config_dir)
    group = config.groups[0]
    desired = next(d for d in plan(config, State(), GO_LIVE).messages if d.kind == "pack")
    return render_email.build(group, desired, GO_LIVE, None, attachments, secret=b"s")


def test_a_message_with_a_small_attachment_is_one_sendmail(
        config_dir: Path, graph: FakeGraph):
    msg = _message(config_dir, [("paper.pdf", "application/pdf", b"%PDF-1.7 small")])
    graph.transport().send(msg)
    [call] = graph.calls("POST", rf"{USER}/sendMail")
    m = call.body["message"]
    assert call.body["saveToSentItems"] is True
    assert m["subject"] == msg.subject == str(msg.message["Subject"])
    assert m["toRecipients"] == [{"emailAddress": {"address": msg.to[0][1],
                                                   "name": msg.to[0][0]}}]
    assert m["attachments"] == [{"@odata.type": "#microsoft.graph.fileAttachment",
                                 "name": "paper.pdf", "contentType": "application/pdf",
                                 "contentBytes": "JVBERi0xLjcgc21hbGw="}]
    assert m["singleValueExtendedProperties"][0]["value"] == msg.key
    assert {"name": "X-Clerk-Key", "value": msg.key} in m["internetMessageHeaders"]
    assert m["body"]["contentType"] == "HTML" and "<" in m["body"]["content"]


def test_a_large_attachment_goes_through_an_upload_session(
        config_dir: Path, graph: FakeGraph):
    big = bytes(range(256)) * (5 * 4096)  # 5 MiB
    msg = _message(config_dir, [("papers.zip", "application/zip", big),
                                ("note.txt", "text/plain", b"hello")])
    graph.transport().send(msg)
    assert not graph.calls("POST", rf"{USER}/sendMail")
    [draft] = graph.calls("POST", rf"{USER}/messages")
    assert "attachments" not in draft.body
    [session] = graph.calls("POST", rf"{USER}/messages/[^/]+/attachments/createUploadSession")
    assert session.body == {"AttachmentItem": {"attachmentType": "file", "name": "papers.zip",
                                               "size": len(big),
                                               "contentType": "application/zip"}}
    puts = [s for s in graph.seen if s.method == "PUT"]
    assert len(puts) == 2 and all("authorization" not in p.headers for p in puts)
    assert puts[0].headers["content-range"] == f"bytes 0-3276799/{len(big)}"
    assert bytes(graph.uploads["s0"]) == big
    assert len(graph.calls("POST", rf"{USER}/messages/[^/]+/attachments")) == 1  # the small
    assert len(graph.calls("POST", rf"{USER}/messages/[^/]+/send")) == 1


def test_messages_without_attachments_go_four_to_a_batch_each_with_its_outcome(
        config_dir: Path, graph: FakeGraph):
    from bot.plan.planner import plan
    from bot.plan.state import State

    config = config_mod.load(config_dir)
    wanted = [d for d in plan(config, State(), GO_LIVE).messages if d.kind == "request"][:21]
    messages = [render_email.build(config.groups[0], d, GO_LIVE, secret=b"s") for d in wanted]
    graph.refused.add(wanted[1].recipient.email)
    outcomes = graph.transport().send_many(messages)
    assert len(graph.calls("POST", "/\\$batch")) == 6  # four at a time: 21 = 5 × 4 + 1
    refused = [d.recipient.email == wanted[1].recipient.email for d in wanted]
    assert [o is not None for o in outcomes] == refused
    assert outcomes[1] is not None and not outcomes[1].retryable
    assert "ErrorInvalidRecipients" in str(outcomes[1])
    assert len(graph.sent) == 21 - sum(refused)


# --- throttling, tokens, failures ----------------------------------------------------------

def test_a_short_retry_after_is_waited_in_place(config_dir: Path, graph: FakeGraph):
    graph.fail(429, retry_after=3)
    graph.transport().send(_message(config_dir, []))
    assert graph.slept == [3.0] and len(graph.sent) == 1


def test_a_long_retry_after_goes_back_to_the_ledger(
        on_graph: Callable[[], Executor], graph: FakeGraph, store: Store):
    graph.fail(429, retry_after=600)
    result = on_graph().tick(GO_LIVE)
    assert graph.slept == [] and len(result.retry) == 21  # the first meeting's rows
    row = store.row(result.retry[0])
    assert row.state == "retry" and row.next_attempt_at >= GO_LIVE + timedelta(seconds=600)
    assert "429" in row.last_error
    assert on_graph().tick(GO_LIVE + timedelta(seconds=30)).sent == []  # not before then
    assert len(on_graph().tick(GO_LIVE + timedelta(minutes=11)).sent) == 21


def test_an_expired_token_is_renewed_once(config_dir: Path, graph: FakeGraph):
    t = graph.transport()
    t.send(_message(config_dir, []))
    graph.expire_tokens()
    t.send(_message(config_dir, []))
    assert graph.tokens == 2 and len(graph.sent) == 2
    token_posts = [s for s in graph.seen if s.path.endswith("/oauth2/v2.0/token")]
    assert len(token_posts) == 2
    assert token_posts[1].body["grant_type"] == ["client_credentials"]
    assert token_posts[1].body["scope"] == ["https://graph.microsoft.com/.default"]


def test_a_wrong_secret_fails_without_retrying_and_says_what_to_fix(
        config_dir: Path, graph: FakeGraph, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CLERK_TEST_GRAPH_SECRET", "wrong")
    with pytest.raises(TransportError) as caught:
        graph.transport().send(_message(config_dir, []))
    assert not caught.value.retryable
    assert "invalid_client" in str(caught.value) and "client secret" in str(caught.value)
    assert graph.graph_calls() == []


def test_a_missing_permission_fails_the_rows_and_names_the_permission(
        on_graph: Callable[[], Executor], graph: FakeGraph, store: Store):
    graph.fail(403)
    result = on_graph().tick(GO_LIVE)
    assert len(result.failed) == 21
    assert "Calendars.ReadWrite" in store.row(result.failed[0]).last_error


# --- recovery ------------------------------------------------------------------------------

def test_an_event_made_before_a_crash_is_found_not_made_twice(
        on_graph: Callable[[], Executor], graph: FakeGraph, store: Store,
        monkeypatch: pytest.MonkeyPatch):
    def crash(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt  # the process dies after Graph made the event

    with monkeypatch.context() as m:
        m.setattr(store, "save_parts", crash)
        with pytest.raises(KeyboardInterrupt):
            on_graph().tick(GO_LIVE)
    assert store.counts()["sending"] == 21 and len(event_posts(graph)) == 1
    result = on_graph().tick(GO_LIVE + timedelta(minutes=1))
    assert result.recovered == 21
    [find] = graph.calls("GET", rf"{USER}/events")
    assert find.query["$filter"] == (
        f"singleValueExtendedProperties/Any(ep: ep/id eq '{UID_PROP}' and ep/value eq "
        "'qa-leads.2027-q1@network.example')")
    assert len(event_posts(graph)) == 1  # not made again
    assert "sending" not in store.counts()
    parts = snapshot.calendar_parts(store, "graph")
    assert parts[("qa-leads", "2027-q1")][0].item_id == q1(graph)["id"]


def test_a_crash_before_graph_heard_anything_sends_once(
        on_graph: Callable[[], Executor], graph: FakeGraph, store: Store,
        monkeypatch: pytest.MonkeyPatch):
    from bot.transports.graph import GraphTransport

    with monkeypatch.context() as m:
        m.setattr(GraphTransport, "apply", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
        with pytest.raises(KeyboardInterrupt):
            on_graph().tick(GO_LIVE)
    assert event_posts(graph) == []
    on_graph().tick(GO_LIVE + timedelta(minutes=1))  # found nowhere: sent again
    on_graph().tick(GO_LIVE + timedelta(minutes=2))
    assert len(event_posts(graph)) == 1 and "sending" not in store.counts()


def test_a_message_in_doubt_is_looked_up_in_sent_items_by_its_key(
        config_dir: Path, graph: FakeGraph):
    t = graph.transport()
    msg = _message(config_dir, [])
    assert t.lookup(msg.message_id, msg.key) is False
    t.send(msg)
    assert t.lookup(msg.message_id, msg.key) is True
    look = graph.calls("GET", rf"{USER}/mailFolders/sentitems/messages")[-1]
    assert "ep/value eq '" + msg.key in look.query["$filter"]


# --- the mailbox ---------------------------------------------------------------------------

def test_the_inbox_is_read_as_mime_and_filed_never_deleted(graph: FakeGraph):
    graph.inbox = {"m1": b"From: a@b.example\r\nSubject: hi\r\n\r\nDONE\r\n",
                   "m2": b"From: c@d.example\r\nSubject: x\r\n\r\n?\r\n"}
    box = graph.mailbox()
    got = list(box.messages())
    assert got == [("m1", graph.inbox["m1"]), ("m2", graph.inbox["m2"])]
    box.file("m1", True)
    box.file("m2", False)
    names = {fid: name for fid, (_, name) in graph.folder_names.items()}
    assert {names[f]: ids for f, ids in graph.folders.items()} == {
        "processed": ["m1"], "unprocessed": ["m2"]}
    assert [n for _, n in graph.folder_names.values()].count("clerk") == 1  # made once
    assert list(box.messages()) == []
    assert not [s for s in graph.seen if s.method == "DELETE"]


# --- doctor and imports --------------------------------------------------------------------

def test_doctor_names_each_check_and_the_fix(graph: FakeGraph):
    assert all(ok for ok, _, _ in graph.transport().doctor())
    graph.fail(403)
    checks = graph.transport().doctor()
    assert checks[-1][0] is False and "Mail.ReadWrite" in checks[-1][2]
    assert not graph.transport(client_id="").doctor()[2][0]
    graph.roles = ["Calendars.ReadWrite"]
    *_, (ok, what, fix) = graph.transport().doctor()
    assert not ok and what == "application permissions: Calendars.ReadWrite"
    assert fix.startswith("grant Mail.Send, Mail.ReadWrite (application permissions")
    graph.roles = []  # scoped in Exchange Online (RBAC for Applications): the reads decide
    *_, (ok, what, fix) = graph.transport().doctor()
    assert ok and "RBAC for Applications" in what
    graph.fail(403)
    *_, (ok, what, fix) = graph.transport().doctor()
    assert not ok and what.startswith("mailbox") and "Mail.ReadWrite" in fix


def test_importing_the_graph_transport_does_not_import_msal_or_httpx():
    code = ("import sys, bot.transports.graph, bot.cli; "
            "print(sorted(m for m in ('msal', 'httpx', 'exchangelib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "[]"


def test_an_answer_in_the_inbox_to_a_server_made_meeting_is_recorded_with_its_reason(
        config_dir: Path, store: Store, graph: FakeGraph):
    from email.message import EmailMessage

    use_graph(config_dir)
    with (config_dir / "clerk.toml").open("a") as f:  # answers read in the tenant's mailbox
        f.write('\n[mailbox]\nmicrosoft365 = true\n')
    edit(config_dir / "clerk.toml", '[clerk]\n', '[clerk]\nmailbox = "graph"\n')
    ics = "\r\n".join((  # as Exchange Online writes a decline: its own UID and SEQUENCE
        "BEGIN:VCALENDAR", "METHOD:REPLY", "PRODID:Microsoft Exchange Server 2010",
        "VERSION:2.0", "BEGIN:VEVENT",
        "ATTENDEE;PARTSTAT=DECLINED;CN=Joanne Beale:mailto:joanne.beale@bracknell.example",
        "COMMENT:On leave that week", "SUMMARY:Declined: QA Leads Network meeting",
        "DTSTART:20270114T140000Z", "DTEND:20270114T160000Z",
        "UID:040000008200E00074C5B7101A82E00800000000D0C9", "SEQUENCE:0",
        "DTSTAMP:20261202T090000Z", "END:VEVENT", "END:VCALENDAR", ""))
    answer = EmailMessage()
    answer["From"] = "Joanne Beale <joanne.beale@bracknell.example>"
    answer["To"] = MAILBOX
    answer["Subject"] = "Declined: QA Leads Network meeting"
    answer.set_content("On leave that week")
    answer.add_alternative(ics, subtype="calendar", params={"method": "REPLY"})
    # Exchange Online's own verdict, in its shape (no authserv-id, action=none)
    stamp = (b"Authentication-Results: spf=pass (sender IP is 203.0.113.5) smtp.mailfrom="
             b"bracknell.example; dkim=pass (signature was verified) header.d=bracknell.example;"
             b"dmarc=pass action=none header.from=bracknell.example;compauth=pass reason=100\r\n")
    # the same answer without it: anyone could have written it
    graph.inbox = {"r0": answer.as_bytes(), "r1": stamp + answer.as_bytes()}
    ex = Executor(config_mod.load(config_dir), store, graph.transport(),
                  mailbox=graph.mailbox())
    result = ex.tick(GO_LIVE)
    assert result.read == 2
    assert result.unprocessed == ["a calendar answer, not applied: From "
                                  "joanne.beale@bracknell.example is not authenticated: no "
                                  "Authentication-Results from Microsoft 365's verdict"]
    names = {fid: name for fid, (_, name) in graph.folder_names.items()}
    assert {names[f]: ids for f, ids in graph.folders.items()} == {
        "processed": ["r1"], "unprocessed": ["r0"]}
    answers = snapshot.state(store).rsvps[("qa-leads", "2027-q1", "")]
    assert answers["joanne.beale@bracknell.example"][:2] == ("DECLINED", "On leave that week")


# --- a real Microsoft 365 mailbox, only when asked for -------------------------------------

LIVE = os.environ.get("CLERK_TEST_GRAPH")  # the test mailbox, e.g. clerk-test@tenant.example


@pytest.mark.skipif(not LIVE, reason="CLERK_TEST_GRAPH names no Microsoft 365 test mailbox")
class TestLiveGraph:
    """Against a real tenant: CLERK_TEST_GRAPH (the mailbox), CLERK_TEST_GRAPH_TENANT,
    CLERK_TEST_GRAPH_CLIENT and CLERK_GRAPH_SECRET (the app's secret); optional
    CLERK_TEST_GRAPH_ATTENDEE (default: the mailbox itself)."""

    def transport(self) -> Any:
        from bot.transports.graph import GraphTransport

        return GraphTransport({
            "mailbox": LIVE, "tenant_id": os.environ["CLERK_TEST_GRAPH_TENANT"],
            "client_id": os.environ["CLERK_TEST_GRAPH_CLIENT"],
            "client_secret_env": "CLERK_GRAPH_SECRET", "max_wait": 30.0, "timeout": 30.0})

    def test_doctor_passes(self) -> None:
        assert all(ok for ok, _, _ in self.transport().doctor())

    def test_a_meeting_is_made_found_read_and_cancelled(self) -> None:
        from bot.domain.model import Person
        from bot.render.ical import EventSpec
        from bot.transports.calendar import Attendee, Content, MeetingChange, Op, Part

        t = self.transport()
        attendee = os.environ.get("CLERK_TEST_GRAPH_ATTENDEE", str(LIVE))
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
        uid = f"clerk-live-{int(start.timestamp())}@clerk.invalid"
        change = MeetingChange(
            uid=uid, group="live", unit="live", revision=0,
            content=Content("clerk live test", "<p>clerk live test</p>", "Europe/London",
                            Person("clerk", str(LIVE)),
                            (EventSpec(start, start + timedelta(hours=1), "clerk live test"),)),
            cancelled=False, invite=(Attendee("k", "Test", attendee),))
        item_id, _ = t.apply(change, Op("create", 0, (("Test", attendee),)), None)
        try:
            [part] = t.find(uid)
            assert part.item_id == item_id and attendee.lower() in part.emails
            assert item_id in t.responses([item_id])
        finally:
            t.apply(change, Op("cancel", 0), Part(0, item_id, (), 0))


# --- edits in awkward orders ---------------------------------------------------------------

def test_a_newcomer_does_not_send_a_pending_update_before_its_settle_window(
        on_graph: Callable[[], Executor], graph: FakeGraph, group_dir: Path, store: Store):
    on_graph().tick(GO_LIVE)
    t = GO_LIVE + timedelta(hours=1)
    add_members(group_dir, NEWCOMERS[:1])  # she waits for the settle window, until t + 10m
    on_graph().tick(t)
    edit(group_dir / "group.toml", 'duration = "2h"', 'duration = "3h"')
    on_graph().tick(t + timedelta(minutes=2))  # revision 1: the update waits until t + 12m
    result = on_graph().tick(t + SETTLE)
    assert result.sent == [k for k in result.sent if "ada.byron" in k] and result.sent
    assert graph.calls("PATCH", EVENT) == []  # nobody on the shared event is mailed yet
    edit(group_dir / "group.toml", 'location = "Online (Microsoft Teams)"',
         'location = "Room 4"')  # a second edit inside the window: still one update
    on_graph().tick(t + timedelta(minutes=5))
    for minutes in (20, 40, 60):
        on_graph().tick(t + timedelta(minutes=minutes))
    part0 = q1(graph)["id"]
    updates = [p for p in graph.calls("PATCH", EVENT)
               if p.path.endswith(part0) and "start" in p.body]
    assert len(updates) == 1 and updates[0].body["location"] == {"displayName": "Room 4"}


def test_a_member_removed_just_after_an_edit_is_not_on_its_update(
        on_graph: Callable[[], Executor], graph: FakeGraph, group_dir: Path):
    on_graph().tick(GO_LIVE)
    t = GO_LIVE + timedelta(hours=1)
    edit(group_dir / "group.toml", 'duration = "2h"', 'duration = "3h"')
    on_graph().tick(t)
    gone = "joanne.beale@bracknell.example"
    remove_member(group_dir, gone)
    on_graph().tick(t + timedelta(minutes=5))
    on_graph().tick(t + timedelta(minutes=11))  # the update to the others
    on_graph().tick(t + timedelta(minutes=16))  # their cancellation: nothing left to do
    [patch] = graph.calls("PATCH", EVENT)
    assert "start" in patch.body
    assert gone not in {a["emailAddress"]["address"] for a in patch.body["attendees"]}


def test_a_cancellation_retried_in_pieces_then_withdrawn_leaves_everyone_invited(
        on_graph: Callable[[], Executor], graph: FakeGraph, group_dir: Path):
    on_graph().tick(GO_LIVE)
    toml = group_dir / "group.toml"
    t = GO_LIVE + timedelta(hours=1)
    edit(toml, 'id = "2027-q1"\n', 'id = "2027-q1"\ncancelled = true\n')
    on_graph().tick(t)
    graph.fail(500)
    assert len(on_graph().tick(t + timedelta(minutes=10)).retry) == 21
    edit(toml, 'id = "2027-q1"\ncancelled = true\n', 'id = "2027-q1"\n')  # called back on
    for minutes in (11, 30, 60, 120):
        on_graph().tick(t + timedelta(minutes=minutes))
    live = [e for e in graph.events.values() if not e["isCancelled"]]
    on = {a["emailAddress"]["address"] for e in live for a in e["attendees"]}
    assert len(on) == 21


def test_a_series_whose_meetings_fail_to_cancel_is_kept_and_finished_later(
        on_graph: Callable[[], Executor], graph: FakeGraph, group_dir: Path, store: Store,
        monkeypatch: pytest.MonkeyPatch):

    toml = add_series(group_dir)
    cancel_series_meeting(toml)
    real = FakeGraph._graph

    def instances_down(self: FakeGraph, method: str, path: str, *a: Any) -> Any:
        import httpx

        if path.endswith("/instances"):
            return httpx.Response(503, json={"error": {"code": "ServiceUnavailable"}})
        return real(self, method, path, *a)

    with monkeypatch.context() as m:
        m.setattr(FakeGraph, "_graph", instances_down)
        result = on_graph().tick(GO_LIVE)
    series_keys = [k for k in result.retry if "/clinic/" in k]
    assert len(series_keys) == 21
    # kept, a revision behind
    [part] = snapshot.calendar_parts(store, "graph")[("qa-leads", "clinic")]
    event = graph.events[part.item_id]
    assert part.revision == -1 and {"id": DONE_PROP, "value": "-1"} in \
        event["singleValueExtendedProperties"]
    event["instances"] = [{"id": "occ0", "originalStart": "2027-03-11T14:00:00Z"}]
    on_graph().tick(GO_LIVE + timedelta(hours=2))
    assert [c.path for c in graph.calls("POST", rf"{EVENT}/cancel")] == [
        f"{USER}/events/occ0/cancel"]
    assert len([p for p in event_posts(graph) if "recurrence" in p.body]) == 1  # not remade
    assert not [p for p in graph.calls("PATCH", EVENT) if "start" in p.body]  # not re-sent
    assert {"id": DONE_PROP, "value": "0"} in event["singleValueExtendedProperties"]


def test_a_crash_between_making_a_series_and_cancelling_its_meeting_is_finished(
        on_graph: Callable[[], Executor], graph: FakeGraph, group_dir: Path, store: Store,
        monkeypatch: pytest.MonkeyPatch):
    from bot.transports.graph import GraphTransport

    toml = add_series(group_dir)
    cancel_series_meeting(toml)

    def crash(self: Any, change: Any, item_id: str) -> None:
        raise KeyboardInterrupt  # the process dies after Graph made the series

    with monkeypatch.context() as m:
        m.setattr(GraphTransport, "_exceptions", crash)
        with pytest.raises(KeyboardInterrupt):
            on_graph().tick(GO_LIVE)
    event = next(e for e in graph.events.values() if "recurrence" in e)
    event["instances"] = [{"id": "occ0", "originalStart": "2027-03-11T14:00:00Z"}]
    result = on_graph().tick(GO_LIVE + timedelta(minutes=20))
    assert result.recovered == 21  # found at the previous revision: not done, done now
    assert [c.path for c in graph.calls("POST", rf"{EVENT}/cancel")] == [
        f"{USER}/events/occ0/cancel"]
    assert len([p for p in event_posts(graph) if "recurrence" in p.body]) == 1


def test_cancelling_one_meeting_of_a_series_moves_the_revision_on_the_server_too(
        on_graph: Callable[[], Executor], graph: FakeGraph, group_dir: Path, store: Store):

    toml = add_series(group_dir)
    on_graph().tick(GO_LIVE)
    event = next(e for e in graph.events.values() if "recurrence" in e)
    event["instances"] = [{"id": "occ0", "originalStart": "2027-03-11T14:00:00Z"}]
    cancel_series_meeting(toml)
    on_graph().tick(GO_LIVE + timedelta(hours=1))
    on_graph().tick(GO_LIVE + timedelta(hours=2))
    stored = snapshot.calendar_parts(store, "graph")[("qa-leads", "clinic")][0].revision
    assert stored == 1 and {"id": DONE_PROP, "value": "1"} in \
        event["singleValueExtendedProperties"]
    assert not [p for p in graph.calls("PATCH", EVENT) if "start" in p.body]  # master kept


def test_a_zero_retry_after_is_not_waited_out_for_ever(graph: FakeGraph):
    t = graph.transport()
    for _ in range(10):
        graph.fail(429, retry_after=0)
    with pytest.raises(TransportError) as caught:
        t.lookup("<m>", "key")
    assert caught.value.retryable
    assert len(graph.graph_calls()) == 4  # the first answer and three more tries


def test_a_meeting_another_worker_is_changing_waits_for_it(
        on_graph: Callable[[], Executor], graph: FakeGraph, store: Store):
    import socket

    from bot.engine.schema import meta

    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with store.atomic() as conn:
            conn.execute(meta.insert().values(
                name="lock:calendar:graph:qa-leads:2027-q1",
                value=f"{socket.gethostname()}:{other.pid}@{datetime.now(UTC).isoformat()}"))
        result = on_graph().tick(GO_LIVE)
        assert result.sent == [] and event_posts(graph) == []
        assert store.counts().get("sending") is None
    finally:
        other.kill()
        other.wait()
    result = on_graph().tick(GO_LIVE + timedelta(minutes=1))  # its holder is gone
    assert len(result.sent) == 21 and len(event_posts(graph)) == 1
    assert store.meta_value("lock:calendar:graph:qa-leads:2027-q1") is None  # let go


def test_an_event_deleted_by_hand_is_made_again_for_an_update(
        on_graph: Callable[[], Executor], graph: FakeGraph, group_dir: Path, store: Store):
    on_graph().tick(GO_LIVE)
    del graph.events[q1(graph)["id"]]  # the admin deleted it in Outlook
    edit(group_dir / "group.toml", 'duration = "2h"', 'duration = "3h"')
    on_graph().tick(GO_LIVE + timedelta(hours=1))
    result = on_graph().tick(GO_LIVE + timedelta(hours=2))
    assert len(result.retry) == 21 and "deleted in Outlook" in store.row(result.retry[0]).last_error
    result = on_graph().tick(GO_LIVE + timedelta(hours=3))  # looked for, not found: made anew
    assert len(result.sent) == 21
    assert any("no longer in the organiser's calendar" in e for e in result.errors)
    [event] = graph.events.values()
    assert len(event["attendees"]) == 21 and event["end"]["dateTime"].endswith("17:00:00")


def test_a_retried_meeting_is_looked_for_first_so_a_lost_answer_does_not_make_it_twice(
        on_graph: Callable[[], Executor], graph: FakeGraph, monkeypatch: pytest.MonkeyPatch):
    import httpx

    real = FakeGraph._graph
    lost = []

    def answer_lost(self: FakeGraph, method: str, path: str, *a: Any) -> Any:
        got = real(self, method, path, *a)
        if method == "POST" and path.endswith("/events") and not lost:
            lost.append(got)
            raise httpx.ReadTimeout("the answer never came")
        return got

    with monkeypatch.context() as m:
        m.setattr(FakeGraph, "_graph", answer_lost)
        assert len(on_graph().tick(GO_LIVE).retry) == 21
    result = on_graph().tick(GO_LIVE + timedelta(minutes=10))
    assert len(result.sent) == 21 and len(graph.events) == 1 and len(event_posts(graph)) == 1


def test_a_moved_meeting_of_a_series_moved_back_goes_back(
        on_graph: Callable[[], Executor], graph: FakeGraph, group_dir: Path):

    toml = add_series(group_dir)
    move_series_meeting(toml)  # 25 March → 29 March
    on_graph().tick(GO_LIVE)
    event = next(e for e in graph.events.values() if "recurrence" in e)
    event["instances"] = [{"id": "occ1", "originalStart": "2027-03-25T14:00:00Z",
                           "start": {"dateTime": "2027-03-29T13:00:00.0000000",
                                     "timeZone": "UTC"}}]
    text = toml.read_text()
    toml.write_text(text[:text.index("\n[[series.occurrence]]")] + "\n")  # moved back
    on_graph().tick(GO_LIVE + timedelta(hours=1))
    on_graph().tick(GO_LIVE + timedelta(hours=2))
    back = [p for p in graph.calls("PATCH", rf"{USER}/events/occ1")][-1]
    assert back.body["start"] == {"dateTime": "2027-03-25T14:00:00",
                                  "timeZone": "Europe/London"}


def test_answers_throttled_in_a_batch_are_asked_again_after_their_wait(
        on_graph: Callable[[], Executor], graph: FakeGraph, store: Store):
    on_graph().tick(GO_LIVE)
    graph.answer(q1(graph)["id"], "joanne.beale@bracknell.example", "declined")
    graph.batch_throttled = 1
    on_graph().tick(GO_LIVE + timedelta(minutes=20))
    assert graph.slept == [2.0]
    answers = snapshot.state(store).rsvps[("qa-leads", "2027-q1", "")]
    assert answers["joanne.beale@bracknell.example"][0] == "DECLINED"
    graph.batch_throttled = 10  # throttled again and again: read at the next tick
    graph.answer(q1(graph)["id"], "tina.jameson@brighton-hove.example", "accepted")
    result = on_graph().tick(GO_LIVE + timedelta(minutes=40))
    assert any("throttled" in e for e in result.errors)
    graph.batch_throttled = 0
    on_graph().tick(GO_LIVE + timedelta(minutes=41))  # not counted as read: tried again
    answers = snapshot.state(store).rsvps[("qa-leads", "2027-q1", "")]
    assert answers["tina.jameson@brighton-hove.example"][0] == "ACCEPTED"


def test_answers_read_while_others_are_throttled_are_kept(
        on_graph: Callable[[], Executor], graph: FakeGraph, group_dir: Path, store: Store):
    on_graph().tick(GO_LIVE)
    add_members(group_dir, NEWCOMERS[:1])
    on_graph().tick(GO_LIVE + timedelta(hours=1))
    on_graph().tick(GO_LIVE + timedelta(hours=1) + SETTLE)  # the newcomer's own event
    first, own = list(graph.events)
    graph.answer(first, "joanne.beale@bracknell.example", "declined")
    graph.answer(own, "ada.byron@council.example", "accepted")
    graph.batch_throttled = 3  # both parts, then the first again
    result = on_graph().tick(GO_LIVE + timedelta(hours=2))
    assert any("throttled" in e for e in result.errors)
    who = {first: "joanne.beale@bracknell.example", own: "ada.byron@council.example"}
    asked_first, asked_second = sorted(who)  # the order of the $batch parts
    answers = snapshot.state(store).rsvps[("qa-leads", "2027-q1", "")]
    assert who[asked_second] in answers  # read: kept
    assert who[asked_first] not in answers  # throttled twice: read at the next tick
    on_graph().tick(GO_LIVE + timedelta(hours=2, minutes=1))
    answers = snapshot.state(store).rsvps[("qa-leads", "2027-q1", "")]
    assert answers["joanne.beale@bracknell.example"][0] == "DECLINED"
    assert answers["ada.byron@council.example"][0] == "ACCEPTED"
