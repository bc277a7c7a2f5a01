"""``clerk doctor`` for the ``graph`` transport and mailbox: the settings, the sign-in, the
mailbox, the calendar and the application permissions the token carries."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from bot.domain.errors import TransportError
from bot.transports.graph.session import Graph

PERMISSIONS = ("Calendars.ReadWrite", "Mail.Send", "Mail.ReadWrite")  # application


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
