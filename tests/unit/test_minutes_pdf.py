"""Minutes as PDF (what the admin often has: "Save as PDF" from Word): the same actions as
the same text in a .txt file; a PDF that cannot be read is refused with the reason, naming the
file, and nothing is imported."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from tests.paper_files import pdf, text_pdf
from tests.unit.test_minutes import imported, seed_group  # noqa: F401  (a fixture)

LINES = [
    "SESLIP QA Leads Sub-group — minutes of 15 June 2023",
    "1. Meeting invites",
    "Action: Kim Osbourne will review the meeting invites to ensure all attendees have been "
    "invited",
    "2. LADO audit tool",
    "Action: Aman Sekhon-Gill will share the Lado audit tool by 31 July 2023.",
    "Action: Danielle McKenzie will ask the LADO workers what kind of tools they are using.",
    "3. Feedback",
    "Action: Kim Osbourne will remind the group in 6-9 months to see how local authorities "
    "triangulate feedback.",
]


def test_minutes_as_pdf_import_as_their_text_does(clerk: Callable[..., Result],
                                                  seed_group: Path,  # noqa: F811
                                                  tmp_path: Path):
    as_text = tmp_path / "minutes.txt"
    as_text.write_text("\n".join(LINES) + "\n")
    as_pdf = tmp_path / "minutes.pdf"
    as_pdf.write_bytes(text_pdf(LINES))
    from_pdf = imported(clerk, as_pdf)
    assert len(from_pdf["actions"]) == 3 and from_pdf["nudges"] == 1  # type: ignore[arg-type]
    rows = json.loads(clerk("actions", "list", "--status", "all", "--json").output)
    assert {r["text"] for r in rows} >= {
        "Aman Sekhon-Gill will share the Lado audit tool by 31 July 2023."}
    assert [r["due"] for r in rows if "Lado audit" in r["text"]] == ["2023-07-31"]
    # the same minutes again, as text: the same items, already in
    again = imported(clerk, as_text)
    assert again["actions"] == [] and again["already"] == 4
    # each place names the page
    assert all(a["place"].startswith("page 1, line ")  # type: ignore[index]
               for a in from_pdf["imported"])  # type: ignore[attr-defined]


@pytest.mark.parametrize(("content", "says"), [
    (b"%PDF-1.7\n" + b"\x00garbage" * 50, "is not a PDF clerk can read"),
    (pdf("Action: nobody can read this"), "is not a PDF clerk can read"),  # no xref, no EOF
    (text_pdf([]), "a PDF without text (a scan?)"),
    (b"Action: Kim Osbourne will do it", "is not a PDF clerk can read"),  # text named .pdf
])
def test_a_pdf_clerk_cannot_read_imports_nothing_and_says_why(
        clerk: Callable[..., Result], seed_group: Path, tmp_path: Path,  # noqa: F811
        content: bytes, says: str):
    path = tmp_path / "minutes.pdf"
    path.write_bytes(content)
    result = clerk("minutes", "import", str(path), "--meeting", "2023-06", "--json")
    assert result.exit_code != 0
    assert str(path) in result.output and says in result.output, result.output
    listed = clerk("actions", "list", "--status", "all", "--json")
    assert json.loads(listed.output) == []


def test_an_encrypted_pdf_is_refused_with_what_to_do(clerk: Callable[..., Result],
                                                      seed_group: Path,  # noqa: F811
                                                      tmp_path: Path):
    import pypdf

    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(_saved(tmp_path, text_pdf(LINES))))
    writer.encrypt("secret")
    path = tmp_path / "locked.pdf"
    with path.open("wb") as f:
        writer.write(f)
    result = clerk("minutes", "import", str(path), "--meeting", "2023-06")
    assert result.exit_code != 0 and "a PDF with a password" in result.output


def _saved(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "plain.pdf"
    path.write_bytes(content)
    return path
