"""Properties of the planner and the ledger, over generated groups and clocks (hypothesis)."""

from __future__ import annotations

import tempfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot import config as config_mod
from bot.domain.model import Config, Meeting, Rule
from bot.domain.timeutil import parse_offset
from bot.engine.executor import Executor
from bot.engine.store import Store
from bot.plan import planner
from bot.transports.memory import MemoryTransport
from tests.conftest import EXAMPLE

BASE = config_mod.load(EXAMPLE.parent)
GROUP = BASE.groups[0]
LONDON = ZoneInfo("Europe/London")

day = st.integers(min_value=0, max_value=364)
hour = st.sampled_from([9, 10, 14, 16])
offset_days = st.integers(min_value=-60, max_value=-1)


@st.composite
def configs(draw: st.DrawFn) -> Config:
    starts = sorted(set(draw(st.lists(st.tuples(day, hour), min_size=1, max_size=4))))
    meetings = tuple(
        Meeting(id=f"m{i}", title="Meeting",
                start=datetime(2027, 1, 1, h, tzinfo=LONDON) + timedelta(days=d),
                duration=timedelta(hours=draw(st.sampled_from([1, 2, 3]))), location="Online",
                link="", description="", items=())
        for i, (d, h) in enumerate(starts))
    invite, request, chaser, pack = (draw(offset_days) for _ in range(4))
    deadline = draw(st.integers(min_value=request, max_value=0))
    rules = (
        Rule(id="invitation", kind="invitation", send=parse_offset(f"{invite}d")),
        Rule(id="rfi", kind="request", send=parse_offset(f"{request}d"),
             deadline=parse_offset(f"{deadline}d"), to="leads", questions=("Q?",)),
        Rule(id="chase", kind="chaser", send=parse_offset(f"{chaser}d"), chases="rfi",
             to="leads"),
        Rule(id="pack", kind="pack", send=parse_offset(f"{pack}d")),
        Rule(id="minutes", kind="minutes_due", send=parse_offset("+10d"), to="admin"),
    )
    rules = tuple(replace(r, template=r.kind) for r in rules)
    members = GROUP.members[: draw(st.integers(min_value=1, max_value=len(GROUP.members)))]
    group = replace(GROUP, meetings=meetings, rules=rules, members=members)
    return replace(BASE, groups=(group,), fingerprint=str(hash((meetings, rules, members))))


clock = st.datetimes(min_value=datetime(2026, 10, 1), max_value=datetime(2028, 2, 1),
                     timezones=st.just(UTC))


@settings(max_examples=60, deadline=None)
@given(configs(), clock)
def test_the_plan_is_deterministic_and_well_formed(config: Config, now: datetime):
    state = planner.State()
    one, two = planner.plan(config, state, now), planner.plan(config, state, now)
    assert [(m.key, m.send_at, m.subject) for m in one.messages] == \
        [(m.key, m.send_at, m.subject) for m in two.messages]
    keys = [m.key for m in one.messages]
    assert len(keys) == len(set(keys))
    group = config.groups[0]
    allowed = {m.email for m in group.members} | {group.admin.email}
    go_live = group.go_live.astimezone(UTC)
    for m in one.messages:
        assert m.recipient.email in allowed
        assert m.send_at >= go_live and m.latest >= go_live
        assert m.send_at.tzinfo is not None and m.latest.tzinfo is not None
        if m.initial == "planned":
            assert m.latest > now
    if one.valid_until is not None:
        assert one.valid_until > now


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs(), st.lists(clock, min_size=2, max_size=5))
def test_ticks_in_any_order_never_send_a_key_twice_or_early(config: Config,
                                                            clocks: list[datetime]):
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{Path(tmp) / 's.sqlite'}")
        store.migrate()
        transport = MemoryTransport()
        sent_at: dict[str, datetime] = {}
        for now in clocks + clocks[:1]:  # the clock may step back, and repeat
            result = Executor(config, store, transport).tick(now)
            for key in result.sent:
                assert key not in sent_at, "sent twice"
                sent_at[key] = now
        for row in store.rows():
            if row.key in sent_at:
                assert row.send_at <= sent_at[row.key] <= row.latest_at
        store.dispose()
