"""The MIME writer (bot/render/mime.py) and the messages built with it (bot/render/email.py).

Everything written is parsed back with the standard library, leniently and strictly, and the
tests assert on what a mail client sees: the text as typed, the names as written, the files
byte for byte, the structure of the parts. And on the wire: CRLF only, 7-bit, short lines,
no header a member's name or a subject can smuggle in.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.parser import BytesParser
from typing import Any

import pytest

from bot import config as config_mod
from bot.domain.model import Desired, Group, Person
from bot.plan.planner import plan
from bot.plan.state import State
from bot.render import email as render_email
from bot.render import mime
from bot.transports.base import Mail
from tests.conftest import EXAMPLE

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
GREEK = "Καλημέρα σας· η τριμηνιαία συνάντηση του δικτύου γίνεται την Πέμπτη. "
CJK = "会议将于星期四下午两点举行，请准时参加。"
PDF = "application/pdf"


# --- helpers ---------------------------------------------------------------------------------

def parse(data: bytes) -> EmailMessage:
    """As a reader parses it: policy.default."""
    msg: EmailMessage = BytesParser(policy=policy.default).parsebytes(data)
    return msg


def parse_strictly(data: bytes) -> EmailMessage:
    """policy.strict raises on a defect found while parsing; header defects are checked too."""
    msg: EmailMessage = BytesParser(policy=policy.strict).parsebytes(data)
    for part in msg.walk():
        assert part.defects == [], f"{part.get_content_type()}: {part.defects}"
        for name, value in part.items():
            assert not value.defects, f"{name}: {value.defects}"  # type: ignore[attr-defined]
    return msg


def entity(part: bytes) -> bytes:
    """A part written by ``mime`` as a message of its own."""
    return b"MIME-Version: 1.0\r\n" + part


def wire_lines(data: bytes) -> list[bytes]:
    """The lines of ``data``, asserting each ends in CRLF and none holds a bare CR or LF."""
    assert data.endswith(b"\r\n"), data[-20:]
    lines = data[:-2].split(b"\r\n")
    for line in lines:
        assert b"\r" not in line and b"\n" not in line, f"bare CR or LF in {line!r}"
    return lines


def header_lines(data: bytes) -> Iterator[bytes]:
    """The header lines of the message and of every part."""
    delimiters = {f"--{p.get_boundary()}".encode() for p in parse(data).walk()
                  if p.is_multipart()}
    in_head = True
    for line in wire_lines(data):
        if not line:
            in_head = False
        elif line in delimiters:
            in_head = True
        elif in_head:
            yield line


def foldable(line: bytes) -> bool:
    """A header line holding more than one word (after the field name) could be folded."""
    return len(line.split(b":", 1)[1].split() if not line[:1].isspace() else line.split()) > 1


def assert_on_the_wire(data: bytes) -> None:
    """CRLF throughout, 7-bit, no line over 998 octets (RFC 5322 2.1.1), headers folded to
    78 where they can be (not a long Message-ID or MIME type), and a strict parse finds no
    defect."""
    assert data.isascii(), "the message is not 7-bit"
    lines = wire_lines(data)
    assert max(map(len, lines)) <= 998
    too_long = [h for h in header_lines(data) if len(h) > 78 and foldable(h)]
    assert too_long == [], too_long
    parse_strictly(data)


def raw_header(data: bytes, name: str) -> str:
    """Field ``name`` of the message's head as written, unfolded."""
    head = data.split(b"\r\n\r\n", 1)[0].decode("ascii")
    [value] = re.findall(rf"^{name}:([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)", head, re.M | re.I)
    return value.replace("\r\n", "")


def rfc_2047(value: str) -> str:
    """A header value decoded as RFC 2047 6.2 says (blanks between encoded words go)."""
    return str(make_header(decode_header(value)))


def seen(part: Message) -> str:
    """A text part as a mail client shows it: decoded, with its own line endings."""
    assert isinstance(part, EmailMessage)
    content = part.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


def typed(text: str) -> str:
    """What a text part must show: CRLF and lone CR are line breaks, and it ends in one."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text if text.endswith("\n") else text + "\n"


def body_lines(part: bytes) -> list[bytes]:
    return wire_lines(part.split(b"\r\n\r\n", 1)[1])


def subparts(msg: Message) -> list[EmailMessage]:
    """The parts of a multipart."""
    payload = msg.get_payload()
    assert isinstance(payload, list)
    assert all(isinstance(p, EmailMessage) for p in payload)
    return [p for p in payload if isinstance(p, EmailMessage)]


def shape(msg: Message) -> Any:
    """The tree of content types."""
    if msg.is_multipart():
        return (msg.get_content_type(), [shape(p) for p in subparts(msg)])
    return msg.get_content_type()


def parts_of(msg: Message, content_type: str) -> list[EmailMessage]:
    return [p for p in msg.walk() if p.get_content_type() == content_type]  # type: ignore[misc]


# --- the group and the messages planned for it -------------------------------------------

@pytest.fixture(scope="module")
def planned() -> tuple[Group, tuple[Desired, ...]]:
    config = config_mod.load(EXAMPLE.parent)
    return config.groups[0], plan(config, State(), NOW).messages


@pytest.fixture
def group(planned: tuple[Group, tuple[Desired, ...]]) -> Group:
    return planned[0]


@pytest.fixture
def invitation(planned: tuple[Group, tuple[Desired, ...]]) -> Desired:
    return next(d for d in planned[1] if d.kind == "invitation")


@pytest.fixture
def request_(planned: tuple[Group, tuple[Desired, ...]]) -> Desired:
    return next(d for d in planned[1] if d.kind == "request")


def with_meeting(group: Group, meeting: str, **changes: Any) -> Group:
    """``group`` with meeting ``meeting``'s title, description… changed (the calendar)."""
    return replace(group, meetings=tuple(replace(m, **changes) if m.id == meeting else m
                                         for m in group.meetings))


def with_title(desired: Desired, title: str) -> Desired:
    """``desired`` whose texts show meeting title ``title``."""
    context = copy.deepcopy(desired.context)
    context["meeting"]["title"] = title
    return replace(desired, context=context)


SECRET = b"the install's secret"


def build(group: Group, desired: Desired, **kwargs: Any) -> Mail:
    mail = render_email.build(group, desired, NOW, secret=SECRET, **kwargs)
    assert_on_the_wire(mail.data)
    return mail


# --- text parts --------------------------------------------------------------------------

TEXTS = [  # (id, text, the transfer encoding it needs)
    ("short ascii", "Dear Ann,\n\nSee you on Thursday.\n", "7bit"),
    ("no final newline", "Kind regards,\nthe clerk", "7bit"),
    ("blank lines at the end", "one\n\n\n", "7bit"),
    ("empty", "", "7bit"),
    ("a line of 78", "x" * 78 + "\nshort\n", "7bit"),
    ("a line of 79", "x" * 79 + "\nshort\n", "quoted-printable"),
    ("long ascii lines", ("lorem ipsum dolor sit amet " * 20 + "\n") * 3 + "y" * 400,
     "quoted-printable"),
    ("trailing blanks", "space \ntab\t\nboth \t \n   \n", "7bit"),
    ("trailing blanks on a long line", "z" * 90 + "  \n" + "w" * 90 + "\t\n", "quoted-printable"),
    ("dots and From", ".\n..\n.hidden\nFrom the chair\nFrom: nobody\n>From\n", "7bit"),
    ("dots and From, encoded", "From " + "f" * 90 + "\n.\n." + "d" * 90 + "\nFrom x\n",
     "quoted-printable"),
    ("equals signs", "=\n=3D\na=b\n==\n=?utf-8?q?hi?=\n=\t\n", "7bit"),
    ("equals signs, encoded", "é =\n=3D\n=20\n= \n=E9\n" + "=" * 100 + "\n", "quoted-printable"),
    ("latin accents", "Réunion à Brighton & Hove — café, naïve, Zoë, Łódź, Ærøskøbing.\n",
     "quoted-printable"),
    ("greek", (GREEK + "\n") * 5, "base64"),
    ("cjk", CJK * 3 + "\n" + CJK + "\n", "base64"),
    ("crlf and lone cr", "one\r\ntwo\rthree\nfour\r\n\r\nfive\r", "7bit"),
    ("crlf in greek", GREEK + "\r\n" + GREEK + "\r" + GREEK, "base64"),
    ("nul and escape", "a\x00b\x1b[0m\n", "7bit"),
]
NOT_BREAKS = ("page one\x0cpage two\x0bvertical tab\x1cfile\x1dgroup\x1erecord\n",
              "line\u2028separator\u2029paragraph\x85next line — all one line\n")


@pytest.mark.parametrize("text,cte", [t[1:] for t in TEXTS], ids=[t[0] for t in TEXTS])
def test_a_text_part_shows_the_text_as_typed(text: str, cte: str):
    part = mime.text_part(text, "plain")
    msg = parse_strictly(entity(part))
    assert msg["Content-Transfer-Encoding"] == cte
    assert msg.get_content_type() == "text/plain" and msg.get_content_charset() == "utf-8"
    assert seen(msg) == typed(text)
    assert seen(parse(entity(part))) == typed(text)


@pytest.mark.parametrize("text,cte", [t[1:] for t in TEXTS], ids=[t[0] for t in TEXTS])
def test_a_text_part_is_7bit_crlf_and_short_lined_on_the_wire(text: str, cte: str):
    part = mime.text_part(text, "plain")
    assert_on_the_wire(entity(part))
    limit = 78 if cte == "7bit" else 76  # RFC 2045 6.7 (5), 6.8: encoded lines are 76 at most
    assert max(map(len, body_lines(part))) <= limit


@pytest.mark.parametrize("text,cte", [t[1:] for t in TEXTS], ids=[t[0] for t in TEXTS])
def test_a_text_part_decodes_to_canonical_crlf_whatever_its_encoding(text: str, cte: str):
    # RFC 2046 4.1.1: a text body's line breaks are CRLF, base64 included (RFC 2045 6.8)
    decoded = parse(entity(mime.text_part(text, "plain"))).get_payload(decode=True)
    assert decoded == typed(text).replace("\n", "\r\n").encode("utf-8")


@pytest.mark.parametrize("text", NOT_BREAKS, ids=["form feed and c0", "u2028 and nel"])
def test_form_feed_and_unicode_separators_are_not_line_breaks(text: str):
    # str.splitlines breaks at all of these; RFC 5322 and MIME only at CR and LF
    assert len(text.splitlines()) > 1
    msg = parse_strictly(entity(mime.text_part(text, "plain")))
    assert seen(msg) == text
    assert len(seen(msg).split("\n")) == 2


def test_quoted_printable_marks_trailing_blanks_and_breaks_long_lines_softly():
    part = mime.text_part("é" + "a" * 100 + " \nend\t\n", "plain")
    body = part.split(b"\r\n\r\n", 1)[1]
    assert b"=\r\n" in body  # a soft break inside the long line
    assert b"=20\r\n" in body and b"=09\r\n" in body  # blanks before a line break survive
    assert b"=C3=A9" in body


def test_an_equals_sign_is_escaped_in_quoted_printable():
    part = mime.text_part("café =3D = =?utf-8?q?x?=\n", "plain")
    assert b"caf=C3=A9 =3D3D =3D =3D?utf-8?q?x?=3D\r\n" in part
    assert seen(parse(entity(part))) == "café =3D = =?utf-8?q?x?=\n"


def test_greek_and_cjk_go_base64_in_lines_of_76():
    part = mime.text_part((GREEK + CJK + "\n") * 20, "plain")
    assert b"Content-Transfer-Encoding: base64\r\n" in part
    lines = body_lines(part)
    assert all(len(line) == 76 for line in lines[:-1]) and 0 < len(lines[-1]) <= 76


STDLIB_TEXTS = ["Hello,\nworld\n", "no newline", "", "x" * 200 + "\n" + "y" * 77,
                "From me\n.\n=3D\n= \n", "trailing \t\nblank", "Zoë Ångström-Łukasz\n",
                GREEK * 4, CJK, "mixed\r\nline\rendings\n", NOT_BREAKS[0], NOT_BREAKS[1],
                "é" * 40 + "a" * 200 + "\n", ("  indented " * 10 + "\n") * 5]


@pytest.mark.parametrize("text", STDLIB_TEXTS, ids=range(len(STDLIB_TEXTS)))
def test_a_text_part_reads_as_the_standard_librarys_does(text: str):
    reference = EmailMessage()
    reference.set_content(text)
    theirs = parse(reference.as_bytes(policy=policy.SMTP))
    ours = parse(entity(mime.text_part(text, "plain")))
    assert seen(ours) == seen(theirs)
    assert ours.get_content_type() == theirs.get_content_type()
    assert ours.get_content_charset() == theirs.get_content_charset()


def test_text_part_parameters_are_written_after_the_charset():
    part = mime.text_part("x\n", "calendar", ('method="REQUEST"',))
    msg = parse_strictly(entity(part))
    assert msg.get_content_type() == "text/calendar"
    assert msg.get_param("method") == "REQUEST" and msg.get_content_charset() == "utf-8"


# --- the calendar -------------------------------------------------------------------------

def calendar_and_file(mail: Mail) -> tuple[EmailMessage, EmailMessage]:
    [calendar] = parts_of(mail.message, "text/calendar")
    [ics] = parts_of(mail.message, "application/ics")
    return calendar, ics


@pytest.mark.parametrize("kind,template,method", [
    ("invitation", "invitation", "REQUEST"), ("cancellation", "cancellation", "CANCEL"),
    ("occurrence_cancellation", "cancellation", "CANCEL")])
def test_the_calendar_part_carries_the_method_and_the_icalendar_bytes(
        group: Group, invitation: Desired, kind: str, template: str, method: str):
    desired = replace(invitation, kind=kind, template=template)
    mail = build(group, desired)
    ics = render_email.invite_ics(group, desired, NOW)
    calendar, attached = calendar_and_file(mail)
    assert calendar.get_content_type() == "text/calendar"
    assert calendar.get_content_charset() == "utf-8"
    assert calendar.get_param("method") == method
    assert f"METHOD:{method}\r\n".encode() in ics
    assert calendar.get_payload(decode=True) == ics
    assert attached.get_filename() == "invite.ics"
    assert attached.get_content_disposition() == "attachment"
    assert attached.get_payload(decode=True) == ics


@pytest.mark.parametrize("title,description,cte", [
    ("Réunion trimestrielle — café", "Ordre du jour : à définir.", "quoted-printable"),
    ("Συνάντηση δικτύου", GREEK * 40, "base64"),
    ("季度会议", CJK * 60, "base64")])
def test_a_non_ascii_calendar_is_the_same_icalendar_bytes_in_any_encoding(
        group: Group, invitation: Desired, title: str, description: str, cte: str):
    group = with_meeting(group, invitation.meeting, title=title, description=description)
    mail = build(group, invitation)
    ics = render_email.invite_ics(group, invitation, NOW)
    calendar, attached = calendar_and_file(mail)
    assert calendar["Content-Transfer-Encoding"] == cte
    assert title.encode() in ics.replace(b"\r\n ", b"")
    assert calendar.get_payload(decode=True) == ics  # CRLF as RFC 5545 3.1 requires
    assert seen(calendar) == ics.decode().replace("\r\n", "\n")
    assert attached.get_payload(decode=True) == ics


# --- headers ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", [
    'Ann "Annie" O\'Neil', "Smith, John (Chair)", "back\\slash", 'all "(,\\)" at once',
    "Dr. J. Smith; Ph.D. <not an address> @home:",
    "Jane Smith (Brighton & Hove City Council), Deputy Head of Quality",  # folded, fits
    "Ann O'Neil " * 8 + "(the Elder)",  # longer than a line: Python's folding unquoted it
    "Smith " * 14 + ", Eve <eve@evil.example>, Jo"])  # … and read three addresses in it
def test_an_ascii_name_with_specials_reads_back_as_written(
        group: Group, invitation: Desired, name: str):
    person = Person(name=name, email="ann.oneil@council.example")
    mail = build(group, replace(invitation, recipient=person, cc=(person,)))
    for field in ("To", "Cc"):
        [address] = mail.message[field].addresses
        assert (address.display_name, address.addr_spec) == (name, "ann.oneil@council.example")
    assert mail.to == ((name, "ann.oneil@council.example"),)


def test_a_list_that_cannot_be_folded_faithfully_is_refused_not_spoofed():
    from email.headerregistry import Address

    people = [Address("Zoë", addr_spec="zoe@trust.example"),
              Address("Smith " * 14 + ", Eve <eve@evil.example>, Jo", addr_spec="jo@x.example")]
    try:
        written = mime.header("Cc", people)
    except ValueError:
        return  # the email package unquotes the long name (CPython gh-80222): refused
    got = parse(written + b"\r\n")["Cc"].addresses
    assert [a.addr_spec for a in got] == ["zoe@trust.example", "jo@x.example"]


@pytest.mark.parametrize("name", ["Zoë Ångström-Łukasz", "Ζωή Παπαδοπούλου", "王小明",
                                  'Zoë "Zo" O\'Brien, (Ærø)\\'])
def test_a_non_ascii_name_reads_back_and_is_encoded_on_the_wire(
        group: Group, invitation: Desired, name: str):
    mail = build(group, replace(invitation, recipient=Person(name, "zoe@trust.example")))
    [address] = mail.message["To"].addresses
    assert (address.display_name, address.addr_spec) == (name, "zoe@trust.example")
    assert "=?utf-8?" in raw_header(mail.data, "To")


def test_a_long_non_ascii_name_is_folded_and_decodes_to_the_name(
        group: Group, invitation: Desired):
    name = "Zoë Ångström-Łukasz " * 4 + "the Younger"
    mail = build(group, replace(invitation, recipient=Person(name, "zoe@trust.example")))
    assert re.search(rb"^To:.*\r\n[ \t]", mail.data, re.M)  # folded
    assert rfc_2047(raw_header(mail.data, "To")) == f"{name} <zoe@trust.example>"
    # (Python before 3.14 reads a blank between two encoded words of a display name into it:
    # CPython gh-128110; the writer is right, so this is read the RFC 2047 way)


def test_a_long_non_ascii_subject_reads_back_exactly_and_is_folded(
        group: Group, invitation: Desired):
    subject = ("Réunion trimestrielle du réseau — Brighton & Hove, Zoë Ångström-Łukasz: "
               + GREEK + CJK + " (version 2)")
    mail = build(group, replace(invitation, subject=subject))
    assert str(mail.message["Subject"]) == subject == mail.subject
    [raw] = re.findall(rb"^Subject:.*\r\n(?:[ \t].*\r\n)*", mail.data, re.M)
    assert raw.count(b"\r\n") > 2 and b"=?utf-8?" in raw


def test_a_long_ascii_subject_with_a_token_reads_back_exactly(
        group: Group, request_: Desired):
    mail = build(group, request_, token="abcdefghij")
    assert mail.subject.endswith(" [#abcdefghij]") and len(mail.subject) > 78
    assert str(mail.message["Subject"]) == mail.subject


@pytest.mark.parametrize("value", ["Hello\r\nBcc: eve@evil.example", "Hello\nBcc: x@y",
                                   "Hello\rBcc: x@y", "trailing\r\n", "Zoë\nBcc: x@y",
                                   # what str.splitlines breaks at, as the email package does
                                   "a\x0bb", "a\x0cb", "a\x1cb", "a\x85b", "a\u2028b",
                                   "a\x00b"])
def test_a_header_value_with_a_line_break_is_refused(value: str):
    with pytest.raises(ValueError, match="line break"):
        mime.header("Subject", value)


def test_a_subject_with_a_line_break_cannot_reach_the_wire(group: Group, invitation: Desired):
    with pytest.raises(ValueError):
        render_email.build(group, replace(invitation, subject="Hi\r\nBcc: eve@evil.example"),
                           NOW, secret=SECRET)


HEADERS = {"from", "to", "subject", "date", "message-id", "auto-submitted", "x-clerk-key",
           "mime-version", "content-type"}


@pytest.mark.parametrize("name", [
    "Eve\r\nBcc: eve@evil.example", "Eve\nBcc: eve@evil.example", "Eve\rBcc: eve@evil.example",
    "Eve\u2028Bcc: eve@evil.example", "Eve\x85Bcc: eve@evil.example",
    "Eve\x0c\x0b\tBcc: eve@evil.example", "Zoë\r\n\r\nBcc: eve@evil.example"])
def test_a_line_break_in_a_name_is_collapsed_and_adds_no_header(
        group: Group, invitation: Desired, name: str):
    mallory = Person(name=name, email="mallory@evil.example")
    mail = build(group, replace(invitation, recipient=mallory, cc=(mallory,)))
    assert {k.lower() for k in mail.message} == HEADERS | {"cc"}
    assert mail.message["Bcc"] is None
    collapsed = " ".join(name.split())
    assert collapsed.endswith(" Bcc: eve@evil.example")
    assert mail.to == mail.cc == ((collapsed, "mallory@evil.example"),)
    for field in ("To", "Cc"):
        [address] = mail.message[field].addresses
        assert (address.display_name, address.addr_spec) == (collapsed, "mallory@evil.example")
    assert mail.recipients == ["mallory@evil.example", "mallory@evil.example"]


def test_cc_with_several_people_reads_back_in_order(group: Group, invitation: Desired):
    cc = (Person("Bo Chen", "bo.chen@trust.example"),
          Person("Zoë Ångström-Łukasz", "zoe@college.example"),
          Person('Dr. Ann "Annie" O\'Neil (Chair), Brighton \\ Hove', "ann@council.example"),
          Person("", "no.name@school.example"))
    mail = build(group, replace(invitation, cc=cc))
    assert [(a.display_name, a.addr_spec) for a in mail.message["Cc"].addresses] \
        == [(p.name, p.email) for p in cc]
    assert mail.cc == tuple((p.name, p.email) for p in cc)
    assert mail.recipients == [invitation.recipient.email, *(p.email for p in cc)]


def test_an_all_ascii_cc_too_long_for_a_line_is_folded(group: Group, invitation: Desired):
    cc = tuple(Person(f"Member Number {i}, Esq.", f"member.{i}@council.example")
               for i in range(6))
    mail = build(group, replace(invitation, cc=cc))
    assert [(a.display_name, a.addr_spec) for a in mail.message["Cc"].addresses] \
        == [(p.name, p.email) for p in cc]


def test_the_fixed_headers_are_there_exactly_once(group: Group, invitation: Desired):
    mail = build(group, invitation, attachments=[("a.pdf", PDF, b"%PDF")])
    msg = mail.message
    for name in ("From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted",
                 "X-Clerk-Key", "MIME-Version", "Content-Type"):
        assert len(msg.get_all(name, [])) == 1, name
    assert msg["Cc"] is None and msg["Bcc"] is None
    assert msg["Message-ID"] == mail.message_id == render_email.message_id(
        invitation.key, group.organiser, SECRET)
    # folded after the colon; Python keeps that blank (RFC 5322 unfolding removes CRLF only)
    assert msg["X-Clerk-Key"].lstrip() == mail.key == invitation.key
    assert msg["Auto-Submitted"] == "auto-generated" and msg["MIME-Version"] == "1.0"
    assert msg["Date"].datetime == NOW
    [sender] = msg["From"].addresses
    assert (sender.display_name, sender.addr_spec) == (group.organiser.name,
                                                       group.organiser.email) == mail.sender


def test_a_long_key_and_message_id_read_back(group: Group, invitation: Desired):
    domain = "quality-assurance-leads.south-downs-network.example"
    group = replace(group, organiser=replace(group.organiser, email=f"qa-leads@{domain}"))
    key = f"{invitation.key}/someone.with.a.rather.long.name@{domain}"
    mail = build(group, replace(invitation, key=key))
    assert mail.message["X-Clerk-Key"] == key  # in encoded words, as the email package folds
    assert mail.message["Message-ID"] == mail.message_id and domain in mail.message_id


# --- attachments --------------------------------------------------------------------------

FILE_NAMES = ["agenda-2027-q1.docx", "minutes final v2 (draft) [1].pdf",
              'the "final" \\ version.pdf', "Протокол заседания — Zoë.pdf", "会议纪要.pdf",
              "../../etc/passwd", "..\\..\\windows\\system.ini", "a" * 196 + ".pdf",
              "Zoë-" * 50 + ".pdf", "semi;colon=and%20percent's.txt", "tab\there.txt"]


@pytest.mark.parametrize("name", FILE_NAMES, ids=range(len(FILE_NAMES)))
def test_an_attachment_name_reads_back_as_given(name: str):
    part = mime.file_part(b"%PDF-1.7", PDF, name)
    assert_on_the_wire(entity(part))
    msg = parse_strictly(entity(part))
    assert msg.get_filename() == name  # as given: a reader's own sanitising applies
    assert msg.get_content_disposition() == "attachment"
    assert msg.get_content_type() == PDF
    assert msg.get_payload(decode=True) == b"%PDF-1.7"


def test_a_non_ascii_attachment_name_is_rfc_2231_encoded():
    part = mime.file_part(b"x", PDF, "Zoë.pdf")
    assert b"Content-Disposition: attachment; filename*=utf-8''Zo%C3%AB.pdf\r\n" in part


def test_an_ascii_attachment_name_is_a_quoted_string():
    part = mime.file_part(b"x", PDF, "minutes (draft).pdf")
    assert b'Content-Disposition: attachment; filename="minutes (draft).pdf"\r\n' in part


def test_a_long_attachment_name_is_folded_in_rfc_2231_continuations():
    name = "a" * 1200 + ".pdf"  # a single line would break RFC 5322's 998
    part = mime.file_part(b"x", PDF, name)
    head = part.split(b"\r\n\r\n", 1)[0]
    assert b"filename*0*=" in head and b"filename*1*=" in head
    assert max(map(len, head.split(b"\r\n"))) <= 78
    assert parse_strictly(entity(part)).get_filename() == name


@pytest.mark.parametrize("data", [bytes(range(256)) * 9, b"", b"\x00", b"\r\n.\r\n",
                                  b"\r" * 100 + b"\n" * 100, bytes(range(255, -1, -1)) * 3 + b"x"],
                         ids=["every byte", "empty", "nul", "crlf dot", "bare cr and lf", "odd"])
def test_attachment_bytes_round_trip(data: bytes):
    part = mime.file_part(data, "application/octet-stream", "blob.bin")
    assert_on_the_wire(entity(part))
    assert parse_strictly(entity(part)).get_payload(decode=True) == data
    assert all(len(line) <= 76 for line in body_lines(part))


def test_a_message_with_files_carries_each_byte_for_byte(group: Group, request_: Desired):
    files = [("agenda-2027-q1.docx", "application/vnd.openxmlformats-officedocument."
              "wordprocessingml.document", bytes(range(256)) * 40),
             ("Протокол — Zoë.pdf", PDF, b"%PDF-1.7\n" + bytes(range(256))),
             ("../papers/notes.txt", "text/plain", "naïve\n".encode()),
             ("x" * 196 + ".zip", "application/zip", b"PK\x03\x04")]
    mail = build(group, request_, attachments=files)
    got = [(p.get_filename(), p.get_content_type(), p.get_payload(decode=True))
           for p in mail.message.iter_attachments()]
    assert got == files
    assert mail.attachments == tuple(files)


# --- structure ----------------------------------------------------------------------------

ALTERNATIVE = ("multipart/alternative", ["text/plain", "text/html"])


def test_an_invitation_is_mixed_of_alternative_and_files(group: Group, invitation: Desired):
    mail = build(group, invitation, attachments=[("a.pdf", PDF, b"%PDF")])
    assert shape(parse_strictly(mail.data)) == (
        "multipart/mixed", [("multipart/alternative", ["text/plain", "text/html",
                                                       "text/calendar"]),
                            "application/ics", PDF])


def test_an_invitation_without_files_still_attaches_the_ics(group: Group, invitation: Desired):
    mail = build(group, invitation)
    assert shape(mail.message) == (
        "multipart/mixed", [("multipart/alternative", ["text/plain", "text/html",
                                                       "text/calendar"]), "application/ics"])


def test_a_plain_message_is_an_alternative_of_text_and_html(group: Group, request_: Desired):
    mail = build(group, request_)
    assert shape(parse_strictly(mail.data)) == ALTERNATIVE
    plain, html = subparts(mail.message)
    assert seen(plain) == typed(mail.text)
    assert seen(html) == typed(mail.html)
    assert mail.message.get_body(("plain",)) is plain
    assert mail.message.get_body(("html", "plain")) is html


def test_a_plain_message_with_files_is_mixed(group: Group, request_: Desired):
    mail = build(group, request_, attachments=[("a.pdf", PDF, b"%PDF"), ("b.txt", "text/plain",
                                                                         b"b")])
    assert shape(mail.message) == ("multipart/mixed", [ALTERNATIVE, PDF, "text/plain"])


def test_the_texts_of_an_invitation_read_back(group: Group, invitation: Desired):
    mail = build(group, invitation)
    [plain] = parts_of(mail.message, "text/plain")
    [html] = parts_of(mail.message, "text/html")
    assert seen(plain) == typed(mail.text) and seen(html) == typed(mail.html)
    assert "Dear " in mail.text and "<html" in mail.html


def test_the_same_message_is_the_same_bytes(group: Group, invitation: Desired,
                                            request_: Desired):
    files = [("a.pdf", PDF, b"%PDF")]
    assert build(group, invitation, attachments=files).data \
        == build(group, invitation, attachments=files).data
    assert build(group, request_).data == build(group, request_).data


@pytest.mark.parametrize("subject", [
    "Last reminder: 1 action for South Downs QA Leads Network [#obt4wft364]",
    "Agenda: " + " ".join(["word"] * 40),
])
def test_a_long_subject_reads_back_without_a_blank_in_front(group: Group, invitation: Desired,
                                                            subject: str):
    mail = build(group, replace(invitation, subject=subject))
    assert str(mail.message["Subject"]) == subject.strip()


def test_the_message_id_is_the_installs_own(group: Group, invitation: Desired):
    """Anyone can read a message's key (X-Clerk-Key); only the install's secret makes its
    Message-ID from it, so nobody can name — and forge an answer to — another's message."""
    import hashlib

    mine = build(group, invitation).message_id
    assert mine == build(group, invitation).message_id  # the same key, the same Message-ID
    other = render_email.message_id(invitation.key, group.organiser, b"another install")
    guessed = f"<clerk.{hashlib.sha256(invitation.key.encode()).hexdigest()[:32]}@"
    assert mine != other and not mine.startswith(guessed)


def test_boundaries_follow_the_key(group: Group, invitation: Desired):
    one = parse(build(group, invitation).data)
    other = parse(build(group, replace(invitation, key=invitation.key + "/again")).data)
    seed = render_email.message_id(invitation.key, group.organiser, SECRET)[7:23]
    assert one.get_boundary() == f"=_clerk.{seed}.m0"
    assert subparts(one)[0].get_boundary() == f"=_clerk.{seed}.a0"
    assert other.get_boundary() != one.get_boundary()


def assert_boundaries_stay_out_of_parts(data: bytes) -> None:
    """Each boundary occurs only in its Content-Type and its delimiter lines."""
    for part in parse(data).walk():
        if part.is_multipart():
            boundary = part.get_boundary()
            assert boundary is not None
            count = len(subparts(part))
            assert data.count(boundary.encode()) == 1 + count + 1


def test_a_boundary_found_in_a_part_is_passed_over():
    parts = [mime.text_part("--=_clerk.seed.a0\n--=_clerk.seed.a0--\n", "plain"),
             mime.text_part("see =_clerk.seed.a1 and =_clerk.seed.a3\n", "plain")]
    entity_ = mime.multipart("alternative", parts, "seed")
    msg = parse_strictly(entity(entity_))
    assert msg.get_boundary() == "=_clerk.seed.a2"
    plain, other = subparts(msg)
    assert seen(plain) == "--=_clerk.seed.a0\n--=_clerk.seed.a0--\n"
    assert seen(other) == "see =_clerk.seed.a1 and =_clerk.seed.a3\n"
    assert_boundaries_stay_out_of_parts(entity(entity_))


def test_a_boundary_prefix_in_a_part_is_passed_over():
    parts = [mime.text_part("--=_clerk.seed.m00 looks like the boundary plus a digit\n", "plain")]
    msg = parse_strictly(entity(mime.multipart("mixed", parts, "seed")))
    assert msg.get_boundary() == "=_clerk.seed.m1"
    [only] = subparts(msg)
    assert seen(only) == "--=_clerk.seed.m00 looks like the boundary plus a digit\n"


def test_nested_parts_keep_their_own_boundaries():
    inner = mime.multipart("alternative", [mime.text_part("=_clerk.s.m0\n", "plain")], "s")
    outer = mime.multipart("mixed", [inner, mime.file_part(b"x", PDF, "a.pdf")], "s")
    msg = parse_strictly(entity(outer))
    assert msg.get_boundary() == "=_clerk.s.m1"
    assert subparts(msg)[0].get_boundary() == "=_clerk.s.a0"
    assert shape(msg) == ("multipart/mixed", [("multipart/alternative", ["text/plain"]), PDF])
    assert_boundaries_stay_out_of_parts(entity(outer))


def test_a_calendar_holding_the_messages_boundaries_still_parses(group: Group,
                                                                 invitation: Desired):
    seed = render_email.message_id(invitation.key, group.organiser, SECRET)[7:23]
    trap = f"--=_clerk.{seed}.a0 --=_clerk.{seed}.m0--"
    group = with_meeting(group, invitation.meeting, title=trap)
    mail = build(group, invitation)
    calendar, attached = calendar_and_file(mail)
    assert calendar["Content-Transfer-Encoding"] == "7bit"  # the boundaries as they are
    assert mail.message.get_boundary() == f"=_clerk.{seed}.m1"
    assert subparts(mail.message)[0].get_boundary() == f"=_clerk.{seed}.a1"
    assert shape(mail.message) == (
        "multipart/mixed", [("multipart/alternative", ["text/plain", "text/html",
                                                       "text/calendar"]), "application/ics"])
    ics = render_email.invite_ics(group, invitation, NOW)
    assert f"SUMMARY:{trap}".encode() in ics
    assert calendar.get_payload(decode=True) == ics == attached.get_payload(decode=True)
    assert_boundaries_stay_out_of_parts(mail.data)


# --- the message as a whole ---------------------------------------------------------------

def test_a_message_in_every_script_is_still_7bit_crlf_and_short_lined(
        group: Group, invitation: Desired):
    group = with_meeting(group, invitation.meeting, title="Συνάντηση — 会议 — Réunion",
                         description=GREEK * 5 + CJK * 5)
    desired = replace(with_title(invitation, "Συνάντηση — 会议 — Réunion " * 4),
                      subject="Πρόσκληση: " + GREEK + CJK,
                      recipient=Person("Zoë Ångström-Łukasz", "zoe@trust.example"),
                      cc=(Person("王小明", "wang@college.example"),
                          Person("Ζωή Παπαδοπούλου", "zoi@council.example")))
    files = [("Протокол заседания — Zoë.pdf", PDF, bytes(range(256))),
             ("会议纪要" * 30 + ".docx", "application/octet-stream", b"PK")]
    mail = build(group, desired, attachments=files)  # asserts the wire
    assert "Συνάντηση" in mail.text and not mail.data.decode("ascii").count("Συνάντηση")
    assert [p.get_filename() for p in mail.message.iter_attachments()] \
        == ["invite.ics", *(name for name, _, _ in files)]
    assert str(mail.message["Subject"]) == desired.subject


def test_mail_message_is_the_bytes_parsed(group: Group, invitation: Desired):
    files = [("a.pdf", PDF, b"%PDF")]
    mail = build(group, replace(invitation, cc=(Person("Bo Chen", "bo@trust.example"),)),
                 attachments=files)
    msg = mail.message
    assert msg is mail.message  # parsed once
    assert shape(msg) == shape(parse_strictly(mail.data))
    assert [p.get_content_type() for p in msg.walk()] \
        == [p.get_content_type() for p in parse_strictly(mail.data).walk()]
    assert str(msg["Subject"]) == mail.subject and msg["Message-ID"] == mail.message_id
    assert mail.recipients == [invitation.recipient.email, "bo@trust.example"]
    assert mail.size == 4


def test_recipients_are_to_then_cc():
    mail = Mail(key="k", message_id="<m@x>", subject="s", sender=("S", "s@x.example"),
                to=(("A", "a@x.example"),), cc=(("B", "b@x.example"), ("", "c@x.example")),
                html="", text="", attachments=(), data=b"")
    assert mail.recipients == ["a@x.example", "b@x.example", "c@x.example"]


@pytest.mark.parametrize("size", [0, 1, 57, 58, 4096, mime.KEEP_ENCODED,
                                  mime.KEEP_ENCODED + 1])
def test_an_attachment_is_base64_in_lines_of_76_kept_encoded_only_when_small(size: int):
    import base64
    import os

    mime._base64_kept.cache_clear()
    data = os.urandom(size)
    part = mime.file_part(data, "application/pdf", "paper.pdf")
    again = mime.file_part(data, "application/pdf", "paper.pdf")
    assert again == part
    head, _, body = part.partition(b"\r\n\r\n")
    assert b"Content-Transfer-Encoding: base64" in head and body.endswith(b"\r\n")
    lines = body.split(b"\r\n")[:-1]
    assert all(len(line) <= 76 for line in lines) and all(len(line) == 76 for line in lines[:-1])
    assert base64.b64decode(b"".join(lines)) == data
    # a pack's small attachments are encoded once for all its recipients; a large one is
    # never kept (a few of them would be tens of megabytes)
    kept = mime._base64_kept.cache_info()
    assert (kept.hits, kept.currsize) == ((1, 1) if size <= mime.KEEP_ENCODED else (0, 0))
