"""Turn a planned message into an RFC 5322 message: jinja2 text and HTML, plus iCalendar.

Invitations follow RFC 6047 (iMIP): multipart/mixed( multipart/alternative( text/plain,
text/html, text/calendar; method=REQUEST ), application/ics attachment ). The ``method``
parameter always equals the calendar's METHOD, or Outlook shows "not supported calendar
message".
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from bot.model import Desired, Group, Person
from bot.render.templates import render


def message_id(key: str, organiser: Person) -> str:
    """Deterministic: the same ledger key always gives the same Message-ID."""
    domain = organiser.email.rpartition("@")[2] or "clerk.invalid"
    return f"<clerk.{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"


def invite_uid(group: Group, meeting_id: str) -> str:
    """Stable for the life of the meeting (RFC 5545 3.8.4.7)."""
    domain = group.organiser.email.rpartition("@")[2]
    return f"{group.id}.{meeting_id}@{domain}"


def _address(p: Person) -> Address:
    name = " ".join(p.name.split())  # no header injection through a line break in a name
    local, _, domain = p.email.rpartition("@")
    return Address(display_name=name, username=local, domain=domain)


def build(group: Group, desired: Desired, now: datetime) -> EmailMessage:
    ctx = desired.context
    msg = EmailMessage()
    msg["From"] = _address(group.organiser)
    msg["To"] = _address(desired.recipient)
    msg["Subject"] = desired.subject
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id(desired.key, group.organiser)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: auto-responders stay quiet
    msg["X-Clerk-Key"] = desired.key
    msg.set_content(render(group, desired.template, "txt", ctx))
    msg.add_alternative(render(group, desired.template, "html", ctx), subtype="html")
    if desired.kind in ("invitation", "cancellation"):
        ics = invite_ics(group, desired, now)
        method = "CANCEL" if desired.kind == "cancellation" else "REQUEST"
        msg.add_alternative(ics.decode(), subtype="calendar", params={"method": method})
        msg.make_mixed()  # the alternative moves inside; the .ics attachment goes beside it
        msg.add_attachment(ics, maintype="application", subtype="ics", filename="invite.ics")
    return msg


def invite_ics(group: Group, desired: Desired, now: datetime) -> bytes:
    from bot.render.ical import invite_calendar

    m = desired.context["meeting"]
    recipient = desired.recipient
    return invite_calendar(
        method="CANCEL" if desired.kind == "cancellation" else "REQUEST",
        uid=invite_uid(group, desired.meeting), sequence=desired.sequence or 0, dtstamp=now,
        start=m["start"], end=m["end"],
        zone=group.zone, summary=m["title"], location=m["location"] or None,
        description=m["description"] or None, url=m["link"] or None,
        organiser_name=group.organiser.name, organiser_email=group.organiser.email,
        attendees=[(recipient.name, recipient.email)],
    )
