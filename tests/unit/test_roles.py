"""Roster roles as real rosters have them: the admin is invited but answers for no
organisation; a guest owns actions and is chased, never invited or asked."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

from click.testing import Result

from bot.engine.executor import Executor
from bot.engine.store import Store

T0 = datetime(2026, 12, 1, 10, tzinfo=UTC)
RFI_DAY = datetime(2026, 12, 17, 10, tzinfo=UTC)
KIM, GUS = "kim.osei@network.example", "gus.grant@consult.example"


def with_admin_and_guest(group_dir: Path) -> None:
    with (group_dir / "roster.csv").open("a") as f:
        f.write(f"Kim Osei,{KIM},Network secretariat,admin\n"
                f"Gus Grant,{GUS},Grant Consulting,guest\n")


def test_the_admin_and_a_guest_are_roles_the_roster_takes(group_dir: Path,
                                                           clerk: Callable[..., Result]):
    with_admin_and_guest(group_dir)
    result = clerk("check")
    assert result.exit_code == 0, result.output


def test_the_admin_is_invited_and_never_asked_a_guest_neither(
        make_executor: Callable[[], Executor], group_dir: Path):
    with_admin_and_guest(group_dir)
    invited = make_executor().tick(T0).sent
    assert any(KIM in k for k in invited) and not any(GUS in k for k in invited)
    asked = [k for k in make_executor().tick(RFI_DAY).sent if "/rfi/" in k]
    assert len(asked) == 16  # one per organisation, as before: the admin answers for none
    assert not any(KIM in k or GUS in k for k in asked)


def test_a_guest_owns_an_action_and_is_chased(make_executor: Callable[[], Executor],
                                              group_dir: Path, store: Store):
    with_admin_and_guest(group_dir)
    store.add_action({"group_id": "qa-leads", "meeting_id": "2027-q1", "topic": "Audit",
                      "text": "Share the audit tool", "owners": (GUS,),
                      "due": date(2027, 2, 12)}, "test", "test", datetime(2027, 1, 15, 12,
                                                                         tzinfo=UTC))
    ex = make_executor()
    ex.tick(datetime(2027, 1, 15, 12, tzinfo=UTC))
    chased = ex.tick(datetime(2027, 1, 22, 12, tzinfo=UTC)).sent
    assert any(k.startswith(f"qa-leads/-/actions/{GUS}/") or f"/{GUS}/" in k for k in chased)
