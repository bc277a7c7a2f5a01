"""Who really sent a message: From is not evidence, what our own receiving server concluded is.

A reply counts only when its From is authenticated, in one of three ways the install chooses
(``[mailbox]`` in clerk.toml; :data:`OPTIONS`):

- ``authserv_id``: the ``Authentication-Results`` header (RFC 8601) that the install's own
  mail server adds, recognised by its authserv-id. Only the topmost run of such headers is
  read — the ones the server put on top when the message arrived — and every instance with
  another authserv-id is ignored (RFC 8601 section 5: a header claiming our id from outside
  is forgeable; the server should remove it, and a forger's copy sits below ours). The From
  is authenticated by ``dmarc=pass`` whose ``header.from`` is the From's domain, or by
  ``dkim=pass`` / ``spf=pass`` whose domain (``header.d``, ``smtp.mailfrom``) is the From's
  domain or a subdomain of it (aligned, RFC 7489 section 3.1; a parent domain is left to DMARC,
  which knows the public suffixes).
- ``microsoft365``: Exchange Online stamps its own verdict on every inbound message in a
  shape RFC 8601 parsers refuse (no authserv-id, ``action=none``); it is read only for mail
  read through the tenant's own mailbox, never from a file, and only the topmost instance.
  ``X-MS-Exchange-Organization-AuthAs: Internal`` (removed by Exchange at the organisation's
  boundary) marks a sender who signed in to the tenant.
- ``trusted``: the mailbox itself admits authenticated senders only (Exchange's "require
  that all senders are authenticated"), so the transport's word is enough. Only for the
  ``exchange`` and ``graph`` mailboxes.

Parsing the header is :mod:`authres`'s (it follows the RFC's grammar); what counts is here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message
from typing import Any

from bot.domain.options import Option, _bool


def _ids(v: Any) -> tuple[str, ...]:
    values = [v] if isinstance(v, str) else list(v) if isinstance(v, list | tuple) else v
    if not isinstance(values, list) or not all(isinstance(x, str) for x in values):
        raise ValueError('must be a name in quotes, or a list like ["mx1.example.org", '
                         '"mx2.example.org"]')
    for x in values:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.-]*", x):
            raise ValueError(f"{x!r} is not an authserv-id (a host name like mx.example.org)")
    return tuple(x.lower() for x in values)


OPTIONS = {
    "authserv_id": Option((), _ids, "the authserv-id of the Authentication-Results your "
                          "mail server adds (e.g. mx.example.org); a list for several"),
    "microsoft365": Option(False, _bool, "true: read Microsoft 365's own verdict (mail read "
                           "through the tenant's mailbox only)"),
    "trusted": Option(False, _bool, "true: the mailbox admits authenticated senders only "
                      "(exchange and graph mailboxes)"),
}
VOUCHING = ("exchange", "graph")  # mailboxes that may say they admit authenticated senders only
TENANT = ("exchange", "graph", "imap")  # may read Microsoft 365's stamp through the tenant


@dataclass(frozen=True)
class Trust:
    """How this install tells who sent a message (see the module's docstring)."""

    authserv_ids: tuple[str, ...] = ()
    microsoft365: bool = False
    vouched: bool = False

    @property
    def configured(self) -> bool:
        return bool(self.authserv_ids or self.microsoft365 or self.vouched)

    def describe(self) -> str:
        ways = [f"Authentication-Results from {', '.join(self.authserv_ids)}"
                if self.authserv_ids else "",
                "Microsoft 365's verdict" if self.microsoft365 else "",
                "the mailbox admits authenticated senders only" if self.vouched else ""]
        return "; ".join(w for w in ways if w) or "nothing (no [mailbox] authserv_id)"


NO_TRUST = Trust()  # nothing configured: no sender is authenticated


def trust_of(options: dict[str, Any], mailbox: str) -> Trust:
    """The Trust of a mailbox called ``mailbox`` with these ``[mailbox]`` options; "file"
    for a message file read by hand (never the transport's word, never Microsoft's)."""
    return Trust(authserv_ids=_ids(options.get("authserv_id") or []),
                 microsoft365=bool(options.get("microsoft365")) and mailbox in TENANT,
                 vouched=bool(options.get("trusted")) and mailbox in VOUCHING)


@dataclass(frozen=True)
class Verdict:
    authenticated: bool
    how: str  # what proved it, or why nothing did


def verdict(msg: Message, sender: str, trust: Trust) -> Verdict:
    """Whether ``sender`` (the From address, lower-case) is who sent ``msg``."""
    if not sender or "@" not in sender:
        return Verdict(False, "no From address")
    if trust.vouched:
        return Verdict(True, "the mailbox admits authenticated senders only")
    if not trust.configured:
        return Verdict(False, "clerk cannot tell who sent it: set [mailbox] authserv_id to "
                              "your mail server's (docs/configuration.md)")
    domain = sender.rpartition("@")[2]
    headers = [(k.lower(), str(v)) for k, v in msg.raw_items()]
    results: list[tuple[str, str, dict[tuple[str, str], str]]] = []
    seen: list[str] = []
    if trust.authserv_ids:
        for value in _ours(headers, trust.authserv_ids):
            results += _parse(value)
    if trust.microsoft365:
        if any(k == "x-ms-exchange-organization-authas" and v.strip().lower() == "internal"
               for k, v in headers):
            return Verdict(True, "a sender signed in to the Microsoft 365 tenant")
        top = next((v for k, v in headers if k == "authentication-results"), None)
        if top is not None:
            results += _parse(_microsoft(top))
    for method, result, props in results:
        seen.append(f"{method}={result}")
        if result != "pass":
            continue
        if method == "dmarc" and props.get(("header", "from"), "").lower() == domain:
            return Verdict(True, f"dmarc=pass for {domain}")
        if method == "dkim" and _aligned(props.get(("header", "d"), ""), domain):
            return Verdict(True, f"dkim=pass for {props[('header', 'd')]}")
        if method == "spf" and _aligned(props.get(("smtp", "mailfrom"), ""), domain):
            return Verdict(True, f"spf=pass for {props[('smtp', 'mailfrom')]}")
    if not seen:
        return Verdict(False, f"From {sender} is not authenticated: no Authentication-Results "
                              f"from {trust.describe()}")
    return Verdict(False, f"From {sender} is not authenticated ({', '.join(seen)})")


def _ours(headers: list[tuple[str, str]], ids: tuple[str, ...]) -> list[str]:
    """The topmost run of Authentication-Results headers with one of our authserv-ids."""
    run: list[str] = []
    for name, value in headers:
        if name == "authentication-results" and _authserv_id(value) in ids:
            run.append(value)
        elif run:
            break  # the run our server added has ended: anything below is not ours
    return run


def _authserv_id(value: str) -> str:
    head = re.sub(r"\([^()]*\)", " ", value).split(";", 1)[0].split()
    return head[0].lower() if head else ""


def _microsoft(value: str) -> str:
    """Microsoft 365's header in RFC 8601 form: an authserv-id, no ``action=``."""
    return "microsoft365; " + re.sub(r"\baction=\S+?(?=;|\s|$)", "", value)


def _parse(value: str) -> list[tuple[str, str, dict[tuple[str, str], str]]]:
    """(method, result, {(ptype, property): value}) of each result; nothing if unparseable."""
    import authres

    try:
        header = authres.AuthenticationResultsHeader.parse_value(value)
    except Exception:  # a header the grammar refuses proves nothing
        return []
    return [(str(r.method).lower(), str(r.result).lower(),
             {(str(p.type).lower(), str(p.name).lower()): _domain(str(p.value))
              for p in r.properties})
            for r in header.results]


def _domain(value: str) -> str:
    """The domain of ``user@domain``, ``@domain`` or ``domain``, lower-case."""
    return value.strip().strip("<>").rpartition("@")[2].lower().rstrip(".")


def _aligned(domain: str, from_domain: str) -> bool:
    domain = domain.lower()
    return bool(domain) and (domain == from_domain or domain.endswith("." + from_domain))
