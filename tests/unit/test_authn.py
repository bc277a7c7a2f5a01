"""Who sent a message: the receiving server's verdict (RFC 8601), read only where it can be
trusted (bot/listen/authn.py)."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser

import pytest

from bot.listen.authn import NO_TRUST, Trust, trust_of, verdict

MX = "mx.network.example"
OURS = Trust(authserv_ids=(MX,))
M365 = Trust(microsoft365=True)
KENT = "gavin.swales@kent.gov.uk"


def message(*headers: str, sender: str = KENT) -> object:
    head = "".join(h + "\r\n" for h in headers)
    raw = (f"{head}From: Gavin <{sender}>\r\nTo: clerk@network.example\r\nSubject: Re\r\n"
           "\r\nDONE\r\n")
    return BytesParser(policy=policy.default).parsebytes(raw.encode())


def proved(*headers: str, trust: Trust = OURS, sender: str = KENT) -> bool:
    msg = message(*headers, sender=sender)
    return verdict(msg, sender, trust).authenticated  # type: ignore[arg-type]


@pytest.mark.parametrize("result", [
    f"Authentication-Results: {MX}; dmarc=pass (p=reject) header.from=kent.gov.uk",
    f"Authentication-Results: {MX.upper()}; DMARC=PASS header.from=Kent.Gov.UK",
    f"Authentication-Results: {MX}; dkim=pass header.d=kent.gov.uk header.i=@kent.gov.uk",
    f"Authentication-Results: {MX}; dkim=pass header.d=mail.kent.gov.uk",
    f"Authentication-Results: {MX}; spf=pass smtp.mailfrom=bounces@kent.gov.uk",
    f"Authentication-Results: {MX} 1; spf=fail smtp.mailfrom=x@kent.gov.uk; "
    "dkim=pass header.d=kent.gov.uk",
])
def test_the_servers_pass_for_the_from_domain_authenticates(result: str):
    assert proved(result)


@pytest.mark.parametrize("result,why", [
    (None, "no Authentication-Results"),
    (f"Authentication-Results: {MX}; dmarc=fail (p=none) header.from=kent.gov.uk", "dmarc=fail"),
    (f"Authentication-Results: {MX}; dmarc=pass header.from=evil.example", "dmarc=pass"),
    (f"Authentication-Results: {MX}; dkim=pass header.d=evil.example", "dkim=pass"),
    # a parent or a neighbour is not aligned without DMARC (it knows the public suffixes)
    (f"Authentication-Results: {MX}; dkim=pass header.d=gov.uk", "dkim=pass"),
    (f"Authentication-Results: {MX}; dkim=pass header.d=evilkent.gov.uk", "dkim=pass"),
    (f"Authentication-Results: {MX}; spf=pass smtp.mailfrom=x@evil.example", "spf=pass"),
    (f"Authentication-Results: {MX}; none", "no Authentication-Results"),
    (f"Authentication-Results: {MX}; dmarc=pass header.from=kent.gov.uk; (broken", ""),
    # the forger writes our verdict under another server's name, or another server's
    ("Authentication-Results: mx.evil.example; dmarc=pass header.from=kent.gov.uk",
     "no Authentication-Results"),
    (f"Authentication-Results: {MX}.evil.example; dmarc=pass header.from=kent.gov.uk",
     "no Authentication-Results"),
])
def test_anything_else_does_not(result: str | None, why: str):
    got = verdict(message(*([result] if result else [])), KENT, OURS)  # type: ignore[arg-type]
    assert not got.authenticated and why in got.how


def test_only_the_topmost_run_of_our_servers_headers_counts():
    ours = f"Authentication-Results: {MX}; dmarc=fail header.from=kent.gov.uk"
    forged = f"Authentication-Results: {MX}; dmarc=pass header.from=kent.gov.uk"
    # what the forger wrote sits below what our server added on arrival
    assert not proved(ours, "Received: from evil.example by mx", forged)
    assert proved(forged, "Received: from evil.example by mx", ours)  # ours on top: pass
    # several headers our server added together all count (one per check)
    assert proved(f"Authentication-Results: {MX}; spf=none smtp.mailfrom=kent.gov.uk",
                  f"Authentication-Results: {MX}; dkim=pass header.d=kent.gov.uk")


def test_nothing_is_authenticated_when_clerk_is_not_told_how():
    got = verdict(message(f"Authentication-Results: {MX}; dmarc=pass "  # type: ignore[arg-type]
                          "header.from=kent.gov.uk"), KENT, NO_TRUST)
    assert not got.authenticated and "set [mailbox] authserv_id" in got.how


MICROSOFT = ("Authentication-Results: spf=pass (sender IP is 203.0.113.5) smtp.mailfrom="
             "kent.gov.uk; dkim=pass (signature was verified) header.d=kent.gov.uk;dmarc=pass "
             "action=none header.from=kent.gov.uk;compauth=pass reason=100")


def test_microsoft_365s_own_shape_is_read_only_when_the_install_says_so():
    assert proved(MICROSOFT, trust=M365)
    assert not proved(MICROSOFT, trust=OURS)  # no authserv-id: never ours
    assert not proved(MICROSOFT.replace("dmarc=pass", "dmarc=fail").replace(
        "dkim=pass", "dkim=fail").replace("spf=pass", "spf=fail"), trust=M365)
    # only the topmost: a forger's copy is below Microsoft's own
    assert not proved(MICROSOFT.replace("=pass", "=fail"), MICROSOFT, trust=M365)
    assert proved("X-MS-Exchange-Organization-AuthAs: Internal", trust=M365)
    assert not proved("X-MS-Exchange-Organization-AuthAs: Anonymous", trust=M365)


def test_the_transports_word_and_where_each_way_is_allowed():
    assert trust_of({"trusted": True}, "graph").vouched
    assert not trust_of({"trusted": True}, "imap").vouched  # an IMAP server vouches for no one
    assert not trust_of({"trusted": True}, "file").configured
    assert trust_of({"microsoft365": True}, "imap").microsoft365
    assert not trust_of({"microsoft365": True}, "file").microsoft365  # never from a file
    assert trust_of({"authserv_id": [MX, "mx2.example"]}, "file").authserv_ids == (
        MX, "mx2.example")
    assert proved(trust=trust_of({"trusted": True}, "exchange"))
    assert not proved(trust=trust_of({"trusted": True}, "maildir"))
