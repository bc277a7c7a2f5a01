"""The meetings of the ``graph`` transport: each an event in the organiser's calendar,
whose server mails the invitations — made (``POST …/events``), changed (``PATCH``), cancelled
(``…/cancel``), a series' cancelled and moved meetings done among its ``…/instances``; the
events of a meeting found again by its UID, and the attendees' answers read in ``$batch``
requests."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from bot.domain.errors import TransportError
from bot.transports.calendar import HalfDone, MeetingChange, Op, Part, Unanswered
from bot.transports.graph.session import (
    DONE_PROP,
    PART_PROP,
    REV_PROP,
    THROTTLED,
    UID_PROP,
    Graph,
    GraphError,
    _has,
    _recipient,
)

log = logging.getLogger("clerk")

RESPONSES = {"accepted": "ACCEPTED", "tentativelyAccepted": "TENTATIVE",
             "declined": "DECLINED"}


def _when(value: datetime, zone: str) -> dict[str, str]:
    from zoneinfo import ZoneInfo

    local = value.astimezone(ZoneInfo(zone)).replace(tzinfo=None)
    return {"dateTime": local.isoformat(timespec="seconds"), "timeZone": zone}


def _attendees(people: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    return [{**_recipient(n, e), "type": "required"} for n, e in people]


def event_body(change: MeetingChange, attendees: Sequence[tuple[str, str]] | None,
               content: bool = True, part: int = 0, revision: int | None = None,
               done: int | None = None) -> dict[str, Any]:
    """The Graph event JSON for ``change``: times, place and words when ``content``, the
    attendees when given, the UID and part always, and the content revision the event then
    holds and the revision it is complete at, when given (they never go down)."""
    body: dict[str, Any] = {}
    c = change.content
    if content:
        m = c.master
        body.update({
            "subject": c.subject,
            "body": {"contentType": "HTML", "content": c.html},
            "start": _when(m.start, c.zone), "end": _when(m.end, c.zone),
            "location": {"displayName": m.location or ""},
            "isReminderOn": True, "responseRequested": True,
        })
        if m.rrule:
            body["recurrence"] = recurrence(m.rrule, m.start, c.zone)
    if attendees is not None:
        body["attendees"] = _attendees(attendees)
    body["singleValueExtendedProperties"] = [
        {"id": UID_PROP, "value": change.uid}, {"id": PART_PROP, "value": str(part)},
        *([{"id": REV_PROP, "value": str(revision)}] if revision is not None else []),
        *([{"id": DONE_PROP, "value": str(done)}] if done is not None else []),
    ]
    return body


def _properties(event: Mapping[str, Any]) -> dict[str, Any]:
    """clerk's extended properties of an event, by name (ClerkRevision, ClerkDone …)."""
    return {p.get("id", "").rpartition(" Name ")[2]: p.get("value")
            for p in event.get("singleValueExtendedProperties", [])}


def _series(change: MeetingChange) -> bool:
    """A series: its meetings are checked against the server's after any change (to be
    cancelled, moved, or moved back)."""
    return bool(change.content.master.rrule)


def recurrence(rrule: str, start: datetime, zone: str) -> dict[str, Any]:
    """Graph's ``patternedRecurrence`` for a series' RRULE (bot/domain/recurrence.py)."""
    from zoneinfo import ZoneInfo

    from bot.domain.recurrence import pattern

    p = pattern(rrule, start.astimezone(ZoneInfo(zone)))
    pat: dict[str, Any] = {"type": p.type, "interval": p.interval}
    if p.days_of_week:
        pat["daysOfWeek"] = list(p.days_of_week)
    if p.day_of_month:
        pat["dayOfMonth"] = p.day_of_month
    if p.index:
        pat["index"] = p.index
    if p.month:
        pat["month"] = p.month
    rng: dict[str, Any] = {"startDate": p.start.isoformat(), "recurrenceTimeZone": zone}
    if p.count:
        rng.update(type="numbered", numberOfOccurrences=p.count)
    elif p.until:
        rng.update(type="endDate", endDate=p.until.isoformat())
    else:
        rng["type"] = "noEnd"
    return {"pattern": pat, "range": rng}


class GraphMeetings:
    """The meetings side of GraphTransport (bot/transports/graph/transport.py), which holds
    the session."""

    graph: Graph

    def apply(self, change: MeetingChange, op: Op, part: Part | None) -> tuple[str, str]:
        """One operation. A series with cancelled or moved meetings is marked complete
        (``ClerkDone``) only once those are done too: a crash in between leaves it visibly
        unfinished, a failure keeps the event (HalfDone), and the next tick does what is
        left — its content (``ClerkRevision``) already saved is not sent again."""
        g = self.graph
        pending = op.action != "cancel" and op.content and _series(change)
        if op.action == "create":
            body = event_body(change, op.attendees, part=op.part, revision=change.revision,
                              done=change.revision - 1 if pending else change.revision)
            body["transactionId"] = hashlib.sha256(
                f"{change.uid}#{op.part}#{change.revision}".encode()).hexdigest()[:36]
            item_id = str(g.request("POST", g.user("/events"), body=body)["id"])
        else:
            assert part is not None
            item_id = part.item_id
            path = g.user(f"/events/{quote(item_id)}")
            if op.action == "cancel":
                try:
                    g.request("POST", f"{path}/cancel", body={"comment": _why(change)})
                except GraphError as exc:
                    if exc.code != "ErrorItemNotFound":  # not a mailbox gone: that is no done
                        raise
                    log.warning("graph: event %s is gone already (cancelled or deleted)",
                                item_id)
                return item_id, ""
            # the recurrence goes only when the series itself changed (its exceptions stay),
            # and content saved before a failure or a crash is not mailed again
            whole = op.content and not change.scope and not (
                pending and self._saved(path) >= change.revision)
            if whole or op.removed:
                g.request("PATCH", path, body=event_body(
                    change, op.attendees, whole, op.part,
                    change.revision if whole else None,
                    (change.revision - 1 if pending else change.revision)
                    if op.content else None))
        if pending:
            try:
                self._exceptions(change, item_id)
                g.request("PATCH", g.user(f"/events/{quote(item_id)}"), body={
                    "singleValueExtendedProperties": [
                        {"id": REV_PROP, "value": str(change.revision)},
                        {"id": DONE_PROP, "value": str(change.revision)}]})
            except TransportError as exc:
                raise HalfDone(exc, item_id) from exc
        return item_id, ""

    def _saved(self, path: str) -> int:
        """The content revision an event holds (its ``ClerkRevision``)."""
        got = self.graph.request("GET", path, params={
            "$select": "id", "$expand": f"singleValueExtendedProperties($filter=id eq "
                                       f"'{REV_PROP}')"}) or {}
        return int(_properties(got).get("ClerkRevision") or -1)

    def _exceptions(self, change: MeetingChange, item_id: str) -> None:
        """A series' cancelled meetings cancelled, and its moved meetings moved, as
        occurrences of the master, found among its instances by their original start (the
        window covers where each is now, too: a meeting moved before may be anywhere)."""
        c = change.content
        master = c.master
        g = self.graph
        # the whole series and a year past its last known change: a meeting moved before may
        # be anywhere in it, and instances are listed where they are now
        times = [master.start, *master.exdates, *(o.recurrence_id for o in c.overrides),
                 *(o.start for o in c.overrides)]
        by_start: dict[datetime, str] = {}
        moved: dict[datetime, str] = {}
        for inst in g.pages(g.user(f"/events/{quote(item_id)}/instances"), {
                "startDateTime": (min(times) - timedelta(days=1)).astimezone(UTC).isoformat(),
                "endDateTime": (max(times) + timedelta(days=366)).astimezone(UTC).isoformat(),
                "$select": "id,originalStart,start"}):
            when = _instant(inst.get("originalStart", ""))
            if when is not None:
                by_start[when] = str(inst["id"])
                if _instant((inst.get("start") or {}).get("dateTime", "")) not in (when, None):
                    moved[when] = str(inst["id"])
        wanted = {o.recurrence_id.astimezone(UTC) for o in c.overrides}
        for when, instance in moved.items():  # moved on the server, not in the config
            if when not in wanted and when not in {x.astimezone(UTC) for x in master.exdates}:
                g.request("PATCH", g.user(f"/events/{quote(instance)}"), body={
                    "start": _when(when, c.zone),
                    "end": _when(when + (master.end - master.start), c.zone),
                    "location": {"displayName": master.location or ""}})
        for rid in master.exdates:  # not among the instances: cancelled already
            found = by_start.get(rid.astimezone(UTC))
            if found:
                g.request("POST", g.user(f"/events/{quote(found)}/cancel"),
                          body={"comment": "This meeting is cancelled."})
        # moved meetings are moved again only when they themselves may have changed: not
        # when the change is other meetings cancelled (their attendees are not mailed again)
        for o in (c.overrides if change.scope != "occurrences" else ()):
            found = by_start.get(o.recurrence_id.astimezone(UTC))
            if found is None:
                raise TransportError(f"graph: the meeting of {o.recurrence_id.isoformat()} "
                                     f"is not among the series' meetings", retryable=True)
            g.request("PATCH", g.user(f"/events/{quote(found)}"), body={
                "start": _when(o.start, c.zone), "end": _when(o.end, c.zone),
                "location": {"displayName": o.location or ""}})

    def find(self, uid: str) -> list[Part]:
        g = self.graph
        events = g.pages(g.user("/events"), {
            "$filter": _has(UID_PROP, uid),
            "$select": "id,attendees,isCancelled",
            "$expand": f"singleValueExtendedProperties($filter=id eq '{REV_PROP}' or "
                       f"id eq '{PART_PROP}' or id eq '{DONE_PROP}')"})
        parts = []
        for number, event in enumerate(events):
            props = _properties(event)
            done = props.get("ClerkDone")
            attendees = tuple((a["emailAddress"].get("name", ""),
                               a["emailAddress"]["address"].lower())
                              for a in event.get("attendees", []))
            parts.append(Part(int(props.get("ClerkPart") or number), str(event["id"]),
                              attendees, int(done if done is not None else
                                             props.get("ClerkRevision") or 0),
                              bool(event.get("isCancelled"))))
        return parts

    def responses(self, items: Sequence[str]) -> dict[str, dict[str, str]]:
        """Each event's answers, in $batch calls; parts throttled are asked again once
        after their Retry-After (when short), else the whole read waits for the next tick
        (a TransportError: the executor does not count it as read)."""
        g = self.graph
        requests = {str(i): {"id": str(i), "method": "GET",
                             "url": g.user(f"/events/{quote(item)}?$select=attendees")}
                    for i, item in enumerate(items)}
        out: dict[str, dict[str, str]] = {}
        for attempt in (1, 2):
            throttled: dict[str, float] = {}
            for i, response in g.batch(list(requests.values())).items():
                status = int(response.get("status") or 0)
                if status in THROTTLED:
                    throttled[i] = float((response.get("headers") or {}).get(
                        "Retry-After", 5) or 5)
                    continue
                if status != 200:
                    log.warning("graph: reading answers of an event: %s", status)
                    continue
                answers = {}
                for a in response.get("body", {}).get("attendees", []):
                    state = RESPONSES.get(a.get("status", {}).get("response", ""))
                    if state:
                        answers[a["emailAddress"]["address"].lower()] = state
                out[items[int(i)]] = answers
            if not throttled:
                return out
            wait = max(throttled.values())
            if attempt == 2 or wait > g.max_wait:
                raise Unanswered(f"graph: reading answers: {len(throttled)} event(s) "
                                 "throttled", out, retry_after=wait)
            g.sleep(wait)
            requests = {i: requests[i] for i in throttled}
        return out


def _why(change: MeetingChange) -> str:
    return "This meeting is cancelled." if change.cancelled else \
        "You are no longer on this meeting's list."


def _instant(value: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.rstrip("Z")[:26])
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
