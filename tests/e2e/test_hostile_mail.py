"""Hostile mail through the real Postfix and Dovecot: forged senders, a stranger answering for
every member, a guessed reference, the same message twice — each ends in the unprocessed
folder with its reason, nothing reaches a member and nothing is applied twice; the members'
own answers, from Outlook, Gmail and Apple, still count."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta

import icalendar
import pytest

from bot.engine import snapshot
from bot.engine.executor import Executor
from bot.engine.store import Store
from tests.e2e.test_listening import (
    MEMBERS,
    ORGANISER,
    RFI_DAY,
    T0,
    answer,
    clerk_executor,  # noqa: F401  (a fixture)
    invite_for,
    reply,
)
from tests.mail import imap_fetch, smtp_send, wait_for, wait_queue_empty

pytestmark = pytest.mark.slow
JOANNE, GAVIN = "joanne.beale@bracknell.example", "gavin.swales@kent.example"
TINA, LAURA = "tina.jameson@brighton-hove.example", "laura.mallory@west-sussex.example"
MALLORY = "mallory@evil.example"


def _answers(store: Store) -> dict[str, tuple[str, ...]]:
    return dict(snapshot.state(store).rsvps.get(("qa-leads", "2027-q1", ""), {}))


def test_forged_and_foreign_answers_change_nothing_and_members_still_count(
        clerk_executor: Callable[[], Executor], store: Store):  # noqa: F811
    clerk_executor().tick(T0)
    invites = wait_for("members", MEMBERS)
    invite = invite_for(invites, JOANNE)
    # 1. Joanne's address, no verdict from our server: anyone could have sent it
    smtp_send(reply(invite, JOANNE, "DECLINED", authentic=False), JOANNE, [ORGANISER])
    # 2. a verdict, but under another server's name: written by the sender
    forged = reply(invite, GAVIN, "DECLINED", authentic=False)
    forged["Authentication-Results"] = "mx.evil.example; dmarc=pass header.from=kent.example"
    smtp_send(forged, GAVIN, [ORGANISER])
    # 3. a stranger, authenticated as herself, answers for every member
    everyone = reply(invite, MALLORY, "DECLINED", "See https://evil.example/agenda")
    part = everyone.get_payload()[1]
    cal = icalendar.Calendar.from_ical(part.get_content())
    event = cal.walk("VEVENT")[0]
    for m in invites:
        attendee = icalendar.vCalAddress(f"mailto:{m['X-Original-To']}")
        attendee.params["PARTSTAT"] = "DECLINED"
        event.add("ATTENDEE", attendee)
    part.set_content(cal.to_ical().decode(), subtype="calendar", params={"method": "REPLY"})
    smtp_send(everyone, MALLORY, [ORGANISER])
    # the members' own answers, as their calendars write them
    outlook = reply(invite_for(invites, TINA), TINA, "ACCEPTED")
    outlook.replace_header("Subject", "Accepted: QA Leads Network meeting")
    smtp_send(outlook, TINA, [ORGANISER])
    gmail = reply(invite_for(invites, LAURA), LAURA, "DECLINED")
    gpart = gmail.get_payload()[1]
    gmail_cal = gpart.get_content().replace(
        "PARTSTAT=DECLINED", 'PARTSTAT=DECLINED;X-RESPONSE-COMMENT="Ofsted are in"')
    gpart.set_content(gmail_cal, subtype="calendar", params={"method": "REPLY"})
    smtp_send(gmail, LAURA, [ORGANISER])
    wait_queue_empty()
    wait_for("clerk", 5)

    result = clerk_executor().tick(T0 + timedelta(minutes=5))
    assert result.read == 5 and len(result.unprocessed) == 3
    reasons = " | ".join(result.unprocessed)
    assert f"From {JOANNE} is not authenticated" in reasons
    assert f"From {GAVIN} is not authenticated" in reasons
    assert f"{MALLORY} answered for {JOANNE}: not applied" in reasons
    got = _answers(store)
    assert {e: a[:2] for e, a in got.items()} == {TINA: ("ACCEPTED", ""),
                                                  LAURA: ("DECLINED", "Ofsted are in")}
    assert len(imap_fetch("clerk", "clerk/unprocessed")) == 3
    # nothing of the stranger's reaches a member: the pack lists no forged apologies
    ex = clerk_executor()
    ex.current_plan(T0)
    pack = next(d for d in ex.messages() if d.kind == "pack")
    assert "evil.example" not in repr(pack.context)


def test_a_guessed_reference_and_a_second_delivery(
        clerk_executor: Callable[[], Executor], store: Store, tmp_path: object):  # noqa: F811
    clerk_executor().tick(T0)
    clerk_executor().tick(RFI_DAY)
    requests = [m for m in wait_for("members", MEMBERS + 16)
                if str(m["Subject"]).startswith("Request for information")]
    kent = next(m for m in requests if "kent" in str(m["X-Original-To"]))
    slough = next(m for m in requests if "slough" in str(m["X-Original-To"]))
    # the reference anyone could compute before: sha256 of the key every message shows
    guessed = f"<clerk.{hashlib.sha256(str(slough['X-Clerk-Key']).encode()).hexdigest()[:32]}" \
              "@network.example>"
    smtp_send(answer(None, "sandra.davey@slough.example", "Nil return",
                     subject="Re: Request for information", In_Reply_To=guessed),
              "sandra.davey@slough.example", [ORGANISER])
    nil = answer(kent, GAVIN, "Nil return from Kent")
    for _ in range(2):  # the same message, delivered twice (an MTA's retry)
        smtp_send(nil, GAVIN, [ORGANISER])
    wait_queue_empty()
    wait_for("clerk", 3)
    result = clerk_executor().tick(RFI_DAY + timedelta(minutes=5))
    assert result.read == 3
    assert result.unprocessed == ["an answer to nothing clerk sent (no reference, no token)"]
    assert snapshot.state(store).submitted == {("qa-leads", "2027-q1", "rfi", "Kent"): "nil"}
    processed = imap_fetch("clerk", "clerk/processed")
    assert len(processed) == 2  # the second delivery is filed, applied once
    log = [r.detail for r in store.inbox_log(handled=True)]
    assert sum("already applied" in d for d in log) == 1
