"""The admin's desk through the real Postfix and Dovecot: she mails the minutes from her own
mail client, gets the summary in her mailbox, and her APPROVE by reply circulates them to every
member; the same APPROVE forged in her name (no verdict from the install's server) is filed in
clerk/unprocessed and nothing goes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest

from bot.engine import snapshot
from bot.engine.executor import Executor
from bot.engine.store import Store
from tests.e2e.test_listening import (
    MEMBERS,
    ORGANISER,
    answer,
    clerk_executor,  # noqa: F401  (a fixture)
)
from tests.mail import imap_fetch, smtp_send, wait_for, wait_queue_empty

pytestmark = pytest.mark.slow
KIM = "kim.osei@network.example"
AFTER = datetime(2027, 1, 18, 10, tzinfo=UTC)  # the Monday after the January meeting
MINUTES = b"""QA Leads Network - minutes of 14 January 2027

1. Invites
Action: Kim Osei will review the meeting invites by 31 January 2027.

2. LADO
Action: Jo will share the LADO audit tool.
"""


def to_kim(since: int) -> list[EmailMessage]:
    """What reached the admin's mailbox after the first ``since`` messages of the members'
    box (the test Postfix files every address but the organiser's there)."""
    return [m for m in imap_fetch("members")[since:] if str(m["X-Original-To"]) == KIM]


def text(msg: EmailMessage) -> str:
    return str(msg.get_body(("plain",)).get_content())  # type: ignore[union-attr]


def test_minutes_mailed_and_approved_by_reply_go_to_every_member(
        clerk_executor: Callable[[], Executor], store: Store,  # noqa: F811
        config_dir: Path):
    with (config_dir / "example" / "roster.csv").open("a") as f:  # "Jo" is either of two
        f.write("Joanna Whitfield,joanna.whitfield@surrey.example,Surrey,member\n")
    clerk_executor().tick(AFTER)
    wait_queue_empty()
    seen = len(imap_fetch("members"))

    mailed = answer(None, KIM, "Hi,\n\nThe minutes are attached.\n\nKim",
                    subject="Minutes of 14 January", attachment=("QA minutes.txt", MINUTES))
    smtp_send(mailed, KIM, [ORGANISER])
    wait_queue_empty()
    wait_for("clerk", 1)
    clerk_executor().tick(AFTER + timedelta(minutes=5))
    clerk_executor().tick(AFTER + timedelta(minutes=6))
    wait_queue_empty()
    (summary,) = to_kim(seen)
    said = text(summary)
    assert summary["In-Reply-To"] == mailed["Message-ID"]
    assert "Kim Osei: Review the meeting invites" in said or \
        "Kim Osei will review the meeting invites" in said
    assert "Q1: who is 'Jo'?" in said and "2 Joanna Whitfield" in said
    assert "when you reply APPROVE" in said

    # forged in her name: the server has no verdict for it
    smtp_send(answer(summary, KIM, "Q1 2\nAPPROVE", authentic=False), KIM, [ORGANISER])
    wait_queue_empty()
    wait_for("clerk", 1)
    result = clerk_executor().tick(AFTER + timedelta(minutes=10))
    assert len(result.unprocessed) == 1 and "not obeyed" in result.unprocessed[0]
    assert len(imap_fetch("clerk", "clerk/unprocessed")) == 1
    assert not [k for k in clerk_executor().tick(AFTER + timedelta(minutes=11)).sent
                if "/minutes/" in k]
    # the question is still open: no action recorded for "Jo"
    assert not [a for a in snapshot.actions(store, "qa-leads") if "LADO" in a.text]

    # hers, from her own client: the owner settled and the minutes circulated
    smtp_send(answer(summary, KIM, "Q1 2\nAPPROVE\n\nThanks, Kim"), KIM, [ORGANISER])
    wait_queue_empty()
    wait_for("clerk", 1)
    at = AFTER + timedelta(minutes=15)
    result = clerk_executor().tick(at)
    sent = result.sent + clerk_executor().tick(at + timedelta(minutes=1)).sent
    assert result.unprocessed == []
    assert len([k for k in sent if "/2027-q1/minutes/" in k]) == MEMBERS + 1
    (owners,) = [a.owners for a in snapshot.actions(store, "qa-leads") if "LADO" in a.text]
    assert owners == ("joanna.whitfield@surrey.example",)
    wait_queue_empty()
    confirmation = next(m for m in to_kim(seen) if "Done:" in text(m))
    assert "APPROVE: the minutes of" in text(confirmation)
    minutes = [m for m in imap_fetch("members")[seen:]
               if "/2027-q1/minutes/" in str(m["X-Clerk-Key"])]
    assert len(minutes) == MEMBERS + 1
