"""Turn a planned message into an RFC 5322 message: jinja2 text and HTML, plus iCalendar.

Invitations follow RFC 6047 (iMIP): multipart/mixed( multipart/alternative( text/plain,
text/html, text/calendar; method=REQUEST ), application/ics attachment ). The ``method``
parameter always equals the calendar's METHOD, or Outlook shows "not supported calendar
message".
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.domain.model import Desired, Group, Meeting, Person, Series
from bot.domain.tokens import message_digest, tag_subject
from bot.render import mime
from bot.render.templates import per_group, render
from bot.transports.base import Mail

if TYPE_CHECKING:
    from bot.render.agenda import Agenda
    from bot.render.ical import EventSpec

log = logging.getLogger("clerk")


def message_id(key: str, organiser: Person, secret: bytes) -> str:
    """The same ledger key always gives the same Message-ID, which only this install can
    make (bot/domain/tokens.py)."""
    domain = organiser.email.rpartition("@")[2] or "clerk.invalid"
    return f"<clerk.{message_digest(secret, key)}@{domain}>"


def invite_uid(group: Group, meeting_id: str) -> str:
    """Stable for the life of the meeting (RFC 5545 3.8.4.7)."""
    domain = group.organiser.email.rpartition("@")[2]
    return f"{group.id}.{meeting_id}@{domain}"


def _who(p: Person) -> tuple[str, str]:
    return " ".join(p.name.split()), p.email  # no header injection through a line break


def _address_header(name: str, people: Sequence[tuple[str, str]]) -> bytes:
    plain = [mime.address(n, e) for n, e in people]
    if all(plain):
        return mime.header(name, ", ".join(plain))  # type: ignore[arg-type]
    from email.headerregistry import Address

    return mime.header(name, [Address(display_name=n, addr_spec=e) for n, e in people])


def build(group: Group, desired: Desired, now: datetime, token: str | None = None,
          attachments: Sequence[tuple[str, str, bytes]] = (), *, secret: bytes) -> Mail:
    """The message for ``desired``; ``token`` (requests, chasers) tags the subject so an
    answer is matched even when its client drops In-Reply-To; ``secret`` is the install's,
    for the Message-ID."""
    ctx = desired.context
    subject = tag_subject(desired.subject, token) if token else desired.subject
    mid = message_id(desired.key, group.organiser, secret)
    sender, to = _who(group.organiser), _who(desired.recipient)
    cc = tuple(_who(p) for p in desired.cc)
    text = render(group, desired.template, "txt", ctx)
    html = render(group, desired.template, "html", ctx)
    seed = mid[7:23]  # the key's hash: the same message always has the same boundaries
    body = [mime.text_part(text, "plain"), mime.text_part(html, "html")]
    files = list(attachments)
    if desired.kind in ("invitation", *CANCELLATIONS):
        ics = invite_ics(group, desired, now)
        body.append(mime.text_part(ics.decode(), "calendar",
                                   (f'method="{itip_method(desired.kind)}"',)))
        # the alternative goes inside multipart/mixed; the .ics attachment goes beside it
        files.insert(0, ("invite.ics", "application/ics", ics))
    entity = mime.multipart("alternative", body, seed)
    if files:
        entity = mime.multipart("mixed", [entity, *(mime.file_part(data, kind, name)
                                                    for name, kind, data in files)], seed)
    head = [_address_header("From", [sender]), _address_header("To", [to])]
    if cc:
        head.append(_address_header("Cc", cc))
    head += [mime.header("Subject", subject), mime.header("Date", format_datetime(now)),
             mime.header("Message-ID", mid)]
    if desired.in_reply_to:  # threaded under the message it answers (RFC 5322 3.6.4)
        head += [mime.header("In-Reply-To", desired.in_reply_to),
                 mime.header("References", desired.in_reply_to)]
    head += [mime.header("Auto-Submitted", "auto-generated"),  # RFC 3834: auto-responders
             mime.header("X-Clerk-Key", desired.key), b"MIME-Version: 1.0\r\n"]
    return Mail(key=desired.key, message_id=mid, subject=subject, sender=sender, to=(to,),
                cc=cc, html=html, text=text, attachments=tuple(attachments),
                data=b"".join(head) + entity)


def pack_attachments(group: Group, desired: Desired, papers_root: Path,
                     zip_above: int) -> list[tuple[str, str, bytes]]:
    """The agenda as a Word document, and the papers members sent for the meeting (in one
    zip when they are large together)."""
    from bot.render import agenda as docs

    m = desired.context["meeting"]
    papers = meeting_papers(papers_root / group.id / desired.meeting)
    items: list[Any] = [{"text": t, "note": ""} for t in m["agenda"]]
    tracker: list[Any] = [{k: a[k] for k in ("topic", "text", "owner", "status", "due",
                                             "completed")} for a in m["actions"]]
    items += [{"text": n["text"], "note": f"agreed at {n['from']}" if n["from"] else ""}
              for n in m["nudges"]]
    items += [{"text": p["item"], "note": f"proposed by {p['by']}"} for p in m["proposals"]]
    document = agenda_document(docs.Agenda(
        group_name=group.name, title=m["title"], start=m["start"], end=m["end"],
        zone=group.zone, location=m["location"], link=m["link"],
        apologies=[{"name": p["name"], "organisation": p["organisation"],
                    "reason": p["comment"]} for p in m["rsvp"]["declined"]],
        no_answer=[p["name"] for p in m["rsvp"]["no_answer"]],
        actions=tracker, items=items,
        returns=[{"organisation": r["organisation"], "status": r["status"], "at": None}
                 for r in m["returns"]],
        papers=[name for name, _ in papers]))
    name = f"agenda-{desired.meeting}.docx"
    docx_type = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    return [(name, docx_type, document), *docs.bundle_papers(papers, zip_above)]


_AGENDAS: OrderedDict[str, bytes] = OrderedDict()  # repr of an Agenda -> its .docx


def agenda_document(agenda: Agenda, most: int = 32) -> bytes:
    """The agenda's .docx, built once for all who get the same agenda (a meeting's pack
    goes to every member alike; building one costs tens of milliseconds): kept by content,
    so a changed agenda (a new apology, an action closed, a revision) is built anew. The
    ``most`` built last are kept."""
    from bot.render import agenda as docs

    key = repr(agenda)
    found = _AGENDAS.get(key)
    if found is None:
        found = _AGENDAS[key] = docs.agenda_docx(agenda)
        if len(_AGENDAS) > most:
            _AGENDAS.popitem(last=False)
    else:
        _AGENDAS.move_to_end(key)
    return found


def meeting_papers(folder: Path) -> list[tuple[str, bytes]]:
    """The papers in ``folder`` a pack may carry, by name: each of an allowed type by its
    content (bot/listen/papers.py), named with its type's extension. Mail clerk reads puts
    nothing else there, but a folder an older clerk filled, or a file put there by hand,
    may hold something else: it is left out, and the log says so."""
    from bot.listen.papers import paper_name, sniff

    found = []
    for p in sorted(folder.iterdir()) if folder.is_dir() else []:
        if not p.is_file() or p.name.startswith((".", "~$")):
            continue
        data = p.read_bytes()
        kind = sniff(data, p.name)
        if kind.allowed:
            found.append((paper_name(p.name, kind), data))
        else:
            log.warning("pack: %s is not attached: %s (only documents, images and plain "
                        "text are)", p, kind.what)
    return sorted(found)


def file_attachment(path: Path) -> list[tuple[str, str, bytes]]:
    from bot.render.agenda import mime_type

    return [(path.name, mime_type(path.name), path.read_bytes())]


def invite_ics(group: Group, desired: Desired, now: datetime) -> bytes:
    """The iTIP object for an invitation or cancellation, from the meeting as configured."""
    from bot.render.ical import itip_for

    scope, rids = desired.context.get("scope", ""), tuple(desired.context.get("rids", ()))
    key = (desired.meeting, desired.kind, desired.sequence, scope, rids, now)

    def calendar() -> Callable[[tuple[str, str]], bytes]:
        series = next((s for s in group.series if s.id == desired.meeting), None)
        years = sorted({o.start.year for o in series.occurrences}
                       | {o.recurrence_id.year for o in series.occurrences
                          if o.recurrence_id}) if series else []
        return itip_for(
            method=itip_method(desired.kind), uid=invite_uid(group, desired.meeting),
            sequence=desired.sequence or 0, dtstamp=now, zone=group.zone,
            organiser_name=group.organiser.name, organiser_email=group.organiser.email,
            events=meeting_events(group, desired.meeting, scope, rids), zone_years=years)

    write = per_group(_CALENDARS, key, group, calendar, most=64)
    return write((desired.recipient.name, desired.recipient.email))


# a meeting's calendar, written once, by meeting, kind, revision and time
_CALENDARS: dict[Any, tuple[Group, Callable[[tuple[str, str]], bytes]]] = {}


CANCELLATIONS = ("cancellation", "occurrence_cancellation")


def itip_method(kind: str) -> str:
    """The iTIP method of an invitation's or a cancellation's calendar."""
    return "CANCEL" if kind in CANCELLATIONS else "REQUEST"


def meeting_events(group: Group, unit: str, scope: str = "",
                   rids: Sequence[str] = ()) -> list[EventSpec]:
    """The VEVENTs of meeting or series ``unit`` (a series: see :func:`_series_events`)."""
    series = next((s for s in group.series if s.id == unit), None)
    if series is None:
        return [_event(next(m for m in group.meetings if m.id == unit))]
    return _series_events(series, scope, rids)


def _event(m: Meeting, **extra: Any) -> EventSpec:
    from bot.render.ical import EventSpec

    return EventSpec(start=m.start, end=m.end, summary=m.title, location=m.location or None,
                     description=m.description or None, url=m.link or None, **extra)


def _series_events(series: Series, scope: str, rids: Sequence[str]) -> list[EventSpec]:
    """The VEVENTs of a series message: the whole series (master with RRULE and EXDATEs, and
    an override per moved meeting), the moved meetings alone, or the cancelled ones alone —
    each override and cancelled meeting named by RECURRENCE-ID = its original start."""
    master = series.master
    by_rid = {o.recurrence_id.astimezone(UTC).isoformat(): o for o in series.occurrences
              if o.recurrence_id is not None}
    if scope == "occurrences":  # each at its original time, as the calendar holds it
        return [_event(replace(o, start=rid_at), recurrence_id=rid_at)
                for r in rids if (o := by_rid.get(r)) and (rid_at := o.recurrence_id)]
    if scope == "overrides":
        return [_event(by_rid[r], recurrence_id=by_rid[r].recurrence_id)
                for r in rids if r in by_rid]
    moved = [o for o in series.occurrences if not o.cancelled
             and (o.start, o.duration, o.location, o.link)
             != (o.recurrence_id, master.duration, master.location, master.link)]
    exdates = [o.recurrence_id for o in series.occurrences
               if o.cancelled and o.recurrence_id is not None and not series.cancelled]
    return [_event(master, rrule=series.repeat, exdates=exdates),
            *(_event(o, recurrence_id=o.recurrence_id) for o in moved)]
