"""The command line: the --json contracts, and each command doing what docs/commands.md
says (that every command and option is there: tests/unit/test_docs.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from tests.conftest import edit

PLAN_KEYS = {"key", "kind", "group", "meeting", "rule", "revision", "sequence", "send_at",
             "latest",
             "recipients", "subject", "reason", "state"}
STATES = {"scheduled", "due", "held", "sent", "failed", "skipped_late", "retry", "sending",
          "parked"}


def test_plan_json_is_the_documented_contract(clerk: Callable[..., Result]):
    result = clerk("plan", "--json", "--now", "2026-11-26T12:00:00+00:00")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert len(rows) == 4 * (21 + 16 + 16 + 21 + 1 + 1)  # and the admin's preview of the pack
    for row in rows:
        assert set(row) == PLAN_KEYS
        assert row["state"] in STATES
        assert datetime.fromisoformat(row["send_at"]).utcoffset() is not None
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$", row["send_at"])
        assert all("@" in r for r in row["recipients"])
    assert {r["state"] for r in rows} == {"scheduled"}
    first = rows[0]
    assert first["kind"] == "invitation" and first["send_at"] == "2026-12-01T09:00:00+00:00"


def test_plan_shows_states_after_a_tick(clerk: Callable[..., Result]):
    assert clerk("tick", "--now", "2026-12-01T10:00:00+00:00").exit_code == 0
    rows = json.loads(clerk("plan", "--json", "--now", "2026-12-01T10:00:00+00:00").output)
    states = {r["state"] for r in rows}
    assert states == {"sent", "scheduled"}
    window = json.loads(clerk("plan", "--json", "--from", "2027-01-01", "--until",
                              "2027-02-01").output)
    assert window and all("2027-01" in r["send_at"] for r in window)


def test_tick_json_and_idempotence(clerk: Callable[..., Result]):
    first = json.loads(clerk("tick", "--json", "--now", "2026-12-01T10:00:00Z").output)
    assert set(first) >= {"now", "sent", "retry", "failed", "skipped_late", "recorded"}
    assert len(first["sent"]) == 21
    second = json.loads(clerk("tick", "--json", "--now", "2026-12-01T10:00:00Z").output)
    assert second["sent"] == [] and second["recorded"] == 0


def test_tick_dry_run_sends_and_records_nothing(clerk: Callable[..., Result],
                                                tmp_path: Path):
    out = json.loads(clerk("tick", "--dry-run", "--json", "--now",
                           "2026-12-01T10:00:00Z").output)
    assert out["dry_run"] is True and len(out["sent"]) == 21
    assert json.loads(clerk("log", "--json").output) == []


def test_status_and_log(clerk: Callable[..., Result]):
    clerk("tick", "--now", "2026-12-01T10:00:00Z")
    status = json.loads(clerk("status", "--json", "--now", "2026-12-01T10:00:00Z").output)
    assert [m["meeting"] for m in status["meetings"]] == ["2027-q1", "2027-q2", "2027-q3"]
    assert status["counts"]["sent"] == 21
    assert status["next"][0]["kind"] == "request"
    assert status["failures"] == []
    log = json.loads(clerk("log", "--json", "--state", "sent").output)
    assert len(log) == 21 and {r["kind"] for r in log} == {"invitation"}
    one = json.loads(clerk("log", "--json", log[0]["key"]).output)[0]
    assert [h["state"] for h in one["history"]] == ["planned", "sending", "sent"]
    text = clerk("status", "--now", "2026-12-01T10:00:00Z").output
    assert "Next meetings" in text and "2027-q1" in text


def test_log_json_is_one_json_array_read_from_the_ledger_a_row_at_a_time(
        clerk: Callable[..., Result], monkeypatch: pytest.MonkeyPatch):
    from bot.engine.store import Store

    clerk("tick", "--now", "2026-12-01T10:00:00Z")
    monkeypatch.setattr(Store, "rows", None)  # not a list of the whole ledger
    out = clerk("log", "--json").output
    rows = json.loads(out)
    assert sum(r["state"] == "sent" for r in rows) == 21 and len(rows) > 21  # and planned
    # the text is as json.dumps gives the whole list: the same for a script that reads it
    assert out == json.dumps(rows, indent=2, ensure_ascii=False) + "\n"
    assert clerk("log", "--json", "--state", "nonesuch").output == "[]\n"


def test_a_json_array_is_written_an_item_at_a_time(capsys: pytest.CaptureFixture[str]):
    from bot.cli.common import _json_array

    written: list[str] = []

    def items() -> Iterator[dict[str, object]]:
        for n in range(3):
            written.append(capsys.readouterr().out)
            yield {"n": n, "name": "Zoë", "nested": {"list": [1, 2]}}

    _json_array(items())
    out = "".join(written) + capsys.readouterr().out
    assert json.loads(out) == [{"n": n, "name": "Zoë", "nested": {"list": [1, 2]}}
                               for n in range(3)]
    assert out == json.dumps(json.loads(out), indent=2, ensure_ascii=False) + "\n"
    assert "".join(written).count('"n"') == 2  # two written before the third was read


def test_status_reads_what_the_workers_recorded_without_a_re_plan(
        clerk: Callable[..., Result], monkeypatch: pytest.MonkeyPatch):
    from collections import Counter

    from bot.plan import planner

    now = "2026-12-01T10:00:00Z"
    clerk("tick", "--now", now)
    planned = Counter(r["state"] for r in json.loads(clerk("plan", "--json", "--now",
                                                           now).output))
    monkeypatch.setattr(planner, "plan", None)  # status must not plan
    status = json.loads(clerk("status", "--json", "--now", now).output)
    assert status["counts"] == dict(sorted(planned.items()))  # the same, from the ledger
    assert status["counts"]["sent"] == 21 and status["counts"]["scheduled"] > 0
    first = status["next"][0]
    assert (first["kind"], first["state"], first["messages"]) == ("request", "scheduled", 16)
    assert first["send_at"].endswith("+00:00")  # the group's zone (London, in winter)


def test_clerk_collects_its_garbage_as_a_planning_process_should(
        clerk: Callable[..., Result]):
    """Every clerk command sets the collector for planning (bot.tune_collector): at the
    default, a big install's first plan spent a fifth of its time in full collections."""
    import gc

    import bot

    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    try:
        assert clerk("check").exit_code == 0
        assert gc.get_threshold() == (bot.COLLECT_AFTER, 10, 10)
    finally:
        gc.set_threshold(*saved)


def test_preview_renders_without_sending(clerk: Callable[..., Result]):
    key = "qa-leads/2027-q1/invitation/tina.jameson@brighton-hove.example/r0"
    result = clerk("preview", key, "--now", "2026-11-26T12:00:00Z")
    assert result.exit_code == 0, result.output
    assert "To: Tina Jameson <tina.jameson@brighton-hove.example>" in result.output
    # as the member reads it: the text, the calendar unfolded, the files attached
    assert "Dear Tina Jameson," in result.output and "METHOD:REQUEST" in result.output
    assert "Attached: invite.ics (application/ics)" in result.output
    assert "Content-Transfer-Encoding" not in result.output and "=E2=80" not in result.output
    raw = clerk("preview", key, "--now", "2026-11-26T12:00:00Z", "--raw").output
    assert 'Content-Type: text/calendar; charset="utf-8"; method="REQUEST"' in raw
    assert json.loads(clerk("log", "--json").output) == []


INIT = ["--name", "Thames Valley Safeguarding Leads", "--admin", "Rosa Kent <rosa.kent@tv.example>",
        "--chair", "Dev Patel <dev.patel@reading.example>", "--organiser",
        "tv-leads@tv.example", "--first-meeting", "2027-03-11T10:00"]


def test_init_starts_a_group_of_its_own(clerk: Callable[..., Result], tmp_path: Path):
    config = tmp_path / "fresh"
    config.mkdir()
    result = clerk("--config", str(config), "init", str(config / "tv-leads"), *INIT)
    assert result.exit_code == 0, result.output
    group = (config / "tv-leads" / "group.toml").read_text()
    assert 'id = "tv-leads"' in group and 'name = "Thames Valley Safeguarding Leads"' in group
    assert "rosa.kent@tv.example" in group and "tv-leads@tv.example" in group
    assert "go_live = 2026-12-01" in group  # the day it was made (the fixture's --now)
    # the first meeting and three more, a quarter apart; nothing of the example's
    assert [line for line in group.splitlines() if line.startswith("start = ")] == [
        "start = 2027-03-11T10:00:00", "start = 2027-06-11T10:00:00",
        "start = 2027-09-11T10:00:00", "start = 2027-12-11T10:00:00"]
    assert "qa-leads" not in group and "Ofsted" not in group and "Kim Osei" not in group
    assert (config / "tv-leads" / "roster.csv").read_text() == (
        "name,email,organisation,role\nDev Patel,dev.patel@reading.example,reading.example,"
        "chair\n")
    check = clerk("--config", str(config), "check")
    assert check.exit_code == 0, check.output
    assert "tv-leads: 1 members" in check.output
    plan = json.loads(clerk("--config", str(config), "plan", "--json").output)
    assert {(r["kind"], r["meeting"]) for r in plan} >= {("invitation", "2027-03-11"),
                                                        ("pack", "2027-03-11")}
    again = clerk("--config", str(config), "init", str(config / "tv-leads"), *INIT)
    assert again.exit_code == 2 and "exists and is not empty" in again.output


@pytest.mark.parametrize("change,message", [
    (("--admin", "Rosa Kent"), "--admin 'Rosa Kent': write it like"),
    (("--organiser", "not-an-address"), "is not an email address"),
    (("--first-meeting", "next Thursday"), "write it like 2027-03-11T14:00"),
    (("--first-meeting", "2026-01-15T10:00"), "is before today"),
    (("--first-meeting", "2027-03-28T01:30"), "does not exist in Europe/London"),
    (("--zone", "Mars/Olympus"), "unknown time zone"),
    (("--id", "Not An Id"), "is not an id"),
])
def test_init_refuses_what_would_not_work_and_writes_nothing(
        clerk: Callable[..., Result], tmp_path: Path, change: tuple[str, str], message: str):
    args = list(INIT)
    if change[0] in args:
        args[args.index(change[0]) + 1] = change[1]
    else:
        args += change
    result = clerk("init", str(tmp_path / "g"), *args)
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "g").exists()


def test_init_without_a_terminal_names_what_it_needs(clerk: Callable[..., Result],
                                                     tmp_path: Path):
    result = clerk("init", str(tmp_path / "g"), "--name", "A group")
    assert result.exit_code == 2
    assert "--admin, --chair, --organiser, --first-meeting" in result.output


def test_simulate_shows_a_year_without_touching_the_real_state(
        clerk: Callable[..., Result], tmp_path: Path):
    out = tmp_path / "sim"
    result = clerk("simulate", "--from", "2026-11-30", "--until", "2027-12-31", "--out",
                   str(out), "--json")
    assert result.exit_code == 0, result.output
    timeline = json.loads(result.output)
    # the admin's weekly digest: her first, then after each meeting (the next one changed)
    digests = [e["at"][:10] for e in timeline if e["kind"] == "admin_digest"]
    assert digests == ["2026-12-07", "2027-01-18", "2027-04-19", "2027-07-19", "2027-10-18"]
    assert sum(len(e["recipients"]) for e in timeline) == 4 * 76 + len(digests)
    assert {e["state"] for e in timeline} == {"sent"}
    assert timeline[0]["kind"] == "invitation" and timeline[0]["at"].startswith("2026-12-01")
    assert len(list((out / "new").iterdir())) == 4 * 76 + len(digests)
    assert json.loads(clerk("log", "--json").output) == []  # the real ledger is untouched


def test_check_reports_a_chaser_after_its_deadline_as_a_warning(
        clerk: Callable[..., Result], group_dir: Path):
    edit(group_dir / "group.toml", 'send = "-14d"', 'send = "-5d"')
    result = clerk("check")
    assert result.exit_code == 0
    assert "warning" in result.output and "rule[2]" in result.output


def test_held_messages_wait_for_approval(clerk: Callable[..., Result], group_dir: Path):
    edit(group_dir / "group.toml", 'kind = "pack"\nsend = "-7d"',
         'kind = "pack"\nsend = "-7d"\napprove = true')
    pack_day = "2027-01-07T10:00:00Z"
    clerk("tick", "--now", pack_day)
    rows = json.loads(clerk("plan", "--json", "--now", pack_day).output)
    packs = [r for r in rows if r["kind"] == "pack" and r["meeting"] == "2027-q1"]
    assert {r["state"] for r in packs} == {"held"} and len(packs) == 21
    tick = json.loads(clerk("tick", "--json", "--now", pack_day).output)
    assert not any("/pack/" in k for k in tick["sent"])
    approved = clerk("approve", "qa-leads/2027-q1/pack/")
    assert approved.exit_code == 0 and approved.output.count("approved ") == 21
    tick = json.loads(clerk("tick", "--json", "--now", pack_day).output)
    assert len([k for k in tick["sent"] if "/pack/" in k]) == 21
    # hold works on any message not yet sent, and says so when nothing matches
    held = clerk("hold", "qa-leads/2027-q2/invitation/")
    assert held.exit_code == 0 and held.output.count("held ") == 21
    nothing = clerk("hold", "qa-leads/2027-q1/pack/")
    assert nothing.exit_code == 2 and "nothing to hold" in nothing.output


def test_every_command_acts_at_the_global_now(clerk: Callable[..., Result], tmp_path: Path):
    """`clerk --now TIME …`: what each command records, chooses and shows is at TIME."""
    at = "2027-03-01T09:15:00+00:00"  # a Monday, long after the fixture's own --now

    def run(*args: str) -> Result:
        result = clerk("--now", at, *args)
        assert result.exit_code == 0, result.output
        return result

    # the default due date: four weeks from TIME
    added = json.loads(run("actions", "add", "-g", "qa-leads", "--owner",
                           "aman.sekhon-gill@bucks.example", "--json", "Share it").output)
    assert added["due"] == "2027-03-29"
    assert json.loads(run("actions", "done", "1", "--json").output)["completed"] == "2027-03-01"
    # a nudge's window counts from TIME's day
    assert "2027-09-01 to 2027-12-01" in run("nudge", "add", "-g", "qa-leads", "--window",
                                             "6-9m", "Come back to it").output
    # the plan and the status are as at TIME: the first meeting is over
    plan = json.loads(run("plan", "--json").output)
    assert plan and all(r["meeting"] != "2027-q1" or r["state"] != "planned" for r in plan)
    status = json.loads(run("status", "--json").output)
    assert status["meetings"][0]["meeting"] == "2027-q2"
    # hold and approve say in the ledger when they happened
    run("tick")
    key = next(r["key"] for r in plan if r["state"] == "scheduled")
    run("hold", key)
    run("approve", key)
    history = json.loads(run("log", key, "--json").output)[0]["history"]
    assert [(h["state"], h["at"][:19]) for h in history[-2:]] == [
        ("held", "2027-03-01T09:15:00"), ("planned", "2027-03-01T09:15:00")]
    # submissions marked by hand: recorded at TIME
    run("submissions", "mark", "--meeting", "2027-q2", "--organisation", "Kent")
    import sqlalchemy as sa

    from bot.engine.schema import submissions
    from bot.engine.store import Store

    store = Store(f"sqlite:///{tmp_path / 'state.sqlite'}")
    with store.engine.connect() as conn:
        (marked,) = conn.execute(sa.select(submissions.c.at)).scalars()
    store.dispose()
    assert marked.isoformat()[:19] == "2027-03-01T09:15:00"


@pytest.mark.slow
def test_init_in_a_terminal_asks_for_what_is_missing(tmp_path: Path):
    import os
    import pty
    import select
    import sys

    from tests.conftest import ROOT as root

    answers = {"name": "North Downs Leads", "admin": "Rosa Kent <rosa.kent@tv.example>",
               "chair": "Dev Patel <dev.patel@reading.example>",
               "mailbox": "nd-leads@tv.example", "meeting": "2027-03-11T10:00"}
    pid, fd = pty.fork()
    if pid == 0:  # the child: clerk in a terminal
        os.execve(sys.executable, [sys.executable, "-m", "bot.cli", "--now", "2026-12-01",
                                   "init", str(tmp_path / "nd")],
                  {**os.environ, "PYTHONPATH": str(root)})
    seen = ""
    try:
        for _ in range(200):
            ready, _, _ = select.select([fd], [], [], 10)
            if not ready:
                break
            try:
                chunk = os.read(fd, 4096).decode(errors="replace")
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
            tail = seen.rsplit("\n", 1)[-1]
            for word, answer in answers.items():
                if word in tail.lower() and tail.rstrip().endswith(":"):
                    os.write(fd, answer.encode() + b"\r")
                    answers.pop(word)
                    break
    finally:
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, seen
    assert answers == {}, seen
    group = (tmp_path / "nd" / "group.toml").read_text()
    assert 'name = "North Downs Leads"' in group and "start = 2027-03-11T10:00:00" in group


def test_status_and_log_queries_on_each_store(make_executor: Callable[[], Any], store: Any):
    from collections import Counter
    from datetime import UTC, timedelta

    from bot.cli import report

    now = datetime(2026, 12, 1, 10, tzinfo=UTC)
    ex = make_executor()
    ex.tick(now)
    planned = Counter(r["state"] for r in report.plan_rows(ex.config, store, now))
    assert report.status(ex.config, store, now)["counts"] == dict(sorted(planned.items()))
    later = now + timedelta(days=400)  # every planned row past its latest time, no tick
    ledger = store.counts()
    expected = {s: n for s, n in ledger.items() if s not in ("planned", "withdrawn")}
    expected["skipped_late"] = expected.get("skipped_late", 0) + ledger["planned"]
    assert report.status(ex.config, store, later)["counts"] == dict(sorted(expected.items()))
    first = report.status(ex.config, store, now)["next"][0]
    assert (first["kind"], first["state"], first["messages"]) == ("request", "scheduled", 16)
    assert report.status(ex.config, store, later)["next"] == []
    assert sum(1 for r in report.log_rows(store, state="sent")) == 21
