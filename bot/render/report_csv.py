"""The admin's status report (bot/plan/desk_report.py) as a spreadsheet: one row per item, for
Excel — UTF-8 with a byte order mark, and no cell that Excel would run as a formula."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime
from typing import Any

COLUMNS = ("section", "item", "who", "date", "status", "detail", "new")

# what makes Excel (and LibreOffice) read a cell as a formula: a member's name, a paper's file
# name or an error text comes from outside, so such a cell is quoted (OWASP "CSV injection")
_FORMULA = ("=", "+", "-", "@", "\t", "\r", "\n")


def safe(cell: Any) -> str:
    """``cell`` as text, with a leading ``'`` when it would start a formula."""
    text = "" if cell is None else str(cell)
    return f"'{text}" if text.startswith(_FORMULA) else text


def report_csv(report: dict[str, Any]) -> bytes:
    """The report's rows (:data:`COLUMNS`), in the order the message shows them."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for *row, new in rows(report):
        writer.writerow([safe(c) for c in row] + ["new" if new else ""])
    return out.getvalue().encode("utf-8-sig")


def filename(report: dict[str, Any]) -> str:
    """``status-<group>-<date>.csv``."""
    return f"status-{report['group']['id']}-{report['now'][:10]}.csv"


def _local(iso: str) -> str:
    """An ISO 8601 time as Excel reads it, in the group's zone: ``2027-04-15 14:00``."""
    return f"{datetime.fromisoformat(iso):%Y-%m-%d %H:%M}"


def rows(r: dict[str, Any]) -> Iterator[tuple[Any, ...]]:
    """Each row's cells (:data:`COLUMNS`), the last whether it is new since her last
    digest."""
    for p in r["config_problems"]:
        yield ("config problem", p, "", _local(r["config_since"]), "not loaded", "",
               r["config_new"])
    for h in r["held"]:
        yield ("held", h["what"] + (f", {h['meeting_text']}" if h["meeting_text"] else ""),
               h["to"], h["date"], "held", h["why"], False)
    for q in r["questions"]:
        yield ("question", f"{q['ref']} {q['text']}", "", "", "open",
               " / ".join(f"{n}. {c}" for n, c in enumerate(q["choices"], 1))
               + (f" (from {q['file']})" if q["file"] else ""), q["new"])
    for q in r["quarantined"]:
        yield ("paper kept back", q["file"], _who(q["from"], q["organisation"]),
               _local(q["received"]), "kept back",
               q["why"] + ("" if q["kept"] else " (not kept)"), q["new"])
    for b in r["bouncing"]:
        yield ("bouncing", b["email"], _who(b["name"], b["organisation"]), "", "bouncing",
               "correct the address in the roster", False)
    for u in r["undelivered"]:
        yield ("undelivered", u["subject"], u["to"], _local(u["at"]), u["state"], u["error"],
               u["new"])
    for kind, found in (("action no longer chased", r["stalled"]), ("overdue action",
                                                                      r["overdue"])):
        for a in found:
            yield (kind, f"{a['ref']} {a['topic'] + ': ' if a['topic'] else ''}{a['text']}",
                   a["owners"], a["due"], "no longer chased" if "why" in a else
                   "overdue", a["why"] if "why" in a else
                   f"{a['days_overdue']} days overdue", a["new"])
    m = r["meeting"]
    if m is None:
        return
    title = f"{m['title']}, {m['when']}"
    for key, answer in (("accepted", "accepted"), ("apologies", "apologies"),
                        ("tentative", "tentative"), ("no_answer", "no answer")):
        for p in m["attendance"][key]:
            yield ("attendance", title, _who(p["name"], p["organisation"]),
                   _local(m["start"]), answer, p["comment"], False)
    for x in m["returns"]:
        yield "return", title, x["organisation"], _local(m["start"]), x["status"], "", False


def _who(name: str, organisation: str) -> str:
    return f"{name} ({organisation})" if organisation else name
