"""The limits on what clerk reads of a message, each refused before the work it would cost:
its size before it is parsed, its MIME parts before and while it is parsed, its attachments
before they are decoded, one meeting's papers together; and file names cut by bytes, so no
name loses an answer. Each [clerk] option's wrong values are problems."""

from __future__ import annotations

import errno
import tracemalloc
from collections.abc import Callable, Iterator
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from bot.cli import report
from bot.config.settings import load_settings
from bot.domain.errors import Problem
from bot.engine import papers as engine_papers
from bot.engine.executor import Executor
from bot.engine.result import TickResult
from bot.engine.store import Store
from bot.listen import mime, replies
from bot.transports.base import Oversized
from tests import paper_files as files
from tests.conftest import TRUST, authenticated
from tests.kent import ANSWERED, answer, apply, names, request_to_kent, settings

MB = 1024 * 1024


class ListMailbox:
    """A mailbox holding the given messages: it files each as clerk says (a real fake, as
    the imap mailbox behaves, without a server)."""

    def __init__(self, *messages: bytes | Oversized) -> None:
        self.held = list(messages)
        self.filed: list[tuple[int, bool]] = []

    def messages(self) -> Iterator[tuple[int, bytes | Oversized]]:
        yield from enumerate(self.held, 1)

    def file(self, uid: int, handled: bool) -> None:
        self.filed.append((uid, handled))

    def close(self) -> None:
        """Nothing is held open."""


def many_parts(n: int, boundary: str = 'boundary="b"') -> bytes:
    head = (f"From: Gavin Swales <gavin.swales@kent.example>\r\nSubject: parts\r\n"
            f"Message-ID: <parts@kent.example>\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: multipart/mixed; {boundary}\r\n\r\n").encode()
    part = (b"--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: "
            b"attachment; filename=x.txt\r\n\r\nx\r\n")
    return head + part * n + b"--b--\r\n"


def read_mailbox(ex: Executor, mailbox: ListMailbox, now: datetime) -> TickResult:
    ex.mailbox = mailbox
    result = TickResult(now=now.isoformat())
    ex.read_mailbox(now, result)
    return result


def test_ten_thousand_parts_are_refused_before_parsing(
        make_executor: Callable[[], Executor], store: Store, config_dir: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch):
    settings(config_dir, tmp_path)
    raw = many_parts(10_000)
    assert mime.count_parts(raw) == 10_001
    made: list[int] = []
    real = mime.EmailMessage

    class Counted(real):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            made.append(1)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(mime, "EmailMessage", Counted)  # the parts the parser makes
    ex = make_executor()
    mailbox = ListMailbox(raw)
    result = read_mailbox(ex, mailbox, ANSWERED)
    assert made == []  # refused from the bytes: no part was ever made
    assert mailbox.filed == [(1, False)]
    assert result.unprocessed == ["10001 MIME parts, more than max_parts (100): not read"]
    [logged] = store.inbox_log(handled=False)
    assert (logged.sender, logged.subject) == ("gavin.swales@kent.example", "parts")
    assert not (tmp_path / "papers").exists() and not (tmp_path / "quarantine").exists()
    unprocessed = report.status(ex.config, store, ANSWERED)["unprocessed"]
    assert [u["reason"] for u in unprocessed] == [result.unprocessed[0]]


def test_the_parser_stops_at_the_first_part_too_many_whatever_the_count_missed(
        monkeypatch: pytest.MonkeyPatch):
    """A boundary in RFC 2231 form is not in the count of the raw bytes; the parser makes
    101 parts, not 10,001."""
    raw = many_parts(10_000, boundary="boundary*=utf-8''b")
    assert mime.count_parts(raw) == 1
    got = replies.read(raw, max_parts=100)
    assert got.kind == "unusable" and got.sender == "gavin.swales@kent.example"
    assert got.reason == "more than max_parts (100) MIME parts: not read (stopped at part 101)"


def test_a_walk_of_a_message_parsed_elsewhere_stops_after_its_limit():
    msg = BytesParser(policy=policy.default).parsebytes(many_parts(2000))
    assert len(list(mime.leaf_parts(msg))) == mime.WALK - 1  # the container is a part too
    assert len(list(mime.leaf_parts(msg, 50))) == 49


def test_a_100_mb_message_is_refused_unparsed_in_bounded_memory(
        make_executor: Callable[[], Executor], store: Store, config_dir: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch):
    settings(config_dir, tmp_path)
    ex = make_executor()
    raw = (b"From: Gavin Swales <gavin.swales@kent.example>\r\nSubject: all our files\r\n"
           b"Message-ID: <huge@kent.example>\r\n\r\n" + b"A" * (100 * MB))
    parsed: list[int] = []
    real = replies.parse

    def parse(data: bytes, most: int = 100) -> EmailMessage:
        parsed.append(len(data))
        return real(data, most)

    monkeypatch.setattr(replies, "parse", parse)
    mailbox = ListMailbox(raw)
    tracemalloc.start()
    try:
        result = read_mailbox(ex, mailbox, ANSWERED)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert parsed == []
    assert peak < 5 * MB  # the message is never copied, let alone parsed
    assert mailbox.filed == [(1, False)]
    assert result.unprocessed == [f"{len(raw):,} bytes, larger than max_message "
                                  "(26,214,400): not read"]
    [logged] = store.inbox_log(handled=False)
    assert (logged.sender, logged.subject, logged.message_id) == \
        ("gavin.swales@kent.example", "all our files", "<huge@kent.example>")


def test_a_message_the_mailbox_did_not_fetch_is_filed_unprocessed(
        make_executor: Callable[[], Executor], store: Store, config_dir: Path, tmp_path: Path):
    settings(config_dir, tmp_path, max_message='"1MB"')
    ex = make_executor()
    mailbox = ListMailbox(Oversized(3 * MB, b"From: ann@example.org\r\nSubject: scans\r\n"))
    result = read_mailbox(ex, mailbox, ANSWERED)
    assert mailbox.max_message == MB  # type: ignore[attr-defined]  # told before it reads
    assert mailbox.filed == [(1, False)]
    assert result.unprocessed == ["3,145,728 bytes, larger than max_message (1,048,576): "
                                  "not read"]
    assert store.inbox_log(handled=False)[0].subject == "scans"


def test_attachments_past_max_attachments_are_not_kept(
        make_executor: Callable[[], Executor], store: Store,
        config_dir: Path, tmp_path: Path):
    ex, request = request_to_kent(make_executor, config_dir, tmp_path,
                                  max_attachments="2")
    outcome = apply(ex, store, answer(request, *((f"{n}.pdf", files.pdf(str(n)))
                                                  for n in range(1, 5))))
    assert outcome.handled and "a submission (2 paper(s))" in outcome.detail
    assert "not kept: 3.pdf (more than max_attachments (2) in one message), 4.pdf" in \
        outcome.detail
    assert names(tmp_path / "papers" / "qa-leads" / "2027-q1") == ["kent--1.pdf", "kent--2.pdf"]
    rows = store.quarantined()
    assert [(r.name, r.path) for r in rows] == [("3.pdf", None), ("4.pdf", None)]
    assert not (tmp_path / "quarantine").exists()


def test_an_attachment_over_max_attachment_is_not_kept(
        make_executor: Callable[[], Executor], store: Store,
        config_dir: Path, tmp_path: Path):
    ex, request = request_to_kent(make_executor, config_dir, tmp_path,
                                  max_attachment='"1KB"')
    big = files.pdf("x" * 2000)
    outcome = apply(ex, store, answer(request, ("big.pdf", big), ("small.pdf", files.pdf())))
    assert outcome.handled and "a submission (1 paper(s))" in outcome.detail
    assert f"not kept: big.pdf ({len(big):,} bytes, larger than max_attachment (1,024))" \
        in outcome.detail
    [row] = store.quarantined()
    assert (row.name, row.size, row.path) == ("big.pdf", len(big), None)


def test_papers_past_the_meetings_total_are_quarantined_and_the_admin_told(
        make_executor: Callable[[], Executor], store: Store,
        config_dir: Path, tmp_path: Path):
    ex, request = request_to_kent(make_executor, config_dir, tmp_path,
                                  max_meeting_papers='"2KB"')
    paper = files.pdf("x" * 700)
    assert 900 < len(paper) <= 1024
    first = apply(ex, store, answer(request, ("a.pdf", paper), ("b.pdf", paper)))
    assert "a submission (2 paper(s))" in first.detail
    later = apply(ex, store, answer(request, ("c.pdf", paper), message_id="<kent-2@k.example>"))
    assert later.handled and "a submission (0 paper(s))" in later.detail
    assert f"quarantined: c.pdf (the papers for 2027-q1 would come to {3 * len(paper):,} " \
           "bytes, over max_meeting_papers (2,048))" in later.detail
    assert names(tmp_path / "papers" / "qa-leads" / "2027-q1") == ["kent--a.pdf",
                                                                  "kent--b.pdf"]
    assert names(tmp_path / "quarantine" / "qa-leads" / "2027-q1") == \
        ["kent--c.pdf.quarantined"]
    [q] = report.status(ex.config, store, ANSWERED)["quarantined"]
    assert q["file"] == "c.pdf" and "max_meeting_papers" in q["reason"]


CJK = "会議資料" * 29  # 116 characters: 348 bytes of UTF-8 (a file name holds 255)
EMOJI = "📎" * 75  # 300 bytes


@pytest.mark.parametrize("stem", [CJK, EMOJI], ids=["cjk", "emoji"])
def test_a_long_name_is_cut_to_fit_and_the_answer_counts(
        make_executor: Callable[[], Executor], store: Store, config_dir: Path,
        tmp_path: Path, stem: str):
    ex, request = request_to_kent(make_executor, config_dir, tmp_path)
    outcome = apply(ex, store, answer(request, (f"{stem}.pdf", files.pdf())))
    assert outcome.handled and "a submission (1 paper(s))" in outcome.detail
    [saved] = names(tmp_path / "papers" / "qa-leads" / "2027-q1")
    assert saved.startswith("kent--") and saved.endswith(".pdf")
    assert 240 < len(saved.encode()) <= 255
    assert stem.startswith(saved.removeprefix("kent--").removesuffix(".pdf"))
    assert store.inbox_log(handled=False) == []


def test_a_name_that_cannot_be_written_becomes_attachment_n(
        make_executor: Callable[[], Executor], store: Store, config_dir: Path,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A filesystem that says it takes longer names than it does (ENAMETOOLONG)."""
    monkeypatch.setattr(engine_papers, "name_max", lambda folder: 4096)
    ex, request = request_to_kent(make_executor, config_dir, tmp_path)
    outcome = apply(ex, store, answer(request, ("notes.txt", b"x"),
                                      (f"{CJK}.pdf", files.pdf())))
    assert outcome.handled and "a submission (2 paper(s))" in outcome.detail
    assert names(tmp_path / "papers" / "qa-leads" / "2027-q1") == \
        ["kent--attachment-2.pdf", "kent--notes.txt"]


def test_papers_that_cannot_be_written_at_all_never_lose_the_answer(
        make_executor: Callable[[], Executor], store: Store,
        config_dir: Path, tmp_path: Path):
    (tmp_path / "papers").write_text("a file where the folder should be")
    ex, request = request_to_kent(make_executor, config_dir, tmp_path)
    outcome = apply(ex, store, answer(request, ("numbers.pdf", files.pdf())))
    assert outcome.handled, outcome.detail
    assert "a submission (0 paper(s)) from Kent" in outcome.detail
    assert "not kept: numbers.pdf (could not be saved in " in outcome.detail
    [row] = store.quarantined()
    assert row.path is None and "could not be saved" in row.reason
    assert store.inbox_log(handled=False) == []


def test_an_error_applying_a_message_still_lists_it_unprocessed(
        make_executor: Callable[[], Executor], store: Store, tmp_path: Path, config_dir: Path,
        monkeypatch: pytest.MonkeyPatch):
    ex, request = request_to_kent(make_executor, config_dir, tmp_path)

    def broken(*args: object) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(engine_papers.Papers, "file", broken)
    outcome = apply(ex, store, answer(request, ("numbers.pdf", files.pdf())))
    assert not outcome.handled and "could not use it" in outcome.detail
    [logged] = store.inbox_log(handled=False)
    assert logged.sender == "gavin.swales@kent.example" and "Input/output" in logged.detail


# --- the options ----------------------------------------------------------------------------

def load(folder: Path, text: str) -> tuple[Any, list[Problem]]:
    (folder / "clerk.toml").write_text(f"[clerk]\n{text}\n")
    problems: list[Problem] = []
    return load_settings(folder, problems), problems


def test_limits_have_defaults_a_secretariat_expects(tmp_path: Path):
    s, problems = load(tmp_path, "")
    assert problems == []
    assert (s.max_message, s.max_parts, s.max_attachments, s.max_attachment,
            s.max_meeting_papers, s.quarantine) == (25 * MB, 100, 10, 10 * MB, 50 * MB,
                                                    "quarantine")


def test_sizes_are_bytes_or_text_with_a_unit(tmp_path: Path):
    s, problems = load(tmp_path, 'max_message = "30MB"\nmax_attachment = 5242880\n'
                                 'max_meeting_papers = "1.5 GB"\nmax_parts = 40\n'
                                 'max_attachments = 3\nquarantine = "held-back"')
    assert problems == []
    assert (s.max_message, s.max_attachment, s.max_meeting_papers, s.max_parts,
            s.max_attachments, s.quarantine) == (30 * MB, 5 * MB, 1536 * MB, 40, 3,
                                                 "held-back")


@pytest.mark.parametrize(("option", "value", "message"), [
    (option, value, message)
    for option in ("max_message", "max_attachment", "max_meeting_papers")
    for value, message in (("-1", "must be a size"), ("0", "must be a size"),
                           ("true", "must be a size"), ("1.5", "must be a size"),
                           ('"25 parsecs"', "'25 parsecs' is not a size"),
                           ('"MB"', "'MB' is not a size"))
] + [
    (option, value, "must be a whole number, 1 or more")
    for option in ("max_parts", "max_attachments")
    for value in ("-3", "0", '"10"', "2.5", "false")
] + [
    ("quarantine", "7", "must be text in quotes"),
])
def test_a_wrong_limit_is_a_problem_naming_its_option(tmp_path: Path, option: str,
                                                      value: str, message: str):
    s, problems = load(tmp_path, f"{option} = {value}")
    [problem] = problems
    assert problem.key == f"clerk.{option}" and message in problem.message
    assert problem.line == 2 and not problem.warning
    assert getattr(s, option) == getattr(type(s)(), option)  # the default meanwhile


def test_limits_that_contradict_each_other_are_problems(tmp_path: Path):
    _, problems = load(tmp_path, "max_parts = 5000")
    assert [(p.key, p.message) for p in problems] == [("clerk.max_parts", "must be 1000 or less")]
    _, problems = load(tmp_path, 'max_attachment = "30MB"')
    [warning] = problems
    assert warning.warning and warning.key == "clerk.max_attachment"
    assert "larger than max_message" in warning.message


@pytest.mark.parametrize("quarantine", ['"papers"', '"papers/quarantine"', '"./papers/x"'])
def test_a_quarantine_the_packs_could_reach_is_refused(tmp_path: Path, quarantine: str):
    _, problems = load(tmp_path, f'papers = "papers"\nquarantine = {quarantine}')
    [problem] = problems
    assert problem.key == "clerk.quarantine" and "could reach an agenda pack" in problem.message
    _, problems = load(tmp_path, 'papers = "data/papers"\nquarantine = "data/quarantine"')
    assert problems == []


def test_a_message_within_the_limits_is_read_as_before():
    msg = EmailMessage()
    msg["From"], msg["Subject"] = "ann@example.org", "numbers"
    msg.set_content("Attached.")
    msg.add_attachment(files.pdf(), maintype="application", subtype="pdf", filename="n.pdf")
    got = replies.read(authenticated(msg), trust=TRUST, max_parts=3)
    assert got.kind == "answer" and got.answer is not None
    assert [a.filename for a in got.answer.attachments] == ["n.pdf"]
    assert replies.read(authenticated(msg), trust=TRUST, max_parts=2).kind == "unusable"


def test_a_message_file_over_max_message_is_not_read_whole(
        clerk: Callable[..., Result], config_dir: Path, tmp_path: Path):
    settings(config_dir, tmp_path, max_message='"1MB"')
    eml = tmp_path / "scans.eml"
    eml.write_bytes(b"From: ann@example.org\r\nSubject: scans\r\n\r\n" + b"A" * (2 * MB))
    result = clerk("inbox", "read", str(eml))
    assert result.exit_code == 0, result.output
    assert f"NOT applied: {eml.stat().st_size:,} bytes, larger than max_message " \
           "(1,048,576): not read" in result.output
