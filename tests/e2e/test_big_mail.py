"""A message larger than max_message is never fetched from a real Dovecot: clerk asks for its
RFC822.SIZE first, fetches only its first bytes (for the log), and files it in
clerk/unprocessed with the reason; a message within the limit is read as always."""

from __future__ import annotations

import imaplib
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import imapclient
import pytest

from bot.cli import report
from bot.engine.executor import Executor
from bot.engine.result import TickResult
from bot.engine.store import Store
from tests.conftest import edit
from tests.e2e.test_listening import clerk_executor  # noqa: F401  (a fixture: clerk on them)
from tests.mail import MailServers, imap_fetch

pytestmark = pytest.mark.slow
NOW = datetime(2026, 12, 17, 10, tzinfo=UTC)


def append(ms: MailServers, message: bytes) -> None:
    """Put ``message`` into clerk's INBOX as delivered mail (IMAP APPEND)."""
    conn = imaplib.IMAP4(ms.host, ms.imap_port, timeout=10)
    try:
        conn.login("clerk", ms.users["clerk"])
        typ, data = conn.append("INBOX", "", imaplib.Time2Internaldate(time.time()), message)
        assert typ == "OK", data
    finally:
        conn.logout()


def message(subject: str, body: bytes) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"] = "Gavin Swales <gavin.swales@kent.example>", \
        "qa-leads@network.example"
    msg["Subject"], msg["Message-ID"] = subject, f"<{subject.replace(' ', '-')}@kent.example>"
    msg.set_content("Our scans, attached.")
    msg.add_attachment(body, maintype="application", subtype="pdf", filename="scans.pdf")
    return msg.as_bytes()


@pytest.fixture
def fetched(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[list[int], list[str]]]]:
    """Every FETCH clerk's IMAP client sends: (uids, data items)."""
    seen: list[tuple[list[int], list[str]]] = []
    real = imapclient.IMAPClient.fetch

    def fetch(self: Any, messages: Any, data: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append((list(messages), [str(d) for d in data]))
        return real(self, messages, data, *args, **kwargs)

    monkeypatch.setattr(imapclient.IMAPClient, "fetch", fetch)
    yield seen


def test_a_message_over_max_message_is_not_fetched(
        clerk_executor: Callable[[], Executor],  # noqa: F811  (the fixture imported)
        config_dir: Path, store: Store, mailboxes: MailServers,
        fetched: list[tuple[list[int], list[str]]]):
    edit(config_dir / "clerk.toml", "max_attachment = 100000",
         'max_attachment = 100000\nmax_message = "1MB"')
    append(mailboxes, message("all our scans", b"%PDF-1.7 " + b"0" * (3 * 1024 * 1024)))
    append(mailboxes, message("one scan", b"%PDF-1.7 small"))
    ex = clerk_executor()
    result = TickResult(now=NOW.isoformat())
    ex.read_mailbox(NOW, result)

    assert result.read == 2
    big, small = sorted({uid for uids, _ in fetched for uid in uids if len(uids) == 1})
    assert ([big, small], ["RFC822.SIZE"]) in fetched  # the sizes first, for all
    assert ([big], ["BODY.PEEK[]<0.65536>"]) in fetched  # the big one: its head only
    assert ([big], ["BODY.PEEK[]"]) not in fetched  # never its body
    assert ([small], ["BODY.PEEK[]"]) in fetched
    [reason] = [u for u in result.unprocessed if "max_message" in u]
    assert reason.endswith("bytes, larger than max_message (1,048,576): not read")
    unprocessed = imap_fetch("clerk", "clerk/unprocessed")
    assert {str(m["Subject"]) for m in unprocessed} == {"all our scans", "one scan"}
    listed = report.status(ex.config, store, NOW)["unprocessed"]
    assert {"at": NOW.isoformat(), "sender": "gavin.swales@kent.example",
            "subject": "all our scans", "reason": reason} in listed
