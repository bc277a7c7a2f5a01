"""The calendar side's pure parts (bot/plan/calendar.py): which operations a change makes, how
the server's items are merged after a crash, and when a row counts as carried out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.domain.model import Person
from bot.plan.calendar import merge, operations, settled
from bot.render.ical import EventSpec
from bot.transports.calendar import Attendee, Content, MeetingChange, Op, Part

START = datetime(2027, 1, 14, 14, tzinfo=UTC)
A, B, C, D = (("Ann", "a@x.example"), ("Bo", "b@x.example"), ("Cy", "c@x.example"),
              ("Di", "d@x.example"))


def change(revision: int = 0, invite: tuple[tuple[str, str], ...] = (),
           cancel: tuple[tuple[str, str], ...] = (), cancelled: bool = False,
           members: tuple[tuple[str, str], ...] | None = None) -> MeetingChange:
    return MeetingChange(
        uid="u@x.example", group="g", unit="m", revision=revision,
        content=Content("Board", "<p>hi</p>", "Europe/London", Person("Clerk", "c@org.example"),
                        (EventSpec(START, START + timedelta(hours=2), "Board"),)),
        cancelled=cancelled, invite=tuple(Attendee(f"k-{e}", n, e) for n, e in invite),
        cancel=tuple(Attendee(f"c-{e}", n, e) for n, e in cancel),
        members=None if members is None else frozenset(e for _, e in members))


def test_first_invitations_are_one_item_with_everyone():
    assert operations(change(invite=(A, B, C)), []) == [Op("create", 0, (A, B, C))]


def test_a_newcomer_gets_the_next_item_number_even_after_a_cancelled_one():
    parts = [Part(0, "i0", (A, B), 0), Part(1, "i1", (C,), 0, cancelled=True)]
    assert operations(change(invite=(D,)), parts) == [Op("create", 2, (D,))]


def test_an_update_touches_only_items_holding_someone_whose_row_is_due():
    parts = [Part(0, "i0", (A, B), 0), Part(1, "i1", (C,), 0)]
    assert operations(change(1, invite=(C,)), parts) == [
        Op("update", 1, (C,), (), content=True)]


def test_an_update_sheds_anyone_off_the_roster():
    parts = [Part(0, "i0", (A, B, C), 0)]
    ops = operations(change(1, invite=(A, B), members=(A, B)), parts)
    assert ops == [Op("update", 0, (A, B), ("c@x.example",), content=True)]


def test_removing_the_only_person_on_an_item_cancels_it():
    parts = [Part(0, "i0", (A, B), 0), Part(1, "i1", (C,), 0)]
    assert operations(change(0, cancel=(C,)), parts) == [Op("cancel", 1, (C,))]


def test_a_cancelled_meeting_takes_off_only_those_whose_rows_are_due():
    parts = [Part(0, "i0", (A, B, C), 0)]
    assert operations(change(0, cancel=(A,), cancelled=True), parts) == [
        Op("update", 0, (B, C), ("a@x.example",), content=False)]
    assert operations(change(0, cancel=(A, B, C), cancelled=True), parts) == [
        Op("cancel", 0, (A, B, C))]


def test_nothing_to_do_is_no_operation():
    parts = [Part(0, "i0", (A, B), 1)]
    assert operations(change(1, invite=(A, B)), parts) == []


def test_what_the_server_holds_wins_and_cancelled_items_are_remembered():
    kept = [Part(0, "i0", (A, B), 0), Part(1, "i1", (C,), 0), Part(2, "i2", (B,), 0)]
    found = [Part(0, "i0", (A,), 1), Part(1, "i9", (D,), 1)]  # i9: made before a crash
    assert merge(kept, found) == [  # i1 and i2 are gone from the calendar: cancelled
        Part(0, "i0", (A,), 1), Part(1, "i1", (C,), 0, True), Part(2, "i2", (B,), 0, True),
        Part(3, "i9", (D,), 1)]


def test_a_row_is_carried_out_when_the_server_shows_it():
    parts = [Part(0, "i0", (A, B), 1), Part(1, "i1", (C,), 0, cancelled=True)]
    assert settled(parts, "a@x.example", "REQUEST", 1)
    assert not settled(parts, "a@x.example", "REQUEST", 2)  # an update still to go
    assert settled(parts, "c@x.example", "CANCEL", 0)  # their item is cancelled
    assert not settled(parts, "b@x.example", "CANCEL", 1)
