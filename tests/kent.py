"""A member's answer to a request for information, with attachments, read as clerk reads
its mailbox: for the tests of what clerk keeps (tests/unit/test_quarantine.py,
tests/unit/test_limits.py, tests/unit/test_file_modes.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

from bot.engine.executor import Executor
from bot.engine.inbox import Inbox, Outcome, read
from bot.engine.store import Store
from bot.transports.memory import MemoryTransport
from tests.conftest import TRUST, authenticated

T0 = datetime(2026, 12, 1, 10, tzinfo=UTC)
RFI_DAY = datetime(2026, 12, 17, 10, tzinfo=UTC)
ANSWERED = RFI_DAY + timedelta(hours=2)
PACK_DAY = datetime(2027, 1, 7, 10, tzinfo=UTC)  # a week before the 14 January meeting
GAVIN = "gavin.swales@kent.example"  # Kent's lead
ORGANISER = "qa-leads@network.example"


def settings(config_dir: Path, tmp_path: Path, **more: str) -> None:
    lines = [f'papers = "{tmp_path / "papers"}"', f'quarantine = "{tmp_path / "quarantine"}"',
             *(f"{k} = {v}" for k, v in more.items())]
    (config_dir / "clerk.toml").write_text("[clerk]\n" + "\n".join(lines) + "\n")


def request_to_kent(make_executor: Callable[[], Executor], config_dir: Path,
                    tmp_path: Path, **limits: str) -> tuple[Executor, EmailMessage]:
    """The request for information Kent's lead was sent, and the executor that sent it:
    papers and quarantine under ``tmp_path`` and these ``[clerk]`` options, unless
    clerk.toml is there already and none are given."""
    if limits or not (config_dir / "clerk.toml").exists():
        settings(config_dir, tmp_path, **limits)
    ex = make_executor()
    ex.tick(T0)
    ex.tick(RFI_DAY)
    assert isinstance(ex.transport, MemoryTransport)
    request = next(m for m in ex.transport.sent if GAVIN in str(m["To"])
                   and "/rfi/" in str(m["X-Clerk-Key"]))
    return ex, request


def answer(request: EmailMessage, *attachments: tuple[str, bytes], text: str = "Attached.",
           message_id: str = "<kent-1@kent.example>") -> bytes:
    """Kent's answer to ``request`` with ``attachments``, as the install's server passes it
    on (authenticated)."""
    msg = EmailMessage()
    msg["From"], msg["To"] = GAVIN, ORGANISER
    msg["Subject"], msg["Message-ID"] = f"Re: {request['Subject']}", message_id
    msg["In-Reply-To"] = request["Message-ID"]
    msg.set_content(text)
    for name, data in attachments:
        msg.add_attachment(data, maintype="application", subtype="octet-stream",
                           filename=name)
    return authenticated(msg)


def apply(ex: Executor, store: Store, raw: bytes, now: datetime = ANSWERED) -> Outcome:
    """``raw`` read as the mailbox's would be: with the install's limits."""
    return read(Inbox(ex.config, store), raw, TRUST, now)


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
