"""Papers are quarantined, not forwarded: what a member's answer carries reaches the agenda
packs only when it is a document, an image or plain text by its content; the rest is kept
for the admin, listed by `clerk status`, and never attached to any pack, held or not
(bot/engine/papers.py, bot/render/email.py)."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import Result

from bot.cli import report
from bot.engine import snapshot
from bot.engine.executor import Executor
from bot.engine.store import Store
from bot.transports.memory import MemoryTransport
from tests import paper_files as files
from tests.conftest import edit
from tests.kent import (
    GAVIN,
    PACK_DAY,
    T0,
    answer,
    apply,
    names,
    request_to_kent,
    settings,
)


def q1_packs(ex: Executor) -> list[dict[str, bytes]]:
    """The attachments of each member's pack for 2027-q1 (all 21 of them), by name."""
    assert isinstance(ex.transport, MemoryTransport)
    packs = [m for m in ex.transport.sent if "/2027-q1/pack/" in str(m["X-Clerk-Key"])]
    assert len(packs) == 21
    return [{str(p.get_filename()): p.get_content() for p in pack.iter_attachments()}
            for pack in packs]


def test_an_exe_posing_as_the_agenda_is_quarantined_and_never_in_any_pack(
        make_executor: Callable[[], Executor], store: Store, config_dir: Path,
        group_dir: Path, tmp_path: Path, clerk: Callable[..., Result]):
    """The attacker's test: one forged-looking reply carrying "Updated agenda.pdf.exe" went
    out in all 21 agenda packs. Now it stays in the quarantine, the admin sees it, the
    answer still counts, and no pack — held for approval first here — carries it."""
    edit(group_dir / "group.toml", 'kind = "pack"\nsend = "-7d"',
         'kind = "pack"\nsend = "-7d"\napprove = true')
    ex, request = request_to_kent(make_executor, config_dir, tmp_path)
    outcome = apply(ex, store, answer(request, ("Updated agenda.pdf.exe", files.EXE),
                                      ("report.exe", files.pdf())))
    assert outcome.handled, outcome.detail
    assert "a submission (1 paper(s)) from Kent for 2027-q1" in outcome.detail
    assert "quarantined: Updated agenda.pdf.exe (not an allowed type: a Windows program " \
           "(MZ header))" in outcome.detail
    assert names(tmp_path / "papers" / "qa-leads" / "2027-q1") == ["kent--report.pdf"]
    kept = tmp_path / "quarantine" / "qa-leads" / "2027-q1"
    assert names(kept) == ["kent--Updated agenda.pdf.exe.quarantined"]
    assert (kept / "kent--Updated agenda.pdf.exe.quarantined").read_bytes() == files.EXE
    # the organisation has answered: no chaser for Kent
    assert snapshot.state(store).submitted[("qa-leads", "2027-q1", "rfi", "Kent")] == \
        "submitted"
    [logged] = [i for i in store.inbox_log() if i.message_id == "<kent-1@kent.example>"]
    assert logged.handled and "Windows program" in logged.detail

    ex.tick(PACK_DAY)  # the packs are held for approval: the admin sees what was kept back
    held = [r for r in store.rows(states=["held"]) if r.kind == "pack"
            and r.meeting_id == "2027-q1"]
    assert len(held) == 21
    chasers = {r.recipient: r.state for r in store.rows() if r.kind == "chaser"
               and r.meeting_id == "2027-q1"}
    assert chasers.pop(GAVIN) == "withdrawn"  # Kent has answered: not chased
    assert len(chasers) == 15 and "withdrawn" not in chasers.values()
    # the pack's preview she gets lists it, and does not carry it
    assert isinstance(ex.transport, MemoryTransport)
    (preview,) = [m for m in ex.transport.sent if "/2027-q1/pack_preview/" in
                  str(m["X-Clerk-Key"])]
    said = preview.get_body(("plain",)).get_content()
    assert "Kept back from this pack (1): clerk forwards no file like this" in said
    assert (f"  - Updated agenda.pdf.exe, from {GAVIN} (Kent): not an allowed type: a Windows "
            "program (MZ header)") in said
    html = preview.get_body(("html",)).get_content()
    assert "<li>Updated agenda.pdf.exe, from" in html
    assert not any(bytes(p.get_content()[:2]) == b"MZ" for p in preview.iter_attachments())
    status = report.status(ex.config, store, PACK_DAY)
    [q] = status["quarantined"]
    assert (q["group"], q["meeting"], q["organisation"], q["sender"], q["file"]) == \
        ("qa-leads", "2027-q1", "Kent", GAVIN, "Updated agenda.pdf.exe")
    assert q["kept"] == str(kept / "kent--Updated agenda.pdf.exe.quarantined")
    assert q["size"] == len(files.EXE) and "Windows program" in q["reason"]
    if store.url.startswith("sqlite"):
        text = clerk("status", "--now", PACK_DAY.isoformat()).output
        assert "Papers kept back from the packs (1)" in text
        assert "qa-leads/2027-q1  Kent: Updated agenda.pdf.exe: not an allowed type" in text
        assert json.loads(clerk("status", "--json").output)["quarantined"][0]["file"] == \
            "Updated agenda.pdf.exe"

    store.set_state(["qa-leads/2027-q1/pack/"], ("held",), "planned", PACK_DAY, "approved")
    ex.tick(PACK_DAY + timedelta(minutes=5))
    for attached in q1_packs(ex):
        assert set(attached) == {"agenda-2027-q1.docx", "kent--report.pdf"}
        assert attached["kent--report.pdf"] == files.pdf()
        assert not any(bytes(data[:2]) == b"MZ" for data in attached.values())


def test_a_pack_leaves_out_what_an_older_clerk_saved(
        make_executor: Callable[[], Executor], config_dir: Path, tmp_path: Path,
        store: Store):
    """An install upgraded with the .exe already in its papers folder: the pack does not
    carry it, and a paper with the wrong extension goes with its type's."""
    settings(config_dir, tmp_path, zip_papers_above="1")
    folder = tmp_path / "papers" / "qa-leads" / "2027-q1"
    folder.mkdir(parents=True)
    (folder / "kent--Updated agenda.pdf.exe").write_bytes(files.EXE)
    (folder / "medway--numbers.pdf.exe").write_bytes(files.pdf())
    (folder / "slough--notes.html").write_bytes(files.HTML)
    ex = make_executor()
    ex.tick(T0)
    ex.tick(PACK_DAY)
    for attached in q1_packs(ex):
        assert set(attached) == {"agenda-2027-q1.docx", "papers.zip"}
        with zipfile.ZipFile(io.BytesIO(attached["papers.zip"])) as z:
            assert z.namelist() == ["medway--numbers.pdf"]


@pytest.mark.parametrize(("name", "data", "why"), [
    ("minutes.pdf", files.HTML, "HTML or XML markup"),
    ("logo.png", files.SVG, "HTML or XML markup"),
    ("papers.zip", files.zipped({"a.pdf": files.pdf()}), "a ZIP archive"),
    ("numbers.docx", files.zipped({f"word/{n}.xml": "" for n in range(1200)}), "zip bomb"),
    ("macro.docx", files.zipped({"[Content_Types].xml": "macroEnabled.main+xml",
                                 "word/document.xml": "<w/>"}), "macro-enabled"),
])
def test_what_is_not_a_document_image_or_text_is_quarantined(
        make_executor: Callable[[], Executor], store: Store, config_dir: Path,
        tmp_path: Path, name: str, data: bytes, why: str):
    ex, request = request_to_kent(make_executor, config_dir, tmp_path)
    outcome = apply(ex, store, answer(request, (name, data)))
    assert outcome.handled and f"quarantined: {name} (not an allowed type: " in outcome.detail
    assert why in outcome.detail
    assert names(tmp_path / "papers" / "qa-leads" / "2027-q1") == []
    assert names(tmp_path / "quarantine" / "qa-leads" / "2027-q1") == \
        [f"kent--{name}.quarantined"]
    [row] = store.quarantined()
    assert row.name == name and why in row.reason and row.path.endswith(".quarantined")


def test_every_allowed_type_is_saved_under_its_own_extension(
        make_executor: Callable[[], Executor], store: Store,
        tmp_path: Path, config_dir: Path):
    ex, request = request_to_kent(make_executor, config_dir, tmp_path, max_attachments="20")
    sent = [("agenda.exe", files.pdf()), ("notes", files.word()),
            ("figures.xlsx", files.workbook()), ("slides.odp", files.opendocument("text")),
            ("old.doc", files.ole2("Workbook")), ("photo.gif", files.JPEG),
            ("data.csv", b"a,b\n1,2\n"), (".exe", files.pdf())]
    outcome = apply(ex, store, answer(request, *sent))
    assert outcome.handled and "a submission (8 paper(s))" in outcome.detail
    assert names(tmp_path / "papers" / "qa-leads" / "2027-q1") == sorted(
        f"kent--{n}" for n in ("agenda.pdf", "notes.docx", "figures.xlsx", "slides.odt",
                               "old.xls", "photo.jpg", "data.csv", "exe.pdf"))
    assert store.quarantined() == []
