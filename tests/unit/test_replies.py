"""Tests for bot.replies: what an incoming message is.

Messages are built with the email package and icalendar the way Outlook, Thunderbird and
Gmail send them; the Postfix DSN and the Exchange REPLY are realistic samples under
tests/data/replies/.  Hostile input must come back as ``unusable``, never as an exception.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar, Event, vCalAddress

from bot.domain.tokens import check_token, make_token, tag_subject
from bot.listen.replies import Answer, Incoming, Rsvp, read

DATA = Path(__file__).resolve().parent.parent / "data" / "replies"
CLERK = "clerk@network.example"
INVITE_ID = "<clerk.5d41402abc4b2a76b9719d911017c592@network.example>"
LONDON = ZoneInfo("Europe/London")


def message(body: str = "", *, sender: str = "Ann Smith <Ann.Smith@Example.org>",
            subject: str = "Re: Information requested [#mfrggzdfmz]",
            **headers: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = f"Network Clerk <{CLERK}>"
    msg["Subject"] = subject
    msg["Message-ID"] = "<reply.1@example.org>"
    msg["In-Reply-To"] = INVITE_ID
    msg["References"] = INVITE_ID
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    if body:
        msg.set_content(body)
    return msg


def reply_ics(partstat: str, *, method: str | None = "REPLY", comment: str | None = None,
              rid: datetime | None = None, attendee: str = "mailto:ann.smith@example.org",
              prodid: str = "-//Google Inc//Google Calendar 70.9054//EN") -> bytes:
    cal = Calendar()
    cal.add("prodid", prodid)
    cal.add("version", "2.0")
    if method:
        cal.add("method", method)
    event = Event()
    event.add("uid", "network.june@network.example")
    event.add("dtstart", datetime(2027, 6, 15, 10, tzinfo=LONDON))
    event.add("dtstamp", datetime(2027, 6, 1, 8, 30, tzinfo=UTC))
    event.add("sequence", 2)
    event.add("organizer", vCalAddress(f"mailto:{CLERK}"))
    who = vCalAddress(attendee)
    who.params["PARTSTAT"] = partstat
    who.params["CN"] = "Ann Smith"
    event.add("attendee", who)
    if comment is not None:
        event.add("comment", comment)
    if rid is not None:
        event.add("recurrence-id", rid)
    cal.add_component(event)
    return bytes(cal.to_ical())


def with_calendar(ics: bytes, *, inline: bool = True, attached: bool = True,
                  method: str | None = "REPLY", **headers: str) -> EmailMessage:
    msg = message("Ann Smith has accepted this invitation.", subject="Accepted: Network",
                  **headers)
    if inline:
        params = {"method": method} if method else {}
        msg.add_alternative(ics.decode(), subtype="calendar", params=params)
    if attached:
        msg.add_attachment(ics, maintype="application", subtype="ics", filename="invite.ics")
    return msg


def answer_of(body: str, **headers: str) -> Answer:
    got = read(message(body, **headers).as_bytes())
    assert got.kind == "answer", got.reason
    assert got.answer is not None
    return got.answer


# -- RSVPs -----------------------------------------------------------------------------------


def test_outlook_accept_with_windows_zone_inside_alternative() -> None:
    ics = (DATA / "outlook-accept.ics").read_bytes()
    got = read(with_calendar(ics, attached=False, X_Auto_Response_Suppress="RN, NRN, OOF"))
    assert got.kind == "rsvp", got.reason
    assert got.rsvps == (Rsvp(uid="network.june@network.example", recurrence_id=None,
                              attendee="ann.smith@example.org", partstat="ACCEPTED",
                              comment="", sequence=3,
                              dtstamp=datetime(2027, 6, 1, 8, 30, 12, tzinfo=UTC),
                              start="2027-06-15T09:00:00+00:00"),)  # 10:00 in summer time
    assert got.in_reply_to == INVITE_ID and got.references == (INVITE_ID,)
    assert got.sender == "ann.smith@example.org" and got.sender_name == "Ann Smith"


def test_outlook_occurrence_in_a_windows_zone_is_given_in_utc() -> None:
    ics = (DATA / "outlook-accept.ics").read_bytes().replace(
        b"UID:", b"RECURRENCE-ID;TZID=GMT Standard Time:20270615T100000\r\nUID:")
    got = read(with_calendar(ics, attached=False).as_bytes())
    assert [r.recurrence_id for r in got.rsvps] == ["2027-06-15T09:00:00+00:00"]  # BST


def test_windows_zone_without_vtimezone_still_parses() -> None:
    ics = reply_ics("DECLINED").replace(
        b"UID:", b"RECURRENCE-ID;TZID=W. Europe Standard Time:20270115T100000\r\nUID:")
    got = read(with_calendar(ics, attached=False))
    assert [r.recurrence_id for r in got.rsvps] == ["2027-01-15T09:00:00+00:00"]


def test_apple_calendar_accept_names_the_attendee_by_its_email_parameter() -> None:
    # macOS Calendar through Apple Mail: the calendar part base64 in multipart/alternative,
    # the ATTENDEE a urn:uuid with the address in EMAIL="…", quoted
    got = read((DATA / "apple-accept.eml").read_bytes())
    assert got.kind == "rsvp", got.reason
    assert [(r.attendee, r.partstat, r.sequence, r.start) for r in got.rsvps] == [
        ("ann.smith@example.org", "ACCEPTED", 2, "2027-06-15T09:00:00+00:00")]
    assert got.sender == "ann.smith@example.org"


def test_an_attendee_without_an_address_is_not_an_answer() -> None:
    raw = (DATA / "apple-accept.eml").read_bytes()
    import base64

    head, _, rest = raw.partition(b"name=iCal-20270601-093012.ics\r\n\r\n")
    body, _, tail = rest.partition(b"\r\n--Apple-Mail")
    ics = base64.b64decode(body).replace(b'EMAIL="ann.smith@example.org";', b"")
    again = head + b"name=iCal-20270601-093012.ics\r\n\r\n" + base64.encodebytes(ics) \
        + b"\r\n--Apple-Mail" + tail
    got = read(again)
    assert got.rsvps == () and got.kind != "rsvp"  # nobody's answer, not a stranger's


def test_thunderbird_application_ics_without_method_parameter() -> None:
    ics = reply_ics("ACCEPTED", prodid="-//Mozilla.org/NONSGML Mozilla Calendar V1.1//EN")
    got = read(with_calendar(ics, inline=False).as_bytes())
    assert got.kind == "rsvp"
    assert [(r.attendee, r.partstat, r.sequence) for r in got.rsvps] == [
        ("ann.smith@example.org", "ACCEPTED", 2)]


def test_gmail_decline_with_comment_inline_and_attached_counts_once() -> None:
    got = read(with_calendar(reply_ics("DECLINED", comment="Away that week, sorry")))
    assert got.kind == "rsvp"
    (rsvp,) = got.rsvps
    assert (rsvp.partstat, rsvp.comment) == ("DECLINED", "Away that week, sorry")
    assert rsvp.dtstamp == datetime(2027, 6, 1, 8, 30, tzinfo=UTC)


def test_tentative_and_unknown_partstat() -> None:
    assert read(with_calendar(reply_ics("tentative"))).rsvps[0].partstat == "TENTATIVE"
    # RFC 5545 3.2.12: an x-name PARTSTAT is treated as NEEDS-ACTION
    assert read(with_calendar(reply_ics("X-MAYBE"))).rsvps[0].partstat == "NEEDS-ACTION"


def test_reply_for_one_occurrence() -> None:
    ics = reply_ics("DECLINED", rid=datetime(2027, 6, 15, 10, tzinfo=LONDON))
    assert read(with_calendar(ics)).rsvps[0].recurrence_id == "2027-06-15T09:00:00+00:00"


def test_auto_decline_from_a_calendar_is_an_rsvp() -> None:
    """Google's out-of-office events decline for the attendee, labelled Auto-Submitted."""
    ics = reply_ics("DECLINED", comment="Declined because I am out of office")
    got = read(with_calendar(ics, Auto_Submitted="auto-generated"))
    assert got.kind == "rsvp" and got.rsvps[0].partstat == "DECLINED"


def test_reply_for_any_uid_is_read() -> None:
    ics = reply_ics("ACCEPTED").replace(b"network.june@network.example", b"no-such@uid")
    assert read(with_calendar(ics)).rsvps[0].uid == "no-such@uid"


def test_malformed_calendar_is_unusable() -> None:
    broken = b"BEGIN:VCALENDAR\r\nMETHOD:REPLY\r\nBEGIN:VEVENT\r\nUID:x\r\n"
    got = read(with_calendar(broken, attached=False))
    assert got.kind == "unusable" and "calendar" in got.reason
    garbage = b"this is not a calendar\r\n\x00\xff"
    got = read(with_calendar(garbage, inline=False))
    assert got.kind == "unusable" and "calendar" in got.reason


def test_broken_recurrence_id_is_unusable() -> None:
    ics = reply_ics("ACCEPTED").replace(b"UID:", b"RECURRENCE-ID:next tuesday\r\nUID:")
    got = read(with_calendar(ics))
    assert got.kind == "unusable" and "RECURRENCE-ID" in got.reason


def test_request_sent_to_the_organiser_is_unusable() -> None:
    got = read(with_calendar(reply_ics("NEEDS-ACTION", method="REQUEST"), method="REQUEST"))
    assert got.kind == "unusable" and "REQUEST" in got.reason


# -- bounces ---------------------------------------------------------------------------------

POSTFIX = (DATA / "postfix-dsn.eml").read_bytes()


def test_postfix_dsn() -> None:
    got = read(POSTFIX)
    assert got.kind == "bounce" and got.bounce is not None
    assert got.bounce.recipients == ("nobody@network.example", "gone@example.org")
    assert got.bounce.status == "5.1.1"
    assert got.bounce.diagnostic == 'unknown user: "nobody"'
    assert got.bounce.original_message_id == INVITE_ID
    assert got.bounce.permanent and not got.bounce.delayed


def test_postfix_dsn_as_a_parsed_message() -> None:
    msg = BytesParser(policy=policy.default).parsebytes(POSTFIX)
    assert isinstance(msg, EmailMessage)
    assert read(msg).bounce == read(POSTFIX).bounce


def dsn(action: str, status: str, returned: str) -> bytes:
    text = POSTFIX.decode()
    head, _, _ = text.partition("Final-Recipient: rfc822; nobody")
    _, _, tail = text.partition("--4Xk2Qm0Tz9z9sWn.1799748002/mail.network.example\r\n"
                                "Content-Description: Undelivered Message Headers")
    block = (f"Final-Recipient: rfc822; gone@example.org\r\nAction: {action}\r\n"
             f"Status: {status}\r\nDiagnostic-Code: smtp; 451 4.4.1 connection timed out\r\n"
             "    (in reply to end of DATA command)\r\n\r\n")
    part = ("--4Xk2Qm0Tz9z9sWn.1799748002/mail.network.example\r\n"
            f"Content-Type: {returned}\r\n\r\n")
    return (head + block + part + tail.partition("\r\n\r\n")[2]).encode()


def test_postfix_delayed_mail_and_returned_message() -> None:
    got = read(dsn("delayed", "4.4.1", "message/rfc822"))
    assert got.kind == "bounce" and got.bounce is not None
    assert got.bounce.recipients == ("gone@example.org",)
    assert (got.bounce.delayed, got.bounce.permanent) == (True, False)
    assert got.bounce.diagnostic == ("451 4.4.1 connection timed out (in reply to end of "
                                     "DATA command)")
    assert got.bounce.original_message_id == INVITE_ID


def test_failed_after_retries_is_not_permanent() -> None:
    got = read(dsn("failed", "4.4.1", "text/rfc822-headers"))
    assert got.bounce is not None and not got.bounce.permanent and not got.bounce.delayed


def test_success_notification_is_not_a_bounce() -> None:
    assert read(dsn("delivered", "2.0.0", "text/rfc822-headers")).kind == "auto_reply"


def test_plain_text_bounce_is_unusable() -> None:
    msg = message("I'm sorry to have to inform you that your message could not be delivered.",
                  sender="MAILER-DAEMON@mx.example.org",
                  subject="Undelivered Mail Returned to Sender", Auto_Submitted="auto-replied")
    got = read(msg)
    assert got.kind == "unusable" and "bounce" in got.reason


# -- automatic replies -----------------------------------------------------------------------


@pytest.mark.parametrize("headers", [
    {"Auto_Submitted": "auto-replied"},
    {"Auto_Submitted": "auto-generated; owner-email=\"x@y\""},
    {"X_Autoreply": "yes"},
    {"X_Autorespond": "yes"},
    {"Precedence": "bulk"},
    {"Precedence": "auto_reply"},
    {"Return_Path": "<>"},
    {"subject": "Automatic reply: Information requested [#mfrggzdfmz]",
     "X_MS_Exchange_Inbox_Rules_Loop": "ann.smith@example.org",
     "X_Auto_Response_Suppress": "All"},
    {"X_MS_Exchange_Generated_Message_Source": "Mailbox Rules Agent"},
    {"subject": "Out of Office: Information requested"},
    {"subject": "AUTO: Ann Smith is out of the office (returning 20/01/2027)"},
])
def test_out_of_office_is_never_an_answer(headers: dict[str, str]) -> None:
    got = read(message("DONE\n\nI am out of the office until Monday.", **headers))
    assert got.kind == "auto_reply" and got.answer is None and got.reason


def test_read_receipt_is_not_an_answer() -> None:
    msg = message("Your message was read on Tuesday, 12 January 2027 10:05:00 (UTC).",
                  subject="Read: Information requested")
    msg.make_mixed()
    msg.add_attachment(b"Reporting-UA: example.org; Microsoft Outlook\r\n"
                       b"Final-Recipient: rfc822;ann.smith@example.org\r\n"
                       b"Disposition: automatic-action/MDN-sent-automatically; displayed\r\n",
                       maintype="message", subtype="disposition-notification")
    msg.replace_header("Content-Type", 'multipart/report; report-type="disposition-notification"'
                       f'; boundary="{msg.get_boundary()}"')
    got = read(msg.as_bytes())
    assert got.kind == "auto_reply" and "disposition-notification" in got.reason


def test_auto_response_suppress_alone_is_not_an_auto_reply() -> None:
    got = read(message("DONE", X_Auto_Response_Suppress="All", Auto_Submitted="no"))
    assert got.kind == "answer"


# -- answers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "command"), [
    ("DONE", "DONE"),
    ("done, thanks\n\nAnn", "DONE"),
    ("*Done.*", "DONE"),
    ("Not done yet, sorry", None),
    ("Nil return from Kent", "NIL"),
    ("We have a nil return this quarter.", "NIL"),
    ("Thanks for the reminder", None),
])
def test_simple_commands(body: str, command: str | None) -> None:
    assert answer_of(body).command == command


def test_new_date() -> None:
    got = answer_of("NEW DATE 2027-05-01\nThe auditor is away until then.")
    assert (got.command, got.date) == ("NEW DATE", date(2027, 5, 1))
    assert answer_of("new date: 1 May 2027").date == date(2027, 5, 1)
    assert answer_of("New date May 1, 2027 please").date == date(2027, 5, 1)


@pytest.mark.parametrize("when", ["next week", "2027-02-30", "01/05/2027", ""])
def test_new_date_that_is_not_a_date_is_invalid(when: str) -> None:
    got = answer_of(f"NEW DATE {when}")
    assert got.command == "INVALID" and got.date is None and "date" in got.reason


def test_update_and_agenda() -> None:
    got = answer_of("UPDATE waiting for the auditor")
    assert (got.command, got.argument) == ("UPDATE", "waiting for the auditor")
    got = answer_of("AGENDA: LADO audit tools")
    assert (got.command, got.argument) == ("AGENDA", "LADO audit tools")
    got = answer_of("Update\nThe figures are with finance.")
    assert (got.command, got.argument) == ("UPDATE", "The figures are with finance.")
    assert answer_of("AGENDA:").command == "INVALID"
    assert answer_of("Updated the spreadsheet").command is None


def test_outlook_quote_below_the_command_does_not_count() -> None:
    body = ("UPDATE draft is with the chair\r\n\r\nAnn\r\n\r\n"
            "-----Original Message-----\r\n"
            f"From: Network Clerk <{CLERK}>\r\n"
            "Sent: Tuesday, January 12, 2027 10:00 AM\r\n"
            "To: Ann Smith <ann.smith@example.org>\r\n"
            "Subject: Information requested [#mfrggzdfmz]\r\n\r\n"
            "DONE\r\nReply DONE when the report is filed.\r\n")
    got = answer_of(body)
    assert (got.command, got.argument) == ("UPDATE", "draft is with the chair")
    assert got.text == "UPDATE draft is with the chair\n\nAnn"


def test_quoted_replies_never_give_the_command() -> None:
    outlook_web = ("Thanks, will do\n\n________________________________\n"
                   f"From: Network Clerk <{CLERK}>\nSent: 12 January 2027 10:00\n"
                   "Subject: Information requested\n\nDONE\n")
    gmail = ("Working on it\n\nOn Tue, 12 Jan 2027 at 10:00, Network Clerk <\n"
             f"{CLERK}> wrote:\n\n> DONE\n> Reply DONE when filed.\n")
    outlook_block = ("Sorry\n\nFrom: Network Clerk <clerk@network.example>\n"
                     "Date: Tue, 12 Jan 2027\nTo: Ann\n\nDONE")
    for body in (outlook_web, gmail, outlook_block, "> DONE\n"):
        got = read(message(body))
        assert got.answer is None or (got.answer.command is None and "DONE"
                                      not in got.answer.text), body
    assert answer_of("Done -- filed\n-- \nAnn Smith\nDONE Ltd").text == "Done -- filed"


def test_html_only_answer() -> None:
    msg = message()
    msg.set_content("<html><head><style>p {color: red}</style></head><body>"
                    "<div dir='ltr'>Done,\n all filed&nbsp;today.<br></div>"
                    "<div class='gmail_quote'><div>On Tue, 12 Jan 2027, Network Clerk &lt;"
                    f"{CLERK}&gt; wrote:<br></div><blockquote>DONE</blockquote></div>"
                    "</body></html>", subtype="html")
    got = read(msg)
    assert got.answer is not None
    assert (got.answer.first_line, got.answer.command) == ("Done, all filed today.", "DONE")
    assert "DONE" not in got.answer.text


def test_rfi_answer_with_hostile_and_huge_attachments() -> None:
    """The 30 MB attachment is written out as base64 by hand, so the test holds it once."""
    boundary = "b1"
    line = b"A" * 76 + b"\r\n"  # 57 zero bytes a line
    lines = 30 * 1024 * 1024 // 57 + 1
    raw = b"".join([
        b"From: Ann Smith <ann.smith@example.org>\r\nTo: clerk@network.example\r\n"
        b"Subject: RE: Information requested [#mfrggzdfmz]\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=b1\r\n\r\n",
        f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n".encode(),
        b"UPDATE figures attached\r\n",
        f"--{boundary}\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; "
        f"filename=\"../../etc/passwd\"\r\n\r\nroot:x:0:0\r\n".encode(),
        f"--{boundary}\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment;"
        f" filename=\"accounts.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n".encode(),
        line * lines,
        f"--{boundary}--\r\n".encode(),
    ])
    got = read(raw)
    assert got.answer is not None and got.answer.command == "UPDATE"
    small, big = got.answer.attachments
    assert (small.filename, small.data, small.too_large) == ("passwd", b"root:x:0:0", False)
    assert (big.filename, big.content_type, big.data) == ("accounts.pdf", "application/pdf",
                                                          None)
    assert big.too_large and big.size == lines * 57


@pytest.mark.parametrize(("name", "safe"), [
    ("..\\..\\windows\\system.ini", "system.ini"),
    ("..", "attachment-1"),
    ("re\x00port\r\n.pdf", "report.pdf"),
    ("a" * 300 + ".xlsx", "a" * 115 + ".xlsx"),
    ("", "attachment-1"),
    ("minutes..final.docx", "minutes.final.docx"),
])
def test_attachment_names_are_made_safe(name: str, safe: str) -> None:
    raw = ("From: ann@example.org\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
           "--b\r\nContent-Type: text/plain\r\n\r\nSee attached\r\n--b\r\n"
           "Content-Type: application/octet-stream\r\nContent-Disposition: attachment; "
           f"filename*=utf-8''{quote(name)}\r\n\r\nx\r\n--b--\r\n")
    got = read(raw.encode())
    assert got.answer is not None and got.answer.attachments[0].filename == safe


def test_attachments_alone_are_an_answer() -> None:
    msg = message()
    msg.set_content(b"%PDF-1.7", maintype="application", subtype="pdf",
                    disposition="attachment", filename="report.pdf")
    got = read(msg)
    assert got.answer is not None and got.answer.first_line == "" and got.answer.command is None
    assert got.answer.attachments[0].data == b"%PDF-1.7"


# -- headers and hostile input ---------------------------------------------------------------


def test_encoded_newline_in_display_name_and_subject() -> None:
    raw = (b"From: =?utf-8?q?Ann=0D=0ABcc:_evil@x.example?= <Ann.Smith@Example.org>\r\n"
           b"Subject: =?utf-8?q?Re:_hi_[#MFRGGZDFMZ]=0D=0ABcc:_evil@x.example?=\r\n"
           b"Message-ID: <reply.2@example.org>\r\n\r\nDONE\r\n")
    for given in (raw, BytesParser(policy=policy.default).parsebytes(raw)):
        got = read(given)  # type: ignore[arg-type]
        assert got.kind == "answer" and got.sender == "ann.smith@example.org"
        assert got.sender_name == "Ann Bcc: evil@x.example"
        assert got.subject == "Re: hi [#MFRGGZDFMZ] Bcc: evil@x.example"
        assert got.token == "mfrggzdfmz"
    proper = raw.replace(b"Bcc:_evil@x", b"Bcc=3A_evil=40x")
    assert read(proper).sender_name == "Ann Bcc: evil@x.example"


def test_identifiers_keep_their_angle_brackets() -> None:
    raw = (b"From: ann@example.org\r\nMessage-ID: <reply.3@example.org>\r\n"
           b"In-Reply-To: <clerk.abc@network.example> (sent by clerk)\r\n"
           b"References: <x@y>\r\n\tgarbage <clerk.abc@network.example> <x@y>\r\n\r\nDONE\r\n")
    got = read(raw)
    assert got.message_id == "<reply.3@example.org>"
    assert got.in_reply_to == "<clerk.abc@network.example>"
    assert got.references == ("<x@y>", "<clerk.abc@network.example>")
    assert got.token is None


def test_non_utf8_charsets() -> None:
    raw = (b"From: =?iso-8859-1?q?Ren=E9?= <rene@example.org>\r\n"
           b"Subject: =?x-unknown?q?caf=E9?=\r\n"
           b"Content-Type: text/plain; charset=windows-1252\r\n\r\nDone, merci Ren\xe9\r\n")
    got = read(raw)
    assert got.sender_name == "René" and got.answer is not None
    assert got.answer.first_line == "Done, merci René" and got.answer.command == "DONE"
    odd = raw.replace(b"windows-1252", b"x-no-such-charset").replace(b"Subject", b"X-S")
    assert read(odd).answer is not None


@pytest.mark.parametrize(("raw", "reason"), [
    (b"To: clerk@network.example\r\nSubject: hi\r\n\r\nDONE\r\n", "From"),
    (b"From: undisclosed-recipients:;\r\n\r\nDONE\r\n", "From"),
    (b"From: <>\r\n\r\nDONE\r\n", "From"),
    (b"From: ann@example.org\r\nSubject: hi\r\n\r\n\r\n  \r\n", "empty"),
    (b"From: ann@example.org\r\n\r\n> quoted only\r\n", "empty"),
    (b"", "From"),
])
def test_unusable(raw: bytes, reason: str) -> None:
    got = read(raw)
    assert got.kind == "unusable" and reason in got.reason


def test_mangled_messages_never_raise() -> None:
    samples = [POSTFIX, with_calendar(reply_ics("ACCEPTED")).as_bytes(),
               message("UPDATE\n> quote").as_bytes()]
    rng = random.Random(5)
    for n in range(300):
        raw = bytearray(samples[n % len(samples)])
        for _ in range(rng.randint(1, 40)):
            raw[rng.randrange(len(raw))] = rng.choice(b"\r\n:;<>=?\"\\/.-\x00\xff ABC")
        assert isinstance(read(bytes(raw)), Incoming)


# -- tokens ----------------------------------------------------------------------------------

SECRET = b"k" * 32
KEY = "g1/rfi/m3/ann.smith@example.org"


def test_token_round_trip() -> None:
    token = make_token(SECRET, KEY)
    assert len(token) == 10 and set(token) <= set("abcdefghijklmnopqrstuvwxyz234567")
    assert token == make_token(SECRET, KEY)
    assert check_token(SECRET, KEY, token) and check_token(SECRET, KEY, token.upper())
    subject = tag_subject("Information requested", token)
    assert subject == f"Information requested [#{token}]"
    assert read(message("DONE", subject=f"Re: {subject}")).token == token


def test_token_refuses_wrong_key_secret_or_tampering() -> None:
    token = make_token(SECRET, KEY)
    assert not check_token(SECRET, KEY + "x", token)
    assert not check_token(b"other", KEY, token)
    tampered = ("b" if token[0] != "b" else "c") + token[1:]
    assert not check_token(SECRET, KEY, tampered)
    assert not check_token(SECRET, KEY, token[:9])
    assert not check_token(SECRET, KEY, "é" * 10)


def test_tag_subject() -> None:
    token = make_token(SECRET, KEY)
    once = tag_subject("Chaser:\r\n information", token)
    assert once == f"Chaser: information [#{token}]"
    assert tag_subject(once, token) == once
    with pytest.raises(ValueError):
        tag_subject("x", "NOT A TOKEN")
