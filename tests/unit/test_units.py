"""The worker plans unit by unit (bot/engine/planning.py): after any change it plans again
only the groups the change touches, and what it leaves in the ledger is what a plan made
from scratch would — a fresh executor on the same store finds nothing to record, change or
withdraw, and no revision to make."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot import config as config_mod
from bot.engine.executor import Executor
from bot.engine.store import Store
from bot.engine.worker import Worker
from bot.transports.memory import MemoryTransport
from tests.conftest import count_plans, edit, remove_member, second_group

KIM = "kim.osei@network.example"  # the admin of every group here
JOANNE = "joanne.beale@bracknell.example"  # a member of every group here
BEFORE = datetime(2026, 11, 1, 12, tzinfo=UTC)  # before go-live: nothing is due


def from_scratch(config_dir: Path, store: Store, now: datetime) -> tuple[int, int, int]:
    """What a fresh executor's plan changes in the ledger (and no revision is made)."""
    version = store.facts_version()
    ex = Executor(config_mod.load(config_dir), store, MemoryTransport())
    counts = ex.current_plan(now)
    assert counts is not None
    assert store.facts_version() == version, "a plan from scratch made a new revision"
    return counts


def action(store: Store, group: str, owner: str, due: date, now: datetime) -> int:
    return store.add_action({"group_id": group, "meeting_id": "", "topic": "T",
                             "text": f"An action of {group}", "owners": (owner,), "due": due},
                            "test", "test", now)


def test_what_the_worker_records_after_each_change_is_a_plan_from_scratch(
        config_dir: Path, store: Store, counted: list[str], monkeypatch: pytest.MonkeyPatch):
    from bot.plan import planner

    for g in ("second", "third"):
        second_group(config_dir, g)
    ex = Executor(config_mod.load(config_dir), store, MemoryTransport())
    worker = Worker(ex, config_dir)
    now = BEFORE
    digests: list[datetime] = []  # the worker planned the owners' digests (at)
    real = planner.digests_plan
    monkeypatch.setattr(planner, "digests_plan",
                        lambda *a: digests.append(a[2]) or real(*a))

    def tick(at: datetime) -> list[str]:
        counted.clear()
        digests.clear()
        worker.tick(at)
        planned, ours = sorted(set(counted)), list(digests)
        assert from_scratch(config_dir, store, at) == (0, 0, 0)
        digests[:] = ours
        return planned

    assert tick(now) == ["qa-leads", "second", "third"]
    assert tick(now) == []  # nothing changed: nothing planned
    edit(config_dir / "second" / "group.toml", 'location = "Online (Microsoft Teams)"',
         'location = "Room 4, County Hall"')
    assert tick(now) == ["second"]
    assert digests == []  # no digest lists an action of it
    # one owner's actions in two groups: a digest lists both, so a new action in one group
    # may change when the other's chasing stops — that group is planned again if so
    action(store, "qa-leads", JOANNE, date(2027, 1, 20), now)
    assert tick(now) == ["qa-leads"]
    assert digests
    edit(config_dir / "example" / "group.toml", 'name = "South Downs QA Leads Network"',
         'name = "South Downs QA Leads"')
    assert tick(now) == ["qa-leads"]
    assert digests  # the group is in the digests of its actions' owners
    action(store, "third", JOANNE, date(2027, 1, 25), now)
    assert "third" in tick(now)
    remove_member(config_dir / "second", JOANNE)  # she owns nothing there
    assert tick(now) == ["second"]
    # a fact every group reads: a permanent bounce
    store.record_bounce(JOANNE, "5.1.1", "no such user", True, None, now)
    assert tick(now) == ["qa-leads", "second", "third"]
    # a group taken out of the config: its rows withdrawn; of the others only the one whose
    # owner's schedule loses its action there is planned again
    shutil.rmtree(config_dir / "third")
    assert tick(now) == ["qa-leads"]
    third = store.rows(group="third")
    assert third and {r.state for r in third} == {"withdrawn"}
    # time passing: each group is planned again when its own time comes, and what is due goes
    for day in (date(2026, 12, 1), date(2027, 1, 8), date(2027, 1, 21), date(2027, 2, 1)):
        tick(datetime.combine(day, datetime.min.time(), tzinfo=UTC).replace(hour=10))
    assert store.counts().get("sent", 0) > 0


def test_a_change_to_clerk_toml_plans_every_group_again(
        config_dir: Path, store: Store, counted: list[str]):
    second_group(config_dir)
    (config_dir / "clerk.toml").write_text("[clerk]\ninterval = 60\n", encoding="utf-8")
    ex = Executor(config_mod.load(config_dir), store, MemoryTransport())
    worker = Worker(ex, config_dir)
    worker.tick(BEFORE)
    counted.clear()
    edit(config_dir / "clerk.toml", "interval = 60", "interval = 30")
    worker.tick(BEFORE)
    assert sorted(counted) == ["qa-leads", "second"]


def test_a_group_whose_id_changed_is_still_recognised_by_its_members(
        config_dir: Path, store: Store):
    """The guard holds a group whose id changed (its members' messages would all go again):
    planned from a snapshot of that group alone, it still finds the old id's recipients."""
    ex = Executor(config_mod.load(config_dir), store, MemoryTransport())
    worker = Worker(ex, config_dir)
    worker.tick(BEFORE)
    edit(config_dir / "example" / "group.toml", 'id = "qa-leads"', 'id = "qa-leads-2027"')
    worker.tick(BEFORE)
    rows = store.rows(group="qa-leads-2027")
    assert rows and {r.state for r in rows if r.rule_id != "guard"} == {"held"}
    assert [r.recipient for r in rows if r.rule_id == "guard"] == [KIM]  # told why
    assert {r.state for r in store.rows(group="qa-leads")} == {"withdrawn"}


def test_a_message_is_recorded_as_it_was_rendered_though_its_unit_moved_on(
        config_dir: Path, store: Store, monkeypatch: pytest.MonkeyPatch):
    """What a delivered message says it was (its kind, what it reports) is the message sent,
    not the plan as it may be by the time it is recorded — another worker's fact, a failure
    in the same batch, or its unit no longer kept, planned again."""
    from bot.engine.result import TickResult

    ex = Executor(config_mod.load(config_dir), store, MemoryTransport())
    now = datetime(2026, 12, 1, 10, tzinfo=UTC)  # the first invitations are due
    ex.current_plan(now)
    key = store.due_keys(now)[0].key
    result = TickResult(now=now.isoformat())
    assert ex._prepare(key, now, result) is not None
    monkeypatch.setattr(ex, "desired", lambda k: None)  # the plan has moved on
    ex._sent(key, now, result)
    assert store.row(key).state == "sent" and result.sent == [key]


def test_an_action_recorded_by_another_process_while_the_worker_plans_is_not_lost(
        config_dir: Path, store: Store, monkeypatch: pytest.MonkeyPatch):
    """An action recorded while the worker plans (its snapshot of the action log taken) is
    planned for at the next tick: the owners' digests and the groups are as from scratch."""
    import bot.engine.planning as planning
    from bot.engine import snapshot

    second_group(config_dir)
    monkeypatch.setattr(planning, "BATCH", 1)  # one group a snapshot
    ex = Executor(config_mod.load(config_dir), store, MemoryTransport())
    now = datetime(2026, 12, 8, 10, tzinfo=UTC)
    ex.current_plan(now)
    real = snapshot.state
    added: list[int] = []

    def meanwhile(*args: Any, **kw: Any) -> Any:
        if not added:  # another process, between this worker's reading the log and now
            added.append(action(store, "second", JOANNE, date(2026, 12, 20),
                                now - timedelta(days=7)))  # its first chaser: today
        return real(*args, **kw)

    ex.plan_again()
    monkeypatch.setattr(snapshot, "state", meanwhile)
    ex.current_plan(now)
    monkeypatch.setattr(snapshot, "state", real)
    ex.current_plan(now)  # the next tick
    assert added and from_scratch(config_dir, store, now) == (0, 0, 0)
    assert [r for r in store.rows() if r.key.startswith(f"-/-/actions/{JOANNE}/")]


def test_what_is_due_when_planned_is_sent_without_planning_again(
        config_dir: Path, store: Store, counted: list[str]):
    """Six groups' invitations due at once (more groups than the worker keeps whole): the
    messages due are kept when each group is planned, so sending plans none again."""
    for n in range(5):
        second_group(config_dir, f"g{n}")
    ex = Executor(config_mod.load(config_dir), store, MemoryTransport())
    now = datetime(2026, 12, 1, 10, tzinfo=UTC)  # the first invitations are due
    ex.current_plan(now)
    counted.clear()
    sent = ex.tick(now).sent
    assert len({k.split("/")[0] for k in sent}) == 6 and counted == []


def test_the_week_turning_plans_the_weekly_part_alone(
        config_dir: Path, store: Store, counted: list[str], monkeypatch: pytest.MonkeyPatch):
    """A group's action summaries and the admin's weekly digest are a unit of their own: on
    the weekly day the worker plans them again and sends them without planning the group's
    meetings, and what it leaves is a plan from scratch. An action, which both read, plans
    both."""
    weekly = count_plans(monkeypatch, "weekly_plan")
    ex = Executor(config_mod.load(config_dir), store, MemoryTransport())
    now = datetime(2027, 1, 6, 10, tzinfo=UTC)
    ex.tick(now)
    counted.clear()
    weekly.clear()
    action(store, "qa-leads", JOANNE, date(2027, 1, 8), now)  # overdue from the 8th
    ex.tick(now)
    assert (counted, weekly) == (["qa-leads"], ["qa-leads"])
    alone = 0  # ticks that sent a summary without planning the group's meetings
    meetings = 0  # plans of the group's meetings (only time passes: as their times come)
    while now < datetime(2027, 2, 28, tzinfo=UTC):
        nxt = ex.next_instant(now)
        assert nxt is not None
        now = max(nxt, now + timedelta(minutes=5))
        counted.clear()
        weekly.clear()
        sent = ex.tick(now).sent
        meetings += len(counted)
        if any("/-/overdue/" in k for k in sent) and not counted:
            alone += 1
        assert from_scratch(config_dir, store, now) == (0, 0, 0)
    summaries = [r for r in store.rows(group="qa-leads") if r.rule_id == "overdue"]
    assert len([r for r in summaries if r.state == "sent"]) >= 6  # the last, planned
    assert alone >= 5 and meetings <= 3


def test_each_part_makes_the_messages_of_its_own_unit(config_dir: Path, store: Store):
    """A group's plan and its weekly part's share no message: each message is of the unit
    that plans it (or the other would withdraw it), and the whole plan names each key once."""
    from bot.engine import snapshot
    from bot.engine.units import unit_of, weekly
    from bot.plan import actions, planner

    config = config_mod.load(config_dir)
    now = datetime(2027, 1, 17, 6, tzinfo=UTC)  # a summary planned for tomorrow
    action(store, "qa-leads", JOANNE, date(2027, 1, 8), now - timedelta(days=14))
    state = snapshot.state(store)
    chased = actions.Chased(config.groups, state.actions)
    [group] = config.groups
    own = planner.group_plan(config, group, state, now, chased).messages
    week = planner.weekly_plan(config, group, state, now, chased).messages
    assert week and {unit_of(d.key) for d in own} == {"qa-leads"}
    assert {unit_of(d.key) for d in week} == {weekly("qa-leads")}
    keys = [d.key for d in planner.plan(config, state, now).messages]
    assert len(keys) == len(set(keys))


def test_each_unit_reads_its_own_rows(config_dir: Path, store: Store):
    """A group's rows are its two units' — its meetings' and notices', and its weekly part's —
    with nothing in both and nothing left out; the owners' digests are neither's."""
    import sqlalchemy as sa

    from bot.engine.schema import ledger
    from bot.engine.units import unit_of, units_of, weekly

    ex = Executor(config_mod.load(config_dir), store, MemoryTransport())
    now = datetime(2027, 1, 6, 10, tzinfo=UTC)
    action(store, "qa-leads", JOANNE, date(2027, 1, 8), now)  # chased, then overdue
    while now < datetime(2027, 1, 26, tzinfo=UTC):  # summaries, digests and owners' digests
        ex.tick(now)
        now = max(ex.next_instant(now) or now, now + timedelta(minutes=5))

    def keys(units: list[str]) -> set[str]:
        with store.engine.connect() as conn:
            return set(conn.execute(sa.select(ledger.c.key).where(unit_rows(units))).scalars())

    with store.engine.connect() as conn:  # what a unit's rows are read by: their keys
        for key, group in conn.execute(sa.select(ledger.c.key, ledger.c.group_id)):
            assert key.startswith(f"{group}/") or key.startswith("-/-/"), key

    group, week, both = keys(["qa-leads"]), keys([weekly("qa-leads")]), keys(
        units_of(["qa-leads"]))
    digests = keys(["-"])
    assert week and group and digests and not group & week
    assert group | week == both and not both & digests
    assert {unit_of(k) for k in group} == {"qa-leads"}
    assert {unit_of(k) for k in week} == {weekly("qa-leads")}
    assert {unit_of(k) for k in digests} == {"-"}
    assert {k.split("/")[2] for k in week} <= {"overdue", "stalled", "admin-digest"}


def test_a_group_sent_from_lately_is_kept_whole_as_it_is_planned_again(
        config_dir: Path, store: Store, counted: list[str]):
    """A message that falls due after its group was planned needs the group planned again to
    send it; that group is then kept whole, and kept whole each time it is planned again, so
    a year's mail coming due message by message plans it again to send once, not each time."""
    ex = Executor(config_mod.load(config_dir), store, MemoryTransport())
    now = datetime(2026, 11, 30, tzinfo=UTC)
    to_send = 0  # the group planned again to send (in a tick that planned nothing)
    while now < datetime(2027, 4, 1, tzinfo=UTC):
        passes = ex.units.passes
        counted.clear()
        if ex.tick(now).sent and ex.units.passes == passes:
            to_send += len(counted)
        now = max(ex.next_instant(now) or now, now + timedelta(minutes=5))
    assert store.counts().get("sent", 0) > 100
    assert to_send == 1


def test_a_unit_s_rows_are_read_a_range_of_keys_at_a_time_each_once(store: Store):
    """The re-plan's diff reads the rows of a few units page by page, each page from where
    the last ended, along the key's index: every row a plan may still change once, in key
    order — and none of another group whose id the unit's begins with, or sorts between."""
    import sqlalchemy as sa

    from bot.engine.schema import ledger
    from bot.engine.units import unit_of, unit_ranges, weekly

    at = datetime(2027, 1, 4, 9, tzinfo=UTC)
    rows = []
    for group in ("a", "a-b", "a.b", "ab", "a0", "b", "-"):
        for meeting, rule in (("m1", "invite"), ("m2", "pack"), ("-", "overdue"),
                              ("-", "admin-digest")):
            for n, state in enumerate(("planned", "sent", "held", "withdrawn", "retry")):
                rows.append({
                    "key": f"{group}/{meeting}/{rule}/p{n}@x.example", "state": state,
                    "group_id": "b" if group == "-" else group, "meeting_id": meeting,
                    "rule_id": rule, "kind": "notice", "recipient": f"p{n}@x.example",
                    "send_at": at, "latest_at": at, "created_at": at, "updated_at": at})
    with store.atomic() as conn:
        conn.execute(ledger.insert(), rows)
    statements: list[tuple[str, Any]] = []
    sa.event.listen(store.engine, "before_cursor_execute",
                    lambda c, cur, sql, params, *_: statements.append((sql, params)))
    units = ["a", weekly("a-b"), "a.b", weekly("a.b"), "-"]
    with store.atomic() as conn:
        pages = [[r.key for r in page]
                 for page in store.active_rows(conn, unit_ranges(units), batch=2)]
        chosen = set(conn.execute(sa.select(ledger.c.key).where(unit_rows(units))).scalars())
    expected = sorted(r["key"] for r in rows if unit_of(r["key"]) in units
                      and r["state"] != "sent")
    keys = [k for page in pages for k in page]
    assert keys == expected and len(set(keys)) == len(keys) and all(
        0 < len(p) <= 2 for p in pages)
    assert len(keys) == 2 * 4 + 2 * 4 + 4 * 4 + 4 * 4  # a, a-b's weekly part, a.b, digests
    assert chosen == {r["key"] for r in rows if unit_of(r["key"]) in units}
    # a weekly part alone is read from its notices' keys, not from all its group's
    reads = [str(params) for sql, params in statements if "FROM ledger" in sql]
    assert any("'a-b/-/'" in p for p in reads) and not any("'a-b/'" in p for p in reads)
    if store.engine.dialect.name == "sqlite":
        # each page along the key's unique index, already in its order: no sort, no scan
        sql, params = next(s for s in statements if "FROM ledger" in s[0])
        with store.engine.connect() as conn:
            plan = " ".join(r[3] for r in conn.exec_driver_sql(
                f"EXPLAIN QUERY PLAN {sql}", params))
        assert "sqlite_autoindex_ledger_1" in plan and "TEMP B-TREE" not in plan, plan


def unit_rows(units: list[str]) -> Any:
    """All the ledger rows of ``units`` (sent ones too), as the ranges of their keys the
    diff reads them by."""
    import sqlalchemy as sa

    from bot.engine.schema import key_range
    from bot.engine.units import unit_ranges

    found = [sa.and_(key_range(prefix), *(() if only is None else (only,)))
             for prefix, only in unit_ranges(units)]
    return sa.or_(*found) if found else sa.false()
