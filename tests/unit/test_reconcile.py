"""The reconcile loop: planning, recording and sending, with time passed in."""

from __future__ import annotations

import email
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.engine.executor import Executor
from bot.engine.store import Store
from bot.transports.memory import MemoryTransport
from tests.conftest import edit, remove_member, second_group

GO_LIVE = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
MEMBERS, ORGS = 21, 16  # the example roster
# invite, request, chaser, pack, minutes due; and the admin's preview of the pack
PER_MEETING = MEMBERS + ORGS + ORGS + MEMBERS + 1 + 1


def sent_messages(ex: Executor) -> list[email.message.EmailMessage]:
    assert isinstance(ex.transport, MemoryTransport)
    return ex.transport.sent


def keys_sent(ex: Executor) -> list[str]:
    return [str(m["X-Clerk-Key"]) for m in sent_messages(ex)]


def test_a_second_tick_at_the_same_now_sends_nothing(make_executor: Callable[[], Executor]):
    ex = make_executor()
    first = ex.tick(GO_LIVE)
    assert len(first.sent) == MEMBERS
    assert all("/2027-q1/invitation/" in k for k in first.sent)
    again = make_executor().tick(GO_LIVE)  # a new process: nothing cached
    assert again.sent == [] and again.recorded == 0
    assert len(sent_messages(ex)) == MEMBERS


def test_nothing_is_sent_before_go_live(make_executor: Callable[[], Executor]):
    ex = make_executor()
    result = ex.tick(GO_LIVE - timedelta(days=1))
    assert result.sent == []
    assert result.recorded == 4 * PER_MEETING


@pytest.mark.slow
def test_a_simulated_year_sends_every_planned_message_once(
        make_executor: Callable[[], Executor], group_dir: Path, store: Store):
    ex = make_executor()
    roster = {line.split(",")[1] for line in
              (group_dir / "roster.csv").read_text().splitlines()[1:]}
    allowed = roster | {"kim.osei@network.example"}
    now = GO_LIVE - timedelta(hours=1)
    end = datetime(2027, 12, 31, tzinfo=UTC)
    while now < end:
        for hour in (8, 10, 16):  # three ticks a day, as a worker that sleeps at night
            ex.tick(now.replace(hour=hour))
        now += timedelta(days=1)
    keys = keys_sent(ex)
    # the admin's weekly digest: the first, then one after each meeting (the next meeting
    # it shows changed); nothing else changed and nothing needed her
    digests = [k.strip().split("/")[4] for k in keys if "/admin-digest/" in k]
    assert digests == ["2026-W50", "2027-W03", "2027-W16", "2027-W29", "2027-W42"]
    assert len(keys) == len(set(keys)) == 4 * PER_MEETING + len(digests)
    for message in sent_messages(ex):
        assert str(message["To"]).split("<")[-1].rstrip(">") in allowed
    rows = store.rows()
    assert Counter(r.state for r in rows) == {"sent": 4 * PER_MEETING + len(digests)}
    for r in rows:
        assert r.send_at <= r.sent_at <= r.latest_at, r.key
    kinds = Counter(r.kind for r in rows)
    assert kinds == {"invitation": 4 * MEMBERS, "request": 4 * ORGS, "chaser": 4 * ORGS,
                     "pack": 4 * MEMBERS, "minutes_due": 4,
                     "pack_preview": 4, "admin_digest": len(digests)}
    assert {r.sent_at.weekday() for r in rows if r.kind == "admin_digest"} == {0}  # Mondays


def test_downtime_records_late_messages_as_skipped_not_sent(
        make_executor: Callable[[], Executor], store: Store):
    ex = make_executor()
    ex.tick(GO_LIVE)  # q1 invitations go
    after_q1 = datetime(2027, 1, 20, 12, tzinfo=UTC)  # the worker was down five weeks
    result = make_executor().tick(after_q1)
    late = {k.split("/")[2] for k in result.skipped_late}
    assert late == {"rfi", "rfi-chaser", "pack"}
    assert all("/2027-q1/" in k for k in result.skipped_late)
    assert len(result.skipped_late) == ORGS + ORGS + MEMBERS
    # q2's invitations were due on 15 January and may still go: their window is open
    assert {k.split("/")[1] for k in result.sent} == {"2027-q2"}
    assert {r.state for r in store.rows() if "/2027-q1/pack/" in r.key} == {"skipped_late"}
    assert not any("/2027-q1/pack/" in k for k in keys_sent(ex))


def test_go_live_later_than_a_meetings_messages_drops_them(
        make_executor: Callable[[], Executor], group_dir: Path, store: Store):
    edit(group_dir / "group.toml", "go_live = 2026-12-01", "go_live = 2027-02-01")
    ex = make_executor()
    ex.tick(datetime(2027, 2, 1, 12, tzinfo=UTC))
    assert not any("/2027-q1/" in r.key for r in store.rows())
    assert all(r.send_at >= datetime(2027, 2, 1, tzinfo=UTC) for r in store.rows())


def test_moving_a_sent_meeting_sends_one_update_to_each_member(
        make_executor: Callable[[], Executor], group_dir: Path):
    ex = make_executor()
    ex.tick(GO_LIVE)
    edit(group_dir / "group.toml", 'id = "2027-q1"\nstart = 2027-01-14T14:00:00',
         'id = "2027-q1"\nstart = 2027-01-14T14:00:00\nduration = "3h"')
    assert make_executor().tick(GO_LIVE + timedelta(hours=1)).sent == []  # settling
    update = make_executor().tick(GO_LIVE + timedelta(hours=1, minutes=10))
    assert len(update.sent) == MEMBERS
    assert all(k.endswith("/r1") for k in update.sent)
    ics = [p for p in sent_messages(ex)[-1].walk() if p.get_content_type() == "text/calendar"]
    body = ics[0].get_content()
    assert "SEQUENCE:1" in body and "DTEND;TZID=Europe/London:20270114T170000" in body
    assert "UID:qa-leads.2027-q1@network.example" in body
    # the same again sends nothing more
    assert make_executor().tick(GO_LIVE + timedelta(hours=2)).sent == []


def test_edits_before_sending_change_the_plan_not_the_sent(
        make_executor: Callable[[], Executor], group_dir: Path, store: Store):
    ex = make_executor()
    ex.tick(GO_LIVE)
    before = {r.key: r.send_at for r in store.rows()}
    # move q2 (nothing sent yet) and change the pack rule's offset
    edit(group_dir / "group.toml", "start = 2027-04-15T14:00:00", "start = 2027-04-22T14:00:00")
    edit(group_dir / "group.toml", 'send = "-7d"', 'send = "-6d"')
    result = make_executor().tick(GO_LIVE + timedelta(hours=1))
    assert result.sent == [] and result.recorded == 0
    rows = {r.key: r for r in store.rows()}
    q2_invite = next(k for k in rows if "/2027-q2/invitation/" in k)
    assert q2_invite.endswith("/r0")  # never sent, so no new revision: same key
    assert rows[q2_invite].send_at == before[q2_invite] + timedelta(days=7)
    q1_pack = next(k for k in rows if "/2027-q1/pack/" in k)
    assert rows[q1_pack].send_at == before[q1_pack] + timedelta(days=1)
    assert Counter(r.state for r in rows.values())["sent"] == MEMBERS


def test_a_row_s_history_begins_with_the_row_as_first_planned(
        make_executor: Callable[[], Executor], group_dir: Path, store: Store):
    """Recording a plan writes one row a message, not a row and its first event: the row's
    history begins with the row itself — its first state and the reason it was planned for,
    kept though the plan changes the reason later — then each change of state."""
    import sqlalchemy as sa

    from bot.engine.store import events, ledger

    ex = make_executor()
    ex.tick(GO_LIVE - timedelta(days=1))
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(events)).scalar() == 0
    pack = next(r for r in store.rows() if "/2027-q1/pack/" in r.key)
    assert "-7d" in pack.reason
    [first] = store.history(pack.key)
    assert (first.at, first.state, first.detail) == (pack.created_at, "planned", pack.reason)
    edit(group_dir / "group.toml", 'send = "-7d"', 'send = "-6d"')
    make_executor().tick(GO_LIVE)
    changed = store.row(pack.key)
    assert "-6d" in changed.reason and changed.send_at == pack.send_at + timedelta(days=1)
    assert [(h.state, h.detail) for h in store.history(pack.key)] == [("planned", pack.reason)]
    make_executor().tick(changed.send_at)
    assert [(h.state, h.at) for h in store.history(pack.key)] == [
        ("planned", pack.created_at), ("sending", changed.send_at), ("sent", changed.send_at)]
    # a row recorded before its first state was kept (migration 0017): its first event
    # is where its history begins
    with store.atomic() as conn:
        conn.execute(ledger.update().where(ledger.c.key == pack.key).values(first_state=None))
        conn.execute(events.insert().values(key=pack.key, at=pack.created_at, state="planned",
                                            detail="as recorded then"))
    assert [(h.state, h.detail) for h in store.history(pack.key)][-1] == (
        "planned", "as recorded then")
    assert [h.state for h in store.history(pack.key)] == ["sending", "sent", "planned"]


def test_a_member_added_gets_the_invites_alone(
        make_executor: Callable[[], Executor], group_dir: Path, store: Store):
    ex = make_executor()
    ex.tick(GO_LIVE)
    with (group_dir / "roster.csv").open("a") as f:
        f.write("Nia Newton,nia.newton@kent.example,Kent,member\n")
    # a newcomer waits for the settle window, like any edit (a typo fixed in it costs nothing)
    assert make_executor().tick(GO_LIVE + timedelta(hours=1)).sent == []
    result = make_executor().tick(GO_LIVE + timedelta(hours=1, minutes=10))
    assert result.sent == ["qa-leads/2027-q1/invitation/nia.newton@kent.example/r0"]
    assert len(sent_messages(ex)) == MEMBERS + 1
    future = [r for r in store.rows() if r.recipient == "nia.newton@kent.example"]
    assert {r.meeting_id for r in future if r.kind == "invitation"} == {
        "2027-q1", "2027-q2", "2027-q3", "2027-q4"}


def test_a_member_removed_gets_nothing_more_but_their_cancellation(
        make_executor: Callable[[], Executor], group_dir: Path, store: Store):
    ex = make_executor()
    ex.tick(GO_LIVE)
    gone = "linde.weber@surrey.example"
    remove_member(group_dir, gone)
    make_executor().tick(GO_LIVE + timedelta(hours=1))
    states = Counter(r.state for r in store.rows() if r.recipient == gone)
    # the q1 invite went and its CANCEL is planned; 3 invites, 4 packs, 4 requests and
    # 4 chasers are withdrawn
    assert states == {"sent": 1, "planned": 1, "withdrawn": 3 + 4 + 4 + 4}
    # Surrey's other member becomes its lead for requests
    assert "qa-leads/2027-q2/rfi/patricia.denham@surrey.example" in {
        r.key for r in store.rows(states=["planned"])}
    ex2 = make_executor()
    ex2.tick(GO_LIVE + timedelta(hours=2))
    ex2.tick(datetime(2027, 12, 31, tzinfo=UTC))
    assert sum(gone in str(m["To"]) for m in sent_messages(ex2)) == 2  # invite, cancel


def test_chasers_go_only_to_organisations_that_have_not_replied(
        make_executor: Callable[[], Executor], store: Store):
    ex = make_executor()
    ex.tick(datetime(2026, 12, 17, 10, tzinfo=UTC))  # requests out
    store.mark_submitted("qa-leads", "2027-q1", "rfi", "Kent", "submitted",
                         datetime(2026, 12, 20, tzinfo=UTC))
    store.mark_submitted("qa-leads", "2027-q1", "rfi", "Slough", "nil",
                         datetime(2026, 12, 21, tzinfo=UTC))
    result = make_executor().tick(datetime(2026, 12, 31, 10, tzinfo=UTC))
    chased = [k for k in result.sent if "/rfi-chaser/" in k]
    assert len(chased) == ORGS - 2
    assert not any("kent" in k or "slough" in k for k in chased)


def test_a_transport_error_retries_then_fails_only_that_row(
        make_executor: Callable[[], Executor], store: Store):
    from bot.domain.errors import TransportError

    ex = make_executor()
    assert isinstance(ex.transport, MemoryTransport)
    ex.transport.fail["tina.jameson@brighton-hove.example"] = TransportError(
        "451 try later", retryable=True)
    ex.transport.fail["gavin.swales@kent.example"] = TransportError(
        "550 no such user", retryable=False)
    result = ex.tick(GO_LIVE)
    assert len(result.sent) == MEMBERS - 2
    assert [k.split("/")[3] for k in result.retry] == ["tina.jameson@brighton-hove.example"]
    assert [k.split("/")[3] for k in result.failed] == ["gavin.swales@kent.example"]
    row = store.row(result.retry[0])
    assert row.state == "retry" and row.next_attempt_at > GO_LIVE
    # not before its time; the admin hears of the failure, in one digest
    (notice,) = ex.tick(GO_LIVE + timedelta(seconds=10)).sent
    assert notice.startswith("qa-leads/-/undelivered/kim.osei@network.example/")
    digest = ex.transport.sent[-1]
    assert "gavin.swales@kent.example" in digest.get_body(("plain",)).get_content()
    assert "550 no such user" in digest.get_body(("plain",)).get_content()
    assert store.row(result.failed[0]).notified_at is not None
    del ex.transport.fail["tina.jameson@brighton-hove.example"]
    later = ex.tick(GO_LIVE + timedelta(minutes=5))
    assert later.sent == result.retry
    assert store.row(result.failed[0]).state == "failed"


def test_dry_run_changes_nothing(make_executor: Callable[[], Executor], store: Store):
    ex = make_executor()
    result = ex.tick(GO_LIVE, dry_run=True)
    assert len(result.sent) == MEMBERS and result.recorded == 4 * PER_MEETING
    assert store.rows() == [] and sent_messages(ex) == []


def test_invitation_is_an_imip_request(make_executor: Callable[[], Executor]):
    ex = make_executor()
    ex.tick(GO_LIVE)
    msg = sent_messages(ex)[0]
    assert msg.get_content_type() == "multipart/mixed"
    alternative = msg.get_payload()[0]
    assert [p.get_content_type() for p in alternative.get_payload()] == [
        "text/plain", "text/html", "text/calendar"]
    calendar = alternative.get_payload()[2]
    assert calendar.get_param("method") == "REQUEST"
    assert "METHOD:REQUEST" in calendar.get_content()
    attachment = msg.get_payload()[1]
    assert attachment.get_content_type() == "application/ics"
    assert attachment.get_filename() == "invite.ics"
    to = str(msg["To"]).split("<")[-1].rstrip(">")
    assert f"mailto:{to}" in calendar.get_content().replace("\r\n ", "")
    assert msg["Message-ID"].startswith("<clerk.")


def test_ledger_keys_are_ordered_by_code_point_on_postgresql_too(store: Store):
    """A unit's rows are read as the range of keys under its group's: on PostgreSQL the
    key's collation is "C", whatever the database's — a store made before 0018 with its
    default collation (ICU's, say) is brought to it."""
    import sqlalchemy as sa

    from bot.engine.migrations import MIGRATIONS, pending

    def collation() -> str | None:
        with store.engine.connect() as conn:
            return conn.execute(sa.text(
                "SELECT collation_name FROM information_schema.columns WHERE table_schema "
                "= current_schema() AND table_name = 'ledger' AND column_name = 'key'"
            )).scalar()

    if store.engine.dialect.name != "postgresql":
        assert [name for name, _ in MIGRATIONS][-1] == "0018_key_order"
        return  # SQLite compares text by code point (BINARY)
    assert collation() == "C"  # a new store's
    with store.atomic() as conn:  # as a store made before 0018 on an ICU database
        conn.execute(sa.text('ALTER TABLE ledger ALTER COLUMN key TYPE VARCHAR(500) '
                             'COLLATE "en-US-x-icu"'))
        conn.execute(sa.text("DELETE FROM migrations WHERE name = '0018_key_order'"))
    assert collation() == "en-US-x-icu"
    with store.engine.connect() as conn:
        assert pending(conn) == ["0018_key_order"]
    assert store.migrate() == ["0018_key_order"]
    assert collation() == "C"
    with store.engine.connect() as conn:  # the unique index is kept
        assert "ledger" in conn.execute(sa.text(
            "SELECT tablename FROM pg_indexes WHERE indexdef LIKE 'CREATE UNIQUE INDEX%%' "
            "AND indexdef LIKE '%%(key)%%'")).scalars().all()


def test_migrations_are_named_recorded_and_bring_an_old_store_up(tmp_path: Path):
    import sqlalchemy as sa

    from bot.engine.migrations import MIGRATIONS

    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    old = Store(url)
    with old.atomic() as conn:  # a store made before 0002: no failure columns
        conn.execute(sa.text("CREATE TABLE migrations (name VARCHAR(200) PRIMARY KEY, "
                             "applied_at DATETIME NOT NULL)"))
        conn.execute(sa.text("INSERT INTO migrations VALUES ('0001_initial', "
                             "'2026-11-01 00:00:00')"))
        conn.execute(sa.text("CREATE TABLE ledger (id INTEGER PRIMARY KEY, "
                             "key VARCHAR(500) UNIQUE NOT NULL, message_id VARCHAR(300))"))
    assert old.migrate() == ["0002_delivery_failures", "0003_listening", "0004_actions",
                             "0005_nudges", "0006_claims", "0007_calendar_items",
                             "0008_trust", "0009_roster", "0010_quarantine",
                             "0011_replies", "0012_desk", "0013_once", "0014_leases",
                             "0015_assigned", "0016_fact_changes", "0017_first_state",
                             "0018_key_order"]
    with old.engine.connect() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("ledger")}
        names = list(conn.execute(sa.text("SELECT name FROM migrations ORDER BY name"))
                     .scalars())
    assert {"first_failed_at", "notified_at", "first_state", "first_reason"} <= columns
    assert names == [name for name, _ in MIGRATIONS]
    assert old.migrate() == []
    old.dispose()


def test_a_tick_sends_everything_due_however_many(make_executor: Callable[[], Executor]):
    ex = make_executor()
    ex.batch = 5  # the due rows come a few at a time
    assert len(ex.tick(GO_LIVE).sent) == MEMBERS


def test_an_edit_to_one_group_re_plans_that_group_alone(
        config_dir: Path, store: Store, monkeypatch: pytest.MonkeyPatch, counted: list[str]):
    """Each group's part of the plan is kept while its files and the facts are as they
    were: the worker's tick after one group's edit plans that group alone, and the plan is
    the one a plan from scratch makes; a fact of one group plans that group again, a fact
    every group reads plans them all."""
    from bot import config as config_mod
    from bot.engine import snapshot
    from bot.engine.worker import Worker
    from bot.plan import planner

    second_group(config_dir, "second")
    second_group(config_dir, "third")
    ex = Executor(config_mod.load(config_dir), store, MemoryTransport())
    worker = Worker(ex, config_dir)
    now = datetime(2026, 11, 1, 12, tzinfo=UTC)  # before go-live: nothing is due
    worker.tick(now)
    planned = counted
    planned.clear()
    read: list[str] = []
    real_read = config_mod.load_group
    monkeypatch.setattr(config_mod, "load_group", lambda folder, problems: read.append(
        folder.name) or real_read(folder, problems))
    noted: list[str] = []
    real_note = store.note_roster
    monkeypatch.setattr(store, "note_roster", lambda groups, at: noted.extend(groups) or
                        real_note(groups, at))
    edit(config_dir / "second" / "group.toml", 'location = "Online (Microsoft Teams)"',
         'location = "Room 4, County Hall"')
    worker.tick(now)
    assert planned == ["second"] and noted == ["second"]  # its roster alone looked at
    assert read == ["second"]  # the config loaded again: that group's files alone read
    fresh = planner.plan(ex.config, snapshot.state(store), now)
    kept = list(ex.messages())
    assert sorted(kept, key=lambda d: d.key) == sorted(fresh.messages, key=lambda d: d.key)
    assert ex.units.until == fresh.valid_until
    assert {d.context["meeting"]["location"] for d in kept
            if d.group == "second" and d.kind == "invitation"} == {"Room 4, County Hall"}
    planned.clear()
    # a fact of one group (an action recorded) plans that group again, and no other
    store.add_action({"group_id": "third", "meeting_id": "", "topic": "T", "text": "A",
                      "owners": ("kim.osei@network.example",), "due": datetime(
                          2027, 2, 1).date()}, "t", "t", now)
    worker.tick(now)
    assert planned == ["third"]
    # a fact every group reads (a permanent bounce) plans them all again
    planned.clear()
    store.record_bounce("nobody@example.org", "5.1.1", "no such user", True, None, now)
    worker.tick(now)
    assert sorted(planned) == ["qa-leads", "second", "third"]


def test_the_worker_notices_an_edit_looking_at_a_few_groups_a_tick(
        config_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """A look stats the config folder, clerk.toml and ``per_look`` group folders in turn: an
    edit is noticed within ceil(folders / per_look) looks, a new group at the next one."""
    from bot.config import files

    for n in range(4):
        second_group(config_dir, f"g{n}")
    watch = files.Watch(config_dir, per_look=2)  # 5 folders: 3 looks see them all
    looked: list[Path] = []
    real = files.folder_signature
    monkeypatch.setattr(files, "folder_signature", lambda g: looked.append(g) or real(g))
    assert not watch.changed() and len(looked) == 2
    edit(config_dir / "g3" / "roster.csv", "Kent", "Kent County")
    seen = [watch.changed() for _ in range(3)]
    assert seen.count(True) == 1 and len(looked) == 8
    assert not any(watch.changed() for _ in range(3))
    second_group(config_dir, "g9")
    assert watch.changed()


def test_edits_made_while_the_config_is_broken_are_all_taken_in_once_it_loads(
        config_dir: Path, make_executor: Callable[[], Executor]):
    """The worker reads again only the group folders that changed since the config in use
    was loaded: one edited while another's edit was broken is read too once that is fixed."""
    from bot.engine.worker import Worker

    second_group(config_dir, "second")
    ex = make_executor()
    worker = Worker(ex, config_dir)
    now = datetime(2026, 11, 1, 12, tzinfo=UTC)
    worker.tick(now)
    toml = config_dir / "second" / "group.toml"
    edit(toml, 'zone = "Europe/London"', 'zone = "Mars/Olympus"')
    worker.tick(now)
    edit(config_dir / "example" / "group.toml", 'name = "South Downs QA Leads Network"',
         'name = "Downs QA Leads"')
    worker.tick(now)
    assert ex.config.group("qa-leads").name == "South Downs QA Leads Network"  # still broken
    edit(toml, 'zone = "Mars/Olympus"', 'zone = "Europe/London"')
    worker.tick(now)
    assert ex.config.group("qa-leads").name == "Downs QA Leads"
    assert ex.config.group("second").zone == "Europe/London"


def test_what_a_tick_leaves_in_reference_cycles_goes_at_its_end(
        config_dir: Path, make_executor: Callable[[], Executor],
        monkeypatch: pytest.MonkeyPatch):
    """clerk collects garbage seldom while it plans (bot.tune_collector), and never walks the
    config loaded at start; the worker collects what a tick left in reference cycles (a
    dropped connection, say) as the tick ends, not after the next 50,000 allocations."""
    import gc
    import weakref

    import bot
    from bot.engine.worker import Worker

    class Held:
        me: object = None

    left: list[weakref.ref[Held]] = []
    ex = make_executor()
    real_tick = ex.tick

    def tick_leaving_a_cycle(now: datetime) -> object:
        held = Held()
        held.me = held
        left.append(weakref.ref(held))
        return real_tick(now)

    bot.tune_collector()  # both undone after the test (tests/conftest.py)
    assert gc.get_freeze_count() == 0
    monkeypatch.setattr(ex, "tick", tick_leaving_a_cycle)
    worker = Worker(ex, config_dir)
    # the config loaded at start is out of the collector's way: a full collection walks
    # what the worker made since, not every group
    assert gc.get_freeze_count() > 0
    worker.tick(GO_LIVE)
    assert worker.ticks == 1 and left and left[0]() is None
