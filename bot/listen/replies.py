"""What an incoming message is: an RSVP, a bounce, an auto-reply, an answer, or unusable.

Every mailbox transport (IMAP now, Exchange and Graph later) hands each message to
:func:`read`, which needs no database and no configuration; a second layer matches the
result against the ledger and roster.  So the transports agree on what a message means and
hostile mail is handled in one place: :func:`read` never raises, and what it cannot make
sense of comes back as ``kind="unusable"`` with a ``reason`` for the transport to file away.

The order of the checks matters.  (1) A delivery status notification (RFC 3464, in an RFC
6522 ``multipart/report``; RFC 6533 for ``global``) is a bounce, though it is auto-submitted.
(2) An iMIP REPLY (RFC 6047; RFC 5546 section 3.2.3) in a ``text/calendar`` or
``application/ics`` part anywhere in the MIME tree -- never inside an attached
``message/rfc822``, which is someone else's message -- gives one :class:`Rsvp` per VEVENT
and ATTENDEE.  It wins over auto-reply markers: no out-of-office message carries a REPLY,
while a calendar's auto-decline (Google's out-of-office events) is a real answer, labelled
``Auto-Submitted`` as RFC 3834 section 5 asks.  An unknown PARTSTAT counts as NEEDS-ACTION
(RFC 5545 section 3.2.12); icalendar maps Outlook's Windows TZIDs ("GMT Standard Time");
a RECURRENCE-ID is given as the ledger stores it, UTC ISO, or without an offset when it is
floating.  (3) An automatic reply (RFC 3834 ``Auto-Submitted`` other than ``no``,
``X-Autoreply``, ``Precedence: bulk``, Exchange's generated-message headers, an "Automatic
reply:" subject, a null ``Return-Path`` (RFC 5321 section 4.5.5)) is never an answer.
``X-Auto-Response-Suppress`` (MS-OXCMAIL 2.2.3.2.14) asks responders to keep quiet; Outlook
puts it on ordinary mail, so it marks nothing.  (4) Another calendar METHOD (a REQUEST or
CANCEL sent to the organiser) is unusable.  (5) The rest are human answers: the text above
the quoted original (an RFC 3676 section 4.3 signature line, "On ... wrote:", Outlook's
"-----Original Message-----" or From:/Sent: block) and a command on its first line.

Message-IDs keep their angle brackets (RFC 5322 section 3.6.4), as the ledger stores them.
Header text is decoded (RFC 2047) and cleaned of CR, LF and other controls, so it can go
back into a header.  Attachment names (RFC 2183, RFC 2231) become a safe base name (RFC 6266
section 4.3); an attachment over the limit is sized from its base64 text and never decoded.
Subjects of requests and chasers carry ``[#token]``: the first 10 characters of the
lower-case RFC 4648 base32 of the ledger key's HMAC-SHA256 (RFC 2104), so a reply is
matched even when its client drops In-Reply-To.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser, HeaderParser
from email.utils import parseaddr
from typing import Any, Literal

from icalendar import Calendar

from bot.domain.tokens import IN_SUBJECT, clean
from bot.listen.answers import MAX_ATTACHMENTS, Answer, answer
from bot.listen.authn import NO_TRUST, Trust, verdict
from bot.listen.mime import (
    MAX_PARTS,
    Unusable,
    header_text,
    leaf_parts,
    parse,
    part_filename,
    part_text,
)

Kind = Literal["rsvp", "bounce", "auto_reply", "answer", "unusable"]
MAX_ATTACHMENT = 10 * 1024 * 1024
PARTSTATS = ("ACCEPTED", "DECLINED", "TENTATIVE", "DELEGATED", "NEEDS-ACTION")


@dataclass(frozen=True)
class Rsvp:
    """One attendee's answer for one event, or one occurrence, in an iMIP REPLY."""
    uid: str
    recurrence_id: str | None  # "2027-06-15T09:00:00+00:00"; None for the whole series
    attendee: str  # lower-case, without mailto:
    partstat: str  # one of PARTSTATS
    comment: str = ""
    sequence: int = 0
    dtstamp: datetime | None = None  # aware, UTC
    start: str | None = None  # DTSTART in UTC, ISO: a server-made meeting is found by it


@dataclass(frozen=True)
class Bounce:
    """A delivery status notification: who could not be reached, and why."""
    recipients: tuple[str, ...]  # lower-case: the failed ones, or if none the delayed ones
    status: str  # RFC 3463 code of the first, e.g. "5.1.1"
    diagnostic: str  # its Diagnostic-Code, without the "smtp;" type
    original_message_id: str | None  # of the returned message or headers
    permanent: bool  # Action: failed with a 5.x.x status
    delayed: bool = False  # Action: delayed: the MTA is still trying


@dataclass(frozen=True)
class Incoming:
    kind: Kind
    message_id: str | None = None
    sender: str = ""  # lower-case address from From
    sender_name: str = ""
    subject: str = ""  # one line
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    token: str | None = None  # from "[#token]" in the subject, lower-case
    rsvps: tuple[Rsvp, ...] = ()
    bounce: Bounce | None = None
    answer: Answer | None = None
    reason: str = ""  # unusable: what is wrong; auto_reply: which mark it bore
    authenticated: bool = False  # the sender is who From says (bot/listen/authn.py)
    auth: str = ""  # what proved it, or why nothing did


def read(raw: bytes | EmailMessage, *, max_attachment: int = MAX_ATTACHMENT,
         max_parts: int = MAX_PARTS, max_attachments: int = MAX_ATTACHMENTS,
         trust: Trust = NO_TRUST) -> Incoming:
    """What ``raw`` is, and whether its sender is authenticated by ``trust``; never raises.
    A message of more than ``max_parts`` MIME parts is unusable, found before or while it
    is parsed (bot/listen/mime.py); attachments past ``max_attachments`` and larger than
    ``max_attachment`` come without their data. The size of the whole message is the
    mailbox's to check, before it is read at all (bot/engine/inbox.py)."""
    head = Incoming(kind="unusable")
    try:
        if isinstance(raw, EmailMessage):
            msg = raw
        else:
            head = headers(raw[:HEAD])  # who sent it, for the log, if the rest is refused
            msg = parse(bytes(raw), max_parts)
        head = _head(msg)
        proof = verdict(msg, head.sender, trust)
        head = replace(head, authenticated=proof.authenticated, auth=proof.how)
        return _classify(msg, head, max_attachment, max_attachments)
    except Unusable as e:
        return replace(head, kind="unusable", reason=str(e))
    except Exception as e:  # hostile input is filed away, never raised
        return replace(head, kind="unusable", reason=f"unparseable message: {e!r}"[:300])


HEAD = 64 * 1024  # the header of a message refused unread is looked for in this much of it


def headers(raw: bytes) -> Incoming:
    """What the header block at the start of ``raw`` says (sender, subject, Message-ID):
    for the log of a message that is not read further. Not evidence of anything."""
    try:
        block = raw[:HEAD].replace(b"\r\n", b"\n").partition(b"\n\n")[0] + b"\n\n"
        return _head(BytesHeaderParser(policy=policy.default).parsebytes(block))
    except Exception:  # whatever the header, the refusal stands
        return Incoming(kind="unusable")


def _classify(msg: Message, head: Incoming, limit: int, most: int) -> Incoming:
    bounce = _bounce(msg)
    if isinstance(bounce, str):  # a report of delivery, or of nothing
        return replace(head, kind="auto_reply", reason=bounce)
    if bounce is not None:
        return replace(head, kind="bounce", bounce=bounce)
    if not head.sender:
        raise Unusable("no From address")
    calendars = _calendars(msg, limit)
    if replies := [cal for method, cal in calendars if method == "REPLY"]:
        if rsvps := tuple(dict.fromkeys(r for cal in replies for r in _rsvps(cal))):
            return replace(head, kind="rsvp", rsvps=rsvps)
        raise Unusable("calendar REPLY names no attendee")
    if head.sender.partition("@")[0] in ("mailer-daemon", "postmaster"):
        raise Unusable("a bounce without a delivery-status report")
    if marker := _auto_marker(msg, head.subject):
        return replace(head, kind="auto_reply", reason=marker)
    if methods := sorted({method for method, _ in calendars if method}):
        raise Unusable(f"calendar METHOD:{','.join(methods)} is not a REPLY to the organiser")
    return replace(head, kind="answer", answer=answer(msg, limit, most))


_IDS = re.compile(r"<[^<>\s]+>")


def _head(msg: Message) -> Incoming:
    sender, name = _sender(msg)
    subject = clean(header_text(msg, "Subject"))
    own, parent = (_IDS.findall(header_text(msg, h)) for h in ("Message-ID", "In-Reply-To"))
    token = IN_SUBJECT.search(subject)
    return Incoming(
        kind="unusable", message_id=own[0] if own else None, sender=sender,
        sender_name=name, subject=subject, in_reply_to=parent[0] if parent else None,
        references=tuple(dict.fromkeys(_IDS.findall(header_text(msg, "References")))),
        token=token.group(1).lower() if token else None)


def _sender(msg: Message) -> tuple[str, str]:
    try:
        header: Any = msg["From"]
        first = header.addresses[0] if header is not None and header.addresses else None
        addr, name = (first.addr_spec, first.display_name) if first else ("", "")
    except Exception:  # e.g. an encoded CR/LF in the display name: the raw text, decoded
        raw = header_text(msg, "From")
        angle = re.search(r"<([^<>]*)>\s*$", raw)
        name, addr = (raw[:angle.start()].strip(' "'), angle[1]) if angle else parseaddr(raw)
        with suppress(Exception):
            name = str(make_header(decode_header(name)))
    addr = clean(addr).lower()
    return (addr if re.fullmatch(r"[^@\s<>]+@[^@\s<>]+", addr) else ""), clean(name)


_STATUS = re.compile(r"\b[245]\.\d{1,3}\.\d{1,3}\b")


def _bounce(msg: Message) -> Bounce | str | None:
    """The bounce if ``msg`` is a DSN (a DSN with no failure: why it is none), else None."""
    leaves = list(leaf_parts(msg))
    report = next((p for p in leaves if p.get_content_type() in
                   ("message/delivery-status", "message/global-delivery-status")), None)
    if report is None:
        return None
    found: dict[str, list[tuple[str, str, str]]] = {"failed": [], "delayed": []}
    for block in _status_blocks(report):
        who = next((v for v in (header_text(block, "Original-Recipient"),
                                header_text(block, "Final-Recipient")) if "@" in v), "")
        action, status = header_text(block, "Action").strip().lower(), header_text(block, "Status")
        if who and action in found:
            code, diagnostic = _STATUS.search(status), header_text(block, "Diagnostic-Code")
            found[action].append((who.rpartition(";")[2].strip(" <>").lower(),
                                  code.group() if code else "",
                                  clean(diagnostic.partition(";")[2] or diagnostic)))
    if not (rows := found["failed"] or found["delayed"]):
        return "a delivery status notification without a failed or delayed recipient"
    return Bounce(recipients=tuple(dict.fromkeys(r[0] for r in rows)), status=rows[0][1],
                  diagnostic=rows[0][2], original_message_id=_returned_id(leaves),
                  permanent=bool(found["failed"]) and rows[0][1].startswith("5"),
                  delayed=not found["failed"])


def _status_blocks(report: Message) -> list[Message]:
    """The per-message and per-recipient field blocks, however the parser split them."""
    payload = report.get_payload()
    blocks = [b for b in payload if isinstance(b, Message)] if isinstance(payload, list) else []
    texts = [str(b.get_payload()) for b in blocks] if blocks else [part_text(report)]
    for text in texts:  # RFC 6533's global report comes as one message with a body
        blocks += [HeaderParser(policy=policy.default).parsestr(chunk.strip() + "\n")
                   for chunk in re.split(r"\r?\n\s*\r?\n", text) if chunk.strip()]
    return blocks


def _returned_id(leaves: list[Message]) -> str | None:
    for part in leaves:
        kind, returned = part.get_content_type(), None
        if kind in ("message/rfc822", "message/global") and part.is_multipart():
            returned = part.get_payload(0)
        elif kind in ("text/rfc822-headers", "message/global-headers"):
            returned = HeaderParser(policy=policy.default).parsestr(part_text(part))
        if isinstance(returned, Message) and (ids := _IDS.findall(header_text(returned,
                                                                          "Message-ID"))):
            return ids[0]
    return None


_AUTO_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Autogenerated",
                 "X-MS-Exchange-Generated-Message-Source", "X-MS-Exchange-Inbox-Rules-Loop")
_AUTO_SUBJECT = re.compile(
    r"(out of (the )?office|automatic reply|auto:|auto[- ]?(reply|response)|autoreply"
    r"|automatische antwort|réponse automatique|respuesta automática)", re.IGNORECASE)


def _auto_marker(msg: Message, subject: str) -> str:
    submitted = header_text(msg, "Auto-Submitted").partition(";")[0].strip().lower()
    if submitted and submitted != "no":
        return f"Auto-Submitted: {submitted}"
    if present := next((name for name in _AUTO_HEADERS if header_text(msg, name)), None):
        return f"{present} header"
    if (precedence := header_text(msg, "Precedence").strip().lower()) in ("auto_reply", "bulk",
                                                                      "junk"):
        return f"Precedence: {precedence}"
    if header_text(msg, "Return-Path").strip() == "<>":
        return "null Return-Path"
    if msg.get_content_type() == "multipart/report":  # a read receipt (RFC 8098), say
        return f"a {msg.get_param('report-type') or 'multipart'} report"
    return f"subject {subject!r}" if _AUTO_SUBJECT.match(subject) else ""


def _calendars(msg: Message, limit: int) -> list[tuple[str, Calendar]]:
    """(METHOD, calendar) for each calendar part; one that will not parse is unusable."""
    out = []
    for n, part in enumerate(leaf_parts(msg), 1):
        if part.get_content_type() not in ("text/calendar", "application/ics") \
                and not (part_filename(part) or "").lower().endswith(".ics"):
            continue
        if len(text := part_text(part, limit + 1)) > limit:
            raise Unusable(f"calendar part {n} is too large")
        try:
            cal = Calendar.from_ical(text)
        except Exception as e:
            raise Unusable(f"calendar part {n} could not be parsed: {e}"[:300]) from e
        method = str(cal.get("METHOD") or part.get_param("method") or "")
        out.append((clean(method).upper(), cal))
    return out


def _rsvps(cal: Calendar) -> Iterator[Rsvp]:
    for event in cal.walk("VEVENT"):
        if not (uid := clean(str(event.get("UID", "")))):
            raise Unusable("calendar REPLY has a VEVENT without a UID")
        try:
            rid = _when(event, "RECURRENCE-ID")
        except Exception as e:
            raise Unusable("calendar REPLY has an unreadable RECURRENCE-ID") from e
        stamp = None
        with suppress(Exception):
            stamp = _when(event, "DTSTAMP")
        sequence = 0
        with suppress(TypeError, ValueError):
            sequence = int(event.get("SEQUENCE", 0))
        comment = " ".join(str(c) for c in _all(event, "COMMENT")).strip()
        start = None
        with suppress(Exception):
            start = _when(event, "DTSTART")
        for attendee in _all(event, "ATTENDEE"):
            email = re.sub(r"^mailto:", "", clean(str(attendee)), flags=re.I).lower()
            params = getattr(attendee, "params", {})
            if "@" not in email:  # Apple's servers: urn:uuid:… with the address in EMAIL=
                email = clean(str(params.get("EMAIL", ""))).strip('"').lower()
            state = str(params.get("PARTSTAT", "")).upper()
            # Google Calendar puts a decline's note on the ATTENDEE, Outlook in COMMENT
            note = clean(str(params.get("X-RESPONSE-COMMENT", ""))) or comment
            if "@" in email:
                yield Rsvp(uid, rid.isoformat() if rid else None, email,
                           state if state in PARTSTATS else "NEEDS-ACTION", note, sequence,
                           stamp.replace(tzinfo=UTC) if isinstance(stamp, datetime) else None,
                           start.isoformat() if isinstance(start, datetime) else None)


def _all(event: Any, name: str) -> list[Any]:
    values = event.get(name, [])
    return values if isinstance(values, list) else [values]


def _when(event: Any, name: str) -> date | None:
    """A date, or a date-time in UTC (naive when floating); an error when unreadable."""
    if name not in event:
        return None
    value = event.decoded(name)
    if not isinstance(value, date):
        raise ValueError(f"{name} is not a date")
    return value.astimezone(UTC) if isinstance(value, datetime) and value.tzinfo else value
