"""A fake Microsoft 365 for the ``graph`` transport, at the HTTP layer (httpx.MockTransport).

It answers the sign-in (msal's instance discovery, OpenID configuration and client-credentials
token request) and the Graph calls clerk makes, with bodies shaped like the documented ones,
keeps the events, sent messages and mailbox it is given, and records every request so a test
can assert on the exact method, path, query and JSON body. Faults are queued by a test:
``fake.fail(429, retry_after=30)`` answers the next Graph call with it.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest

TENANT = "contoso-tenant"
MAILBOX = "clerk@contoso.example"
LOGIN = "https://login.microsoftonline.com"
GRAPH = "https://graph.microsoft.com/v1.0"


@dataclass
class Seen:
    """One request as the fake received it."""

    method: str
    path: str  # under /v1.0, unquoted (or the full URL of an upload)
    query: dict[str, str]
    body: Any
    headers: dict[str, str]


@dataclass
class FakeGraph:
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    sent: list[dict[str, Any]] = field(default_factory=list)
    drafts: dict[str, dict[str, Any]] = field(default_factory=dict)
    uploads: dict[str, bytearray] = field(default_factory=dict)
    inbox: dict[str, bytes] = field(default_factory=dict)  # id → MIME
    folders: dict[str, list[str]] = field(default_factory=dict)  # folder id → message ids
    folder_names: dict[str, tuple[str, str]] = field(default_factory=dict)  # id → (parent, name)
    seen: list[Seen] = field(default_factory=list)
    tokens: int = 0  # tokens issued
    faults: list[httpx.Response] = field(default_factory=list)
    expired: set[str] = field(default_factory=set)  # tokens the fake no longer accepts
    answers: dict[tuple[str, str], str] = field(default_factory=dict)  # (event, email) → resp
    slept: list[float] = field(default_factory=list)  # what the transport waited, seconds
    refused: set[str] = field(default_factory=set)  # addresses sendMail refuses (400)
    batch_throttled: int = 0  # this many $batch parts come back 429
    roles: list[str] = field(default_factory=lambda: [
        "Calendars.ReadWrite", "Mail.Send", "Mail.ReadWrite"])  # the app's permissions

    # --- the test's side ---------------------------------------------------------------

    def fail(self, status: int, retry_after: float | None = None, code: str = "") -> None:
        headers = {"Retry-After": str(int(retry_after))} if retry_after is not None else {}
        self.faults.append(httpx.Response(status, headers=headers, json={"error": {
            "code": code or {429: "TooManyRequests", 503: "ServiceUnavailable",
                             403: "ErrorAccessDenied"}.get(status, "Error"),
            "message": "injected by the test"}}))

    def token(self, n: int) -> str:
        """The n-th access token: a JWT whose ``roles`` are the app's permissions."""
        def part(value: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

        return f"{part({'typ': 'JWT', 'alg': 'none'})}.{part({'jti': n, 'roles': self.roles})}.x"

    def expire_tokens(self) -> None:
        self.expired.update(self.token(n) for n in range(1, self.tokens + 1))

    def graph_calls(self) -> list[Seen]:
        return [s for s in self.seen if not s.path.startswith(LOGIN)]

    def calls(self, method: str, pattern: str) -> list[Seen]:
        return [s for s in self.graph_calls()
                if s.method == method and re.fullmatch(pattern, s.path)]

    def answer(self, event_id: str, email: str, response: str) -> None:
        """An attendee answers (Graph ``status.response``: accepted, declined, …)."""
        self.answers[(event_id, email)] = response

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handle))

    def transport(self, **options: Any) -> Any:
        from bot.transports.graph import GraphTransport

        return GraphTransport(dict(OPTIONS, **options), http=self.client(),
                              sleep=self.slept.append)

    def mailbox(self, **options: Any) -> Any:
        from bot.transports.graph import GraphMailbox

        return GraphMailbox(dict(OPTIONS, **options), http=self.client(),
                            sleep=self.slept.append)

    # --- the service's side ------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        url = urlsplit(str(request.url))
        raw = request.content
        try:
            body: Any = json.loads(raw) if raw and request.headers.get(
                "content-type", "").startswith("application/json") else raw
        except ValueError:
            body = raw
        if url.netloc == "login.microsoftonline.com":
            self.seen.append(Seen(request.method, f"{LOGIN}{url.path}", _query(url.query),
                                  parse_qs(raw.decode()) if raw else {}, dict(request.headers)))
            return self._login(request, url.path)
        if url.netloc == "upload.example":
            self.seen.append(Seen(request.method, str(request.url), {}, raw,
                                  dict(request.headers)))
            return self._upload(request, url.path)
        path = unquote(url.path.removeprefix("/v1.0"))
        self.seen.append(Seen(request.method, path, _query(url.query), body,
                              dict(request.headers)))
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if token not in {self.token(n) for n in range(1, self.tokens + 1)} \
                or token in self.expired:
            return _error(401, "InvalidAuthenticationToken", "Access token has expired.")
        if self.faults:
            return self.faults.pop(0)
        return self._graph(request.method, path, _query(url.query), body)

    def _login(self, request: httpx.Request, path: str) -> httpx.Response:
        if path.endswith("/discovery/instance"):
            return httpx.Response(200, json={
                "tenant_discovery_endpoint":
                    f"{LOGIN}/{TENANT}/v2.0/.well-known/openid-configuration",
                "metadata": []})
        if path.endswith("openid-configuration"):
            return httpx.Response(200, json={
                "authorization_endpoint": f"{LOGIN}/{TENANT}/oauth2/v2.0/authorize",
                "token_endpoint": f"{LOGIN}/{TENANT}/oauth2/v2.0/token",
                "issuer": f"{LOGIN}/{TENANT}/v2.0"})
        if path.endswith("/oauth2/v2.0/token"):
            form = parse_qs(request.content.decode())
            if form.get("client_secret") != ["s3cret"]:
                return httpx.Response(401, json={
                    "error": "invalid_client",
                    "error_description": "AADSTS7000215: Invalid client secret provided."})
            self.tokens += 1
            return httpx.Response(200, json={"token_type": "Bearer", "expires_in": 3599,
                                             "access_token": self.token(self.tokens)})
        return httpx.Response(404)

    def _upload(self, request: httpx.Request, path: str) -> httpx.Response:
        if "authorization" in request.headers:
            return httpx.Response(401)  # the upload URL must be sent without a token
        session = path.rsplit("/", 1)[-1]
        data = self.uploads.setdefault(session, bytearray())
        m = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", request.headers["content-range"])
        assert m and int(m.group(1)) == len(data), "chunks must come in order"
        data.extend(request.content)
        if len(data) == int(m.group(3)):
            return httpx.Response(201, json={})
        return httpx.Response(200, json={"nextExpectedRanges": [f"{len(data)}-"]})

    def _graph(self, method: str, path: str, query: dict[str, str],
               body: Any) -> httpx.Response:
        user = f"/users/{MAILBOX}"
        if path == "/$batch":
            out = []
            for r in body["requests"]:
                if self.batch_throttled:  # this part is throttled (Outlook's limits)
                    self.batch_throttled -= 1
                    out.append({"id": r["id"], "status": 429, "headers": {"Retry-After": "2"},
                                "body": {"error": {"code": "ApplicationThrottled"}}})
                    continue
                sub = urlsplit(r["url"])
                got = self._graph(r["method"], unquote(sub.path), _query(sub.query),
                                  r.get("body"))
                out.append({"id": r["id"], "status": got.status_code,
                            "body": json.loads(got.content or b"{}")})
            return httpx.Response(200, json={"responses": out})
        if not path.startswith(user):
            return _error(404, "ErrorInvalidUser",
                          f"The requested user '{path.split('/')[2]}' is invalid.")
        rest = path[len(user):]
        if rest == "/events" and method == "POST":
            for e in self.events.values():
                if body.get("transactionId") and e.get("transactionId") == body["transactionId"]:
                    return httpx.Response(201, json=e)  # Graph's own de-duplication
            event = dict(body, id=f"AAMk{uuid.uuid4().hex}", isCancelled=False)
            event["attendees"] = [dict(a, status={"response": "none"})
                                  for a in body.get("attendees", [])]
            self.events[event["id"]] = event
            return httpx.Response(201, json=self._shown(event))
        if rest == "/events" and method == "GET":
            found = [self._shown(e) for e in self.events.values() if _matches(e, query)]
            return httpx.Response(200, json={"value": found})
        m = re.fullmatch(r"/events/([^/]+)(/cancel|/instances)?", rest)
        if m:
            event = self.events.get(m.group(1)) or self._instance(m.group(1))
            if event is None:
                return _error(404, "ErrorItemNotFound", "The specified object was not found.")
            if m.group(2) == "/cancel":
                event["isCancelled"] = True
                event["cancelComment"] = body.get("comment", "")
                for master in self.events.values():  # a cancelled occurrence is not listed
                    master["instances"] = [i for i in master.get("instances", [])
                                           if i["id"] != event["id"]]
                return httpx.Response(202)
            if m.group(2) == "/instances":
                return httpx.Response(200, json={"value": event.get("instances", [])})
            if method == "PATCH":
                statuses = {a["emailAddress"]["address"]: a.get("status")
                            for a in event.get("attendees", [])}
                props = {p["id"]: p for p in event.get("singleValueExtendedProperties", [])}
                props.update({p["id"]: p for p in body.get("singleValueExtendedProperties", [])})
                event.update(body)  # as Graph: extended properties are set one by one
                event["singleValueExtendedProperties"] = list(props.values())
                if "attendees" in body:
                    event["attendees"] = [dict(a, status=statuses.get(
                        a["emailAddress"]["address"]) or {"response": "none"})
                        for a in body["attendees"]]
                return httpx.Response(200, json=self._shown(event))
            return httpx.Response(200, json=self._shown(event))
        if rest == "/sendMail":
            to = [r["emailAddress"]["address"] for r in body["message"]["toRecipients"]]
            if set(to) & self.refused:
                return _error(400, "ErrorInvalidRecipients",
                              "At least one recipient is not valid.")
            self.sent.append(body["message"])
            return httpx.Response(202)
        if rest == "/messages" and method == "POST":
            draft = dict(body, id=f"AAMkdraft{len(self.drafts)}", attachments=[])
            self.drafts[draft["id"]] = draft
            return httpx.Response(201, json=draft)
        m = re.fullmatch(r"/messages/([^/]+)/(attachments|attachments/createUploadSession"
                         r"|send|move|\$value)", rest)
        if m:
            return self._message(m.group(1), m.group(2), body)
        if rest == "/mailFolders/sentitems/messages":
            found = [{"id": f"sent{i}"} for i, s in enumerate(self.sent) if _matches(s, query)]
            return httpx.Response(200, json={"value": found[:1]})
        m = re.fullmatch(r"/mailFolders(?:/([^/]+)/(messages|childFolders))?", rest)
        if m:
            return self._folders(method, m.group(1) or "", m.group(2) or "childFolders",
                                 query, body)
        if rest in ("/mailFolders/inbox", "/calendar"):
            return httpx.Response(200, json={"id": rest, "canEdit": True})
        return _error(400, "BadRequest", f"the fake does not know {method} {path}")

    def _instance(self, iid: str) -> dict[str, Any] | None:
        """An occurrence of a series (a test lists them in its master's ``instances``)."""
        return next((i for e in self.events.values() for i in e.get("instances", [])
                     if i["id"] == iid), None)

    def _message(self, mid: str, what: str, body: Any) -> httpx.Response:
        if what == "$value":
            return httpx.Response(200, content=self.inbox[mid],
                                  headers={"content-type": "text/plain"})
        if what == "move":
            for ids in self.folders.values():
                if mid in ids:
                    ids.remove(mid)
            self.folders.setdefault(body["destinationId"], []).append(mid)
            return httpx.Response(201, json={"id": mid})
        draft = self.drafts[mid]
        if what == "attachments":
            draft["attachments"].append(body)
            return httpx.Response(201, json=body)
        if what == "attachments/createUploadSession":
            session = f"s{len(self.uploads)}"
            self.uploads[session] = bytearray()
            draft["attachments"].append({"name": body["AttachmentItem"]["name"],
                                         "session": session})
            return httpx.Response(201, json={
                "uploadUrl": f"https://upload.example/up/{session}",
                "expirationDateTime": "2027-01-01T00:00:00Z"})
        if what == "send":
            self.sent.append(draft)
            return httpx.Response(202)
        return _error(400, "BadRequest", what)

    def _folders(self, method: str, parent: str, what: str, query: dict[str, str],
                 body: Any) -> httpx.Response:
        if what == "messages":
            ids = list(self.inbox) if parent == "inbox" else self.folders.get(parent, [])
            filed = {i for ids_ in self.folders.values() for i in ids_}
            ids = [i for i in ids if parent != "inbox" or i not in filed]
            top = int(query.get("$top", "10"))
            return httpx.Response(200, json={"value": [{"id": i} for i in ids[:top]]})
        if method == "POST":
            fid = f"folder{len(self.folder_names)}"
            self.folder_names[fid] = (parent, body["displayName"])
            return httpx.Response(201, json={"id": fid, "displayName": body["displayName"]})
        name = re.search(r"displayName eq '(.*)'", query.get("$filter", ""))
        found = [{"id": fid} for fid, (p, n) in self.folder_names.items()
                 if p == parent and name and n == name.group(1)]
        return httpx.Response(200, json={"value": found})

    def _shown(self, event: dict[str, Any]) -> dict[str, Any]:
        shown = dict(event)
        shown["attendees"] = [dict(a, status={"response": self.answers.get(
            (event["id"], a["emailAddress"]["address"]), a.get("status", {}).get(
                "response", "none"))}) for a in event.get("attendees", [])]
        return shown


OPTIONS = {"mailbox": MAILBOX, "tenant_id": TENANT, "client_id": "app-id",
           "client_secret_env": "CLERK_TEST_GRAPH_SECRET", "max_wait": 10.0}


def _query(text: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(text).items()}


def _error(status: int, code: str, message: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message}})


def _matches(item: dict[str, Any], query: dict[str, str]) -> bool:
    """A ``singleValueExtendedProperties/Any(ep: ep/id eq 'P' and ep/value eq 'V')`` filter."""
    m = re.search(r"ep/id eq '([^']*)' and ep/value eq '((?:[^']|'')*)'",
                  query.get("$filter", ""))
    if not m:
        return True
    prop, value = m.group(1), m.group(2).replace("''", "'")
    return any(p.get("id") == prop and p.get("value") == value
               for p in item.get("singleValueExtendedProperties", []))


@pytest.fixture
def graph(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGraph]:
    monkeypatch.setenv("CLERK_TEST_GRAPH_SECRET", "s3cret")
    yield FakeGraph()


