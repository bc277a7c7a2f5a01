"""The ``graph`` transport: Microsoft 365 through Microsoft Graph (msal + httpx).

A thin adapter of clerk's own — not the Graph SDK, which is hundreds of megabytes and slow to
import. It does what clerk needs and no more:

- meetings: ``POST /users/{mailbox}/events`` (the server mails the invitations), ``PATCH`` for
  updates and attendee changes, ``POST …/cancel`` for cancellations, a series' cancelled and
  moved meetings through ``…/instances``; the attendees' ``status.response`` read back as
  RSVPs in ``$batch`` requests (of four: Outlook serves four requests at once per mailbox);
- messages: ``POST /users/{mailbox}/sendMail``; with attachments over 3 MB together, a draft,
  an upload session per large attachment (chunks of 320 KiB multiples), then ``…/send``;
- the inbox read for replies (``…/messages/{id}/$value`` is the message as sent, MIME) and
  each message moved to ``clerk/processed`` or ``clerk/unprocessed``; nothing is deleted.

Every event and message carries the ledger's key (messages) or the meeting's UID and
revision (events) as single-value extended properties, so after a crash clerk finds what
Microsoft 365 already holds instead of sending it twice; a new event also carries a
``transactionId``, which makes Graph refuse to create the same event twice.

Throttling: 429, 503 and 504 are retried in place when ``Retry-After`` is short (at most
``max_wait`` seconds); a longer wait becomes a retryable TransportError carrying it, so the
ledger waits instead of the worker. A 401 (an expired or revoked token) gets one new token
and one more try.

Permissions (application, admin consent): Calendars.ReadWrite, Mail.Send, Mail.ReadWrite;
scope them to the organiser's mailbox with an application access policy (README).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from bot.domain.errors import TransportError
from bot.domain.options import Option, _float, _int, _str
from bot.transports.base import PROPERTY_SET, Mail
from bot.transports.calendar import CalendarTransport, HalfDone, MeetingChange, Op, Part, Unanswered
from bot.transports.credentials import secret

log = logging.getLogger("clerk")

GRAPH = "https://graph.microsoft.com/v1.0"
LOGIN = "https://login.microsoftonline.com"
SCOPE = "https://graph.microsoft.com/.default"
PROPERTIES = "{" + PROPERTY_SET + "}"
KEY_PROP = f"String {PROPERTIES} Name ClerkKey"
UID_PROP = f"String {PROPERTIES} Name ClerkUid"
REV_PROP = f"Integer {PROPERTIES} Name ClerkRevision"
PART_PROP = f"Integer {PROPERTIES} Name ClerkPart"
DONE_PROP = f"Integer {PROPERTIES} Name ClerkDone"  # the revision complete, exceptions too
INLINE_LIMIT = 3 * 1024 * 1024  # larger attachments need an upload session
CHUNK = 320 * 1024 * 10  # upload chunks: a multiple of 320 KiB
BATCH = 4  # requests per $batch: Outlook serves at most 4 at once per mailbox (20 allowed)
THROTTLED = (429, 503, 504)
THROTTLE_TRIES = 3  # throttled answers waited out in place, at most, per call
PERMISSIONS = ("Calendars.ReadWrite", "Mail.Send", "Mail.ReadWrite")  # application
RESPONSES = {"accepted": "ACCEPTED", "tentativelyAccepted": "TENTATIVE",
             "declined": "DECLINED"}

OPTIONS = {
    "mailbox": Option("", _str, "the organiser's mailbox (user principal name or id)"),
    "tenant_id": Option("", _str, "the Microsoft 365 tenant (directory) id"),
    "client_id": Option("", _str, "the app registration's application (client) id"),
    "client_secret_env": Option("CLERK_GRAPH_SECRET", _str,
                                "variable holding the app's client secret"),
    "client_secret_file": Option("", _str, "file holding the app's client secret"),
    "timeout": Option(30.0, _float, "seconds to wait for Microsoft 365"),
    "max_wait": Option(10.0, _float, "longest Retry-After waited in place, seconds; longer: "
                       "the message is retried by the ledger"),
    "inbox": Option("inbox", _str, "the folder clerk reads"),
    "processed": Option("clerk/processed", _str, "where handled messages go"),
    "unprocessed": Option("clerk/unprocessed", _str, "where messages clerk cannot use go"),
    "batch": Option(200, _int, "at most this many messages read per tick"),
}


class Graph:
    """An authenticated Graph session: tokens from msal, requests through httpx, Retry-After
    honoured, failures as TransportError. ``http`` (an ``httpx.Client``) is injectable."""

    def __init__(self, options: Mapping[str, Any], http: Any = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.options = options
        self.mailbox = str(options.get("mailbox") or "")
        self.max_wait = float(options.get("max_wait", 10.0))
        self._http = http
        self.sleep = sleep
        self._app: Any = None
        self._token: str | None = None

    def __repr__(self) -> str:  # never shows credentials
        return f"<Graph {self.mailbox}>"

    @property
    def http(self) -> Any:
        if self._http is None:
            import httpx

            self._http = httpx.Client(timeout=float(self.options.get("timeout", 30.0)))
        return self._http

    def token(self, fresh: bool = False) -> str:
        """An app-only access token (client credentials), from msal's cache when valid."""
        if self._token is not None and not fresh:
            return self._token
        missing = [k for k in ("tenant_id", "client_id") if not self.options.get(k)]
        client_secret = secret(self.options, "client_secret")
        if missing or not client_secret:
            what = ", ".join(missing) if missing else (
                f"the client secret (set {self.options.get('client_secret_env')} or "
                "client_secret_file)")
            raise TransportError(f"graph: missing {what}", retryable=False)
        if self._app is None:
            import msal

            self._app = msal.ConfidentialClientApplication(
                self.options["client_id"], client_credential=client_secret,
                authority=f"{LOGIN}/{self.options['tenant_id']}", http_client=self.http)
        if fresh:
            self._app.remove_tokens_for_client()
        try:
            got = self._app.acquire_token_for_client(scopes=[SCOPE])
        except Exception as exc:  # the sign-in service is unreachable: later
            raise TransportError(f"graph: cannot reach the sign-in service: {exc}",
                                 retryable=True) from exc
        if "access_token" not in got:
            raise TransportError(
                f"graph: sign-in refused: {got.get('error')}: "
                f"{str(got.get('error_description', '')).splitlines()[0]} (check tenant_id, "
                "client_id and the client secret; a secret expires — make a new one in the "
                "app registration)", retryable=False)
        self._token = str(got["access_token"])
        return self._token

    def user(self, path: str = "") -> str:
        return f"/users/{quote(self.mailbox)}{path}"

    def request(self, method: str, path: str, *, body: Any = None,
                params: Mapping[str, str] | None = None, url: str | None = None,
                content: bytes | None = None, headers: Mapping[str, str] | None = None,
                auth: bool = True) -> Any:
        """One Graph call; returns the parsed JSON (or the bytes for ``$value``)."""
        retried_auth = False
        waited, throttled = 0.0, 0
        while True:
            head = dict(headers or {})
            if body is not None:
                head["Content-Type"] = "application/json"
            if auth:
                head["Authorization"] = f"Bearer {self.token()}"
            try:
                response = self.http.request(
                    method, url or GRAPH + path, params=params, headers=head,
                    content=content if content is not None else (
                        json.dumps(body).encode() if body is not None else None))
            except Exception as exc:  # httpx.TransportError and friends: the network
                raise TransportError(f"graph: {method} {path or 'upload'}: {exc}",
                                     retryable=True, in_doubt=True) from exc
            status = response.status_code
            if status == 401 and auth and not retried_auth:
                retried_auth = True
                self.token(fresh=True)
                continue
            if status in THROTTLED:
                wait = _retry_after(response)
                throttled += 1
                if waited + wait <= self.max_wait and throttled <= THROTTLE_TRIES:
                    log.info("graph: %s, waiting %ss", status, wait)
                    self.sleep(wait)
                    waited += wait
                    continue
                raise TransportError(f"graph: {status} {_error(response)}", retryable=True,
                                     retry_after=wait)
            if status >= 400:
                raise _failure(method, path, status, response)
            if not response.content:
                return None
            if "json" in response.headers.get("content-type", ""):
                return response.json()
            return response.content

    def pages(self, path: str, params: Mapping[str, str]) -> Iterator[dict[str, Any]]:
        """Every item of a list, following ``@odata.nextLink`` (Outlook lists come ten to a
        page unless asked for more)."""
        url: str | None = None
        query: Mapping[str, str] | None = {"$top": "100", **params}
        while True:
            got = self.request("GET", path, params=query, url=url) or {}
            yield from got.get("value", [])
            url, query = got.get("@odata.nextLink"), None
            if not url:
                return

    def batch(self, requests: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """``requests`` in ``$batch`` calls of BATCH each; id → response (each part has
        its own status: the caller decides what a failed part means)."""
        out: dict[str, Any] = {}
        for start in range(0, len(requests), BATCH):
            body = {"requests": list(requests[start:start + BATCH])}
            got = self.request("POST", "/$batch", body=body) or {}
            for r in got.get("responses", []):
                out[str(r.get("id"))] = r
        return out


def _retry_after(response: Any) -> float:
    try:
        return max(0.0, float(response.headers.get("retry-after", "5")))
    except ValueError:
        return 5.0


def _error(response: Any) -> str:
    try:
        error = response.json().get("error", {})
        return f"{error.get('code', '')}: {error.get('message', '')}".strip(": ")
    except Exception:
        return response.text[:200]


ADVICE = {
    401: "the token was refused twice: check the app registration's client secret",
    403: "the app lacks a permission: grant the application permissions Calendars.ReadWrite, "
         "Mail.Send and Mail.ReadWrite with admin consent, and make sure an application "
         "access policy (if any) includes the organiser's mailbox",
    404: "no such mailbox or item: check [transport] mailbox (the organiser's address) and "
         "that it has an Exchange Online licence",
}


class GraphError(TransportError):
    """Graph refused a request; ``status`` is its HTTP status."""

    def __init__(self, message: str, status: int, retryable: bool | None = None,
                 code: str = "") -> None:
        super().__init__(message, retryable=status >= 500 or status in (408, 409, 412)
                         if retryable is None else retryable)
        self.status = status
        self.code = code  # Graph's error code, e.g. ErrorItemNotFound


def _failure(method: str, path: str, status: int, response: Any) -> GraphError:
    detail = _error(response)
    advice = ADVICE.get(status, "")
    gone = status == 404 and "/events/" in path  # a meeting's event deleted by hand
    if gone:
        advice = ("the event is gone from the organiser's calendar (deleted in Outlook?): "
                  "clerk looks again and makes it anew at the next attempt")
    return GraphError(f"graph: {method} {path}: {status} {detail}"
                      + (f" ({advice})" if advice else ""), status, True if gone else None,
                      detail.partition(":")[0])


def _when(value: datetime, zone: str) -> dict[str, str]:
    from zoneinfo import ZoneInfo

    local = value.astimezone(ZoneInfo(zone)).replace(tzinfo=None)
    return {"dateTime": local.isoformat(timespec="seconds"), "timeZone": zone}


def _recipient(name: str, email: str) -> dict[str, Any]:
    return {"emailAddress": {"address": email, "name": name}}


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


def message_body(out: Mail, attachments: bool = True) -> dict[str, Any]:
    """The Graph message JSON: addresses, HTML, the ledger key, small attachments inline."""
    body: dict[str, Any] = {
        "subject": out.subject,
        "body": {"contentType": "HTML", "content": out.html},
        "toRecipients": [_recipient(n, e) for n, e in out.to],
        "internetMessageHeaders": [{"name": "X-Clerk-Key", "value": out.key}],
        "singleValueExtendedProperties": [{"id": KEY_PROP, "value": out.key}],
    }
    if out.cc:
        body["ccRecipients"] = [_recipient(n, e) for n, e in out.cc]
    if attachments and out.attachments:
        body["attachments"] = [_file(name, mime, data) for name, mime, data in out.attachments]
    return body


def _file(name: str, mime: str, data: bytes) -> dict[str, Any]:
    return {"@odata.type": "#microsoft.graph.fileAttachment", "name": name,
            "contentType": mime, "contentBytes": base64.b64encode(data).decode()}


def _has(prop: str, value: str) -> str:
    return f"singleValueExtendedProperties/Any(ep: ep/id eq '{prop}' and ep/value eq " \
           f"'{value.replace(chr(39), chr(39) * 2)}')"


class GraphTransport(CalendarTransport):
    """Messages through ``sendMail``; meetings as events in the organiser's calendar."""

    name = "graph"
    batch = BATCH  # sendMail requests in one $batch

    def __init__(self, options: dict[str, Any], http: Any = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(options)
        self.graph = Graph(options, http, sleep)

    def __repr__(self) -> str:
        return f"<GraphTransport {self.graph.mailbox}>"

    def describe(self) -> str:
        return f"graph {self.graph.mailbox}"

    # --- messages --------------------------------------------------------------------------

    def send(self, out: Mail) -> None:
        g = self.graph
        if out.size <= INLINE_LIMIT:
            g.request("POST", g.user("/sendMail"),
                      body={"message": message_body(out), "saveToSentItems": True})
            return
        # large: a draft, each attachment (an upload session above 3 MB), then send
        draft = g.request("POST", g.user("/messages"), body=message_body(out, False))
        path = g.user(f"/messages/{quote(draft['id'])}")
        for name, mime, data in out.attachments:
            if len(data) <= INLINE_LIMIT:
                g.request("POST", f"{path}/attachments", body=_file(name, mime, data))
            else:
                self._upload(path, name, mime, data)
        g.request("POST", f"{path}/send")

    def send_many(self, messages: list[Mail]) -> list[TransportError | None]:
        """Messages without attachments go BATCH to a ``$batch`` (one round trip); the rest
        one at a time. Each part's own status is that message's outcome."""
        outs = messages
        outcomes: list[TransportError | None] = [None] * len(messages)
        small = [i for i, o in enumerate(outs) if not o.attachments]
        for i, out in enumerate(outs):
            if i not in small:
                try:
                    self.send(out)
                except TransportError as exc:
                    outcomes[i] = exc
        if not small:
            return outcomes
        g = self.graph
        requests = [{"id": str(i), "method": "POST", "url": g.user("/sendMail"),
                     "headers": {"Content-Type": "application/json"},
                     "body": {"message": message_body(outs[i]), "saveToSentItems": True}}
                    for i in small]
        try:
            answers = g.batch(requests)
        except TransportError as exc:
            for i in small:
                outcomes[i] = exc
            return outcomes
        for i in small:
            r = answers.get(str(i), {})
            status = int(r.get("status", 0))
            if status >= 400 or not status:
                wait = float((r.get("headers") or {}).get("Retry-After", 0) or 0) or None
                error = (r.get("body") or {}).get("error", {})
                outcomes[i] = TransportError(
                    f"graph: sendMail: {status} {error.get('code', '')}: "
                    f"{error.get('message', '')}" + (f" ({ADVICE[status]})"
                                                     if status in ADVICE else ""),
                    retryable=status in THROTTLED or status >= 500 or not status,
                    retry_after=wait)
        return outcomes

    def _upload(self, path: str, name: str, mime: str, data: bytes) -> None:
        g = self.graph
        session = g.request("POST", f"{path}/attachments/createUploadSession", body={
            "AttachmentItem": {"attachmentType": "file", "name": name, "size": len(data),
                               "contentType": mime}})
        url = session["uploadUrl"]  # pre-authorised: no Authorization header
        for start in range(0, len(data), CHUNK):
            chunk = data[start:start + CHUNK]
            g.request("PUT", "", url=url, content=chunk, auth=False, headers={
                "Content-Range": f"bytes {start}-{start + len(chunk) - 1}/{len(data)}",
                "Content-Type": "application/octet-stream"})

    def lookup(self, message_id: str, key: str = "") -> bool | None:
        """Whether Sent Items holds the message with ledger key ``key``."""
        if not key:
            return None
        g = self.graph
        got = g.request("GET", g.user("/mailFolders/sentitems/messages"), params={
            "$filter": _has(KEY_PROP, key), "$select": "id", "$top": "1"})
        return bool((got or {}).get("value"))

    # --- meetings --------------------------------------------------------------------------

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

    def doctor(self) -> list[tuple[bool, str, str]]:
        return doctor(self.graph, self.options)

    def close(self) -> None:
        pass  # the httpx client keeps its connections for the next tick


def doctor(g: Graph, options: Mapping[str, Any]) -> list[tuple[bool, str, str]]:
    """(ok, what was checked, how to fix it) for the settings, the sign-in, the mailbox,
    the calendar and the permissions the app holds."""
    checks: list[tuple[bool, str, str]] = []
    for key in ("mailbox", "tenant_id", "client_id"):
        ok = bool(options.get(key))
        checks.append((ok, f"[transport] {key}", "" if ok else f"set {key} in clerk.toml"))
    if not all(ok for ok, _, _ in checks):
        return checks
    try:
        roles = _roles(g.token())
    except TransportError as exc:
        return [*checks, (False, "sign-in (client credentials)", str(exc))]
    checks.append((True, "sign-in (client credentials)", ""))
    # granted in Microsoft Entra ID, the permissions are in the token; granted with RBAC for
    # Applications in Exchange Online instead, the token has none and the reads below tell
    missing = [r for r in PERMISSIONS if r not in roles] if roles else []
    grant = (f"grant {', '.join(missing)} (application permissions, Microsoft Graph) and "
             "give admin consent") if missing else ""
    steps = [
        ("mailbox: read the inbox (Mail.ReadWrite)",
         lambda: g.request("GET", g.user("/mailFolders/inbox"), params={"$select": "id"})),
        ("calendar: read the calendar (Calendars.ReadWrite)",
         lambda: g.request("GET", g.user("/calendar"), params={"$select": "canEdit"})),
    ]
    for what, step in steps:
        try:
            got = step()
        except TransportError as exc:
            checks.append((False, what, f"{exc}; {grant}" if grant else str(exc)))
            return checks
        if isinstance(got, dict) and got.get("canEdit") is False:
            checks.append((False, what, "the app may read but not write the calendar: "
                           "grant Calendars.ReadWrite (application) with admin consent"))
            return checks
        checks.append((True, what, ""))
    what = "application permissions: " + (", ".join(roles) if roles else
                                         "none in the token (scoped by RBAC for Applications)")
    checks.append((not missing, what, grant))
    return checks


def _roles(token: str) -> list[str]:
    """The application permissions an access token carries (its ``roles`` claim); the
    token is only read, never trusted: Microsoft 365 checks it."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return [str(r) for r in claims.get("roles", [])]
    except (IndexError, ValueError, AttributeError):
        return []


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


class GraphMailbox:
    """The organiser's inbox read through Graph, as bot/transports/imap.py reads IMAP."""

    name = "graph"

    def __init__(self, options: dict[str, Any], http: Any = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.options = options
        self.graph = Graph(options, http, sleep)
        self._folders: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"<GraphMailbox {self.graph.mailbox}>"

    def messages(self) -> Iterator[tuple[str, bytes]]:
        g = self.graph
        folder = quote(str(self.options.get("inbox", "inbox")))
        got = g.request("GET", g.user(f"/mailFolders/{folder}/messages"), params={
            "$select": "id", "$orderby": "receivedDateTime",
            "$top": str(int(self.options.get("batch", 200)))})
        for m in (got or {}).get("value", []):
            raw = g.request("GET", g.user(f"/messages/{quote(m['id'])}/$value"))
            if raw:
                yield str(m["id"]), raw

    def file(self, uid: str, handled: bool) -> None:
        g = self.graph
        target = self._folder(str(self.options.get("processed" if handled else "unprocessed")
                                  or ("clerk/processed" if handled else "clerk/unprocessed")))
        g.request("POST", g.user(f"/messages/{quote(uid)}/move"),
                  body={"destinationId": target})

    def _folder(self, path: str) -> str:
        """The id of folder ``path`` ("clerk/processed"), made if missing."""
        if path in self._folders:
            return self._folders[path]
        g = self.graph
        parent = ""
        for name in path.split("/"):
            where = g.user(f"/mailFolders/{quote(parent)}/childFolders") if parent \
                else g.user("/mailFolders")
            escaped = name.replace("'", "''")
            got = g.request("GET", where, params={"$filter": f"displayName eq '{escaped}'",
                                                  "$select": "id"})
            found = (got or {}).get("value", [])
            parent = str(found[0]["id"]) if found else str(
                g.request("POST", where, body={"displayName": name})["id"])
        self._folders[path] = parent
        return parent

    def doctor(self) -> list[tuple[bool, str, str]]:
        return doctor(self.graph, self.options)

    def keep_sent(self, raw: bytes) -> None:
        pass  # Microsoft 365 keeps Sent Items itself (saveToSentItems)

    def find_sent(self, message_id: str) -> bool | None:
        return None  # the transport looks up by the ledger key (GraphTransport.lookup)

    def close(self) -> None:
        pass
