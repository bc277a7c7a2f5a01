"""What clerk writes is readable by its own user alone: the state database (and its -wal and
-shm), the outbox, papers and the quarantine are 0600 files in 0700 folders, under any umask;
an older install's world-readable files are tightened when opened; the command sets the
umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import Result

from bot.engine.executor import Executor
from bot.engine.store import Store
from bot.transports.base import Mail
from bot.transports.outbox import OutboxTransport
from tests import paper_files as files
from tests.kent import answer, apply, request_to_kent


@pytest.fixture(autouse=True)
def loose_umask() -> Iterator[None]:
    """The modes must not come from the umask: run as under a permissive one."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_state_database_is_private(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'state' / 'clerk.sqlite'}"
    store = Store(url)
    store.migrate()
    store.set_meta("probe", "x")  # a write: the -wal and -shm files exist now
    db = tmp_path / "state" / "clerk.sqlite"
    assert mode(tmp_path / "state") == 0o700
    made = [db, db.with_name("clerk.sqlite-wal"), db.with_name("clerk.sqlite-shm")]
    assert all(p.exists() for p in made)
    assert {p.name: mode(p) for p in made} == {p.name: 0o600 for p in made}
    store.dispose()


def test_an_older_installs_readable_database_is_tightened(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'clerk.sqlite'}"
    old = Store(url)  # still open: its -wal and -shm are there
    old.migrate()
    old.set_meta("probe", "x")
    names = ("clerk.sqlite", "clerk.sqlite-wal", "clerk.sqlite-shm")
    for name in names:
        os.chmod(tmp_path / name, 0o644)
    again = Store(url)
    assert {n: mode(tmp_path / n) for n in names} == {n: 0o600 for n in names}
    assert again.meta_value("probe") == "x"
    again.dispose()
    old.dispose()


def mail(n: int) -> Mail:
    return Mail(key=f"k{n}", message_id=f"<m{n}@clerk.example>", subject="s",
                sender=("", "a@example.org"), to=(("", "b@example.org"),), cc=(), html="",
                text="", attachments=(), data=b"Subject: s\r\n\r\nbody\r\n")


def test_the_outbox_is_private(tmp_path: Path):
    outbox = OutboxTransport({"path": str(tmp_path / "mail" / "outbox"), "fsync": False})
    outbox.send(mail(1))
    assert mode(tmp_path / "mail") == 0o700
    for folder in ("", "tmp", "new", "cur"):
        assert mode(tmp_path / "mail" / "outbox" / folder) == 0o700, folder
    [message] = (tmp_path / "mail" / "outbox" / "new").iterdir()
    assert mode(message) == 0o600


def test_an_older_installs_readable_outbox_is_tightened(tmp_path: Path):
    for folder in ("", "tmp", "new", "cur"):
        (tmp_path / "outbox" / folder).mkdir(mode=0o755, exist_ok=True)
        os.chmod(tmp_path / "outbox" / folder, 0o755)
    OutboxTransport({"path": str(tmp_path / "outbox"), "fsync": False}).send(mail(2))
    for folder in ("", "tmp", "new", "cur"):
        assert mode(tmp_path / "outbox" / folder) == 0o700, folder


def test_papers_and_the_quarantine_are_private(make_executor: Callable[[], Executor],
                                               store: Store, config_dir: Path,
                                               tmp_path: Path):
    ex, request = request_to_kent(make_executor, config_dir, tmp_path)
    outcome = apply(ex, store, answer(request, ("numbers.pdf", files.pdf()),
                                      ("tool.exe", files.EXE)))
    assert outcome.handled
    for root in ("papers", "quarantine"):
        for folder in (tmp_path / root, tmp_path / root / "qa-leads",
                       tmp_path / root / "qa-leads" / "2027-q1"):
            assert mode(folder) == 0o700, folder
        [kept] = (tmp_path / root / "qa-leads" / "2027-q1").iterdir()
        assert mode(kept) == 0o600, kept


def test_the_command_sets_a_private_umask(clerk: Callable[..., Result]):
    assert clerk("check").exit_code == 0
    assert os.umask(0o022) == 0o077  # the fixture puts the old one back
