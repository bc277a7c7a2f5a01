"""A Graph session for the ``graph`` transport: the options, the sign-in (app-only tokens
from msal), requests through httpx with Retry-After honoured and a 401 signed in again,
paging and ``$batch``, Graph's refusals as TransportErrors that say what to fix; and the
names clerk's extended properties have in Graph, which meetings and messages share. msal and
httpx are imported only when a request is made."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from bot.domain.errors import TransportError
from bot.domain.options import Option, _float, _int, _str
from bot.transports.base import PROPERTY_SET
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
BATCH = 4  # requests per $batch: Outlook serves at most 4 at once per mailbox (20 allowed)
THROTTLED = (429, 503, 504)
THROTTLE_TRIES = 3  # throttled answers waited out in place, at most, per call

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


def _recipient(name: str, email: str) -> dict[str, Any]:
    return {"emailAddress": {"address": email, "name": name}}


def _has(prop: str, value: str) -> str:
    return f"singleValueExtendedProperties/Any(ep: ep/id eq '{prop}' and ep/value eq " \
           f"'{value.replace(chr(39), chr(39) * 2)}')"
