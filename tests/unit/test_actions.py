"""The action log: the chasing ladder, one digest per person per day, the chair copied after K,
stopping at once on DONE; and the `clerk actions` commands."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from itertools import pairwise
from pathlib import Path

import pytest
from click.testing import Result

from bot.domain.windows import closed_days
from bot.engine import snapshot
from bot.engine.executor import Executor
from bot.engine.inbox import Inbox
from bot.engine.store import Store
from bot.transports.memory import MemoryTransport
from tests.conftest import CLI_NOW, read_reply, remove_member, second_group

T0 = datetime(2027, 1, 15, 12, tzinfo=UTC)  # the day after the first meeting
KIM = "kim.osei@network.example"
AMAN = "aman.sekhon-gill@bucks.example"
DANIELLE = "danielle.mckee@wokingham.example"
CHAIR = "sophie.barton@hampshire-iow.example"


def add(store: Store, text: str, owners: tuple[str, ...], due: date,
        at: datetime = T0) -> int:
    return store.add_action({"group_id": "qa-leads", "meeting_id": "2027-q1", "topic": "LADO",
                             "text": text, "owners": owners, "due": due}, "test", "test", at)


def chasers(ex: Executor) -> list[tuple[date, str, str | None]]:
    """(day, to, cc) of every action chaser sent."""
    assert isinstance(ex.transport, MemoryTransport)
    out = []
    for m in ex.transport.sent:
        if "/-/actions/" in str(m["X-Clerk-Key"]):
            day = date.fromisoformat(str(m["X-Clerk-Key"]).rsplit("/", 1)[1])
            to = str(m["To"]).split("<")[-1].rstrip(">")
            cc = str(m["Cc"]).split("<")[-1].rstrip(">") if m["Cc"] else None
            out.append((day, to, cc))
    return out


def run_days(ex: Executor, start: datetime, days: int) -> None:
    for n in range(days):
        for hour in (8, 10, 15):
            ex.tick((start + timedelta(days=n)).replace(hour=hour))


def summaries(ex: Executor, kind: str) -> list[tuple[date, str]]:
    """(day, to) of each weekly summary of ``kind`` (overdue, stalled) sent."""
    assert isinstance(ex.transport, MemoryTransport)
    return [(date.fromisoformat(str(m["X-Clerk-Key"]).rsplit("/", 1)[1]),
             str(m["To"]).split("<")[-1].rstrip(">")) for m in ex.transport.sent
            if f"/-/{kind}/" in str(m["X-Clerk-Key"])]


def admin_digests(ex: Executor) -> list[tuple[date, str, str]]:
    """(day, to, text) of each weekly digest the admin was sent."""
    assert isinstance(ex.transport, MemoryTransport)
    return [(parsedate_to_datetime(str(m["Date"])).date(),
             str(m["To"]).split("<")[-1].rstrip(">"), m.get_body(("plain",)).get_content())
            for m in ex.transport.sent if "/-/admin-digest/" in str(m["X-Clerk-Key"])]


@pytest.mark.parametrize("digest_day", ["monday", "off"])
def test_an_action_is_chased_three_times_then_the_admin_follows_it_up(
        make_executor: Callable[[], Executor], store: Store, group_dir: Path,
        digest_day: str):
    if digest_day == "off":
        with (group_dir / "group.toml").open("a") as f:
            f.write('\n[desk]\ndigest_day = "off"\n')
    add(store, "Share the LADO audit tool", (AMAN,), date(2027, 2, 12))
    ex = make_executor()
    run_days(ex, T0, 365)  # a year of it, never done
    got = [(d, to, cc) for d, to, cc in chasers(ex) if to == AMAN]
    assert [d for d, _, _ in got] == [
        date(2027, 1, 22),  # first: a week after it was recorded
        date(2027, 2, 9),  # three days before it is due
        date(2027, 2, 19)]  # a week after it: the last; then chasing stops
    assert [cc for _, _, cc in got] == [None, None, None]  # the chair is never copied
    assert isinstance(ex.transport, MemoryTransport)
    last = [m for m in ex.transport.sent if "/-/actions/" in str(m["X-Clerk-Key"])][-1]
    assert re.fullmatch(r"Last reminder: 1 action for South Downs QA Leads Network "
                        r"\[#\w{10}\]", str(last["Subject"]))  # no blank in front
    assert "Kim Osei, the group's admin, will follow it up" in \
        last.get_body(("plain",)).get_content()
    # the chair: one summary a week of the group's overdue actions, on Mondays
    chair = summaries(ex, "overdue")
    assert chair[0] == (date(2027, 2, 15), CHAIR) and {to for _, to in chair} == {CHAIR}
    gaps = [(b - a).days for (a, _), (b, _) in pairwise(chair)]
    assert set(gaps) <= {7, 14, 21}, gaps  # weekly; none on a bank holiday or at Christmas
    assert all(d.weekday() == 0 for d, _ in chair)
    # the admin: once a week, the actions no longer chased — in her weekly digest, or in a
    # summary of their own when she has no digest
    if digest_day == "off":
        stalled = summaries(ex, "stalled")
        assert admin_digests(ex) == []
    else:
        assert summaries(ex, "stalled") == []
        listed = [(d, to, text) for d, to, text in admin_digests(ex)
                  if re.search(r"^#1 (\(new\) )?LADO: Share the LADO audit tool\r?$", text,
                               re.MULTILINE) and
                  "no longer chased (last on Fri 19 February 2027)" in text]
        # new the first week, listed as it stands after
        assert ["#1 (new) LADO" in text for _, _, text in listed[:3]] == [True, False, False]
        stalled = [(d, to) for d, to, _ in listed]
        assert len(stalled) > 40  # every week from then on: it needs her
        # on Mondays; a bank holiday's on the next working day
        closed = closed_days("GB-ENG", 2027) | closed_days("GB-ENG", 2028)
        assert all(d - timedelta(days=n) in closed for d, _ in stalled
                   for n in range(1, d.weekday() + 1))
        stalled = [(d, to) for d, to in stalled if d.weekday() == 0]
    assert stalled[0] == (date(2027, 2, 22), KIM) and all(d.weekday() == 0 for d, _ in stalled)
    rows = [r for r in store.rows() if r.kind in ("action_chaser", "notice")]
    assert all(r.send_at <= r.sent_at <= r.latest_at for r in rows if r.state == "sent")


def test_one_digest_per_person_per_day_with_all_their_actions(
        make_executor: Callable[[], Executor], store: Store):
    add(store, "Share the LADO audit tool", (AMAN,), date(2027, 2, 12))
    add(store, "Ask the LADO workers", (AMAN, DANIELLE), date(2027, 2, 12))
    add(store, "Share your LADO tools", ("*",), date(2027, 2, 12))
    ex = make_executor()
    run_days(ex, T0, 30)
    days = [(d, to) for d, to, _ in chasers(ex)]
    assert len(days) == len(set(days))  # never two on one day
    assert (date(2027, 1, 22), AMAN) in days and (date(2027, 1, 22), DANIELLE) in days
    assert isinstance(ex.transport, MemoryTransport)
    aman = next(m for m in ex.transport.sent if AMAN in str(m["To"])
                and "/-/actions/" in str(m["X-Clerk-Key"]))
    text = aman.get_body(("plain",)).get_content()
    assert "#1" in text and "#2" in text and "#3" in text and "for all members" in text
    assert "DONE #id" in text


def test_done_stops_the_chasing_at_once(make_executor: Callable[[], Executor],
                                        store: Store, clerk: Callable[..., Result]):
    if not store.url.startswith("sqlite"):
        pytest.skip("the CLI here uses the SQLite store")
    action = add(store, "Share the LADO audit tool", (AMAN,), date(2027, 2, 12))
    ex = make_executor()
    run_days(ex, T0, 10)
    assert len(chasers(ex)) == 1
    assert clerk("actions", "done", str(action)).output.strip() == f"#{action} done"
    run_days(ex, T0 + timedelta(days=10), 60)
    assert len(chasers(ex)) == 1
    (row,) = json.loads(clerk("actions", "list", "--status", "done", "--json").output)
    assert row["status"] == "done" and row["completed"]


def test_actions_commands(clerk: Callable[..., Result], group_dir: Path):
    future = (CLI_NOW + timedelta(days=40)).date().isoformat()
    added = clerk("actions", "add", "--group", "qa-leads", "--owner", AMAN, "--due", future,
                  "--meeting", "2027-q1", "--topic", "LADO", "Share the LADO audit tool")
    assert added.exit_code == 0, added.output
    assert added.output.startswith("added #1")
    clerk("actions", "add", "-g", "qa-leads", "--owner", "all", "Share your tools")
    rows = json.loads(clerk("actions", "list", "--json").output)
    # by due date: #2 took the default, four weeks (no [actions] due is set)
    assert [(r["ref"], r["owners"], r["status"]) for r in rows] == [
        ("#2", ["*"], "open"), ("#1", [AMAN], "open")]
    assert rows[0]["due"] == (CLI_NOW + timedelta(days=28)).date().isoformat()
    later = (CLI_NOW + timedelta(days=60)).date().isoformat()
    assert clerk("actions", "new-date", "1", later).output.strip() == f"#1 now due {later}"
    assert clerk("actions", "update", "1", "waiting for sign-off").exit_code == 0
    assert clerk("actions", "drop", "2").output.strip() == "#2 dropped"
    text = clerk("actions", "list", "--status", "all").output
    assert "dropped" in text and "Share the LADO audit tool" in text


@pytest.mark.parametrize("args,message", [
    (["--owner", "nobody@nowhere.example", "x"], "not on the roster of qa-leads"),
    (["--owner", AMAN, "--due", "2020-01-01", "x"], "is in the past"),
    (["--owner", AMAN, "--due", "soon", "x"], "is not a date"),
    (["--owner", AMAN, "--meeting", "2031-q9", "x"], "no meeting '2031-q9'"),
])
def test_bad_actions_are_refused_and_nothing_is_recorded(
        clerk: Callable[..., Result], args: list[str], message: str):
    result = clerk("actions", "add", "--group", "qa-leads", *args)
    assert result.exit_code == 2 and message in result.output
    assert json.loads(clerk("actions", "list", "--status", "all", "--json").output) == []


def test_an_unknown_action_is_a_clear_error(clerk: Callable[..., Result]):
    result = clerk("actions", "done", "99")
    assert result.exit_code == 2 and "no action #99" in result.output


def test_csv_export_and_import_round_trip(clerk: Callable[..., Result], tmp_path: Path):
    import csv
    import io

    future = (CLI_NOW + timedelta(days=40)).date().isoformat()
    clerk("actions", "add", "-g", "qa-leads", "--owner", AMAN, "--due", future,
          "--topic", "LADO", "Share the LADO audit tool")
    rows = list(csv.reader(io.StringIO(clerk("actions", "export").output)))
    assert rows[0] == ["id", "group", "meeting", "topic", "action", "owners", "due", "status",
                       "completed"]
    assert rows[1][0] == "1" and rows[1][5] == AMAN
    rows[1][7], rows[1][8] = "done", future  # the admin edits the sheet in Excel
    rows.append(["", "qa-leads", "2027-q1", "Website", "Circulate the link", "all", future,
                 "open", ""])
    sheet = tmp_path / "actions.csv"
    with sheet.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    result = clerk("actions", "import", str(sheet))
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "added 1, updated 1 action(s)"
    found = json.loads(clerk("actions", "list", "--status", "all", "--json").output)
    assert {(r["text"], r["status"], r["owners"][0]) for r in found} == {
        ("Share the LADO audit tool", "done", AMAN), ("Circulate the link", "open", "*")}


def test_csv_with_bad_rows_imports_nothing(clerk: Callable[..., Result], tmp_path: Path):
    sheet = tmp_path / "actions.csv"
    sheet.write_text(
        "id,group,meeting,topic,action,owners,due,status,completed\n"
        ",qa-leads,,Ok,A good row,all,2031-01-01,open,\n"
        ",nope,,X,Unknown group,all,2031-01-01,open,\n"
        ",qa-leads,,X,Unknown owner,someone@else.example,2031-01-01,open,\n"
        ",qa-leads,,X,Bad date,all,next week,open,\n"
        ",qa-leads,,X,Too few\n"
        "99,qa-leads,,X,No such id,all,2031-01-01,open,\n", encoding="utf-8")
    result = clerk("actions", "import", str(sheet))
    assert result.exit_code == 2
    assert "5 bad row(s)" in result.output and "nothing was imported" in result.output
    for line, words in ((3, "unknown group 'nope'"), (4, "not on the roster"),
                        (5, "due and completed must be dates"), (6, "5 values, expected 9"),
                        (7, "no action #99")):
        assert f"actions.csv:{line}: {words}" in result.output
    assert json.loads(clerk("actions", "list", "--status", "all", "--json").output) == []


def test_one_digest_across_groups(make_executor: Callable[[], Executor], store: Store,
                                  clerk: Callable[..., Result], config_dir: Path):
    second_group(config_dir)  # the same roster
    add(store, "Share the LADO audit tool", (AMAN,), date(2027, 2, 12))
    store.add_action({"group_id": "second", "meeting_id": "", "topic": "Board",
                      "text": "Send the board paper", "owners": (AMAN,),
                      "due": date(2027, 2, 12)}, "test", "test", T0)
    ex = make_executor()
    run_days(ex, T0, 10)
    got = [(d, to) for d, to, _ in chasers(ex) if to == AMAN]
    assert got == [(date(2027, 1, 22), AMAN)]  # one message, not one per group
    assert isinstance(ex.transport, MemoryTransport)
    digest = next(m for m in ex.transport.sent if "/-/actions/" in str(m["X-Clerk-Key"]))
    text = digest.get_body(("plain",)).get_content()
    assert "Share the LADO audit tool" in text and "Send the board paper" in text
    assert "[second]" in text or "[South Downs QA Leads Network]" in text


def test_every_actions_command_speaks_json(clerk: Callable[..., Result]):
    future = (CLI_NOW + timedelta(days=40)).date().isoformat()
    added = json.loads(clerk("actions", "add", "-g", "qa-leads", "--owner", AMAN, "--due",
                             future, "--json", "Share the tool").output)
    assert added["ref"] == "#1" and added["status"] == "open" and added["owners"] == [AMAN]
    later = (CLI_NOW + timedelta(days=50)).date().isoformat()
    assert json.loads(clerk("actions", "new-date", "1", later, "--json").output)["due"] == later
    assert json.loads(clerk("actions", "update", "1", "soon", "--json").output)["id"] == 1
    assert json.loads(clerk("actions", "done", "1", "--json").output)["status"] == "done"
    clerk("actions", "add", "-g", "qa-leads", "--owner", "all", "Other")
    assert json.loads(clerk("actions", "drop", "2", "--json").output)["status"] == "dropped"


def test_a_csv_never_reopens_or_moves_an_action(clerk: Callable[..., Result], tmp_path: Path,
                                                config_dir: Path):
    future = (CLI_NOW + timedelta(days=40)).date().isoformat()
    second_group(config_dir)
    clerk("actions", "add", "-g", "qa-leads", "--owner", AMAN, "--due", future, "Share it")
    sheet = tmp_path / "a.csv"
    sheet.write_text(clerk("actions", "export").output, encoding="utf-8")  # #1 open
    clerk("actions", "done", "1")  # …then done by reply, before the sheet comes back
    result = clerk("actions", "import", str(sheet))
    assert result.exit_code == 2 and "#1 is done in clerk since" in result.output
    moved = sheet.read_text().replace(",qa-leads,", ",second,")
    sheet.write_text(moved.replace(",open,", ",done,"), encoding="utf-8")
    result = clerk("actions", "import", str(sheet))
    assert result.exit_code == 2 and "#1 is an action of qa-leads, not second" in result.output


def test_the_chase_schedule_can_be_seen_ahead(clerk: Callable[..., Result], store: Store):
    if not store.url.startswith("sqlite"):
        pytest.skip("the CLI here uses the SQLite store")
    add(store, "Share the LADO audit tool", (AMAN,), date(2027, 2, 12))
    at = ("--now", T0.isoformat())
    rows = json.loads(clerk(*at, "plan", "--until", "2027-03-02", "--json").output)
    forecast = [(r["send_at"][:10], r["rule"], r["recipients"][0]) for r in rows
                if r["state"] == "forecast"]
    # the admin's weekly digest: her first, then each week something needs her (the action
    # overdue, then no longer chased); it lists what a summary of its own would
    assert forecast == [("2027-01-18", "admin-digest", KIM), ("2027-01-22", "actions", AMAN),
                        ("2027-02-09", "actions", AMAN), ("2027-02-15", "admin-digest", KIM),
                        ("2027-02-15", "overdue", CHAIR), ("2027-02-19", "actions", AMAN),
                        ("2027-02-22", "admin-digest", KIM), ("2027-02-22", "overdue", CHAIR),
                        ("2027-03-01", "admin-digest", KIM), ("2027-03-01", "overdue", CHAIR)]
    digests = [r["reason"] for r in rows if r["rule"] == "admin-digest"]
    assert digests[1:] == ["the admin's weekly digest: 1 overdue action"] + 2 * [
        "the admin's weekly digest: 1 action no longer chased"]
    listed = clerk(*at, "actions", "list").output
    assert f"chased next: {AMAN} on Fri 22 Jan 2027" in listed
    (row,) = json.loads(clerk(*at, "actions", "list", "--json").output)
    assert row["next_chasers"][0] == f"{AMAN} on Fri 22 Jan 2027"
    assert row["no_longer_chased"] is False


def test_no_chaser_on_a_meeting_day_or_at_christmas(make_executor: Callable[[], Executor],
                                                  store: Store):
    # recorded on Thursday 7 January: a week later is the meeting day, 14 January
    add(store, "Bring the audit", (AMAN,), date(2027, 4, 30), datetime(2027, 1, 7, 12,
                                                                       tzinfo=UTC))
    # recorded on 17 December: a week later is Christmas Eve, in the quiet period
    add(store, "Send the numbers", (DANIELLE,), date(2027, 3, 1),
        datetime(2026, 12, 17, 12, tzinfo=UTC))
    ex = make_executor()
    run_days(ex, datetime(2026, 12, 17, tzinfo=UTC), 40)
    got = {(d, to) for d, to, _ in chasers(ex)}
    assert (date(2027, 1, 15), AMAN) in got  # the day after the meeting
    assert (date(2027, 1, 4), DANIELLE) in got  # the first working day after the quiet period
    assert not [d for d, _ in got if date(2026, 12, 24) <= d <= date(2027, 1, 1)
                or d == date(2027, 1, 14)]


def test_a_busy_year_never_floods_anyone(make_executor: Callable[[], Executor],
                                        store: Store):
    """Eight actions, four owners (one with actions in two groups' worth of dates), never
    done: nobody gets more than one chaser a week unless something falls due that week, no
    action is chased more than three times, and the chair gets one summary a week."""
    owners = (AMAN, DANIELLE, "gavin.swales@kent.example", "tina.jameson@brighton-hove.example")
    for n in range(8):
        add(store, f"Action {n}", (owners[n % 4],), date(2027, 2, 1) + timedelta(days=9 * n))
    add(store, "Everyone: share a tool", ("*",), date(2027, 3, 1))
    ex = make_executor()
    run_days(ex, T0, 365)
    sent = chasers(ex)
    by_owner: dict[str, list[date]] = {}
    for d, to, cc in sent:
        assert cc is None
        by_owner.setdefault(to, []).append(d)
    dues = {date(2027, 2, 1) + timedelta(days=9 * n) for n in range(8)} | {date(2027, 3, 1)}
    for to, days in by_owner.items():
        for a, b in pairwise(sorted(days)):
            due_week = any(b < due <= b + timedelta(days=3) for due in dues)
            assert (b - a).days >= 7 or due_week, (to, a, b)
    assert isinstance(ex.transport, MemoryTransport)
    counts: dict[str, int] = {}
    for m in ex.transport.sent:
        if "/-/actions/" in str(m["X-Clerk-Key"]):
            for ref in re.findall(r"^(#\d+) ", m.get_body(("plain",)).get_content(), re.M):
                counts[ref] = counts.get(ref, 0) + 1
    everyone = counts.pop("#9")  # asked once of each member
    assert everyone == 21 and max(counts.values()) <= 3 * 1  # one owner each, three times
    weeks = [d.isocalendar()[:2] for d, _ in summaries(ex, "overdue")]
    assert len(weeks) == len(set(weeks))  # at most one summary a week


def sent_on(m: EmailMessage) -> date:
    return parsedate_to_datetime(str(m["Date"])).date()


def weekly(ex: Executor, kind: str) -> list[EmailMessage]:
    """The admin's weekly messages of ``kind``: her digests, or the summaries of actions no
    longer chased."""
    assert isinstance(ex.transport, MemoryTransport)
    return [m for m in ex.transport.sent if f"/-/{kind}/" in str(m["X-Clerk-Key"])]


@pytest.mark.parametrize("kind", ["admin-digest", "stalled"])
def test_an_owner_who_left_the_roster_goes_to_the_admin_who_gives_it_to_someone_else(
        make_executor: Callable[[], Executor], store: Store, group_dir: Path, kind: str):
    if kind == "stalled":  # no digest: her summary of the actions no longer chased
        with (group_dir / "group.toml").open("a") as f:
            f.write('\n[desk]\ndigest_day = "off"\n')
    action = add(store, "Share the LADO audit tool", (AMAN,), date(2027, 2, 12))
    ex = make_executor()
    run_days(ex, T0, 10)
    assert [to for _, to, _ in chasers(ex)] == [AMAN]  # 22 January
    remove_member(group_dir, AMAN)  # Aman leaves the network, on Monday 25 January
    ex = make_executor()
    run_days(ex, T0 + timedelta(days=10), 1)
    assert isinstance(ex.transport, MemoryTransport)
    # she is told in that day's summary, or digest (her first was a week before)
    summary = weekly(ex, kind)[-1]
    assert (sent_on(summary), str(summary["To"])) == (date(2027, 1, 25), f"Kim Osei <{KIM}>")
    said = summary.get_body(("plain",)).get_content()
    assert re.search(rf"^#{action} (\(new\) )?LADO: Share the LADO audit tool", said, re.M)
    assert f"{AMAN} is no longer on the roster" in said
    assert f"OWNER #{action} <name or email>" in said

    # she answers the summary: Danielle takes it on, and is chased afresh
    msg = EmailMessage()
    msg["From"], msg["To"] = KIM, "qa-leads@network.example"
    msg["Subject"], msg["Message-ID"] = f"Re: {summary['Subject']}", "<own1@network.example>"
    msg["In-Reply-To"] = summary["Message-ID"]
    msg.set_content(f"OWNER #{action} Danielle\n\nKim")
    at = datetime(2027, 1, 25, 16, tzinfo=UTC)
    assert Inbox(ex.config, store).apply(read_reply(msg), at).handled
    (after,) = [a for a in snapshot.actions(store) if a.id == action]
    assert after.owners == (DANIELLE,) and after.assigned == at
    assert store.action_history(action)[-1].who == KIM
    run_days(ex, at + timedelta(hours=1), 365)
    confirmed = [m for m in ex.transport.sent if KIM in str(m["To"])
                 and "/-/reply/" in str(m["X-Clerk-Key"])]
    assert f"#{action} is now owned by Danielle McKee" in \
        confirmed[0].get_body(("plain",)).get_content()
    danielle = [d for d, to, _ in chasers(ex) if to == DANIELLE]
    # a week after she took it on, in its due week, a week overdue: then the admin again
    assert danielle == [date(2027, 2, 1), date(2027, 2, 9), date(2027, 2, 19)]
    assert [to for _, to, _ in chasers(ex)].count(AMAN) == 1
    later = [m.get_body(("plain",)).get_content() for m in weekly(ex, kind)
             if sent_on(m) > sent_on(summary)]
    assert later and all("no longer on the roster" not in t for t in later)
    assert "chased as often as the group allows" in later[-1]


def test_actions_owner_and_list_say_who_left(clerk: Callable[..., Result], group_dir: Path):
    future = (CLI_NOW + timedelta(days=40)).date().isoformat()
    clerk("actions", "add", "-g", "qa-leads", "--owner", AMAN, "--due", future, "Share it")
    remove_member(group_dir, AMAN)
    listed = clerk("actions", "list").output
    assert f"not on the roster any more, not chased: {AMAN}" in listed
    assert "clerk actions owner 1 NAME" in listed
    (row,) = json.loads(clerk("actions", "list", "--json").output)
    assert row["owners_gone"] == [AMAN] and row["next_chasers"] == []
    refused = clerk("actions", "owner", "1", "Nobody Known")
    assert refused.exit_code == 2 and "'Nobody Known' is not on the roster" in refused.output
    given = clerk("actions", "owner", "1", "Danielle McKee", "--json")
    assert given.exit_code == 0, given.output
    assert json.loads(given.output)["owners"] == [DANIELLE]
    (row,) = json.loads(clerk("actions", "list", "--json").output)
    assert row["owners_gone"] == [] and row["next_chasers"][0].startswith(DANIELLE)
    assert clerk("actions", "owner", "1", DANIELLE).output.strip() == \
        "#1 is already owned by Danielle McKee"
