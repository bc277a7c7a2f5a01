"""The exchange transport against a fake EWS server at the HTTP layer (tests/ews_fake.py): the
exact SOAP requests for meetings, series, messages, answers, throttling, sign-in, recovery and
the mailbox — and, when CLERK_TEST_EWS names a server, the same against a real one."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot import config as config_mod
from bot.domain.errors import TransportError
from bot.domain.model import Person
from bot.domain.recurrence import pattern
from bot.engine.executor import Executor
from bot.engine.store import Store
from bot.plan.calendar import operations
from bot.render.ical import EventSpec
from bot.transports import load
from bot.transports.base import PROPERTY_SET, Mail
from bot.transports.calendar import Attendee, Content, MeetingChange, Part
from bot.transports.exchange import ExchangeTransport, recurrence
from tests import ews_fake
from tests.conftest import ROOT
from tests.ews_fake import MAILBOX, NS, URL, Call, FakeEws, plain

ews = ews_fake.ews  # the fixture: a FakeEws answering every request of a test
LONDON = ZoneInfo("Europe/London")
START = datetime(2027, 1, 14, 14, 0, tzinfo=LONDON)
UID = "qa-leads.2027-q1@network.example"
PEOPLE = [Attendee(f"key-{n}", f"Member {n}", f"member{n}@council{n % 4}.example")
          for n in range(25)]
GO_LIVE = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
TOKEN = ews_fake.TOKEN_URL.format(tenant="contoso-tenant")


def change(*, revision: int = 1, hours: int = 3, invite: list[Attendee] | None = None,
           cancel: tuple[Attendee, ...] = (), cancelled: bool = False, start: datetime = START,
           rrule: str | None = None, exdates: tuple[datetime, ...] = (),
           moved: tuple[EventSpec, ...] = (), uid: str = UID) -> MeetingChange:
    master = EventSpec(start=start, end=start + timedelta(hours=hours), summary="Board",
                       location="Room 1", rrule=rrule, exdates=exdates)
    return MeetingChange(
        uid=uid, group="qa-leads", unit="2027-q1", revision=revision,
        content=Content(subject="QA Leads Network meeting", html="<p>Dear members</p>",
                        zone="Europe/London",
                        organiser=Person("QA Leads", MAILBOX), events=(master, *moved)),
        cancelled=cancelled, invite=tuple(PEOPLE if invite is None else invite),
        cancel=cancel)


def made(transport: ExchangeTransport, c: MeetingChange,
         parts: list[Part] | None = None) -> list[Part]:
    return transport.apply_all(c, operations(c, parts or []), parts or [])


def prop(call: Call, name: str, item: str = "t:CalendarItem") -> tuple[dict[str, str], str]:
    """The ExtendedFieldURI attributes and value of clerk's property ``name``."""
    [uri] = call.xpath(f".//{item}/t:ExtendedProperty/t:ExtendedFieldURI"
                       f"[@PropertyName='{name}']")
    return dict(uri.attrib), uri.getparent().findtext("t:Value", "", NS)


def message(n: int = 1, attachment: bytes = b"") -> Mail:
    files = (("agenda.pdf", "application/pdf", attachment),) if attachment else ()
    return Mail(key=f"qa-leads/2027-q1/pack/member{n}", message_id=f"<pack.{n}@network.example>",
                subject=f"Papers for the meeting ({n})", sender=("QA Leads", MAILBOX),
                to=((f"Member {n}", f"member{n}@council.example"),), cc=(),
                html="<p>Dear member</p>", text="Dear member", attachments=files, data=b"")


def created(ews: FakeEws, folder: str, kind: str) -> tuple[Any, Any]:
    """The first request, a CreateItem saving into ``folder``, and its one item (a ``kind``)
    with an HTML body."""
    create = ews.requests[0]
    assert create.find("m:SavedItemFolderId/t:DistinguishedFolderId").get("Id") == folder
    [item] = create.findall(f"m:Items/t:{kind}")
    assert item.find("t:Body", NS).get("BodyType") == "HTML"
    return create, item


# --- the module ---------------------------------------------------------------------------

def test_importing_the_exchange_transport_does_not_import_exchangelib():
    code = ("import sys, bot.transports.exchange, bot.transports; "
            "bot.transports.options('exchange'); print('exchangelib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


def test_options_and_the_transport_never_show_credentials(ews: FakeEws):
    from bot.domain.options import REQUIRED
    from bot.transports.exchange import OPTIONS

    assert OPTIONS["server"].default is REQUIRED and OPTIONS["mailbox"].default is REQUIRED
    assert {k: OPTIONS[k].default for k in ("auth", "version", "max_wait", "processed",
                                             "username_env", "client_secret_env")} == {
        "auth": "ntlm", "version": "Exchange2019", "max_wait": 10.0,
        "processed": "clerk/processed", "username_env": "CLERK_EWS_USERNAME",
        "client_secret_env": "CLERK_EWS_SECRET"}
    t = load("exchange", ews.options())
    assert isinstance(t, ExchangeTransport) and t.calendar
    assert t.describe() == f"exchange {MAILBOX} at mail.example.org"
    t.lookup("<m@x>", "some-key")  # signed in
    shown = repr(t) + repr(t.ews) + repr(ews.mailbox())
    assert "not-a-real-password" not in shown and "clerk-service" not in shown
    assert ExchangeTransport(ews.options(server="mail.example.org")).ews.endpoint == URL


# --- meetings -------------------------------------------------------------------------------

def test_inviting_25_members_is_one_createitem_with_the_exact_meeting(ews: FakeEws):
    t = ews.transport()
    [part] = made(t, change())
    assert ews.operations() == ["CreateItem"]  # one request, whatever the number of members
    create, item = created(ews, "calendar", "CalendarItem")
    assert create.xml.get("SendMeetingInvitations") == "SendToAllAndSaveCopy"
    assert item.findtext("t:Subject", None, NS) == "QA Leads Network meeting"
    assert item.findtext("t:Location", None, NS) == "Room 1"
    # local time with its offset, and the zone by its Windows name: Exchange keeps both
    assert item.findtext("t:Start", None, NS) == "2027-01-14T14:00:00+00:00"
    assert item.findtext("t:End", None, NS) == "2027-01-14T17:00:00+00:00"
    assert item.find("t:StartTimeZone", NS).get("Id") == "GMT Standard Time"
    assert item.find("t:EndTimeZone", NS).get("Id") == "GMT Standard Time"
    attendees = item.findall("t:RequiredAttendees/t:Attendee", NS)
    assert [a.findtext("t:Mailbox/t:EmailAddress", None, NS) for a in attendees] == \
        [p.email for p in PEOPLE]
    assert attendees[3].findtext("t:Mailbox/t:Name", None, NS) == "Member 3"
    assert {a.findtext("t:ResponseType", None, NS) for a in attendees} == {"Unknown"}
    assert item.find("t:Recurrence", NS) is None
    assert prop(create, "ClerkUid") == ({"PropertySetId": PROPERTY_SET,
                                         "PropertyName": "ClerkUid",
                                         "PropertyType": "String"}, UID)
    assert prop(create, "ClerkRevision") == ({"PropertySetId": PROPERTY_SET,
                                              "PropertyName": "ClerkRevision",
                                              "PropertyType": "Integer"}, "1")
    assert prop(create, "ClerkPart")[1] == "0"
    stored = ews.in_folder("calendar")[0]
    assert (part.item_id, part.change_key) == (stored.id, stored.changekey)
    assert part.emails == {p.email for p in PEOPLE} and part.revision == 1
    assert len(ews.sent) == 1  # the server mails the invitations


def test_a_summer_meeting_keeps_its_wall_clock_time_in_london(ews: FakeEws):
    made(ews.transport(), change(start=datetime(2027, 7, 15, 14, 0, tzinfo=LONDON)))
    item = ews.requests[0].find("m:Items/t:CalendarItem")
    assert item.findtext("t:Start", None, NS) == "2027-07-15T14:00:00+01:00"
    assert item.find("t:StartTimeZone", NS).get("Id") == "GMT Standard Time"


def test_a_three_hour_meeting_cut_to_two_is_one_updateitem_of_its_end(ews: FakeEws):
    t = ews.transport()
    parts = made(t, change(hours=3))
    ews.respond(parts[0].item_id, PEOPLE[1].email, "Accept")  # the change key moves on
    ews.reset()
    parts = made(t, change(revision=2, hours=2), parts)
    assert ews.operations() == ["GetItem", "UpdateItem"]  # the item as it is now, then the change
    update = ews.last("UpdateItem")
    assert update.xml.get("SendMeetingInvitationsOrCancellations") == "SendToAllAndSaveCopy"
    assert update.xml.get("ConflictResolution") == "AutoResolve"
    item_id = update.find("m:ItemChanges/t:ItemChange/t:ItemId")
    assert (item_id.get("Id"), item_id.get("ChangeKey")) == (parts[0].item_id,
                                                            f"CK2-{parts[0].item_id}")
    [end] = update.xpath(".//t:SetItemField[t:FieldURI/@FieldURI='calendar:End']")
    assert end.findtext("t:CalendarItem/t:End", None, NS) == "2027-01-14T16:00:00+00:00"
    [zone] = update.xpath(".//t:SetItemField[t:FieldURI/@FieldURI='calendar:EndTimeZone']")
    assert zone.find("t:CalendarItem/t:EndTimeZone", NS).get("Id") == "GMT Standard Time"
    assert prop(update, "ClerkRevision") [1] == "2"
    assert not update.xpath(".//t:FieldURI[@FieldURI='calendar:RequiredAttendees']")
    assert parts[0].revision == 2


def test_a_newcomer_gets_an_item_of_their_own_and_nobody_else_is_mailed(ews: FakeEws):
    t = ews.transport()
    parts = made(t, change(invite=PEOPLE[:3]))
    ews.reset()
    newcomer = Attendee("key-new", "Ada Byron", "ada.byron@council.example")
    parts = made(t, change(invite=[*PEOPLE[:3], newcomer]), parts)
    assert ews.operations() == ["CreateItem"]  # the shared item is not touched
    item = ews.last("CreateItem").find("m:Items/t:CalendarItem")
    assert [a.text for a in item.iterfind(".//t:EmailAddress", NS)] == [newcomer.email]
    assert prop(ews.last("CreateItem"), "ClerkPart")[1] == "1"
    assert [p.emails for p in parts] == [{p.email for p in PEOPLE[:3]}, {newcomer.email}]


def test_a_member_taken_off_is_saved_off_the_item_and_the_others_keep_their_answers(
        ews: FakeEws):
    t = ews.transport()
    parts = made(t, change(invite=PEOPLE[:3]))
    ews.respond(parts[0].item_id, PEOPLE[0].email, "Accept")
    ews.reset()
    parts = made(t, change(invite=PEOPLE[:2], cancel=(PEOPLE[2],)), parts)
    assert ews.operations() == ["GetItem", "UpdateItem"]
    update = ews.last("UpdateItem")
    # the change alone goes to the changed attendee: the one taken off gets the cancellation
    assert update.xml.get("SendMeetingInvitationsOrCancellations") == "SendToChangedAndSaveCopy"
    [field] = update.xpath(".//t:SetItemField[t:FieldURI/@FieldURI='calendar:RequiredAttendees']")
    kept = field.findall(".//t:Attendee", NS)
    assert [a.findtext("t:Mailbox/t:EmailAddress", None, NS) for a in kept] == \
        [PEOPLE[0].email, PEOPLE[1].email]
    assert kept[0].findtext("t:ResponseType", None, NS) == "Accept"  # not reset
    assert not update.xpath(".//t:FieldURI[@FieldURI='calendar:Start']")  # times untouched
    assert ews.attendees(parts[0].item_id) == [PEOPLE[0].email, PEOPLE[1].email]


def test_a_newcomer_taken_off_again_has_their_own_item_cancelled(ews: FakeEws):
    t = ews.transport()
    newcomer = Attendee("key-new", "Ada Byron", "ada.byron@council.example")
    parts = made(t, change(invite=PEOPLE[:2]))
    parts = made(t, change(invite=[*PEOPLE[:2], newcomer]), parts)
    ews.reset()
    parts = made(t, change(invite=PEOPLE[:2], cancel=(newcomer,)), parts)
    assert ews.operations() == ["GetItem", "CreateItem"]
    assert [p.cancelled for p in parts] == [False, True]
    cancel = ews.last("CreateItem")
    assert cancel.find("m:Items/t:CancelCalendarItem/t:ReferenceItemId").get("Id") == \
        parts[1].item_id


def test_a_cancelled_meeting_cancels_every_item_of_it(ews: FakeEws):
    t = ews.transport()
    newcomer = Attendee("key-new", "Ada Byron", "ada.byron@council.example")
    parts = made(t, change(invite=PEOPLE[:2]))
    parts = made(t, change(invite=[*PEOPLE[:2], newcomer]), parts)
    ews.reset()
    everyone = (*PEOPLE[:2], newcomer)  # each one's cancellation row is due
    parts = made(t, change(revision=2, cancelled=True, invite=[], cancel=everyone), parts)
    assert ews.operations() == ["GetItem", "CreateItem"] * 2
    for call, part in zip(ews.calls("CreateItem"), parts, strict=True):
        assert call.xml.get("MessageDisposition") == "SendAndSaveCopy"
        ref = call.find("m:Items/t:CancelCalendarItem/t:ReferenceItemId")
        assert (ref.get("Id"), ref.get("ChangeKey")) == (part.item_id, part.change_key)
    assert all(p.cancelled for p in parts)
    assert ews.in_folder("calendar") == [] and len(ews.in_folder("deleteditems")) == 2
    ews.reset()
    assert made(t, change(revision=2, cancelled=True, invite=[], cancel=everyone),
                parts) == parts
    assert ews.operations() == []  # nothing more to do


# --- series -------------------------------------------------------------------------------

def test_a_series_is_one_item_with_its_recurrence(ews: FakeEws):
    made(ews.transport(), change(rrule="FREQ=MONTHLY;BYDAY=2TH;COUNT=4"))
    assert ews.operations() == ["CreateItem"]
    rule = ews.requests[0].find("m:Items/t:CalendarItem/t:Recurrence")
    assert plain(rule) == (
        "<t:Recurrence><t:RelativeMonthlyRecurrence><t:Interval>1</t:Interval>"
        "<t:DaysOfWeek>Thursday</t:DaysOfWeek><t:DayOfWeekIndex>Second</t:DayOfWeekIndex>"
        "</t:RelativeMonthlyRecurrence><t:NumberedRecurrence><t:StartDate>2027-01-14"
        "</t:StartDate><t:NumberOfOccurrences>4</t:NumberOfOccurrences>"
        "</t:NumberedRecurrence></t:Recurrence>")


@pytest.mark.parametrize(("rrule", "shape", "bound"), [
    ("FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE", "WeeklyPattern(interval=2, weekdays=['Monday', "
     "'Wednesday'], first_day_of_week='Monday')", "NoEndPattern(start=datetime.date(2027, 1, 14))"),
    ("FREQ=MONTHLY;BYMONTHDAY=14;UNTIL=20271231T000000Z",
     "AbsoluteMonthlyPattern(interval=1, day_of_month=14)",
     "EndDatePattern(start=datetime.date(2027, 1, 14), end=datetime.date(2027, 12, 31))"),
    ("FREQ=DAILY;COUNT=3", "DailyPattern(interval=1)",
     "NumberedPattern(start=datetime.date(2027, 1, 14), number=3)"),
    ("FREQ=YEARLY;BYDAY=-1FR;BYMONTH=3;COUNT=2",
     "RelativeYearlyPattern(weekday='Friday', week_number='Last', month='March')",
     "NumberedPattern(start=datetime.date(2027, 1, 14), number=2)"),
])
def test_each_rule_becomes_its_ews_pattern(rrule: str, shape: str, bound: str):
    kept = recurrence(pattern(rrule, START))
    assert (repr(kept.pattern), repr(kept.boundary)) == (shape, bound)


def test_a_rule_exchange_cannot_keep_fails_without_a_request(ews: FakeEws):
    with pytest.raises(TransportError) as caught:
        made(ews.transport(), change(rrule="FREQ=YEARLY;INTERVAL=2"))
    assert not caught.value.retryable and "every year only" in str(caught.value)
    assert ews.operations() == []


def test_a_series_cancelled_and_moved_meetings_are_occurrences_done_once(ews: FakeEws):
    april = datetime(2027, 4, 8, 14, 0, tzinfo=LONDON)  # the 4th meeting, in summer time
    moved = EventSpec(start=april + timedelta(days=1), end=april + timedelta(days=1, hours=3),
                      summary="Board", location="Room 2", recurrence_id=april)
    c = change(rrule="FREQ=MONTHLY;BYDAY=2TH;COUNT=6", moved=(moved,),
               exdates=(datetime(2027, 3, 11, 14, 0, tzinfo=LONDON),))
    t = ews.transport()
    parts = made(t, c)
    # made (ClerkDone one behind), its meetings cancelled and moved, then marked done
    assert ews.operations() == ["CreateItem", "DeleteItem", "UpdateItem", "UpdateItem"]
    assert prop(ews.calls("CreateItem")[0], "ClerkDone")[1] == "0"
    done = ews.calls("UpdateItem")[-1]
    assert done.xml.get("SendMeetingInvitationsOrCancellations") == "SendToNone"
    assert done.xpath("string(.//t:ExtendedProperty/t:Value)") == "1"
    delete = ews.last("DeleteItem")
    assert delete.xml.get("SendMeetingCancellations") == "SendToAllAndSaveCopy"
    occurrence = delete.find("m:ItemIds/t:OccurrenceItemId")
    assert (occurrence.get("RecurringMasterId"), occurrence.get("InstanceIndex")) == \
        (parts[0].item_id, "3")
    update = ews.calls("UpdateItem")[0]
    assert update.xml.get("SendMeetingInvitationsOrCancellations") == "SendToAllAndSaveCopy"
    assert update.find(".//t:OccurrenceItemId").get("InstanceIndex") == "4"
    assert update.xpath("string(.//t:SetItemField/t:CalendarItem/t:Start)") == \
        "2027-04-09T14:00:00+01:00"
    master = ews.items[parts[0].item_id]
    assert master.deleted == ["2027-03-11T14:00:00Z"]
    assert master.modified[4][2] == "2027-04-08T13:00:00Z"  # original start, in UTC
    ews.reset()
    parts = made(t, dataclasses.replace(c, revision=2), parts)  # new words, same times
    # no second cancellation; the moved meeting goes again (the server shows its times,
    # not its place, so a new place could not be told from none), then it is marked done
    assert ews.operations() == ["GetItem", "UpdateItem", "UpdateItem", "UpdateItem"]
    assert not ews.calls("UpdateItem")[0].xpath(
        ".//t:FieldURI[@FieldURI='calendar:Recurrence']")
    ews.reset()
    elsewhere = dataclasses.replace(moved, location="Room 3")  # the moved meeting's place
    made(t, dataclasses.replace(c, revision=3, scope="overrides", content=dataclasses.replace(
        c.content, events=(c.content.master, elsewhere))), parts)
    master_save, move, done = ews.calls("UpdateItem")
    assert master_save.xml.get("SendMeetingInvitationsOrCancellations") == "SendToNone"
    assert move.xpath("string(.//t:SetItemField/t:CalendarItem/t:Location)") == "Room 3"
    assert move.xml.get("SendMeetingInvitationsOrCancellations") == "SendToAllAndSaveCopy"
    assert not ews.calls("DeleteItem")


def test_a_series_given_a_new_time_has_its_cancelled_meetings_cancelled_again(ews: FakeEws):
    c = change(rrule="FREQ=MONTHLY;BYDAY=2TH;COUNT=6",
               exdates=(datetime(2027, 3, 11, 14, 0, tzinfo=LONDON),))
    t = ews.transport()
    parts = made(t, c)
    ews.reset()
    made(t, dataclasses.replace(c, revision=2, content=dataclasses.replace(
        c.content, events=(dataclasses.replace(c.content.master,
                                               end=START + timedelta(hours=2)),))), parts)
    # a new time on the master makes Exchange drop its exceptions: deleted again
    assert ews.operations() == ["GetItem", "UpdateItem", "DeleteItem", "UpdateItem"]
    assert ews.calls("UpdateItem")[0].xpath(".//t:FieldURI/@FieldURI") == [
        "item:Subject", "item:Body", "calendar:End", "calendar:Location",
        "calendar:EndTimeZone"]
    assert ews.items[parts[0].item_id].deleted == ["2027-03-11T14:00:00Z"]


def test_an_occurrence_deleted_already_is_no_error(ews: FakeEws):
    c = change(rrule="FREQ=MONTHLY;BYDAY=2TH;COUNT=6",
               exdates=(datetime(2027, 3, 11, 14, 0, tzinfo=LONDON),
                        datetime(2027, 5, 13, 14, 0, tzinfo=LONDON)))
    t = ews.transport()
    [part] = made(t, dataclasses.replace(c, content=dataclasses.replace(c.content, events=(
        dataclasses.replace(c.content.master, exdates=c.content.master.exdates[:1]),))))
    master = t._fetch(part.item_id)
    master.deleted_occurrences = None  # as if the server had not listed it
    ews.reset()
    t._exceptions(c, master)
    [delete] = ews.calls("DeleteItem")
    assert [o.get("InstanceIndex") for o in delete.findall("m:ItemIds/t:OccurrenceItemId")] \
        == ["3", "5"]
    assert sorted(ews.items[part.item_id].deleted) == ["2027-03-11T14:00:00Z",
                                                       "2027-05-13T13:00:00Z"]


def test_a_series_whose_cancellations_fail_is_kept_and_finished_next_time(ews: FakeEws):
    c = change(rrule="FREQ=MONTHLY;BYDAY=2TH;COUNT=6",
               exdates=(datetime(2027, 3, 11, 14, 0, tzinfo=LONDON),))
    t = ews.transport()
    ews.busy(2000, operation="DeleteItem")
    with pytest.raises(TransportError) as caught:
        made(t, c)
    assert caught.value.retryable and caught.value.retry_after == 2.0
    [part] = caught.value.parts  # made, so never made twice; a revision behind, so redone
    assert part.revision == 0 and part.item_id == ews.in_folder("calendar")[0].id
    ews.reset()
    made(t, c, caught.value.parts)
    # its content says revision 1 already: only the cancellation is left (nobody is
    # mailed twice), then it is marked done
    assert ews.operations() == ["GetItem", "DeleteItem", "UpdateItem"]
    assert len(ews.in_folder("calendar")) == 1 and len(ews.sent) == 2


# --- answers ------------------------------------------------------------------------------

def test_attendees_answers_are_read_in_one_getitem(ews: FakeEws):
    t = ews.transport()
    parts = made(t, change(invite=PEOPLE[:4]))
    parts = made(t, change(invite=[*PEOPLE[:4], PEOPLE[4]]), parts)
    for person, answer in zip(PEOPLE, ("Accept", "Decline", "Tentative", "NoResponseReceived",
                                       "Accept"), strict=False):
        ews.respond(next(p.item_id for p in parts if person.email in p.emails),
                    person.email, answer)
    ews.reset()
    answers = t.responses([p.item_id for p in parts])
    assert ews.operations() == ["GetItem"]
    assert len(ews.requests[0].findall("m:ItemIds/t:ItemId")) == 2
    assert answers == {
        parts[0].item_id: {PEOPLE[0].email: "ACCEPTED", PEOPLE[1].email: "DECLINED",
                           PEOPLE[2].email: "TENTATIVE"},
        parts[1].item_id: {PEOPLE[4].email: "ACCEPTED"}}
    assert t.responses([]) == {} and ews.operations() == ["GetItem"]


# --- messages -----------------------------------------------------------------------------

def test_a_message_with_an_attachment_is_one_createitem_sent_and_saved(ews: FakeEws):
    ews.transport().send(message(1, attachment=b"%PDF-1.7 agenda"))
    assert ews.operations() == ["CreateItem"]  # the attachment goes inline: no CreateAttachment
    create, item = created(ews, "sentitems", "Message")
    assert create.xml.get("MessageDisposition") == "SendAndSaveCopy"
    assert item.findtext("t:Subject", None, NS) == "Papers for the meeting (1)"
    assert "<p>Dear member</p>" in item.findtext("t:Body", "", NS)
    assert item.findtext("t:ToRecipients/t:Mailbox/t:EmailAddress", None, NS) == \
        "member1@council.example"
    [attachment] = item.findall("t:Attachments/t:FileAttachment", NS)
    assert attachment.findtext("t:Name", None, NS) == "agenda.pdf"
    assert attachment.findtext("t:ContentType", None, NS) == "application/pdf"
    assert base64.b64decode(attachment.findtext("t:Content", "", NS)) == b"%PDF-1.7 agenda"
    assert prop(create, "ClerkKey", "t:Message") == (
        {"PropertySetId": PROPERTY_SET, "PropertyName": "ClerkKey", "PropertyType": "String"},
        "qa-leads/2027-q1/pack/member1")
    assert len(ews.in_folder("sentitems")) == 1
    assert ews.sent_messages() == [ews_fake.Sent("member1@council.example",
                                                 "Papers for the meeting (1)",
                                                 "qa-leads/2027-q1/pack/member1")]


def test_250_messages_are_three_createitem_requests(ews: FakeEws):
    ews.bad_recipients.add("member7@council.example")
    outcomes = ews.transport().send_many([message(n) for n in range(250)])
    assert ews.operations() == ["CreateItem"] * 3
    assert [len(c.findall("m:Items/t:Message")) for c in ews.requests] == [100, 100, 50]
    assert [n for n, o in enumerate(outcomes) if o is not None] == [7]
    assert not outcomes[7].retryable  # type: ignore[union-attr]
    assert "correct it in the roster" in str(outcomes[7])


def test_large_attachments_split_the_batch_into_smaller_requests(ews: FakeEws):
    paper = b"%PDF" + b"x" * (6 * 1024 * 1024)  # 8 MiB once in base64
    outcomes = ews.transport().send_many([message(n, attachment=paper) for n in range(5)])
    assert outcomes == [None] * 5
    assert [len(c.findall("m:Items/t:Message")) for c in ews.requests] == [2, 2, 1]


def test_a_batch_refused_whole_fails_its_messages_and_those_after(ews: FakeEws):
    ews.busy(60000, operation="CreateItem", after=1)
    outcomes = ews.transport().send_many([message(n) for n in range(150)])
    assert ews.operations() == ["CreateItem"] * 2
    assert outcomes[:100] == [None] * 100
    assert all(o is not None and o.retryable and o.retry_after == 60.0 for o in outcomes[100:])


# --- throttling and sign-in ----------------------------------------------------------------

def test_a_busy_server_is_a_retryable_error_with_its_back_off(ews: FakeEws):
    ews.busy(back_off_ms=297749)
    with pytest.raises(TransportError) as caught:
        ews.transport().send(message())
    assert caught.value.retryable and caught.value.retry_after == pytest.approx(297.749)
    assert "ErrorServerBusy" in str(caught.value)


def test_a_back_off_longer_than_max_wait_goes_back_to_the_ledger_at_once(
        ews: FakeEws, monkeypatch: pytest.MonkeyPatch):
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    ews.busy(back_off_ms=30000)
    with pytest.raises(TransportError) as caught:
        ews.transport(max_wait=10.0).send(message())
    assert caught.value.retryable and caught.value.retry_after == 30.0
    assert slept == [] and ews.operations() == ["CreateItem"]


def test_a_short_back_off_is_waited_in_place(ews: FakeEws, monkeypatch: pytest.MonkeyPatch):
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)  # exchangelib sleeps with time.sleep
    ews.busy(back_off_ms=500)
    ews.transport(max_wait=10.0).send(message())
    assert ews.operations() == ["CreateItem"] * 2 and len(ews.in_folder("sentitems")) == 1
    assert len(slept) == 1 and 0 < slept[0] <= 0.5


def test_a_broken_connection_is_retryable(ews: FakeEws):
    ews.drop()
    with pytest.raises(TransportError) as caught:
        made(ews.transport(), change())
    assert caught.value.retryable and "Connection reset by peer" in str(caught.value)
    assert caught.value.parts == []


@pytest.mark.parametrize("max_wait", [0.0, 10.0])
def test_refused_credentials_are_not_retried_and_say_what_to_fix(
        ews: FakeEws, max_wait: float, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(time, "sleep", lambda s: pytest.fail("waited on a 401"))
    ews.http(401)
    with pytest.raises(TransportError) as caught:
        ews.transport(max_wait=max_wait).send(message())
    assert not caught.value.retryable
    assert "check the variables named by username_env and password_env" in str(caught.value)
    assert ews.operations() == ["CreateItem"]


def test_missing_credentials_fail_before_any_request(ews: FakeEws,
                                                     monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("CLERK_EWS_PASSWORD", raising=False)
    t = ews.transport(password_file="", password_env="CLERK_EWS_PASSWORD")
    with pytest.raises(TransportError) as caught:
        t.send(message())
    assert not caught.value.retryable
    assert "set CLERK_EWS_PASSWORD (or password_file)" in str(caught.value)
    assert ews.operations() == []


@pytest.mark.parametrize(("code", "advice"), [
    ("ErrorAccessDenied", "Add-MailboxPermission -Identity organiser@example.org "
                          "-User clerk-service -AccessRights FullAccess"),
    ("ErrorNonExistentMailbox", "set mailbox to the organiser's primary SMTP address"),
    ("ErrorImpersonateUserDenied", "ApplicationImpersonation"),
])
def test_a_permission_error_fails_and_names_the_fix(ews: FakeEws, code: str, advice: str):
    ews.fail(code)
    with pytest.raises(TransportError) as caught:
        made(ews.transport(), change())
    assert not caught.value.retryable and code in str(caught.value)
    assert advice in str(caught.value)
    assert caught.value.parts == []


def oauth(ews: FakeEws, mocker: Any, monkeypatch: pytest.MonkeyPatch,
          lifetime: int = 3600) -> tuple[ExchangeTransport, Any]:
    monkeypatch.setenv("CLERK_TEST_EWS_APP_SECRET", "app-secret")
    issued = iter(range(1, 100))
    token = mocker.post(
        TOKEN, text=lambda request, context: json.dumps({
            "token_type": "Bearer", "expires_in": lifetime,
            "access_token": f"token-{next(issued)}"}))
    t = ews.transport(auth="oauth", client_id="app-id", tenant_id="contoso-tenant",
                      client_secret_env="CLERK_TEST_EWS_APP_SECRET")
    return t, token


def test_an_oauth_token_refused_is_fetched_again_once(ews: FakeEws,
                                                      monkeypatch: pytest.MonkeyPatch):
    import requests_mock

    with requests_mock.Mocker() as mocker:
        ews.install(mocker)
        t, token = oauth(ews, mocker, monkeypatch)
        ews.http(401)
        assert t.lookup("<m@x>", "some-key") is False
    assert ews.operations() == ["FindItem", "FindItem"] and token.call_count == 2
    assert [c.headers["Authorization"] for c in ews.requests] == ["Bearer token-1",
                                                                 "Bearer token-2"]
    # app-only OAuth acts as the organiser through impersonation
    assert ews.requests[1].envelope.xpath(
        "string(//t:ExchangeImpersonation//t:PrimarySmtpAddress)", namespaces=NS) == MAILBOX


def test_an_oauth_token_that_expired_is_renewed_before_the_request(
        ews: FakeEws, monkeypatch: pytest.MonkeyPatch):
    import requests_mock

    with requests_mock.Mocker() as mocker:
        ews.install(mocker)
        t, token = oauth(ews, mocker, monkeypatch)
        t.lookup("<m@x>", "some-key")
        for session in t.account.protocol._session_pool.queue:  # an hour later
            session.token["expires_at"] = time.time() - 10
            session._client._expires_at = time.time() - 10
        t.lookup("<m@x>", "some-key")
    assert token.call_count == 2
    assert [c.headers["Authorization"] for c in ews.requests] == ["Bearer token-1",
                                                                 "Bearer token-2"]


def test_a_wrong_oauth_secret_fails_without_retrying_and_says_what_to_fix(
        ews: FakeEws, monkeypatch: pytest.MonkeyPatch):
    import requests_mock

    with requests_mock.Mocker() as mocker:
        ews.install(mocker)
        t, _ = oauth(ews, mocker, monkeypatch)
        mocker.post(TOKEN, status_code=401, json={
            "error": "invalid_client",
            "error_description": "AADSTS7000215: Invalid client secret provided."})
        with pytest.raises(TransportError) as caught:
            t.send(message())
    assert not caught.value.retryable and "AADSTS7000215" in str(caught.value)
    assert "check client_id, tenant_id and the client secret" in str(caught.value)
    assert ews.operations() == []


# --- recovery ------------------------------------------------------------------------------

def test_the_items_of_a_meeting_are_found_by_their_uid_after_a_crash(ews: FakeEws):
    t = ews.transport()
    newcomer = Attendee("key-new", "Ada Byron", "ada.byron@council.example")
    parts = made(t, change(invite=PEOPLE[:3]))
    parts = made(t, change(invite=[*PEOPLE[:3], newcomer]), parts)
    ews.reset()
    found = ews.transport().find(UID)  # a new process knows nothing
    assert ews.operations() == ["FindItem", "GetItem"]
    find = ews.requests[0]
    assert find.find("m:ParentFolderIds/t:DistinguishedFolderId").get("Id") == "calendar"
    [equal] = find.findall("m:Restriction/t:IsEqualTo")
    assert dict(equal.find("t:ExtendedFieldURI", NS).attrib) == {
        "PropertySetId": PROPERTY_SET, "PropertyName": "ClerkUid", "PropertyType": "String"}
    assert equal.find("t:FieldURIOrConstant/t:Constant", NS).get("Value") == UID
    assert [(p.part, p.item_id, p.attendees, p.revision, p.cancelled) for p in found] == \
        [(p.part, p.item_id, p.attendees, p.revision, p.cancelled) for p in parts]
    ews.reset()
    assert t.find("other.uid@network.example") == [] and ews.operations() == ["FindItem"]


def test_a_message_in_doubt_is_looked_up_in_sent_items_by_its_key(ews: FakeEws):
    t = ews.transport()
    sent, never = message(1), message(2)
    t.send(sent)
    ews.reset()
    assert t.lookup(sent.message_id, sent.key) is True
    assert t.lookup(never.message_id, never.key) is False
    assert ews.operations() == ["FindItem", "FindItem"]
    look = ews.requests[0]
    assert look.find("m:ParentFolderIds/t:DistinguishedFolderId").get("Id") == "sentitems"
    assert look.find("m:Restriction/t:IsEqualTo/t:ExtendedFieldURI").get("PropertyName") == \
        "ClerkKey"
    assert look.find(".//t:Constant").get("Value") == sent.key
    assert t.lookup("<no-key@x>") is None and len(ews.requests) == 2


def test_the_executor_invites_and_recovers_through_exchange(
        ews: FakeEws, config_dir: Path, store: Store, monkeypatch: pytest.MonkeyPatch):
    (config_dir / "clerk.toml").write_text(
        '[clerk]\ntransport = "exchange"\n\n[transport]\n'
        f'server = "{URL}"\nmailbox = "qa-leads@network.example"\nauth = "basic"\n',
        encoding="utf-8")
    config = config_mod.load(config_dir)
    assert config.settings.transport_options["max_wait"] == 10.0

    def crash(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt  # the process dies after Exchange made the meeting

    def make() -> Executor:
        return Executor(config, store, ews.transport(mailbox="qa-leads@network.example"))

    with monkeypatch.context() as m:
        m.setattr(store, "save_parts", crash)
        with pytest.raises(KeyboardInterrupt):
            make().tick(GO_LIVE)
    [create] = ews.calls("CreateItem")
    assert len(create.findall(".//t:RequiredAttendees/t:Attendee")) == 21
    result = make().tick(GO_LIVE + timedelta(minutes=1))
    assert result.recovered == 21 and len(ews.calls("CreateItem")) == 1  # not made twice
    assert "sending" not in store.counts()
    assert ews.calls("FindItem")[0].find(".//t:Constant").get("Value") == \
        "qa-leads.2027-q1@network.example"


# --- the mailbox ------------------------------------------------------------------------------

def test_the_inbox_is_read_oldest_first_as_mime_and_filed_never_deleted(ews: FakeEws):
    late = ews.deliver(b"Subject: late\r\n\r\nDONE\r\n",
                       received=datetime(2027, 1, 10, 12, 0, tzinfo=UTC))
    early = ews.deliver(b"Subject: early\r\n\r\n?\r\n",
                        received=datetime(2027, 1, 10, 8, 0, tzinfo=UTC))
    box = ews.mailbox()
    got = list(box.messages())
    assert got == [(early, b"Subject: early\r\n\r\n?\r\n"),
                   (late, b"Subject: late\r\n\r\nDONE\r\n")]
    assert ews.operations() == ["FindItem", "GetItem"]
    find = ews.requests[0]
    assert find.find("m:IndexedPageItemView").get("MaxEntriesReturned") == "200"
    assert find.find("m:SortOrder/t:FieldOrder").get("Order") == "Ascending"
    ews.reset()
    box.file(early, True)
    box.file(late, False)
    assert ews.operations() == ["FindFolder", "CreateFolder", "FindFolder", "CreateFolder",
                                "MoveItem", "FindFolder", "CreateFolder", "MoveItem"]
    names = {f.id: f for f in ews.folders.values()}
    assert sorted((names[f.parent].name, f.name) for f in ews.folders.values()
                  if f.name in ("clerk", "processed", "unprocessed")) == [
        ("Top of Information Store", "clerk"), ("clerk", "processed"), ("clerk", "unprocessed")]
    assert [len(ews.in_folder(f.id)) for f in ews.folders.values()
            if f.name in ("processed", "unprocessed")] == [1, 1]
    assert ews.in_folder("inbox") == [] and "DeleteItem" not in ews.operations()
    box.close()
    ews.deliver(b"Subject: next\r\n\r\n.\r\n")
    box = ews.mailbox(batch=1)
    [(uid, _)] = list(box.messages())
    ews.reset()
    box.file(uid, True)  # the folders exist now: found, not made again
    assert ews.operations() == ["FindFolder", "FindFolder", "MoveItem"]


def test_the_mailbox_finds_a_sent_message_by_its_message_id(ews: FakeEws):
    assert ews.mailbox().find_sent("<pack.1@network.example>") is False
    [equal] = ews.requests[0].findall("m:Restriction/t:IsEqualTo")
    assert equal.find("t:FieldURI", NS).get("FieldURI") == "message:InternetMessageId"
    assert equal.find(".//t:Constant", NS).get("Value") == "<pack.1@network.example>"


def test_the_mailbox_says_what_failed(ews: FakeEws):
    ews.no_mailbox = True
    with pytest.raises(TransportError) as caught:
        list(ews.mailbox().messages())
    assert "set mailbox to the organiser's primary SMTP address" in str(caught.value)


# --- doctor --------------------------------------------------------------------------------

def test_doctor_checks_sign_in_mailbox_and_rights_in_one_request(ews: FakeEws):
    checks = ews.transport().doctor()
    assert all(ok for ok, _, _ in checks) and ews.operations() == ["GetFolder"]
    assert [d.get("Id") for d in ews.requests[0].findall(
        "m:FolderIds/t:DistinguishedFolderId")] == ["inbox", "calendar", "sentitems"]
    assert ews.requests[0].find(".//t:FieldURI").get("FieldURI") == "folder:EffectiveRights"
    ews.folders["calendar"].rights = dict(ews_fake.READ_ONLY)
    *_, (ok, what, fix), _ = ews.transport().doctor()
    assert not ok and what == "read, create_contents, modify, delete in the calendar"
    assert fix.startswith("clerk-service lacks create_contents, modify, delete: give "
                          "clerk-service Full Access on the mailbox")
    ews.http(401)
    assert [ok for ok, _, _ in ews.transport().doctor()] == [True, False]
    first, = ews.transport(username_file="", username_env="CLERK_TEST_EWS_NOBODY").doctor()
    assert first == (False, "credentials for basic sign-in",
                     "set CLERK_TEST_EWS_NOBODY (or username_file)")


# --- a real server (opt-in) ------------------------------------------------------------------

LIVE = os.environ.get("CLERK_TEST_EWS", "")


@pytest.mark.skipif(not LIVE, reason="set CLERK_TEST_EWS to run against a real Exchange")
class TestLiveExchange:
    """Against a real Exchange Server. Variables: CLERK_TEST_EWS (the EWS URL or host),
    CLERK_TEST_EWS_MAILBOX (the organiser's mailbox), CLERK_TEST_EWS_ATTENDEE (a mailbox
    invited to a meeting tomorrow week, then cancelled), CLERK_TEST_EWS_AUTH (ntlm, basic;
    default ntlm), CLERK_TEST_EWS_VERSION (default Exchange2019), and the transport's own
    CLERK_EWS_USERNAME and CLERK_EWS_PASSWORD."""

    def transport(self) -> ExchangeTransport:
        return ExchangeTransport({
            "server": LIVE, "mailbox": os.environ["CLERK_TEST_EWS_MAILBOX"],
            "auth": os.environ.get("CLERK_TEST_EWS_AUTH", "ntlm"),
            "version": os.environ.get("CLERK_TEST_EWS_VERSION", "Exchange2019"),
            "username_env": "CLERK_EWS_USERNAME", "password_env": "CLERK_EWS_PASSWORD",
            "max_wait": 10.0, "timeout": 60.0, "verify": True, "cafile": ""})

    def test_a_meeting_is_made_read_back_and_cancelled(self):
        t = self.transport()
        assert all(ok for ok, _, _ in t.doctor()), t.doctor()
        day = date.today() + timedelta(days=8)
        uid = f"clerk-live-test.{time.time_ns()}@clerk.invalid"
        attendee = Attendee("live", "Clerk test", os.environ["CLERK_TEST_EWS_ATTENDEE"])
        c = change(uid=uid, invite=[attendee], hours=1,
                   start=datetime(day.year, day.month, day.day, 10, 0, tzinfo=LONDON))
        try:
            parts = made(t, c)
            [found] = t.find(uid)
            assert found.emails == {attendee.email.lower()} and found.revision == 1
            assert t.responses([found.item_id]) == {found.item_id: {}}
        finally:
            gone = made(t, dataclasses.replace(c, cancelled=True, invite=()), t.find(uid))
            t.close()
        assert parts and all(p.cancelled for p in gone)
        assert not [p for p in self.transport().find(uid) if not p.cancelled]


def test_cancelling_one_meeting_of_a_series_mails_only_that_cancellation(ews: FakeEws):
    c = change(rrule="FREQ=MONTHLY;BYDAY=2TH;COUNT=6")
    t = ews.transport()
    parts = made(t, c)
    ews.reset()
    made(t, dataclasses.replace(c, revision=2, scope="occurrences", content=dataclasses.replace(
        c.content, events=(dataclasses.replace(
            c.content.master, exdates=(datetime(2027, 3, 11, 14, 0, tzinfo=LONDON),)),))),
        parts)
    assert ews.operations() == ["GetItem", "UpdateItem", "DeleteItem", "UpdateItem"]
    first, done = ews.calls("UpdateItem")
    assert first.xml.get("SendMeetingInvitationsOrCancellations") == "SendToNone"
    assert not first.xpath(".//t:FieldURI")  # the master's subject, body, place untouched
    assert ews.last("DeleteItem").xml.get("SendMeetingCancellations") == "SendToAllAndSaveCopy"
    assert done.xml.get("SendMeetingInvitationsOrCancellations") == "SendToNone"


def test_a_moved_meeting_moved_back_goes_back_to_its_usual_time(ews: FakeEws):
    april = datetime(2027, 4, 8, 14, 0, tzinfo=LONDON)
    moved = EventSpec(start=april + timedelta(days=1), end=april + timedelta(days=1, hours=3),
                      summary="Board", location="Room 2", recurrence_id=april)
    c = change(rrule="FREQ=MONTHLY;BYDAY=2TH;COUNT=6", moved=(moved,))
    t = ews.transport()
    parts = made(t, c)
    ews.reset()
    usual = dataclasses.replace(c, revision=2, content=dataclasses.replace(
        c.content, events=(c.content.master,)))
    parts = made(t, usual, parts)
    back = next(u for u in ews.calls("UpdateItem") if u.find(".//t:OccurrenceItemId") is not None)
    assert back.find(".//t:OccurrenceItemId").get("InstanceIndex") == "4"
    assert back.xpath("string(.//t:SetItemField/t:CalendarItem/t:Start)") == \
        "2027-04-08T14:00:00+01:00"
    ews.reset()  # another meeting cancelled later: the one moved back is not sent again
    made(t, dataclasses.replace(usual, revision=3, scope="occurrences", content=dataclasses.replace(
        c.content, events=(dataclasses.replace(
            c.content.master, exdates=(datetime(2027, 3, 11, 14, 0, tzinfo=LONDON),)),))),
        parts)
    assert not [u for u in ews.calls("UpdateItem") if u.find(".//t:OccurrenceItemId")
                is not None]
