"""Identifiers only this install can make. Reply tokens: the ``[#token]`` a message's subject
carries so that an answer to it can be matched (and, for actions and approvals, trusted) even
when the member's client drops In-Reply-To. Message-IDs. Both are HMACs of the ledger key
under the install's secret (kept in the state store): the key, which every message carries in
``X-Clerk-Key``, is no use without it. Also :func:`clean`, the one-line form of any text put
in a header."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")

# a token as it appears in a subject
IN_SUBJECT = re.compile(r"\[#([a-z2-7]{10})\]", re.IGNORECASE)

# the messages whose subjects carry a [#token]
ANSWERABLE = ("request", "chaser", "action_chaser", "approval_request")


def clean(text: str) -> str:
    """One line, fit for a header: no CR, LF or other controls, no lone surrogates."""
    return " ".join(_CONTROLS.sub(" ", text).split())


def make_token(secret: bytes, key: str) -> str:
    digest = hmac.new(secret, key.encode(), hashlib.sha256).digest()
    return base64.b32encode(digest).decode().lower()[:10]


def message_digest(secret: bytes, key: str) -> str:
    """What a message's Message-ID is made of: an HMAC of its ledger key, so that nobody
    without the secret can name a message clerk sent (and forge an answer or a bounce)."""
    return hmac.new(secret, b"message-id\0" + key.encode(), hashlib.sha256).hexdigest()[:32]


def check_token(secret: bytes, key: str, token: str) -> bool:
    given = token.strip().lower().encode("utf-8", "replace")
    return hmac.compare_digest(make_token(secret, key).encode(), given)


def tag_subject(subject: str, token: str) -> str:
    """``subject [#token]``; a subject that already carries the tag is left as it is."""
    if not re.fullmatch(r"[a-z2-7]{10}", token):
        raise ValueError(f"not a clerk token: {token!r}")
    tag, subject = f"[#{token}]", clean(subject)
    return subject if tag in subject else f"{subject} {tag}".strip()
